//! loadgen: the benchmark's WebSocket client. One single-threaded mio (epoll) loop over
//! raw TCP sockets; the suite pins it to one core. It does its own HTTP upgrade, masks
//! every frame once ahead of time, and checks every echo (opcode, length, content): a run
//! that sees a wrong echo prints an error instead of a score and exits 1.
//!
//! ```text
//! loadgen echo      --addr A --path P --server-pid PID --conns C --size S --window W
//!                   [--binary | --json] [--deflate] [--secs T] [--warmup U]
//! loadgen handshake --addr A --path P --server-pid PID [--conc K] [--secs T] [--warmup U]
//!                   [--max N]
//! loadgen idle      --addr A --path P --server-pid PID --conns N [--size S] [--json]
//!                   [--deflate]
//! ```
//!
//! `--json`: text messages of JSON-like, compressible text (`ws::json_payload`) instead of
//! random printable bytes. `--deflate`: every connection offers `permessage-deflate` and
//! the run fails unless the server accepts it (with `server_no_context_takeover`, see
//! `ws::check_deflate_response`); messages go out compressed (built once, ahead of time,
//! RSV1 set) and compressed echoes are inflated and compared with what was sent.
//!
//! It prints one JSON line, a `lariat_bench::LoadResult`. Server CPU is utime+stime read
//! from /proc/PID/stat at the start and end of the measured window (after the warm-up).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use lariat_bench::args::Args;
use lariat_bench::ws::{self, EchoReader, Expect};
use lariat_bench::{procfs, EchoResult, HandshakeResult, IdleResult, LoadResult};
use mio::{Events, Interest, Poll, Token};

/// A run with no progress at all for this long fails (a server that stopped answering).
const STALL: Duration = Duration::from_secs(5);
/// Longest wait for one blocking step (an upgrade, an idle echo).
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an idle run may take in all (10,000 connections take a few seconds).
const IDLE_DEADLINE: Duration = Duration::from_secs(90);

fn main() {
    procfs::raise_nofile_limit();
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_default();
    let result =
        Args::parse(argv, &["binary", "json", "deflate"]).and_then(|args| match mode.as_str() {
            "echo" => EchoConfig::from_args(&args)
                .and_then(|c| run_echo(&c))
                .map(LoadResult::Echo),
            "handshake" => HsConfig::from_args(&args)
                .and_then(|c| run_handshakes(&c))
                .map(LoadResult::Handshake),
            "idle" => IdleConfig::from_args(&args)
                .and_then(|c| run_idle(&c))
                .map(LoadResult::Idle),
            _ => Err(format!("unknown mode {mode:?}: echo, handshake or idle")),
        });
    let failed = result.is_err();
    let out = result.unwrap_or_else(|message| LoadResult::Error { message });
    println!(
        "{}",
        serde_json::to_string(&out).expect("results serialize")
    );
    std::process::exit(i32::from(failed));
}

/// Options common to every mode.
struct Target {
    addr: SocketAddr,
    path: String,
    server_pid: u32,
    /// Offer permessage-deflate and require it (`--deflate`).
    deflate: bool,
}

impl Target {
    fn from_args(a: &Args) -> Result<Target, String> {
        let addr = a.str("addr")?;
        Ok(Target {
            addr: addr
                .parse()
                .map_err(|_| format!("--addr: bad address {addr:?}"))?,
            path: a.opt_str("path").unwrap_or("/").to_string(),
            server_pid: a.get("server-pid", 0)?,
            deflate: a.flag("deflate"),
        })
    }

    fn server_cpu(&self) -> Result<f64, String> {
        procfs::cpu_secs(self.server_pid)
            .map_err(|e| format!("server pid {}: {e}", self.server_pid))
    }

    fn server_rss(&self) -> Result<u64, String> {
        procfs::vm_rss(self.server_pid).map_err(|e| format!("server pid {}: {e}", self.server_pid))
    }

    /// Opens one connection and upgrades it, blocking (at most IO_TIMEOUT per step).
    fn connect_upgraded(&self) -> Result<TcpStream, String> {
        let mut s = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.write_all(&ws::upgrade_request(
            &self.addr.to_string(),
            &self.path,
            self.deflate,
        ))
        .map_err(|e| format!("sending the upgrade: {e}"))?;
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 256];
        loop {
            // The server sends nothing after the 101 until we send a frame, so whatever
            // follows the head here would be a protocol error.
            let n = s
                .read(&mut byte)
                .map_err(|e| format!("reading the upgrade response: {e}"))?;
            if n == 0 {
                return Err("server closed the connection during the upgrade".into());
            }
            head.extend_from_slice(&byte[..n]);
            if let Some(len) = ws::head_len(&head) {
                ws::check_upgrade_response(&head[..len], self.deflate)?;
                if len != head.len() {
                    return Err("unexpected bytes after the 101 response".into());
                }
                return Ok(s);
            }
            if head.len() > 16 * 1024 {
                return Err("upgrade response head over 16 KiB".into());
            }
        }
    }
}

/// Starts measuring: the server's and our own CPU time, and the wall clock.
struct Window {
    start: Instant,
    server_cpu: f64,
    own_cpu: f64,
}

impl Window {
    fn open(t: &Target) -> Result<Window, String> {
        Ok(Window {
            start: Instant::now(),
            server_cpu: t.server_cpu()?,
            own_cpu: procfs::own_cpu_secs(),
        })
    }

    /// (wall seconds, server CPU seconds, our CPU seconds) since `open`.
    fn close(&self, t: &Target) -> Result<(f64, f64, f64), String> {
        let secs = self.start.elapsed().as_secs_f64();
        Ok((
            secs,
            t.server_cpu()? - self.server_cpu,
            procfs::own_cpu_secs() - self.own_cpu,
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Echo mode

struct EchoConfig {
    target: Target,
    conns: usize,
    size: usize,
    window: usize,
    binary: bool,
    json: bool,
    secs: f64,
    warmup: f64,
}

impl EchoConfig {
    fn from_args(a: &Args) -> Result<EchoConfig, String> {
        a.only(&[
            "addr",
            "path",
            "server-pid",
            "conns",
            "size",
            "window",
            "binary",
            "json",
            "deflate",
            "secs",
            "warmup",
        ])?;
        let c = EchoConfig {
            target: Target::from_args(a)?,
            conns: a.get("conns", 1)?,
            size: a.get("size", 32)?,
            window: a.get("window", 1)?,
            binary: a.flag("binary"),
            json: a.flag("json"),
            secs: a.get("secs", 5.0)?,
            warmup: a.get("warmup", 1.0)?,
        };
        if c.conns == 0 || c.window == 0 || c.secs <= 0.0 {
            return Err("--conns, --window and --secs must be positive".into());
        }
        if c.binary && c.json {
            return Err("--binary and --json: one or the other".into());
        }
        Ok(c)
    }
}

/// One echo connection: its socket, its reader, and what it has queued to send.
struct EchoConn {
    sock: mio::net::TcpStream,
    reader: EchoReader,
    /// Frames queued and not yet fully written (the first may be partly written).
    queued: usize,
    /// Index of the first queued frame (selects its variant) and how much of it is out.
    send_seq: u64,
    send_off: usize,
    /// When each frame sent and not yet echoed was queued, oldest first.
    sent_at: VecDeque<Instant>,
}

impl EchoConn {
    /// Writes as much of the queue as the socket takes, with writev straight from the
    /// pre-built frames (nothing is copied).
    fn flush(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        const MAX_IOV: usize = 64;
        let nv = frames.len() as u64;
        while self.queued > 0 {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let k = self.queued.min(MAX_IOV);
            for (j, slot) in iov.iter_mut().enumerate().take(k) {
                let frame = &frames[((self.send_seq + j as u64) % nv) as usize];
                *slot = IoSlice::new(if j == 0 {
                    &frame[self.send_off..]
                } else {
                    frame
                });
            }
            let mut n = match self.sock.write_vectored(&iov[..k]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            // Advance over the frames that went out whole, then into the partial one.
            while n > 0 {
                let left = frames[(self.send_seq % nv) as usize].len() - self.send_off;
                if n >= left {
                    n -= left;
                    self.send_off = 0;
                    self.send_seq += 1;
                    self.queued -= 1;
                } else {
                    self.send_off += n;
                    n = 0;
                }
            }
        }
        Ok(())
    }
}

/// The `variant`-th message of a run: JSON-like text (`--json`), random binary or random
/// printable text.
fn message(json: bool, binary: bool, size: usize, variant: usize) -> Vec<u8> {
    if json {
        ws::json_payload(size, variant)
    } else {
        ws::payload(binary, size, variant)
    }
}

/// The masked frame that sends `payload`: compressed (RSV1) when deflate was agreed.
fn frame(deflate: bool, opcode: u8, payload: &[u8], variant: usize) -> Vec<u8> {
    if deflate {
        ws::compressed_frame(opcode, payload, ws::mask_for(variant))
    } else {
        ws::masked_frame(opcode, payload, ws::mask_for(variant))
    }
}

fn run_echo(cfg: &EchoConfig) -> Result<EchoResult, String> {
    let t = &cfg.target;
    // Distinct payloads per connection stream: 16, or fewer for big messages.
    let variants = if cfg.size <= 1 << 20 { 16 } else { 2 };
    let opcode = if cfg.binary {
        ws::OP_BINARY
    } else {
        ws::OP_TEXT
    };
    let expect = Expect {
        opcode,
        payloads: (0..variants)
            .map(|v| message(cfg.json, cfg.binary, cfg.size, v))
            .collect(),
        deflate: t.deflate,
    };
    let frames: Vec<Vec<u8>> = expect
        .payloads
        .iter()
        .enumerate()
        .map(|(v, p)| frame(t.deflate, opcode, p, v))
        .collect();
    // Every variant is sent equally often (in turn, from each connection's first).
    let wire_up = frames.iter().map(Vec::len).sum::<usize>() as f64 / frames.len() as f64;
    let mut inflater = ws::Inflater::default();

    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(cfg.conns);
    for i in 0..cfg.conns {
        let s = t
            .connect_upgraded()
            .map_err(|e| format!("connection {i}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut sock = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
        conns.push(EchoConn {
            sock,
            reader: EchoReader::default(),
            queued: 0,
            send_seq: 0,
            send_off: 0,
            sent_at: VecDeque::with_capacity(cfg.window),
        });
    }

    // Latency histogram in nanoseconds: 1 µs .. 60 s, 3 significant digits.
    let mut hist =
        Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds");
    let start = Instant::now();
    for c in conns.iter_mut() {
        c.queued = cfg.window;
        c.sent_at.extend(std::iter::repeat_n(start, cfg.window));
        c.flush(&frames).map_err(|e| format!("write: {e}"))?;
    }

    let warm_end = start + Duration::from_secs_f64(cfg.warmup);
    let mut window: Option<(Window, Instant)> = None; // the open window and its end
    let mut msgs = 0u64;
    // Echo wire bytes and compressed echoes over every connection, at the window's start.
    let totals = |conns: &[EchoConn]| {
        conns.iter().fold((0u64, 0u64), |(w, z), c| {
            (w + c.reader.wire_done, z + c.reader.compressed_done)
        })
    };
    let mut at_open = (0, 0);
    let mut last_progress = start;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let result = loop {
        let now = Instant::now();
        match &window {
            None if now >= warm_end => {
                window = Some((Window::open(t)?, now + Duration::from_secs_f64(cfg.secs)));
                msgs = 0;
                hist.reset();
                at_open = totals(&conns);
            }
            Some((w, end)) if now >= *end => break w.close(t)?,
            _ => {}
        }
        if now.duration_since(last_progress) > STALL {
            return Err(format!("no echo for {} s", STALL.as_secs()));
        }
        let deadline = window.as_ref().map_or(warm_end, |(_, end)| *end);
        let timeout = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r.map_err(|e| format!("poll: {e}"))?,
        }
        let measuring = window.is_some();
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            // Edge-triggered: read until the socket is drained. A short read means it was
            // empty at that moment, and newer data raises a new event.
            loop {
                let n = match c.sock.read(&mut buf) {
                    Ok(0) => return Err(format!("connection {i}: server closed the connection")),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("connection {i}: read: {e}")),
                };
                let done = c
                    .reader
                    .feed(&buf[..n], &expect, &mut inflater)
                    .map_err(|e| format!("connection {i}: {e}"))?;
                if done > 0 {
                    let now = Instant::now();
                    last_progress = now;
                    for _ in 0..done {
                        let sent = c.sent_at.pop_front().ok_or_else(|| {
                            format!("connection {i}: echo of a message never sent")
                        })?;
                        if measuring {
                            msgs += 1;
                            let _ = hist.record((now - sent).as_nanos() as u64);
                        }
                        // Keep the window full: one new message per echo.
                        c.sent_at.push_back(now);
                        c.queued += 1;
                    }
                }
                if n < buf.len() {
                    break;
                }
            }
            c.flush(&frames)
                .map_err(|e| format!("connection {i}: write: {e}"))?;
        }
    };

    let (secs, server_cpu, own_cpu) = result;
    if msgs == 0 {
        return Err("no message echoed in the measured window".into());
    }
    // The readers count a message when its echo completes, as `msgs` does: the same set.
    let at_close = totals(&conns);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    Ok(EchoResult {
        msgs,
        secs,
        msg_per_s: msgs as f64 / secs,
        mb_per_s: msgs as f64 * cfg.size as f64 / secs / 1e6,
        server_cpu_s: server_cpu,
        cpu_per_msg_us: server_cpu / msgs as f64 * 1e6,
        server_busy: server_cpu / secs,
        loadgen_busy: own_cpu / secs,
        p50_us: us(0.50),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: hist.max() as f64 / 1e3,
        msg_bytes: cfg.size as u64,
        deflate: t.deflate,
        wire_up_per_msg: wire_up,
        wire_down_per_msg: (at_close.0 - at_open.0) as f64 / msgs as f64,
        compressed_share: (at_close.1 - at_open.1) as f64 / msgs as f64,
    })
}

// ---------------------------------------------------------------------------------------
// Handshake mode

struct HsConfig {
    target: Target,
    conc: usize,
    secs: f64,
    warmup: f64,
    max: u64,
}

impl HsConfig {
    fn from_args(a: &Args) -> Result<HsConfig, String> {
        a.only(&[
            "addr",
            "path",
            "server-pid",
            "conc",
            "secs",
            "warmup",
            "max",
        ])?;
        Ok(HsConfig {
            target: Target::from_args(a)?,
            conc: a.get("conc", 32)?,
            secs: a.get("secs", 3.0)?,
            warmup: a.get("warmup", 0.5)?,
            // A bound on the run, not a limit on the measurement: ~15,000 cycles/s is the
            // most seen here. Each cycle leaves a TIME_WAIT socket; Linux reuses those
            // ports for new loopback connections (net.ipv4.tcp_tw_reuse=2, the default).
            max: a.get("max", 100_000)?,
        })
    }
}

#[derive(PartialEq)]
enum HsStep {
    /// Waiting for the TCP connect to complete.
    Connecting,
    /// Request sent; collecting the 101 response head.
    Upgrading,
    /// Close frame sent; collecting the server's close frame.
    Closing,
}

struct HsConn {
    sock: mio::net::TcpStream,
    step: HsStep,
    buf: Vec<u8>,
}

/// Each of `conc` slots loops: connect, upgrade (response checked), send close 1000,
/// wait for the server's close frame, drop the socket, start over.
///
/// A server that answers the close by closing TCP without a close frame of its own (RFC
/// 6455 §5.5.1 says it must send one) still completes the cycle, but is counted in
/// `closed_without_close_frame` so the report can say so.
fn run_handshakes(cfg: &HsConfig) -> Result<HandshakeResult, String> {
    let t = &cfg.target;
    let request = ws::upgrade_request(&t.addr.to_string(), &t.path, false);
    let close = ws::close_frame();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let connect = |poll: &Poll, slot: usize| -> Result<HsConn, String> {
        let mut sock = mio::net::TcpStream::connect(t.addr).map_err(|e| format!("connect: {e}"))?;
        poll.registry()
            .register(
                &mut sock,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        Ok(HsConn {
            sock,
            step: HsStep::Connecting,
            buf: Vec::with_capacity(512),
        })
    };
    let mut slots: Vec<HsConn> = (0..cfg.conc)
        .map(|i| connect(&poll, i))
        .collect::<Result<_, _>>()?;

    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(cfg.warmup);
    let mut window: Option<(Window, Instant)> = None;
    let mut count = 0u64;
    let mut no_close_frame = 0u64;
    let mut last_progress = start;
    let mut events = Events::with_capacity(1024);
    let mut rd = [0u8; 4096];
    let result = loop {
        let now = Instant::now();
        match &window {
            None if now >= warm_end => {
                window = Some((Window::open(t)?, now + Duration::from_secs_f64(cfg.secs)));
                count = 0;
                no_close_frame = 0;
            }
            Some((w, end)) if now >= *end || count >= cfg.max => break w.close(t)?,
            _ => {}
        }
        if now.duration_since(last_progress) > STALL {
            return Err(format!("no handshake completed for {} s", STALL.as_secs()));
        }
        let deadline = window.as_ref().map_or(warm_end, |(_, end)| *end);
        let timeout = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r.map_err(|e| format!("poll: {e}"))?,
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut slots[i];
            if c.step == HsStep::Connecting {
                if let Some(e) = c.sock.take_error().map_err(|e| e.to_string())? {
                    return Err(format!("connect: {e}"));
                }
                match c.sock.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue, // not yet
                    Err(e) => return Err(format!("connect: {e}")),
                }
                let _ = c.sock.set_nodelay(true);
                // ~150 bytes into an empty socket buffer: one write takes it all.
                let n = c
                    .sock
                    .write(&request)
                    .map_err(|e| format!("sending the upgrade: {e}"))?;
                if n != request.len() {
                    return Err("short write of the upgrade request".into());
                }
                c.step = HsStep::Upgrading;
            }
            let finished = loop {
                let n = match c.sock.read(&mut rd) {
                    Ok(0) if c.step == HsStep::Closing && c.buf.is_empty() => {
                        no_close_frame += 1;
                        break true;
                    }
                    Ok(0) => {
                        return Err("server closed the connection during the handshake cycle".into())
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                };
                c.buf.extend_from_slice(&rd[..n]);
                if c.step == HsStep::Upgrading {
                    let Some(len) = ws::head_len(&c.buf) else {
                        continue;
                    };
                    ws::check_upgrade_response(&c.buf[..len], false)?;
                    if len != c.buf.len() {
                        return Err("unexpected bytes after the 101 response".into());
                    }
                    c.buf.clear();
                    let n = c
                        .sock
                        .write(&close)
                        .map_err(|e| format!("sending close: {e}"))?;
                    if n != close.len() {
                        return Err("short write of the close frame".into());
                    }
                    c.step = HsStep::Closing;
                } else if c.buf.len() >= 2 {
                    if c.buf[0] != 0x80 | ws::OP_CLOSE || c.buf[1] & 0x80 != 0 || c.buf[1] > 125 {
                        return Err(format!(
                            "expected the server's close frame, got first bytes {:02x?}",
                            &c.buf[..2]
                        ));
                    }
                    if c.buf.len() >= 2 + c.buf[1] as usize {
                        break true;
                    }
                }
            };
            if finished {
                // Cycle complete: drop this socket (the server has already answered the
                // close) and start the next connection in the same slot.
                let mut old = std::mem::replace(c, connect(&poll, i)?);
                let _ = poll.registry().deregister(&mut old.sock);
                count += 1;
                last_progress = Instant::now();
            }
        }
    };
    let (secs, server_cpu, own_cpu) = result;
    if count == 0 {
        return Err("no handshake completed in the measured window".into());
    }
    Ok(HandshakeResult {
        handshakes: count,
        secs,
        per_s: count as f64 / secs,
        server_cpu_s: server_cpu,
        cpu_per_hs_us: server_cpu / count as f64 * 1e6,
        server_busy: server_cpu / secs,
        loadgen_busy: own_cpu / secs,
        closed_without_close_frame: no_close_frame,
    })
}

// ---------------------------------------------------------------------------------------
// Idle mode

struct IdleConfig {
    target: Target,
    conns: usize,
    /// The one message each connection sends once all are open: its size, and whether it
    /// is JSON-like text (`--json`) rather than random printable text.
    size: usize,
    json: bool,
}

impl IdleConfig {
    fn from_args(a: &Args) -> Result<IdleConfig, String> {
        a.only(&[
            "addr",
            "path",
            "server-pid",
            "conns",
            "size",
            "json",
            "deflate",
        ])?;
        let c = IdleConfig {
            target: Target::from_args(a)?,
            conns: a.get("conns", 10_000)?,
            size: a.get("size", 32)?,
            json: a.flag("json"),
        };
        // The wake writes all go out before any echo is read: keep them small enough to
        // never block on a socket buffer.
        if c.size > 16 * 1024 {
            return Err("--size: at most 16 KiB in idle mode".into());
        }
        Ok(c)
    }
}

/// The server's RSS once it stops moving: sampled every 100 ms until two samples agree
/// (at most 3 s).
fn settled_rss(t: &Target) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(100));
    let mut last = t.server_rss()?;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        let now = t.server_rss()?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

/// Opens N connections one after another and leaves them idle (RSS measured), then sends
/// one text message on each (32 bytes unless `--size`) and reads every echo back (RSS
/// measured again).
fn run_idle(cfg: &IdleConfig) -> Result<IdleResult, String> {
    let t = &cfg.target;
    let deadline = Instant::now() + IDLE_DEADLINE;
    let overdue = || Err(format!("idle run over {} s", IDLE_DEADLINE.as_secs()));
    let rss_before = settled_rss(t)?;
    let opened = Instant::now();
    let mut socks = Vec::with_capacity(cfg.conns);
    for i in 0..cfg.conns {
        if Instant::now() > deadline {
            return overdue();
        }
        socks.push(
            t.connect_upgraded()
                .map_err(|e| format!("connection {i}: {e}"))?,
        );
    }
    let open_secs = opened.elapsed().as_secs_f64();
    let rss_open = settled_rss(t)?;

    // Wake: all the writes first (a frame of at most 16 KiB never blocks on a fresh
    // socket), then every echo.
    let expect = Expect {
        opcode: ws::OP_TEXT,
        payloads: vec![message(cfg.json, false, cfg.size, 0)],
        deflate: t.deflate,
    };
    let frame = frame(t.deflate, ws::OP_TEXT, &expect.payloads[0], 0);
    let mut inflater = ws::Inflater::default();
    let mut compressed_echoes = 0;
    for (i, s) in socks.iter_mut().enumerate() {
        s.write_all(&frame)
            .map_err(|e| format!("connection {i}: write: {e}"))?;
    }
    let mut buf = [0u8; 4096];
    for (i, s) in socks.iter_mut().enumerate() {
        if Instant::now() > deadline {
            return overdue();
        }
        let mut reader = EchoReader::default();
        while reader.seq == 0 {
            let n = s
                .read(&mut buf)
                .map_err(|e| format!("connection {i}: read: {e}"))?;
            if n == 0 {
                return Err(format!("connection {i}: server closed the connection"));
            }
            reader
                .feed(&buf[..n], &expect, &mut inflater)
                .map_err(|e| format!("connection {i}: {e}"))?;
        }
        compressed_echoes += reader.compressed_done;
    }
    let rss_woken = settled_rss(t)?;
    let per_conn = |rss: u64| (rss as f64 - rss_before as f64) / cfg.conns as f64;
    Ok(IdleResult {
        conns: cfg.conns as u64,
        rss_before,
        rss_open,
        rss_woken,
        open_secs,
        bytes_per_conn_open: per_conn(rss_open),
        bytes_per_conn_woken: per_conn(rss_woken),
        msg_bytes: cfg.size as u64,
        deflate: t.deflate,
        compressed_echoes,
    })
}
