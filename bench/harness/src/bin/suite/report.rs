//! The suite's outputs: the progress line per run, BENCHMARKS.md, and the SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use lariat_bench::LoadResult;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Kind, Meta, Run, Scenario, Target, Targets};

/// What the peers' cells say in the rows of the permessage-deflate scenarios.
const NO_DEFLATE: &str = "no permessage-deflate";

/// A result reduced to one line for the progress log.
pub fn one_line(r: &LoadResult) -> String {
    match r {
        LoadResult::Echo(e) => {
            format!(
            "{} msg/s, {} µs CPU/msg, p50 {} µs, p99 {} µs, server {:.0}% / loadgen {:.0}% busy",
            int(e.msg_per_s),
            us(e.cpu_per_msg_us),
            us(e.p50_us),
            us(e.p99_us),
            e.server_busy * 100.0,
            e.loadgen_busy * 100.0
        ) + &if e.deflate {
                format!(
                "; deflate: {} B sent, echo {} B on the wire (1 : {:.2}), {:.0}% of echoes compressed",
                int(e.wire_up_per_msg),
                int(e.wire_down_per_msg),
                e.msg_bytes as f64 / e.wire_down_per_msg.max(1.0),
                e.compressed_share * 100.0
            )
            } else {
                String::new()
            }
        }
        LoadResult::Handshake(h) => format!(
            "{} handshakes/s, {} µs CPU each, server {:.0}% / loadgen {:.0}% busy{}",
            int(h.per_s),
            us(h.cpu_per_hs_us),
            h.server_busy * 100.0,
            h.loadgen_busy * 100.0,
            if h.closed_without_close_frame > 0 {
                format!(
                    "; {} closed without a close frame",
                    int(h.closed_without_close_frame as f64)
                )
            } else {
                String::new()
            }
        ),
        LoadResult::Idle(i) => {
            format!(
            "RSS {} MiB before; {} KiB/conn idle, {} KiB/conn after one message; opened in {:.1} s",
            mib(i.rss_before),
            kib(i.bytes_per_conn_open),
            kib(i.bytes_per_conn_woken),
            i.open_secs
        ) + &if i.deflate {
                format!(
                    "; deflate: {} of {} echoes compressed",
                    int(i.compressed_echoes as f64),
                    int(i.conns as f64)
                )
            } else {
                String::new()
            }
        }
        LoadResult::Error { message } => format!("FAIL: {message}"),
    }
}

// ---------------------------------------------------------------------------------------
// Medians

/// One figure of one scenario and server: the median over rounds, or why there is none.
enum Cell {
    Value(f64),
    /// Some round failed: the server does not score in this scenario.
    Fail,
    /// Not run (filtered out).
    Missing,
}

/// A figure extracted from a run's result.
type Metric = fn(&LoadResult) -> Option<f64>;

fn cell(runs: &[Run], scenario: &str, target: &str, metric: Metric) -> Cell {
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .collect();
    if mine.is_empty() {
        return Cell::Missing;
    }
    let mut values = Vec::new();
    for r in mine {
        match metric(&r.result) {
            Some(v) => values.push(v),
            None => return Cell::Fail,
        }
    }
    Cell::Value(median(&mut values))
}

/// "min–max" of a figure over the rounds, to show how much it moved.
fn range(runs: &[Run], scenario: &str, target: &str, metric: Metric) -> String {
    let values: Vec<f64> = runs
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .filter_map(|r| metric(&r.result))
        .collect();
    if values.is_empty() {
        return "–".into();
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    format!("{}–{}", us(lo), us(hi))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn as_echo(r: &LoadResult) -> Option<&lariat_bench::EchoResult> {
    if let LoadResult::Echo(e) = r {
        Some(e)
    } else {
        None
    }
}
fn as_hs(r: &LoadResult) -> Option<&lariat_bench::HandshakeResult> {
    if let LoadResult::Handshake(h) = r {
        Some(h)
    } else {
        None
    }
}
fn as_idle(r: &LoadResult) -> Option<&lariat_bench::IdleResult> {
    if let LoadResult::Idle(i) = r {
        Some(i)
    } else {
        None
    }
}

// The metrics, as plain fns so they fit `Metric`.
fn cpu_per_msg(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.cpu_per_msg_us)
}
fn msg_per_s(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.msg_per_s)
}
fn mb_per_s(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.mb_per_s)
}
fn p50(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.p50_us)
}
fn p99(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.p99_us)
}
fn p999(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.p999_us)
}
/// Share of one core, percent.
fn server_busy(r: &LoadResult) -> Option<f64> {
    as_echo(r)
        .map(|e| e.server_busy)
        .or_else(|| as_hs(r).map(|h| h.server_busy))
        .map(|b| b * 100.0)
}
fn loadgen_busy(r: &LoadResult) -> Option<f64> {
    as_echo(r)
        .map(|e| e.loadgen_busy)
        .or_else(|| as_hs(r).map(|h| h.loadgen_busy))
        .map(|b| b * 100.0)
}
fn hs_per_s(r: &LoadResult) -> Option<f64> {
    as_hs(r).map(|h| h.per_s)
}
fn cpu_per_hs(r: &LoadResult) -> Option<f64> {
    as_hs(r).map(|h| h.cpu_per_hs_us)
}
/// Percent of handshake cycles the server ended without a close frame.
fn no_close_frame_pct(r: &LoadResult) -> Option<f64> {
    as_hs(r).map(|h| h.closed_without_close_frame as f64 / h.handshakes.max(1) as f64 * 100.0)
}
fn idle_open_kib(r: &LoadResult) -> Option<f64> {
    as_idle(r).map(|i| i.bytes_per_conn_open / 1024.0)
}
fn idle_woken_kib(r: &LoadResult) -> Option<f64> {
    as_idle(r).map(|i| i.bytes_per_conn_woken / 1024.0)
}
fn rss_before_mib(r: &LoadResult) -> Option<f64> {
    as_idle(r).map(|i| i.rss_before as f64 / (1 << 20) as f64)
}
fn open_secs(r: &LoadResult) -> Option<f64> {
    as_idle(r).map(|i| i.open_secs)
}
/// Bytes on the wire per message, frame headers included: loadgen's frame, and the echo.
fn wire_up(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.wire_up_per_msg)
}
fn wire_down(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.wire_down_per_msg)
}
/// Compression ratio of the echoes: message bytes ÷ the echo's bytes on the wire.
fn ratio_down(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.msg_bytes as f64 / e.wire_down_per_msg.max(1.0))
}
/// The same for loadgen's own messages (compressed at zlib's default level, ahead of time).
fn ratio_up(r: &LoadResult) -> Option<f64> {
    as_echo(r).map(|e| e.msg_bytes as f64 / e.wire_up_per_msg.max(1.0))
}
/// Percent of the echoes that came compressed.
fn compressed_pct(r: &LoadResult) -> Option<f64> {
    as_echo(r)
        .map(|e| e.compressed_share)
        .or_else(|| as_idle(r).map(|i| i.compressed_echoes as f64 / i.conns.max(1) as f64))
        .map(|s| s * 100.0)
}

/// The CPU figure charted for a scenario: per message, or per handshake.
fn cpu_metric(kind: &Kind) -> Option<Metric> {
    match kind {
        Kind::Echo { .. } => Some(cpu_per_msg),
        Kind::Handshake { .. } => Some(cpu_per_hs),
        Kind::Idle { .. } => None,
    }
}

// ---------------------------------------------------------------------------------------
// BENCHMARKS.md

/// A row of the summary: one figure of one scenario, lariat (`lariat_key`) against peers.
struct Row {
    label: String,
    scenario: &'static str,
    lariat_key: &'static str,
    metric: Metric,
    lower_is_better: bool,
    unit: &'static str,
    /// What the peers' cells say instead of a figure (the deflate scenarios: lariat only).
    peer_note: Option<&'static str>,
}

fn summary_rows(scenarios: &[Scenario]) -> Vec<Row> {
    let mut rows = Vec::new();
    let row = |label: String, scenario, lariat_key, metric, lower_is_better, unit| Row {
        label,
        scenario,
        lariat_key,
        metric,
        lower_is_better,
        unit,
        peer_note: None,
    };
    for s in scenarios {
        if s.deflate {
            // lariat with permessage-deflate; the peers' servers do not offer it. The
            // figures without deflate are in the permessage-deflate section.
            let lariat_only = |label, metric, lower_is_better, unit| Row {
                peer_note: Some(NO_DEFLATE),
                ..row(
                    label,
                    s.key,
                    "lariat-deflate",
                    metric,
                    lower_is_better,
                    unit,
                )
            };
            match &s.kind {
                Kind::Echo { .. } => {
                    rows.push(lariat_only(
                        format!("{}: server CPU/msg", s.title),
                        cpu_per_msg as Metric,
                        true,
                        "µs",
                    ));
                    rows.push(lariat_only(
                        format!("{}: msg/s", s.title),
                        msg_per_s,
                        false,
                        "msg/s",
                    ));
                }
                Kind::Idle { conns, .. } => rows.push(lariat_only(
                    format!(
                        "idle memory/conn with deflate negotiated, {} conns, after one message",
                        int(*conns as f64)
                    ),
                    idle_woken_kib,
                    true,
                    "KiB",
                )),
                Kind::Handshake { .. } => {}
            }
            continue;
        }
        match &s.kind {
            Kind::Echo { conns: 1, .. } => {
                rows.push(row(
                    format!("{}: p50 latency", s.title),
                    s.key,
                    "lariat",
                    p50 as Metric,
                    true,
                    "µs",
                ));
                rows.push(row(
                    format!("{}: p99 latency", s.title),
                    s.key,
                    "lariat",
                    p99,
                    true,
                    "µs",
                ));
                rows.push(row(
                    format!("{}: server CPU/msg", s.title),
                    s.key,
                    "lariat",
                    cpu_per_msg,
                    true,
                    "µs",
                ));
            }
            Kind::Echo { .. } => {
                rows.push(row(
                    format!("{}: server CPU/msg", s.title),
                    s.key,
                    "lariat",
                    cpu_per_msg,
                    true,
                    "µs",
                ));
                rows.push(row(
                    format!("{}: msg/s", s.title),
                    s.key,
                    "lariat",
                    msg_per_s,
                    false,
                    "msg/s",
                ));
            }
            Kind::Handshake { .. } => {
                rows.push(row(
                    "handshake: server CPU/handshake".into(),
                    s.key,
                    "lariat",
                    cpu_per_hs,
                    true,
                    "µs",
                ));
                rows.push(row(
                    "handshake: handshakes/s".into(),
                    s.key,
                    "lariat",
                    hs_per_s,
                    false,
                    "/s",
                ));
            }
            Kind::Idle { conns, .. } => {
                let n = int(*conns as f64);
                // After one message each: the figure the comparison is about (the idle
                // table below also has the one before any message).
                for (lk, route) in [("lariat-hibernate", "/seed/hibernate"), ("lariat", "/echo")] {
                    rows.push(row(
                        format!(
                            "idle memory/conn, {n} conns, after one message; lariat on {route}"
                        ),
                        s.key,
                        lk,
                        idle_woken_kib,
                        true,
                        "KiB",
                    ));
                }
            }
        }
    }
    rows
}

pub fn markdown(
    meta: &Meta,
    scenarios: &[Scenario],
    targets: &Targets,
    runs: &[Run],
    chart_file: &str,
) -> String {
    let peers: Vec<&Target> = targets
        .echo
        .iter()
        .filter(|t| !t.is_lariat && !t.reference)
        .collect();
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# lariat benchmarks\n");
    let _ = writeln!(
        w,
        "lariat's demo server (`/echo`, `--threads 1`) side by side with four Rust WebSocket servers from \
         crates.io, each a small echo server after its library's own example (`bench/servers/`). \
         {} run{}, started {}, took {:.1} min; every figure is the median of {} rounds run \
         interleaved (A B C … A B C …).\n",
        if meta.quick { "A quick (`--quick`)" } else { "A full" },
        if meta.quick { ": short windows, fewer idle connections; for a smoke check, not for quoting" } else { "" },
        meta.started,
        meta.elapsed.as_secs_f64() / 60.0,
        meta.reps
    );
    let _ = writeln!(
        w,
        "Reproduce from the repository root (builds everything in release mode first):\n"
    );
    let _ = writeln!(w, "```sh\n{}\n```\n", meta.command);

    // Summary of ratios.
    let _ = writeln!(w, "## lariat ÷ peer\n");
    let _ = writeln!(
        w,
        "Each cell is lariat's figure divided by the peer's. For CPU per message or handshake, \
         latency and memory, **below 1 is better for lariat**; for msg/s and handshakes/s, above 1 \
         is. On two cores the load generator can be the limit of msg/s (see its busy share below), \
         so server CPU per message is the figure that ranks servers.\n"
    );
    let rows = summary_rows(scenarios);
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    table_head(w, &["", "better"], &names);
    for r in &rows {
        let mine = cell(runs, r.scenario, r.lariat_key, r.metric);
        let mut cells = vec![
            r.label.clone(),
            if r.lower_is_better { "lower" } else { "higher" }.to_string(),
        ];
        for p in &peers {
            if let Some(note) = r.peer_note {
                cells.push(note.into());
                continue;
            }
            let theirs = cell(runs, r.scenario, p.key, r.metric);
            cells.push(match (&mine, &theirs) {
                (Cell::Value(a), Cell::Value(b)) if *b > 0.0 => format!("{:.2}", a / b),
                (Cell::Fail, _) => "lariat failed".into(),
                (_, Cell::Fail) => "peer failed".into(),
                _ => "–".into(),
            });
        }
        table_row(w, &cells);
    }

    // The same rows as raw medians.
    let _ = writeln!(w, "\n## Raw medians\n");
    let mut numeric = vec!["lariat"];
    numeric.extend(&names);
    table_head(w, &["", "unit"], &numeric);
    for r in &rows {
        let mut cells = vec![r.label.clone(), r.unit.to_string()];
        cells.push(fmt_cell(
            &cell(runs, r.scenario, r.lariat_key, r.metric),
            r.unit,
        ));
        for p in &peers {
            cells.push(match r.peer_note {
                Some(note) => note.into(),
                None => fmt_cell(&cell(runs, r.scenario, p.key, r.metric), r.unit),
            });
        }
        table_row(w, &cells);
    }

    floor_section(w, scenarios, &peers, runs);
    deflate_section(w, scenarios, runs);

    let _ = writeln!(w, "\n## Server CPU per message\n");
    let _ = writeln!(
        w,
        "![Server CPU time per message (or per handshake) for each scenario and server; idle memory \
         per connection]({chart_file})\n"
    );

    // Every scenario in detail.
    let _ = writeln!(w, "## Each scenario\n");
    let _ = writeln!(
        w,
        "Medians over the rounds; *(min–max)*: the spread of server CPU over the rounds. *busy*: \
         share of one core used over the measured window (utime+stime from /proc/PID/stat for the \
         server; getrusage for the load generator). Latency runs from queuing a frame to receiving \
         its whole echo.\n"
    );
    for s in scenarios {
        let _ = writeln!(w, "### {}\n", s.title);
        let mut cols: Vec<(&str, Metric, &str)> = match s.kind {
            Kind::Echo { .. } => vec![
                ("msg/s", msg_per_s, "msg/s"),
                ("MB/s", mb_per_s, "MB/s"),
                ("server CPU/msg µs", cpu_per_msg, "µs"),
                ("(min–max)", cpu_per_msg, "range µs"),
                ("server busy %", server_busy, "%"),
                ("loadgen busy %", loadgen_busy, "%"),
                ("p50 µs", p50, "µs"),
                ("p99 µs", p99, "µs"),
                ("p99.9 µs", p999, "µs"),
            ],
            Kind::Handshake { .. } => vec![
                ("handshakes/s", hs_per_s, "/s"),
                ("server CPU/handshake µs", cpu_per_hs, "µs"),
                ("(min–max)", cpu_per_hs, "range µs"),
                ("server busy %", server_busy, "%"),
                ("loadgen busy %", loadgen_busy, "%"),
                ("closed without close frame %", no_close_frame_pct, "%"),
            ],
            Kind::Idle { .. } => vec![
                ("RSS at start MiB", rss_before_mib, "MiB"),
                ("KiB/conn idle", idle_open_kib, "KiB"),
                ("KiB/conn after one message", idle_woken_kib, "KiB"),
                ("open time s", open_secs, "s"),
            ],
        };
        if s.deflate {
            match s.kind {
                Kind::Echo { .. } => cols.extend([
                    ("wire B/msg sent", wire_up as Metric, "B"),
                    ("wire B/echo", wire_down, "B"),
                    ("echo ratio", ratio_down, "ratio"),
                    ("echoes compressed %", compressed_pct, "%"),
                ]),
                _ => cols.push(("echoes compressed %", compressed_pct, "%")),
            }
        }
        let targets = targets.of(s);
        let col_names: Vec<&str> = cols.iter().map(|(name, _, _)| *name).collect();
        table_head(w, &["server"], &col_names);
        for t in targets {
            let mut cells = vec![t.name.to_string()];
            cells.extend(cols.iter().map(|(_, metric, unit)| match *unit {
                "range µs" => range(runs, s.key, t.key, *metric),
                _ => fmt_cell(&cell(runs, s.key, t.key, *metric), unit),
            }));
            table_row(w, &cells);
        }
        let _ = writeln!(w);
    }

    // Failures, verbatim.
    let failures: Vec<&Run> = runs
        .iter()
        .filter(|r| matches!(r.result, LoadResult::Error { .. }))
        .collect();
    let _ = writeln!(w, "## Failed runs\n");
    if failures.is_empty() {
        let _ = writeln!(
            w,
            "None: every echo of every run was checked (opcode, length, content) and matched.\n"
        );
    } else {
        let _ = writeln!(
            w,
            "A server that fails any round of a scenario does not score there (\"fail\" above).\n"
        );
        for r in failures {
            if let LoadResult::Error { message } = &r.result {
                let _ = writeln!(
                    w,
                    "- {} / {} / round {}: {}",
                    r.scenario,
                    r.target,
                    r.rep + 1,
                    message
                );
            }
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "## Machine\n");
    for (k, v) in &meta.machine {
        let _ = writeln!(w, "- {k}: {v}");
    }
    let _ = writeln!(
        w,
        "- Each server is a fresh process per run, pinned with `taskset -c 0`; the load generator \
         (`bench/harness`, one mio thread) is pinned with `taskset -c 1`. Loopback only.\n\
         - Scheduling: {}.\n\
         - Load average (1, 5, 15 min) at the start: {}; at the end: {}. Anything else running \
         on the machine shares its two cores with the benchmark.\n",
        meta.sched.describe(),
        meta.load.0,
        meta.load.1
    );
    let _ = writeln!(w, "## Versions\n");
    let _ = writeln!(
        w,
        "- lariat: this repository's working tree, `{}` (`git describe --always --dirty`)",
        meta.lariat_rev
    );
    for (name, v) in &meta.versions {
        let _ = writeln!(w, "- {name} peer: {v}");
    }
    let _ = writeln!(
        w,
        "\n(from `bench/Cargo.lock`, following each peer's dependencies)"
    );
    let _ = writeln!(
        w,
        "\n## Method\n\n\
         - **Servers.** lariat's demo binary as built by the root workspace, `--threads 1` (a \
         current_thread runtime). Peers (`bench/servers/*`): tokio-tungstenite's echo-server \
         example, fastwebsockets' echo_server example (hyper upgrade), axum's `extract::ws` \
         example, actix-ws's README example with one worker; each on a current_thread runtime \
         (actix: its single worker), TCP_NODELAY on (as lariat does), no logging. actix-ws's \
         frame limit is raised from 64 KiB to lariat's 64 MiB so the 64 KiB scenario fits.\n\
         - **Load generator.** Raw TCP, its own HTTP upgrade (the `Sec-WebSocket-Accept` is \
         checked), 16 distinct payloads per connection masked once ahead of time and sent with \
         writev, every echo checked as it streams in: opcode, length, every byte, in order. A \
         wrong echo, an unexpected close, or 5 s without progress fails the run.\n\
         - **Echo.** C connections each keep W messages in flight (a new one is sent as each echo \
         completes). After a warm-up, the window counts messages whose echo completed in it; \
         server CPU per message is the server's utime+stime over the window divided by them.\n\
         - **Handshakes.** 32 clients loop: TCP connect, upgrade, send close 1000, wait for the \
         server's close frame, drop the socket. CPU per handshake covers the whole cycle. A \
         server that closes TCP instead of answering with a close frame (RFC 6455 §5.5.1 says \
         it must answer) still completes the cycle; the share of such cycles is in the \
         handshake table.\n\
         - **Idle memory.** N connections opened one after another and left idle; VmRSS from \
         /proc/PID/status before and after (sampled until steady); then one 32-byte message on \
         each, every echo read, VmRSS again. Per connection = growth ÷ N. lariat is measured on \
         `/seed/hibernate` (hibernates after every callback) and on `/echo`.\n\
         - **permessage-deflate** (lariat only: the peers' servers do not offer it). loadgen \
         `--deflate` offers `permessage-deflate` and requires lariat to accept it with \
         `server_no_context_takeover`; its messages are compressed once ahead of time (raw \
         deflate, sync flush, the trailing `00 00 ff ff` removed, RSV1 set), and each \
         compressed echo is inflated on its own and compared byte for byte (an echo without \
         RSV1 is compared as it is). The payload is JSON-like text, the same for the runs \
         without deflate beside them. The idle scenario sends one 1 KiB message per \
         connection, compressed both ways.\n\
         - Raw per-run results: `results.json` beside this file; server logs in \
         `bench/target/release/bench-logs/`."
    );
    if meta.sched == crate::Sched::Fifo {
        let _ = writeln!(
            w,
            "- **Saturated runs** meet the kernel's real-time throttling (SCHED_FIFO tasks get 95 % \
             of a core, then pause until the next second), which shows as tens of milliseconds in \
             their p99.9: only the 1-connection rows are meant as latency figures."
        );
    }
    md
}

/// lariat's `/echo` without and with permessage-deflate, figure by figure, for the
/// scenarios that compare them (nothing when none ran).
/// The floor beside the best peer and lariat, per echo scenario: whether a target of
/// 0.8 × the best peer is above what the kernel alone costs.
fn floor_section(w: &mut String, scenarios: &[Scenario], peers: &[&Target], runs: &[Run]) {
    let echo: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| !s.deflate && matches!(s.kind, Kind::Echo { .. }))
        .collect();
    if echo.is_empty() || !runs.iter().any(|r| r.target == "floor") {
        return;
    }
    let _ = writeln!(
        w,
        "\n## The floor: what the kernel costs any epoll server\n"
    );
    let _ = writeln!(
        w,
        "`floor` (`bench/harness/src/bin/floor.rs`) is no WebSocket server: one single-threaded \
         mio loop that reads each ready socket, unmasks whole frames in place and writes their \
         echoes straight from its read buffer with one vectored write; no UTF-8 check, no \
         limits, no timers, no handler. It ran in the same rounds as the servers above. What it \
         uses is, near enough, what the kernel charges any server that reads and writes each \
         socket once per readiness event, as all of these do. Where 0.8 × the best peer is below \
         the floor (*0.8 × best peer ÷ floor* under 1), a 0.8× target is out of reach of that design: it \
         needs fewer system calls or copies per message, not less work in user space. For \
         small messages the floor is a lower bound. For 64 KiB it is not quite: its 256 KiB \
         read buffer per connection, and the partial frames it moves to the buffer's front, \
         cost it memory traffic that reading each message into its own buffer (as lariat does) \
         avoids.\n"
    );
    let _ = writeln!(
        w,
        "`floor-uring` (`bench/harness/src/bin/floor-uring.rs`) asks the same of io_uring: \
         every connection always has a receive queued and a send whenever it has output, and one \
         `io_uring_enter` per turn submits them all and collects every completion, so one \
         system call serves many sockets. It copies each echo into an output buffer, made for \
         small frames (its 64 KiB figure pays for that copy and one send per turn). Where it is \
         below the floor, a server on io_uring could go lower than any epoll server: the last \
         column says whether 0.8 × the best peer is within its reach.\n"
    );
    table_head(
        w,
        &["scenario", "best peer"],
        &[
            "floor µs",
            "best peer µs",
            "lariat µs",
            "best peer ÷ floor",
            "lariat ÷ floor",
            "0.8 × best peer ÷ floor",
            "floor-uring µs",
            "0.8 × best peer ÷ floor-uring",
        ],
    );
    for s in echo {
        let value = |key: &str| match cell(runs, s.key, key, cpu_per_msg) {
            Cell::Value(v) => Some(v),
            _ => None,
        };
        let best = peers
            .iter()
            .filter_map(|p| value(p.key).map(|v| (p.name, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let (floor, lariat) = (value("floor"), value("lariat"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{a:.2}", a = a / b),
            _ => "–".into(),
        };
        let fig = |v: Option<f64>| v.map_or("–".into(), us);
        let best_v = best.map(|b| b.1);
        table_row(
            w,
            &[
                s.title.clone(),
                best.map_or("–", |b| b.0).to_string(),
                fig(floor),
                fig(best_v),
                fig(lariat),
                ratio(best_v, floor),
                ratio(lariat, floor),
                ratio(best_v.map(|b| 0.8 * b), floor),
                fig(value("floor-uring")),
                ratio(best_v.map(|b| 0.8 * b), value("floor-uring")),
            ],
        );
    }
}

fn deflate_section(w: &mut String, scenarios: &[Scenario], runs: &[Run]) {
    let list: Vec<&Scenario> = scenarios.iter().filter(|s| s.deflate).collect();
    if list.is_empty() {
        return;
    }
    let _ = writeln!(w, "\n## permessage-deflate: lariat without and with it\n");
    let _ = writeln!(
        w,
        "The peers' servers offer no permessage-deflate (RFC 7692), so these scenarios run \
         lariat's `/echo` alone, in turn without (*plain*) and with the extension, on the same \
         JSON-like text. With it, loadgen offers plain `permessage-deflate` and fails the run \
         unless lariat accepts it; lariat answers `server_no_context_takeover; \
         client_no_context_takeover`, compresses messages of 128 bytes or more that shrink at zlib level 1 \
         and keeps no compression state per idle connection. loadgen's own messages are \
         compressed once, ahead of time (zlib's default level, 6), so lariat inflates every \
         message and deflates every echo; every compressed echo is inflated and compared with \
         what was sent. The idle scenario's one message per connection is 1 KiB of the same \
         text. *Wire bytes*: per message on the wire, frame headers included. *Ratio*: \
         message bytes ÷ wire bytes.\n"
    );
    table_head(
        w,
        &["", "unit"],
        &["lariat, plain", "lariat, deflate", "deflate ÷ plain"],
    );
    for s in list {
        let figures: Vec<(&str, Metric, &str)> = match s.kind {
            Kind::Echo { .. } => vec![
                ("server CPU/msg", cpu_per_msg, "µs"),
                ("msg/s", msg_per_s, "msg/s"),
                ("wire bytes per message sent", wire_up, "B"),
                ("wire bytes per echo", wire_down, "B"),
                (
                    "compression ratio of the echoes (lariat, level 1)",
                    ratio_down,
                    "ratio",
                ),
                (
                    "compression ratio of the messages sent (loadgen, level 6)",
                    ratio_up,
                    "ratio",
                ),
                ("echoes compressed", compressed_pct, "%"),
                ("loadgen busy", loadgen_busy, "%"),
            ],
            Kind::Idle { .. } => vec![
                ("memory/conn idle", idle_open_kib, "KiB"),
                ("memory/conn after one message", idle_woken_kib, "KiB"),
                ("echoes compressed", compressed_pct, "%"),
            ],
            Kind::Handshake { .. } => vec![],
        };
        for (name, metric, unit) in figures {
            let plain = cell(runs, s.key, "lariat", metric);
            let deflate = cell(runs, s.key, "lariat-deflate", metric);
            let ratio = match (&plain, &deflate) {
                (Cell::Value(a), Cell::Value(b)) if *a > 0.0 => format!("{:.2}", b / a),
                _ => "–".into(),
            };
            table_row(
                w,
                &[
                    format!("{}: {name}", s.title),
                    unit.to_string(),
                    fmt_cell(&plain, unit),
                    fmt_cell(&deflate, unit),
                    ratio,
                ],
            );
        }
    }
}

/// A Markdown table head: `left` columns left-aligned, `numeric` ones right-aligned.
fn table_head(w: &mut String, left: &[&str], numeric: &[&str]) {
    let names: Vec<&str> = left.iter().chain(numeric).copied().collect();
    let _ = writeln!(w, "| {} |", names.join(" | "));
    let _ = writeln!(
        w,
        "|{}{}",
        "---|".repeat(left.len()),
        "---:|".repeat(numeric.len())
    );
}

fn table_row(w: &mut String, cells: &[String]) {
    let _ = writeln!(w, "| {} |", cells.join(" | "));
}

fn fmt_cell(c: &Cell, unit: &str) -> String {
    match c {
        Cell::Value(v) => match unit {
            "msg/s" | "/s" | "B" => int(*v),
            "ratio" => format!("{v:.2}"),
            "µs" => us(*v),
            "KiB" => kib(*v * 1024.0),
            "%" => format!("{v:.0}"),
            _ => format!("{v:.1}"),
        },
        Cell::Fail => "fail".into(),
        Cell::Missing => "–".into(),
    }
}

/// 1234567.8 → "1,234,568".
pub fn int(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

/// Microseconds to three significant figures.
fn us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.1}", bytes / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

// ---------------------------------------------------------------------------------------
// The chart

/// Bar colour per server; lariat's two routes in red tones (orange with permessage-deflate),
/// peers in blue/green/grey.
fn color(key: &str) -> RGBColor {
    match key {
        "lariat" => RGBColor(214, 39, 40),
        "lariat-hibernate" => RGBColor(140, 20, 25),
        "lariat-deflate" => RGBColor(255, 127, 14),
        "tokio-tungstenite" => RGBColor(31, 119, 180),
        "fastwebsockets" => RGBColor(44, 160, 44),
        "axum" => RGBColor(148, 103, 189),
        "actix-ws" => RGBColor(127, 127, 127),
        "floor" => RGBColor(140, 86, 75),
        "floor-uring" => RGBColor(188, 189, 34),
        _ => RGBColor(0, 0, 0),
    }
}

/// Value labels, centred above their bar.
fn label_style() -> TextStyle<'static> {
    TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// Short bar labels that fit under a small panel.
fn short(key: &str) -> &str {
    match key {
        "tokio-tungstenite" => "tungstenite",
        "fastwebsockets" => "fastws",
        "lariat-hibernate" => "lariat hib.",
        "lariat-deflate" => "lariat deflate",
        k => k,
    }
}

/// One panel per scenario: server CPU per message (per handshake for that scenario), one
/// bar per server; a last panel shows idle memory per connection after one message.
/// SVG through plotters' own text metrics: no font files are read.
pub fn chart(
    path: &Path,
    scenarios: &[Scenario],
    targets: &Targets,
    runs: &[Run],
) -> Result<(), String> {
    // (scenario key, title, targets, metric, y axis label)
    let mut panels: Vec<(&str, String, &[Target], Metric, &str)> = Vec::new();
    for s in scenarios {
        if let Some(m) = cpu_metric(&s.kind) {
            let unit = if matches!(s.kind, Kind::Handshake { .. }) {
                "µs CPU per handshake"
            } else {
                "µs CPU per message"
            };
            panels.push((s.key, s.title.clone(), targets.of(s), m, unit));
        } else {
            let title = match s.kind {
                // The long title would overflow its panel.
                Kind::Idle { conns, .. } if s.deflate => format!(
                    "idle memory, deflate: {} conns, after one message",
                    int(conns as f64)
                ),
                _ => format!("{}, after one message", s.title),
            };
            panels.push((
                s.key,
                title,
                targets.of(s),
                idle_woken_kib,
                "KiB per connection",
            ));
        }
    }
    let cols = 3;
    let rows = panels.len().div_ceil(cols).max(1);
    let root = SVGBackend::new(path, (1200, 40 + 330 * rows as u32)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("chart: {e}");
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(
            "Server CPU time per message (per handshake; idle panels: memory per connection), lower is better",
            ("sans-serif", 20),
        )
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows, cols));
    for ((scenario, title, targets, metric, unit), area) in panels.iter().zip(areas.iter()) {
        let values: Vec<Option<f64>> = targets
            .iter()
            .map(|t| match cell(runs, scenario, t.key, *metric) {
                Cell::Value(v) => Some(v),
                _ => None,
            })
            .collect();
        let top = values
            .iter()
            .flatten()
            .fold(0.0f64, |a, &b| a.max(b))
            .max(1e-9)
            * 1.2;
        let n = targets.len() as i32;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .y_labels(6)
            .y_label_formatter(&|v| {
                if top >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .y_desc(*unit)
            .x_labels(targets.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => targets
                    .get(*i as usize)
                    .map_or(String::new(), |t| short(t.key).to_string()),
                _ => String::new(),
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (t, v)) in targets.iter().zip(&values).enumerate() {
            let i = i as i32;
            match v {
                Some(v) => {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i), 0.0),
                            (SegmentValue::Exact(i + 1), *v),
                        ],
                        color(t.key).filled(),
                    );
                    bar.set_margin(0, 0, 6, 6);
                    chart
                        .draw_series(std::iter::once(bar))
                        .map_err(|e| err(&e))?;
                    let label = if *unit == "KiB per connection" {
                        format!("{v:.1}")
                    } else {
                        us(*v)
                    };
                    chart
                        .draw_series(std::iter::once(Text::new(
                            label,
                            (SegmentValue::CenterOf(i), *v + top * 0.02),
                            label_style(),
                        )))
                        .map_err(|e| err(&e))?;
                }
                None => {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            "fail".to_string(),
                            (SegmentValue::CenterOf(i), top * 0.05),
                            label_style(),
                        )))
                        .map_err(|e| err(&e))?;
                }
            }
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
