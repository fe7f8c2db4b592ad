//! pubsub: the topics benchmark (issue #7), run by `scripts/bench.sh` after the suite.
//!
//! ```text
//! pubsub --lariat PATH --out FILE [--subs N] [--rounds R] [--reps K] [--msgs M] [--quick]
//! ```
//!
//! 1. **Fan-out on one node.** lariat's demo (`--threads 1`, pinned to core 0) with N
//!    subscribers; one publisher sends one 32-byte text message per round and waits until
//!    every subscriber has it (each delivery checked byte for byte) before the next round.
//!    Two ways, interleaved over K repetitions: *topics* (`/bench/sub` subscribed to topic
//!    `bench`, `/bench/pub` publishes: the frame is encoded once and written straight out)
//!    and *send loop* (`/bench/loop` connections' handles in a map, `/bench/loop-pub` sends
//!    the text to each handle and each connection's `info` sends the frame: what an
//!    application does without topics). Figures: deliveries per second, server CPU per
//!    delivery (from /proc/PID/stat over the measured rounds), time from publishing to the
//!    last delivery (p50, p99 over rounds).
//! 2. **Across nodes through Redis.** A redis-server and two demo processes with `--redis`,
//!    all on core 0; one client publishes on node A's `/chat/bench`, one at a time (W=1), and
//!    a client of node B receives; latency from send to receipt, p50/p99/p99.9 over M
//!    messages, beside the same with both clients on node A.
//!
//! This process runs on core 1 (`taskset -c 1`, set by bench.sh). It writes a markdown
//! section to `--out`; bench.sh appends it to BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use lariat_bench::args::Args;
use lariat_bench::{procfs, ws};
use mio::{Events, Interest, Poll, Token};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A round (or a message) that takes longer than this fails the run.
const STALL: Duration = Duration::from_secs(10);

fn main() {
    procfs::raise_nofile_limit();
    if let Err(e) = run() {
        eprintln!("pubsub: {e}");
        std::process::exit(1);
    }
}

struct Config {
    lariat: PathBuf,
    out: PathBuf,
    subs: usize,
    rounds: usize,
    reps: usize,
    msgs: usize,
    quick: bool,
}

fn run() -> Result<(), String> {
    let a = Args::parse(std::env::args().skip(1), &["quick"])?;
    a.only(&["lariat", "out", "subs", "rounds", "reps", "msgs", "quick"])?;
    let quick = a.flag("quick");
    let cfg = Config {
        lariat: PathBuf::from(a.str("lariat")?),
        out: PathBuf::from(a.str("out")?),
        subs: a.get("subs", if quick { 2_000 } else { 10_000 })?,
        rounds: a.get("rounds", if quick { 20 } else { 100 })?,
        reps: a.get("reps", if quick { 1 } else { 3 })?,
        msgs: a.get("msgs", if quick { 500 } else { 5_000 })?,
        quick,
    };
    let started = Instant::now();
    let mut fan: Vec<(&str, Fanout)> = Vec::new();
    for rep in 0..cfg.reps {
        for (key, sub, publ) in [
            ("topics", "/bench/sub", "/bench/pub"),
            ("send loop", "/bench/loop", "/bench/loop-pub"),
        ] {
            // N subscribers and a publisher: past the demo's default cap of 10,000.
            let cap = [
                "--max-connections".to_string(),
                (cfg.subs + 100).to_string(),
            ];
            let r = with_server(&cfg.lariat, &cap, |addr, pid| {
                fanout(addr, pid, sub, publ, cfg.subs, cfg.rounds)
            })?;
            eprintln!(
                "pubsub: fan-out {key:<9} round {}: {:.0} deliveries/s, {:.2} µs CPU/delivery, p50 {:.1} ms",
                rep + 1,
                r.per_s,
                r.cpu_us,
                r.p50_ms
            );
            fan.push((key, r));
        }
    }
    let cross = cross_node(&cfg)?;
    let md = report(&cfg, &fan, &cross, started.elapsed());
    std::fs::write(&cfg.out, md).map_err(|e| format!("{}: {e}", cfg.out.display()))?;
    eprintln!("pubsub: wrote {}", cfg.out.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Processes

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// `taskset -c 0 <program> …`, output to a log file next to `program`.
fn start_pinned(program: &Path, args: &[String], log: &str) -> Result<Child, String> {
    let log_path = std::env::temp_dir().join(format!("lariat-pubsub-{log}.log"));
    let out = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    Command::new("taskset")
        .args(["-c", "0"])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))
}

fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !procfs::is_listening(port) {
        if let Ok(Some(s)) = child.try_wait() {
            return Err(format!("exited at start ({s})"));
        }
        if Instant::now() > deadline {
            return Err(format!("not listening on {port} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Start the demo (`--threads 1`, pinned to core 0, `extra` arguments), run `f` with its
/// address and PID, stop it.
fn with_server<T>(
    lariat: &Path,
    extra: &[String],
    f: impl FnOnce(SocketAddr, u32) -> Result<T, String>,
) -> Result<T, String> {
    let port = free_port()?;
    let mut args = vec![
        "--addr".to_string(),
        format!("127.0.0.1:{port}"),
        "--threads".into(),
        "1".into(),
    ];
    args.extend_from_slice(extra);
    let mut child = start_pinned(lariat, &args, &format!("demo-{port}"))?;
    let r = wait_listening(&mut child, port)
        .and_then(|()| f(format!("127.0.0.1:{port}").parse().unwrap(), child.id()));
    stop(&mut child);
    r
}

// ---------------------------------------------------------------------------------------
// A minimal client

/// Connect and upgrade on `path`, blocking.
fn connect(addr: SocketAddr, path: &str) -> Result<TcpStream, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(&ws::upgrade_request(&addr.to_string(), path, false))
        .map_err(|e| format!("upgrade: {e}"))?;
    // Byte by byte: nothing after the head may be taken from the socket.
    let mut head = Vec::with_capacity(200);
    let mut b = [0u8; 1];
    while ws::head_len(&head).is_none() {
        let n = s
            .read(&mut b)
            .map_err(|e| format!("upgrade response: {e}"))?;
        if n == 0 {
            return Err(format!("{path}: closed during the upgrade"));
        }
        head.push(b[0]);
    }
    ws::check_upgrade_response(&head, false).map_err(|e| format!("{path}: {e}"))?;
    Ok(s)
}

/// Server frames (unmasked, unfragmented) taken from the front of `buf`: each
/// (opcode, payload range); returns how many bytes they span.
fn parse_frames(buf: &[u8], out: &mut Vec<(u8, std::ops::Range<usize>)>) -> Result<usize, String> {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        if rest.len() < 2 {
            return Ok(at);
        }
        if rest[0] & 0x80 == 0 || rest[1] & 0x80 != 0 {
            return Err(format!(
                "unexpected frame header {:02x} {:02x}",
                rest[0], rest[1]
            ));
        }
        let (len, hdr) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return Ok(at),
            n => (n as usize, 2),
        };
        if rest.len() < hdr + len {
            return Ok(at);
        }
        out.push((rest[0] & 0x0f, at + hdr..at + hdr + len));
        at += hdr + len;
    }
}

/// Read one text frame, blocking (bounded by the socket's read timeout).
fn read_text(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    let mut frames = Vec::new();
    loop {
        frames.clear();
        let used = parse_frames(buf, &mut frames)?;
        if let Some((op, range)) = frames.first().cloned() {
            let end = range.end;
            let text = String::from_utf8_lossy(&buf[range]).into_owned();
            buf.drain(..end);
            if op != ws::OP_TEXT {
                return Err(format!("expected text, got opcode {op}"));
            }
            return Ok(text);
        }
        let _ = used;
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------------------------------
// Fan-out

struct Fanout {
    deliveries: u64,
    secs: f64,
    per_s: f64,
    cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn round_payload(r: usize) -> Vec<u8> {
    let mut p = format!("fan-out round {r:>10} ").into_bytes();
    p.resize(32, b'.');
    p
}

fn fanout(
    addr: SocketAddr,
    pid: u32,
    sub_path: &str,
    pub_path: &str,
    n: usize,
    rounds: usize,
) -> Result<Fanout, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut subs = Vec::with_capacity(n);
    for i in 0..n {
        let s = connect(addr, sub_path).map_err(|e| format!("subscriber {i}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut s = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        subs.push((s, Vec::<u8>::new()));
    }
    let mut publisher = connect(addr, pub_path)?;
    let mut pub_buf = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut frames = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let warmup = 3;
    let (mut cpu0, mut t0) = (0.0, Instant::now());
    for r in 0..warmup + rounds {
        if r == warmup {
            cpu0 = procfs::cpu_secs(pid).map_err(|e| e.to_string())?;
            t0 = Instant::now();
        }
        let payload = round_payload(r);
        let started = Instant::now();
        publisher
            .write_all(&ws::masked_frame(ws::OP_TEXT, &payload, ws::mask_for(r)))
            .map_err(|e| format!("publish: {e}"))?;
        let mut got = 0;
        while got < n {
            if started.elapsed() > STALL {
                return Err(format!(
                    "round {r}: {got} of {n} deliveries after {STALL:?}"
                ));
            }
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .map_err(|e| e.to_string())?;
            for ev in events.iter() {
                let (s, buf) = &mut subs[ev.token().0];
                loop {
                    match s.read(&mut chunk) {
                        Ok(0) => return Err(format!("subscriber {} closed", ev.token().0)),
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("subscriber {}: {e}", ev.token().0)),
                    }
                }
                frames.clear();
                let used = parse_frames(buf, &mut frames)?;
                for (op, range) in frames.drain(..) {
                    if op != ws::OP_TEXT || buf[range.clone()] != payload[..] {
                        return Err(format!(
                            "subscriber {}: round {r}: wrong delivery {:?}",
                            ev.token().0,
                            String::from_utf8_lossy(&buf[range])
                        ));
                    }
                    got += 1;
                }
                buf.drain(..used);
            }
        }
        if r >= warmup {
            hist.record(started.elapsed().as_micros() as u64).ok();
        }
        // The publisher's count: every subscriber was reached.
        let count = read_text(&mut publisher, &mut pub_buf)?;
        if count != n.to_string() {
            return Err(format!("round {r}: the publisher reached {count}, not {n}"));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = procfs::cpu_secs(pid).map_err(|e| e.to_string())? - cpu0;
    let deliveries = (n * rounds) as u64;
    Ok(Fanout {
        deliveries,
        secs,
        per_s: deliveries as f64 / secs,
        cpu_us: cpu / deliveries as f64 * 1e6,
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1e3,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1e3,
    })
}

// ---------------------------------------------------------------------------------------
// Across nodes

struct Latency {
    msgs: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

struct Cross {
    redis_version: String,
    one_node: Latency,
    two_nodes: Latency,
}

/// Publish `msgs` messages one at a time on `from` and time each to its arrival at `to`.
/// The publisher's own copies (sender included) are drained as they come.
fn latency(from: &mut TcpStream, to: &mut TcpStream, msgs: usize) -> Result<Latency, String> {
    let (mut from_buf, mut to_buf) = (Vec::new(), Vec::new());
    // Until the nodes' Redis subscriptions are in place a message may not cross: probe.
    to.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    'probe: for i in 0.. {
        if Instant::now() > deadline {
            return Err("no message crossed within 10 s".into());
        }
        from.write_all(&ws::masked_frame(
            ws::OP_TEXT,
            format!("probe {i}").as_bytes(),
            ws::mask_for(i),
        ))
        .map_err(|e| e.to_string())?;
        read_text(from, &mut from_buf)?;
        while let Ok(t) = read_text(to, &mut to_buf) {
            if t.starts_with("probe") {
                break 'probe;
            }
        }
    }
    // Late probes still in flight: let them land, then drop them.
    std::thread::sleep(Duration::from_millis(300));
    while read_text(to, &mut to_buf).is_ok() {}
    to_buf.clear();
    to.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let warmup = msgs / 10;
    for i in 0..warmup + msgs {
        let body = format!("{{\"seq\":{i},\"text\":\"latency probe\"}}");
        let started = Instant::now();
        from.write_all(&ws::masked_frame(
            ws::OP_TEXT,
            body.as_bytes(),
            ws::mask_for(i),
        ))
        .map_err(|e| e.to_string())?;
        let got = read_text(to, &mut to_buf)?;
        let took = started.elapsed();
        if got != body {
            return Err(format!("message {i}: got {got:?}"));
        }
        if took > STALL {
            return Err(format!("message {i} took {took:?}"));
        }
        let own = read_text(from, &mut from_buf)?;
        if own != body {
            return Err(format!("message {i}: the sender got {own:?}"));
        }
        if i >= warmup {
            hist.record(took.as_nanos() as u64).ok();
        }
    }
    Ok(Latency {
        msgs: msgs as u64,
        p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        p999_us: hist.value_at_quantile(0.999) as f64 / 1e3,
    })
}

fn cross_node(cfg: &Config) -> Result<Cross, String> {
    let redis_port = free_port()?;
    let redis_bin = PathBuf::from("redis-server");
    let redis_version = Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| {
            // "Redis server v=7.0.15 sha=..." → "Redis 7.0.15"
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            let v = out.split_whitespace().find_map(|w| w.strip_prefix("v="));
            format!("Redis {}", v.unwrap_or("(unknown version)"))
        })
        .map_err(|e| format!("redis-server not found ({e}): run scripts/install-redis.sh"))?;
    let redis_args: Vec<String> = [
        "--port",
        &redis_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut redis = start_pinned(&redis_bin, &redis_args, "redis")?;
    let r = wait_listening(&mut redis, redis_port).and_then(|()| {
        let extra = vec![
            "--redis".to_string(),
            format!("redis://127.0.0.1:{redis_port}/"),
        ];
        with_server(&cfg.lariat, &extra, |a, _| {
            with_server(&cfg.lariat, &extra, |b, _| {
                let mut pub_a = connect(a, "/chat/bench")?;
                let mut sub_a = connect(a, "/chat/bench")?;
                let one_node = latency(&mut pub_a, &mut sub_a, cfg.msgs)?;
                let mut sub_b = connect(b, "/chat/bench")?;
                // sub_a keeps receiving: drain it on the side.
                sub_a.set_nonblocking(true).map_err(|e| e.to_string())?;
                let drain = std::thread::spawn(move || {
                    let mut b = [0u8; 65536];
                    let end = Instant::now() + Duration::from_secs(120);
                    while Instant::now() < end {
                        match sub_a.read(&mut b) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                });
                let two_nodes = latency(&mut pub_a, &mut sub_b, cfg.msgs)?;
                drop(drain);
                Ok(Cross {
                    redis_version: redis_version.clone(),
                    one_node,
                    two_nodes,
                })
            })
        })
    });
    stop(&mut redis);
    r
}

// ---------------------------------------------------------------------------------------
// Report

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn int(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(cfg: &Config, fan: &[(&str, Fanout)], cross: &Cross, took: Duration) -> String {
    let med = |key: &str, f: fn(&Fanout) -> f64| {
        median(
            fan.iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, r)| f(r))
                .collect(),
        )
    };
    let mut w = String::new();
    w.push_str("## Topics: fan-out and across nodes (issue #7)\n\n");
    w.push_str(&format!(
        "Written by `bench/target/release/pubsub` (`scripts/bench-pubsub.sh{}`, which \
         `scripts/bench.sh` runs last), {:.1} min. \
         Server: lariat's demo, `--threads 1`, pinned to core 0; client on core 1.\n\n",
        if cfg.quick { " --quick" } else { "" },
        took.as_secs_f64() / 60.0
    ));
    w.push_str(&format!(
        "### One message to {} subscribers on one node\n\n\
         One publisher sends a 32-byte text message, waits until all {} subscribers have it \
         (each checked byte for byte), then sends the next: {} measured rounds after 3 of \
         warm-up, {} repetitions interleaved, medians. *Topics*: `/bench/sub` subscribers, \
         `/bench/pub` publishes once; the frame is encoded once and written to each \
         subscriber by its own connection task, the handler not called. *Send loop*: the \
         same without topics — the publisher's handler sends the text to each connection's \
         handle and each connection's `info` callback replies with the frame.\n\n",
        int(cfg.subs as f64),
        int(cfg.subs as f64),
        cfg.rounds,
        cfg.reps
    ));
    w.push_str("| | topics | send loop | topics ÷ send loop |\n|---|---:|---:|---:|\n");
    type Row = (&'static str, fn(&Fanout) -> f64, &'static str);
    let rows: [Row; 4] = [
        ("deliveries per second", |r| r.per_s, ""),
        ("server CPU per delivery", |r| r.cpu_us, " µs"),
        ("publish → last delivery, p50", |r| r.p50_ms, " ms"),
        ("publish → last delivery, p99", |r| r.p99_ms, " ms"),
    ];
    for (name, f, unit) in rows {
        let (t, l) = (med("topics", f), med("send loop", f));
        let fmt = |v: f64| {
            if unit.is_empty() {
                int(v)
            } else {
                format!("{v:.2}{unit}")
            }
        };
        w.push_str(&format!(
            "| {name} | {} | {} | {:.2} |\n",
            fmt(t),
            fmt(l),
            t / l
        ));
    }
    let total: u64 = fan.iter().map(|(_, r)| r.deliveries).sum();
    let secs: f64 = fan.iter().map(|(_, r)| r.secs).sum();
    w.push_str(&format!(
        "\n{} deliveries verified in all, over {:.1} s of measured rounds.\n\n",
        int(total as f64),
        secs
    ));
    w.push_str(&format!(
        "### Across nodes through Redis\n\n\
         {}, two demo processes with `--redis`, all three pinned to core 0. A client of node \
         A sends a chat message on `/chat/bench` and waits for it at a client of node B \
         (one at a time, W=1), {} messages after {} of warm-up; beside it, the same with both \
         clients on node A (delivered locally; Redis carries it to other nodes only).\n\n",
        cross.redis_version,
        int(cross.two_nodes.msgs as f64),
        int((cross.two_nodes.msgs / 10) as f64)
    ));
    w.push_str("| | p50 | p99 | p99.9 |\n|---|---:|---:|---:|\n");
    for (name, l) in [
        ("node A → node B, through Redis", &cross.two_nodes),
        ("node A → node A", &cross.one_node),
    ] {
        w.push_str(&format!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} µs |\n",
            l.p50_us, l.p99_us, l.p999_us
        ));
    }
    w.push('\n');
    w
}
