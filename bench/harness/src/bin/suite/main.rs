//! suite: runs the side-by-side benchmark and writes the report.
//!
//! For every scenario, the servers are run in turn (A B C … A B C …, `--reps` rounds), each
//! a fresh process pinned to core 0 (`taskset -c 0`), loaded by `loadgen` pinned to core 1.
//! Each figure in the report is the median over the rounds; a server that fails any round
//! of a scenario (a wrong echo, a crash) shows "fail" there instead of a number.
//!
//! ```text
//! suite [--quick] [--reps N] [--sched fifo|nice|normal] [--lariat PATH] [--bin-dir DIR]
//!       [--out FILE] [--servers k1,k2,…] [--scenarios k1,k2,…]
//! ```
//!
//! `--sched` (default fifo): both processes of a run get SCHED_FIFO priority 10 (`chrt`),
//! so other work on the machine (a build, another test) cannot delay their wake-ups by a
//! whole time slice, which otherwise turns microsecond round trips into milliseconds. The
//! kernel still leaves 5 % of each core to everything else (sched_rt_runtime_us), and
//! every run is bounded in time. `nice` uses nice -20 instead; `normal` changes nothing.
//!
//! Defaults assume the layout `scripts/bench.sh` builds: this binary in
//! bench/target/release, lariat's demo in target/release. Outputs, next to `--out`
//! (default bench/BENCHMARKS.md): the report, `cpu-per-message.svg` and `results.json`
//! (every run's raw result).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lariat_bench::args::Args;
use lariat_bench::{procfs, LoadResult};
use serde::Serialize;

mod report;

fn main() {
    if let Err(e) = run() {
        eprintln!("suite: {e}");
        std::process::exit(1);
    }
}

/// One server process to benchmark, and the WebSocket path it serves.
#[derive(Clone)]
pub struct Target {
    /// Short key (command line, results.json) and the name shown in the report.
    pub key: &'static str,
    pub name: &'static str,
    pub bin: PathBuf,
    pub extra_args: Vec<String>,
    pub path: &'static str,
    pub is_lariat: bool,
    /// A reference measurement, not a peer: `floor`, which no ratio uses (its own
    /// section of BENCHMARKS.md compares it).
    pub reference: bool,
    /// loadgen offers permessage-deflate and requires it (`--deflate`).
    pub deflate: bool,
}

/// The servers, by the scenarios they run.
pub struct Targets {
    /// Echo scenarios: lariat, the peers and the floor.
    pub echo: Vec<Target>,
    /// Handshakes: lariat and the peers (the floor does no real handshake).
    pub handshake: Vec<Target>,
    /// Idle memory: lariat on two routes and the peers.
    pub idle: Vec<Target>,
    /// permessage-deflate scenarios: lariat without and with deflate (the peers' servers
    /// have no permessage-deflate).
    pub deflate: Vec<Target>,
}

impl Targets {
    /// The servers a scenario runs on, in their order in every round.
    pub fn of(&self, s: &Scenario) -> &[Target] {
        match s.kind {
            _ if s.deflate => &self.deflate,
            Kind::Idle { .. } => &self.idle,
            Kind::Handshake { .. } => &self.handshake,
            Kind::Echo { .. } => &self.echo,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Target> {
        self.echo
            .iter()
            .chain(&self.handshake)
            .chain(&self.idle)
            .chain(&self.deflate)
    }
}

/// What a scenario asks of loadgen.
#[derive(Clone, Debug)]
pub enum Kind {
    Echo {
        conns: usize,
        size: usize,
        window: usize,
        binary: bool,
        /// JSON-like text (`loadgen --json`) instead of random bytes.
        json: bool,
        secs: f64,
        warmup: f64,
    },
    Handshake {
        conc: usize,
        secs: f64,
        warmup: f64,
    },
    Idle {
        conns: usize,
        /// The one message each connection sends: 32 B of random text, or `size` bytes of
        /// JSON-like text when `json`.
        size: usize,
        json: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub key: &'static str,
    pub title: String,
    pub kind: Kind,
    /// A permessage-deflate scenario: run on lariat only, without and with deflate
    /// (`Targets::deflate`).
    pub deflate: bool,
}

/// One loadgen run, as kept in results.json.
#[derive(Serialize, Clone)]
pub struct Run {
    pub scenario: &'static str,
    pub target: &'static str,
    pub rep: usize,
    pub result: LoadResult,
}

/// Everything the report needs besides the runs.
pub struct Meta {
    pub quick: bool,
    pub sched: Sched,
    /// /proc/loadavg at the start and at the end of the suite.
    pub load: (String, String),
    pub reps: usize,
    pub started: String,
    pub elapsed: Duration,
    pub command: String,
    pub machine: Vec<(String, String)>,
    /// Per peer: the crates of its WebSocket stack with their exact versions.
    pub versions: Vec<(String, String)>,
    /// `git describe --always --dirty` of the repository lariat was built from.
    pub lariat_rev: String,
}

fn run() -> Result<(), String> {
    let args = Args::parse(std::env::args().skip(1), &["quick"])?;
    args.only(&[
        "quick",
        "reps",
        "sched",
        "lariat",
        "bin-dir",
        "out",
        "servers",
        "scenarios",
    ])?;
    let quick = args.flag("quick");
    let reps: usize = args.get("reps", 3)?;
    let sched = Sched::parse(args.opt_str("sched").unwrap_or("fifo"))?.usable();

    // Default paths, from where this binary lives: <repo>/bench/target/release/suite.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bench_dir = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("bench"));
    let bin_dir = args
        .opt_str("bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.parent().unwrap().to_path_buf());
    let lariat = args
        .opt_str("lariat")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir.join("../target/release/lariat-demo"));
    let out = args
        .opt_str("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir.join("BENCHMARKS.md"));
    let out_dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    let log_dir = bin_dir.join("bench-logs");
    for dir in [&log_dir, &out_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }

    let nofile = procfs::raise_nofile_limit();
    let all_targets = targets(&lariat, &bin_dir);
    let loadgen = bin_dir.join("loadgen");
    for bin in all_targets.all().map(|t| &t.bin).chain([&loadgen]) {
        if !bin.is_file() {
            return Err(format!(
                "{} not found (build it first: scripts/bench.sh does)",
                bin.display()
            ));
        }
    }
    let mut scenarios = scenarios(quick);
    if let Some(list) = args.opt_str("scenarios") {
        scenarios.retain(|s| list.split(',').any(|k| k == s.key));
    }
    let keep = |t: &Target| {
        args.opt_str("servers")
            .is_none_or(|l| l.split(',').any(|k| k == t.key))
    };
    let targets = Targets {
        echo: all_targets.echo.into_iter().filter(keep).collect(),
        handshake: all_targets.handshake.into_iter().filter(keep).collect(),
        idle: all_targets.idle.into_iter().filter(keep).collect(),
        deflate: all_targets.deflate.into_iter().filter(keep).collect(),
    };
    for s in &scenarios {
        if let Kind::Idle { conns, .. } = s.kind {
            if (conns as u64 + 64) > nofile {
                return Err(format!(
                    "{conns} idle connections need more than the {nofile} open files allowed"
                ));
            }
        }
    }

    let started_at = Instant::now();
    let started = shell("date -u '+%Y-%m-%d %H:%M UTC'");
    let load_start = loadavg();
    let total: usize = scenarios.iter().map(|s| reps * targets.of(s).len()).sum();
    eprintln!(
        "suite: {} scenarios, {reps} rounds, {total} runs{}",
        scenarios.len(),
        if quick { " (quick)" } else { "" }
    );

    let mut ports = PortPicker { next: 21_000 };
    let mut runs = Vec::new();
    let mut n = 0;
    for s in &scenarios {
        let list = targets.of(s);
        for rep in 0..reps {
            for t in list {
                n += 1;
                let port = ports.pick()?;
                let log = log_dir.join(format!("{}-{}-{rep}.log", s.key, t.key));
                let result = run_one(s, t, port, &loadgen, &log, sched);
                eprintln!(
                    "[{n:>3}/{total}] {:<16} {:<18} round {}: {}",
                    s.key,
                    t.key,
                    rep + 1,
                    report::one_line(&result)
                );
                runs.push(Run {
                    scenario: s.key,
                    target: t.key,
                    rep,
                    result,
                });
                // Let the loopback connections of this run wind down before the next.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    let peer_list: Vec<Target> = targets
        .echo
        .iter()
        .filter(|t| !t.is_lariat && !t.reference)
        .cloned()
        .collect();
    let meta = Meta {
        quick,
        sched,
        load: (load_start, loadavg()),
        reps,
        started,
        elapsed: started_at.elapsed(),
        command: reproduce_command(&args),
        machine: machine_info(),
        versions: peer_versions(&bench_dir.join("Cargo.lock"), &peer_list),
        lariat_rev: shell(&format!(
            "git -C '{}' describe --always --dirty 2>/dev/null",
            bench_dir.join("..").display()
        )),
    };
    let json = serde_json::to_string_pretty(&runs).map_err(|e| e.to_string())?;
    std::fs::write(out_dir.join("results.json"), json).map_err(|e| format!("results.json: {e}"))?;
    let chart = out_dir.join("cpu-per-message.svg");
    report::chart(&chart, &scenarios, &targets, &runs)?;
    let md = report::markdown(&meta, &scenarios, &targets, &runs, "cpu-per-message.svg");
    std::fs::write(&out, md).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "suite: wrote {} ({:.1} min)",
        out.display(),
        meta.elapsed.as_secs_f64() / 60.0
    );
    Ok(())
}

/// The servers: lariat's demo (on `/echo`, and on `/seed/hibernate` to show what
/// hibernating costs) and the four peers for echo and handshakes; for idle
/// memory, lariat twice (hibernating route and plain echo) and the peers; for the
/// permessage-deflate scenarios, lariat's `/echo` without and with deflate.
fn targets(lariat: &Path, bin_dir: &Path) -> Targets {
    let lariat_on = |key, name, path| Target {
        key,
        name,
        bin: lariat.to_path_buf(),
        extra_args: vec!["--threads".into(), "1".into()],
        path,
        is_lariat: true,
        reference: false,
        deflate: false,
    };
    let peer = |key: &'static str, name| Target {
        key,
        name,
        bin: bin_dir.join(format!("bench-{key}")),
        extra_args: vec![],
        path: "/echo",
        is_lariat: false,
        reference: false,
        deflate: false,
    };
    let peers = vec![
        peer("tokio-tungstenite", "tokio-tungstenite"),
        peer("fastwebsockets", "fastwebsockets"),
        peer("axum", "axum"),
        peer("actix-ws", "actix-ws"),
    ];
    // lariat also on /seed/hibernate, which hibernates after every callback (S10): its
    // rows show what hibernating costs on a busy echo (the ratio table uses /echo).
    let mut echo = vec![
        lariat_on("lariat", "lariat", "/echo"),
        lariat_on(
            "lariat-hibernate",
            "lariat /seed/hibernate (hibernates after every callback)",
            "/seed/hibernate",
        ),
    ];
    echo.extend(peers.iter().cloned());
    let handshake = echo.clone();
    // The floor (bench/harness/src/bin/floor.rs): no WebSocket library, one read and one
    // write per ready socket. What it uses is what the kernel costs any epoll server.
    echo.push(Target {
        key: "floor",
        name: "floor (no WebSocket library: one read, one write per ready socket)",
        bin: bin_dir.join("floor"),
        extra_args: vec![],
        path: "/echo",
        is_lariat: false,
        reference: true,
        deflate: false,
    });
    // The same question asked of io_uring (bench/harness/src/bin/floor-uring.rs): one
    // system call per turn for every socket's reads and writes.
    echo.push(Target {
        key: "floor-uring",
        name: "floor-uring (no WebSocket library: io_uring, one system call per turn)",
        bin: bin_dir.join("floor-uring"),
        extra_args: vec![],
        path: "/echo",
        is_lariat: false,
        reference: true,
        deflate: false,
    });
    let mut idle = vec![
        lariat_on(
            "lariat-hibernate",
            "lariat /seed/hibernate",
            "/seed/hibernate",
        ),
        lariat_on("lariat", "lariat /echo", "/echo"),
    ];
    idle.extend(peers);
    let deflate = vec![
        lariat_on("lariat", "lariat /echo, plain", "/echo"),
        Target {
            deflate: true,
            ..lariat_on(
                "lariat-deflate",
                "lariat /echo, permessage-deflate",
                "/echo",
            )
        },
    ];
    Targets {
        echo,
        handshake,
        idle,
        deflate,
    }
}

/// The scenarios, full or quick. Quick keeps every scenario and the rounds but shortens
/// the windows and opens fewer idle connections.
fn scenarios(quick: bool) -> Vec<Scenario> {
    let (secs, warmup) = if quick { (0.6, 0.2) } else { (5.0, 1.0) };
    let idle = if quick { 2_000 } else { 10_000 };
    let echo = |key, title: &str, conns, size, window, binary| Scenario {
        key,
        title: title.to_string(),
        kind: Kind::Echo {
            conns,
            size,
            window,
            binary,
            json: false,
            secs,
            warmup,
        },
        deflate: false,
    };
    // lariat only, each run once without and once with permessage-deflate, on the same
    // JSON-like text.
    let deflate_echo = |key, title: &str, conns, size, window| Scenario {
        key,
        title: title.to_string(),
        kind: Kind::Echo {
            conns,
            size,
            window,
            binary: false,
            json: true,
            secs,
            warmup,
        },
        deflate: true,
    };
    vec![
        echo(
            "echo-32-w1",
            "echo 32 B text, W=1, 100 conns",
            100,
            32,
            1,
            false,
        ),
        echo(
            "echo-32-w16",
            "echo 32 B text, W=16, 100 conns",
            100,
            32,
            16,
            false,
        ),
        echo(
            "echo-64k-w4",
            "echo 64 KiB binary, W=4, 10 conns",
            10,
            64 << 10,
            4,
            true,
        ),
        echo(
            "latency-1",
            "latency: 32 B text, W=1, 1 conn",
            1,
            32,
            1,
            false,
        ),
        Scenario {
            key: "handshake",
            title: "handshakes: connect, upgrade, close; 32 at once".into(),
            kind: Kind::Handshake {
                conc: 32,
                secs: if quick { 0.6 } else { 3.0 },
                warmup: if quick { 0.2 } else { 0.5 },
            },
            deflate: false,
        },
        Scenario {
            key: "idle",
            title: format!("idle memory: {} connections", report::int(idle as f64)),
            kind: Kind::Idle {
                conns: idle,
                size: 32,
                json: false,
            },
            deflate: false,
        },
        deflate_echo(
            "deflate-1k-w1",
            "echo 1 KiB JSON-like text, deflate, W=1, 100 conns",
            100,
            1 << 10,
            1,
        ),
        deflate_echo(
            "deflate-64k-w4",
            "echo 64 KiB JSON-like text, deflate, W=4, 10 conns",
            10,
            64 << 10,
            4,
        ),
        Scenario {
            key: "idle-deflate",
            title: format!(
                "idle memory with deflate negotiated: {} connections",
                report::int(idle as f64)
            ),
            kind: Kind::Idle {
                conns: idle,
                size: 1 << 10,
                json: true,
            },
            deflate: true,
        },
    ]
}

/// How the server and the load generator are scheduled (see the module docs).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Sched {
    Fifo,
    Nice,
    Normal,
}

impl Sched {
    fn parse(s: &str) -> Result<Sched, String> {
        match s {
            "fifo" => Ok(Sched::Fifo),
            "nice" => Ok(Sched::Nice),
            "normal" => Ok(Sched::Normal),
            _ => Err(format!("--sched {s:?}: fifo, nice or normal")),
        }
    }

    /// The command prefix that applies it.
    fn prefix(self) -> &'static [&'static str] {
        match self {
            Sched::Fifo => &["chrt", "-f", "10"],
            Sched::Nice => &["nice", "-n", "-20"],
            Sched::Normal => &[],
        }
    }

    /// This policy if we may use it here (root, or the capability), else `Normal`.
    fn usable(self) -> Sched {
        let ok = self == Sched::Normal
            || Command::new(self.prefix()[0])
                .args(&self.prefix()[1..])
                .arg("true")
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "suite: cannot use {:?} scheduling here; running with normal scheduling",
                self
            );
        }
        if ok {
            self
        } else {
            Sched::Normal
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Sched::Fifo => {
                "SCHED_FIFO priority 10 (`chrt -f 10`) for the server and the load generator"
            }
            Sched::Nice => "nice -20 for the server and the load generator",
            Sched::Normal => "normal scheduling",
        }
    }
}

/// `[prefix…] taskset -c <core> <program>`: the command every process of a run starts with.
fn pinned(sched: Sched, core: &str, program: &Path) -> Command {
    let mut argv = sched
        .prefix()
        .iter()
        .copied()
        .chain(["taskset", "-c", core]);
    let mut cmd = Command::new(argv.next().expect("taskset at least"));
    cmd.args(argv).arg(program);
    cmd
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Hands out loopback ports below the ephemeral range (32768+), a new one per run so no
/// run meets the previous run's TIME_WAIT sockets.
struct PortPicker {
    next: u16,
}

impl PortPicker {
    fn pick(&mut self) -> Result<u16, String> {
        for _ in 0..1000 {
            let p = self.next;
            self.next = if p >= 32_000 { 21_000 } else { p + 1 };
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                return Ok(p);
            }
        }
        Err("no free port between 21000 and 32000".into())
    }
}

/// Starts the server, runs loadgen against it, stops the server. Failures of any kind
/// come back as `LoadResult::Error`.
fn run_one(
    s: &Scenario,
    t: &Target,
    port: u16,
    loadgen: &Path,
    log: &Path,
    sched: Sched,
) -> LoadResult {
    let mut server = match start_server(t, port, log, sched) {
        Ok(c) => c,
        Err(message) => return LoadResult::Error { message },
    };
    let pid = server.id();
    let mut result = run_loadgen(s, t, port, pid, loadgen, sched);
    // A server that died during the run does not score, whatever loadgen saw.
    if let Ok(Some(status)) = server.try_wait() {
        if !matches!(result, LoadResult::Error { .. }) {
            result = LoadResult::Error {
                message: format!("server exited during the run ({status})"),
            };
        }
    }
    stop(&mut server);
    result
}

/// `[chrt …] taskset -c 0 <server> --addr 127.0.0.1:<port> …`; chrt and taskset exec the
/// server, so the child's PID is the server's. Returns once the port is listening.
fn start_server(t: &Target, port: u16, log: &Path, sched: Sched) -> Result<Child, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let bin = t
        .bin
        .canonicalize()
        .map_err(|e| format!("{}: {e}", t.bin.display()))?;
    let mut child = pinned(sched, "0", &bin)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(&t.extra_args)
        .env_remove("RUST_LOG") // lariat's own default filter (info): no per-connection lines
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", t.bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "server exited at start ({status}); see {}",
                log.display()
            ));
        }
        // Until the wrappers have exec'd the server, the PID is still chrt's or taskset's.
        let exec_done =
            std::fs::read_link(format!("/proc/{}/exe", child.id())).is_ok_and(|exe| exe == bin);
        if exec_done && procfs::is_listening(port) {
            // A moment for servers that start workers after binding (actix).
            std::thread::sleep(Duration::from_millis(50));
            return Ok(child);
        }
        if Instant::now() > deadline {
            stop(&mut child);
            return Err(format!("server not listening on port {port} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills a process we started, by its PID, and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `[chrt …] taskset -c 1 loadgen <mode> …`, bounded in time; parses its JSON line.
fn run_loadgen(
    s: &Scenario,
    t: &Target,
    port: u16,
    server_pid: u32,
    loadgen: &Path,
    sched: Sched,
) -> LoadResult {
    let mut cmd = pinned(sched, "1", loadgen);
    let common = |cmd: &mut Command, mode: &str| {
        cmd.arg(mode)
            .args(["--addr", &format!("127.0.0.1:{port}"), "--path", t.path])
            .args(["--server-pid", &server_pid.to_string()]);
        if t.deflate {
            cmd.arg("--deflate");
        }
    };
    // Longest a run may take before it is killed.
    let limit = match &s.kind {
        Kind::Echo {
            conns,
            size,
            window,
            binary,
            json,
            secs,
            warmup,
        } => {
            common(&mut cmd, "echo");
            cmd.args(["--conns", &conns.to_string(), "--size", &size.to_string()])
                .args(["--window", &window.to_string(), "--secs", &secs.to_string()])
                .args(["--warmup", &warmup.to_string()]);
            if *binary {
                cmd.arg("--binary");
            }
            if *json {
                cmd.arg("--json");
            }
            secs + warmup + 30.0
        }
        Kind::Handshake { conc, secs, warmup } => {
            common(&mut cmd, "handshake");
            cmd.args(["--conc", &conc.to_string(), "--secs", &secs.to_string()])
                .args(["--warmup", &warmup.to_string()]);
            secs + warmup + 30.0
        }
        Kind::Idle { conns, size, json } => {
            common(&mut cmd, "idle");
            cmd.args(["--conns", &conns.to_string()]);
            if *size != 32 {
                cmd.args(["--size", &size.to_string()]);
            }
            if *json {
                cmd.arg("--json");
            }
            60.0 + *conns as f64 / 200.0
        }
    };
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return LoadResult::Error {
                message: format!("starting loadgen: {e}"),
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(limit);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                stop(&mut child);
                return LoadResult::Error {
                    message: format!("loadgen still running after {limit:.0} s"),
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return LoadResult::Error {
                    message: format!("waiting for loadgen: {e}"),
                }
            }
        }
    }
    // The output is one short line: it fits in the pipe while we wait.
    let mut out = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut out);
    }
    serde_json::from_str(out.trim()).unwrap_or_else(|_| LoadResult::Error {
        message: format!("loadgen printed no result: {:?}", out.trim()),
    })
}

/// `scripts/bench.sh` with the options that shaped this run (not the paths it passes).
fn reproduce_command(args: &Args) -> String {
    let mut cmd = String::from("scripts/bench.sh");
    if args.flag("quick") {
        cmd.push_str(" --quick");
    }
    for key in ["reps", "sched", "servers", "scenarios"] {
        if let Some(v) = args.opt_str(key) {
            cmd.push_str(&format!(" --{key} {v}"));
        }
    }
    cmd
}

/// CPU model, core count, kernel, compiler: for the report's Machine section.
fn machine_info() -> Vec<(String, String)> {
    let model = shell("lscpu | sed -n 's/^Model name: *//p' | head -1");
    let cores = shell("nproc");
    vec![
        ("CPU".into(), format!("{model} ({cores} cores)")),
        ("Kernel".into(), shell("uname -sr")),
        (
            "Memory".into(),
            shell("free -g | awk '/^Mem:/ {print $2 \" GiB\"}'"),
        ),
        ("Compiler".into(), shell("rustc --version")),
    ]
}

/// For each peer server, the exact versions of the crates its WebSocket stack is made
/// of, found by walking its dependencies in bench/Cargo.lock (axum, for one, brings its own
/// tokio-tungstenite, not necessarily the one the tokio-tungstenite peer uses).
fn peer_versions(lock: &Path, peers: &[Target]) -> Vec<(String, String)> {
    const SHOWN: [&str; 10] = [
        "tokio-tungstenite",
        "tungstenite",
        "fastwebsockets",
        "axum",
        "actix-ws",
        "actix-web",
        "actix-http",
        "hyper",
        "hyper-util",
        "tokio",
    ];
    // (name, version, dependencies as written: "name" or "name version [(source)]").
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let packages: Vec<(&str, &str, Vec<&str>)> = text
        .split("[[package]]")
        .filter_map(|block| {
            let field = |k: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix(" = \"")?.strip_suffix('"'))
            };
            let deps = block
                .split_once("dependencies = [")
                .map(|(_, rest)| rest.split(']').next().unwrap_or(""))
                .unwrap_or("")
                .lines()
                .filter_map(|l| {
                    l.trim()
                        .trim_end_matches(',')
                        .strip_prefix('"')?
                        .strip_suffix('"')
                })
                .collect();
            Some((field("name")?, field("version")?, deps))
        })
        .collect();
    let find = |dep: &str| {
        let mut words = dep.split_whitespace();
        let (name, version) = (words.next().unwrap_or(""), words.next());
        packages
            .iter()
            .position(|(n, v, _)| *n == name && version.is_none_or(|want| want == *v))
    };
    peers
        .iter()
        .map(|t| {
            // Breadth-first over the dependency graph from the peer's own package.
            let mut seen = vec![false; packages.len()];
            let mut queue: Vec<usize> = find(&format!("bench-{}", t.key)).into_iter().collect();
            let mut shown = Vec::new();
            while let Some(i) = queue.pop() {
                if std::mem::replace(&mut seen[i], true) {
                    continue;
                }
                let (name, version, deps) = &packages[i];
                if SHOWN.contains(name) {
                    shown.push((
                        SHOWN.iter().position(|s| s == name),
                        format!("{name} {version}"),
                    ));
                }
                queue.extend(deps.iter().filter_map(|d| find(d)));
            }
            shown.sort();
            let list: Vec<String> = shown.into_iter().map(|(_, s)| s).collect();
            (
                t.name.to_string(),
                if list.is_empty() {
                    "?".into()
                } else {
                    list.join(", ")
                },
            )
        })
        .collect()
}

/// A shell one-liner's trimmed output ("?" when it fails).
fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}
