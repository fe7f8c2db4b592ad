//! Soak: the demo binary, run as a child process, under a bounded mix of good
//! and hostile clients for `SOAK_SECONDS` (default 600), its memory and open
//! descriptors sampled from `/proc` every 10 s. Ignored by the normal suite;
//! `scripts/soak.sh` runs it
//! (`cargo test --release --test soak -- --ignored --nocapture`).
//!
//! The demo runs with `--threads 2`, `RUST_LOG=warn`, its output in
//! `target/tmp/soak-demo-<port>.log`. The mix, all on 127.0.0.1, each kind a
//! fixed number of concurrent loops, every wait bounded:
//!
//! - good clients (tokio-tungstenite): 50 loops that connect to `/echo`, echo
//!   100 text or binary messages of random sizes up to 64 KiB (text mixes 1-4
//!   byte characters) checked byte for byte, close normally, and start again;
//!   5 more loops do the same on `/seed/hibernate` (50 messages up to 16 KiB);
//! - malformed frames (raw TCP, after a real upgrade): unmasked frames, RSV
//!   bits, reserved opcodes, long or fragmented control frames, stray or
//!   missing continuations, bad close payloads and codes, bad UTF-8 (whole,
//!   split, truncated), non-minimal and overflowing lengths, frames and
//!   messages over the limits, too many fragments: each must get its close
//!   code (1002, 1007 or 1009) and then the TCP close; plus random bytes and
//!   random frame headers, which must end (a close frame or EOF), never hang;
//! - abrupt disconnects: drop right after connecting, mid-handshake, after
//!   half a frame (FIN or RST), mid fragmented message, right after a close;
//! - slow readers (an 8 KiB receive buffer): 50 x 64 KiB written to `/echo`
//!   without reading for 5 s, then dropped (the server stops reading while
//!   its replies back up, so the writes may block: they get the 5 s); or a
//!   `/seed/log` subscriber that does not read for 5 s while 100 x 64 KiB are
//!   POSTed to `/log` for it (its 1 MiB send-queue limit closes with 1008);
//! - garbage HTTP: random bytes, mutated requests, oversized heads, too many
//!   headers, bad handshakes, a body over 1 MiB, slowloris;
//! - handler crashes (`/seed/crash`, 1011) and idle timeouts (`/seed/idle`, 1000).
//!
//! At the end it prints RSS at start (after a 30 s warm-up), peak and end, the
//! count of each client kind and outcome, and the failures; and asserts that
//! no good client ever got a wrong echo, that the clients saw no errors, hangs
//! or unexpected answers, that the server is alive and serving, that its
//! descriptors come back to within 4 of their idle count, that the end RSS is
//! at most the warm-up RSS x 1.5 plus 16 MiB, and that it exits 0 on SIGTERM.
//! The child is killed by its PID when the test ends, panics included.
//!
//! `SOAK_SEED` replays a run's random choices (the seed is printed).

#[path = "support/raw.rs"]
mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raw::{frame, header, KEY, MASK};

const GOOD_CLIENTS: usize = 50;
const GOOD_MESSAGES: usize = 100;
const GOOD_MAX_SIZE: usize = 64 * 1024;
const HIBERNATE_CLIENTS: usize = 5;
const HIBERNATE_MESSAGES: usize = 50;
const HIBERNATE_MAX_SIZE: usize = 16 * 1024;
const MALFORMED_CLIENTS: usize = 4;
const ABRUPT_CLIENTS: usize = 2;
const SLOW_CLIENTS: usize = 2;
const SLOW_FRAMES: usize = 50;
/// 64 KiB bodies POSTed to `/log` for a slow `/seed/log` subscriber: enough
/// to get past the socket buffers (several MiB on loopback) and the 1 MiB
/// send-queue limit.
const SLOW_POSTS: usize = 100;
const SLOW_FRAME_SIZE: usize = 64 * 1024;
const SLOW_PAUSE: Duration = Duration::from_secs(5);
/// The slow readers' receive buffer: small, so what they do not read backs up
/// into the server rather than into the kernel.
const SLOW_RCVBUF: u32 = 8 * 1024;
const GARBAGE_CLIENTS: usize = 2;
const MISC_CLIENTS: usize = 1;
/// Pause between two connections of a hostile loop: keeps the rate, and the
/// sockets left in TIME_WAIT, bounded.
const HOSTILE_PAUSE: Duration = Duration::from_millis(20);
/// The bound on any single wait for the server.
const WAIT: Duration = Duration::from_secs(20);
/// The bound on one iteration of any client loop.
const ITERATION_LIMIT: Duration = Duration::from_secs(120);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const WARMUP: Duration = Duration::from_secs(30);
/// How far above its idle count the server's descriptors may stay once every
/// client is gone.
const FD_SLACK: u64 = 4;
/// The demo's header read timeout (lariat's default), for slowloris.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ the demo

/// The demo server as a child process; killed (by its PID) when dropped, so
/// a panicking test leaves nothing behind.
struct Demo {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Demo {
    fn spawn() -> Demo {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-demo-{port}.log"));
        let out = std::fs::File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_lariat-demo"))
            .args(["--addr", &addr.to_string(), "--threads", "2"])
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the demo");
        Demo { child, addr, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (by PID), then wait for the exit; how long it took.
    fn terminate(&mut self) -> Result<Duration, String> {
        let t0 = std::time::Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("kill -TERM: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM: {sent}"));
        }
        while t0.elapsed() < Duration::from_secs(20) {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(t0.elapsed()),
                Ok(Some(status)) => return Err(format!("exited with {status}")),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("wait: {e}")),
            }
        }
        Err("still running 20 s after SIGTERM".into())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill(); // SIGKILL to its PID
        }
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
}

/// VmRSS and the number of open descriptors of process `pid`.
fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { at, rss_kib, fds })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------------ counting

#[derive(Default)]
struct Stats {
    good_sessions: AtomicU64,
    good_messages: AtomicU64,
    good_bytes: AtomicU64,
    hibernate_sessions: AtomicU64,
    hibernate_messages: AtomicU64,
    malformed: AtomicU64,
    abrupt: AtomicU64,
    slow: AtomicU64,
    garbage: AtomicU64,
    misc: AtomicU64,
    /// A good client got back something other than what it sent.
    wrong_echo: AtomicU64,
    /// A good client failed otherwise (connect, I/O, an unexpected close).
    client_errors: AtomicU64,
    /// The server did not answer or close within its bound.
    hangs: AtomicU64,
    /// A hostile client got an answer other than the one it must get.
    unexpected: AtomicU64,
    /// How each kind of input ended, counted.
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// The first failures, described.
    details: Mutex<Vec<String>>,
    /// One slowloris at a time.
    slowloris_busy: AtomicBool,
}

impl Stats {
    fn outcome(&self, what: String) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    fn failure(&self, counter: &AtomicU64, detail: String) {
        counter.fetch_add(1, Relaxed);
        let mut d = self.details.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() < 50 {
            println!("FAILURE: {detail}");
            d.push(detail);
        }
    }

    fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        format!(
            "good {} sessions / {} msgs / {:.2} GiB, hibernate {} / {} msgs, malformed {}, \
             abrupt {}, slow {}, garbage {}, crash+idle {} | wrong echo {}, errors {}, hangs {}, unexpected {}",
            g(&self.good_sessions),
            g(&self.good_messages),
            g(&self.good_bytes) as f64 / f64::from(1u32 << 30),
            g(&self.hibernate_sessions),
            g(&self.hibernate_messages),
            g(&self.malformed),
            g(&self.abrupt),
            g(&self.slow),
            g(&self.garbage),
            g(&self.misc),
            g(&self.wrong_echo),
            g(&self.client_errors),
            g(&self.hangs),
            g(&self.unexpected),
        )
    }
}

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Mostly uniform in `0..=max`; one time in eight a length-encoding boundary.
fn message_size(rng: &mut Rng, max: usize) -> usize {
    if rng.below(8) == 0 {
        rng.pick(&[0, 1, 125, 126, 127, 65535, 65536]).min(max)
    } else {
        rng.below(max + 1)
    }
}

/// `len` bytes of UTF-8 mixing 1-, 2-, 3- and 4-byte characters.
fn text_of(rng: &mut Rng, len: usize) -> String {
    const PALETTE: [&str; 8] = ["a", "Z", " ", "0", "é", "€", "𝄞", "\u{10ffff}"];
    let mut s = String::with_capacity(len);
    while s.len() < len {
        let c = rng.pick(&PALETTE);
        if s.len() + c.len() > len {
            s.push('x');
        } else {
            s.push_str(c);
        }
    }
    s
}

// ------------------------------------------------------------- good clients

enum Fail {
    Wrong(String),
    Error(String),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: SocketAddr, path: &str) -> Result<Ws, String> {
    let url = format!("ws://{addr}{path}");
    let (ws, _) = timeout(
        WAIT,
        tokio_tungstenite::connect_async_with_config(url, None, true),
    )
    .await
    .map_err(|_| format!("{path}: connect timed out"))?
    .map_err(|e| format!("{path}: connect: {e}"))?;
    Ok(ws)
}

/// The next text or binary message (pings and pongs are skipped).
async fn next_data(ws: &mut Ws) -> Result<WsMessage, String> {
    loop {
        match timeout(WAIT, ws.next()).await {
            Err(_) => return Err("no answer within the bound".into()),
            Ok(None) => return Err("connection ended".into()),
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_))))) => return Ok(m),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return Err(format!("closed by the server: {c:?}"))
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The code of the server's close frame, then the end of the stream.
async fn next_close(ws: &mut Ws) -> Result<u16, String> {
    let code = loop {
        match timeout(WAIT, ws.next()).await {
            Err(_) => return Err("no close within the bound".into()),
            Ok(None) => return Err("ended without a close frame".into()),
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(Some(Ok(WsMessage::Close(c)))) => break c.map_or(1005, |f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
        }
    };
    match timeout(WAIT, ws.next()).await {
        Err(_) => Err("no TCP close after the close frame".into()),
        Ok(None) | Ok(Some(Err(_))) => Ok(code),
        Ok(Some(Ok(m))) => Err(format!("{m:?} after the close frame")),
    }
}

fn describe(m: &WsMessage) -> String {
    match m {
        WsMessage::Text(t) => format!("text of {} bytes", t.len()),
        WsMessage::Binary(b) => format!("binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// One session of a good client: connect, echo `messages` messages, close.
async fn good_session(
    addr: SocketAddr,
    path: &'static str,
    messages: usize,
    max: usize,
    rng: &mut Rng,
    deadline: Instant,
    stats: &Stats,
) -> Result<(), Fail> {
    let hibernate = path != "/echo";
    let mut ws = ws_connect(addr, path).await.map_err(Fail::Error)?;
    for i in 0..messages {
        if Instant::now() >= deadline {
            break;
        }
        let size = message_size(rng, max);
        let msg = if rng.below(2) == 0 {
            WsMessage::text(text_of(rng, size))
        } else {
            WsMessage::binary(rng.bytes(size))
        };
        timeout(WAIT, ws.send(msg.clone()))
            .await
            .map_err(|_| Fail::Error(format!("{path}: send {i} timed out")))?
            .map_err(|e| Fail::Error(format!("{path}: send {i}: {e}")))?;
        let got = next_data(&mut ws)
            .await
            .map_err(|e| Fail::Error(format!("{path}: message {i}: {e}")))?;
        if got != msg {
            let at = first_difference(&got.clone().into_data(), &msg.clone().into_data());
            return Err(Fail::Wrong(format!(
                "{path}: message {i}: sent {}, got {} (first difference at byte {at})",
                describe(&msg),
                describe(&got)
            )));
        }
        if hibernate {
            stats.hibernate_messages.fetch_add(1, Relaxed);
        } else {
            stats.good_messages.fetch_add(1, Relaxed);
            stats.good_bytes.fetch_add(size as u64, Relaxed);
        }
    }
    timeout(WAIT, ws.close(None))
        .await
        .map_err(|_| Fail::Error(format!("{path}: close timed out")))?
        .map_err(|e| Fail::Error(format!("{path}: close: {e}")))?;
    // The server answers the close and ends the TCP connection.
    loop {
        match timeout(WAIT, ws.next()).await {
            Err(_) => {
                return Err(Fail::Error(format!(
                    "{path}: no end after the closing handshake"
                )))
            }
            Ok(None) => break,
            Ok(Some(Ok(WsMessage::Close(_)))) => continue,
            Ok(Some(Ok(m))) => {
                return Err(Fail::Error(format!(
                    "{path}: {} after the close",
                    describe(&m)
                )))
            }
            Ok(Some(Err(e))) => return Err(Fail::Error(format!("{path}: after the close: {e}"))),
        }
    }
    if hibernate {
        stats.hibernate_sessions.fetch_add(1, Relaxed);
    } else {
        stats.good_sessions.fetch_add(1, Relaxed);
    }
    Ok(())
}

async fn good_loop(
    addr: SocketAddr,
    path: &'static str,
    messages: usize,
    max: usize,
    mut rng: Rng,
    deadline: Instant,
    stats: Arc<Stats>,
) {
    while Instant::now() < deadline {
        let session = good_session(addr, path, messages, max, &mut rng, deadline, &stats);
        match timeout(ITERATION_LIMIT, session).await {
            Ok(Ok(())) => {}
            Ok(Err(Fail::Wrong(d))) => stats.failure(&stats.wrong_echo, d),
            Ok(Err(Fail::Error(d))) => {
                stats.failure(&stats.client_errors, d);
                sleep(Duration::from_millis(100)).await;
            }
            Err(_) => stats.failure(
                &stats.hangs,
                format!("{path}: a session took over {ITERATION_LIMIT:?}"),
            ),
        }
    }
}

// ---------------------------------------------------------- raw TCP helpers

fn upgrade_request(path: &str) -> String {
    raw::upgrade_request("127.0.0.1", path, "")
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

async fn raw_connect(addr: SocketAddr) -> Result<TcpStream, String> {
    raw_connect_with(addr, None).await
}

/// Connect, with a receive buffer of `rcvbuf` bytes if given (a small one
/// makes a client that does not read back up into the server at once).
async fn raw_connect_with(addr: SocketAddr, rcvbuf: Option<u32>) -> Result<TcpStream, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(n) = rcvbuf {
        socket
            .set_recv_buffer_size(n)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let s = timeout(WAIT, socket.connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn write(s: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    timeout(WAIT, s.write_all(bytes))
        .await
        .map_err(|_| format!("writing {} bytes timed out", bytes.len()))?
        .map_err(|e| format!("write: {e}"))
}

/// How reading an HTTP response head ended.
enum Head {
    /// The head, and the bytes read after it.
    Complete(String, Vec<u8>),
    /// EOF first, after these bytes.
    Eof(Vec<u8>),
    Reset(String),
    Timeout,
}

async fn read_head(s: &mut TcpStream, limit: Duration) -> Head {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
            return Head::Complete(head, buf[i + 4..].to_vec());
        }
        match timeout_at(deadline, s.read(&mut tmp)).await {
            Err(_) => return Head::Timeout,
            Ok(Ok(0)) => return Head::Eof(buf),
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(Err(e)) => return Head::Reset(e.kind().to_string()),
        }
    }
}

fn status_of(head: &str) -> Option<u16> {
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    rest.get(..3)?.parse().ok()
}

/// Connect and upgrade to `path`; the socket and what came after the 101.
async fn raw_upgrade(addr: SocketAddr, path: &str) -> Result<(TcpStream, Vec<u8>), String> {
    raw_upgrade_with(addr, path, None).await
}

async fn raw_upgrade_with(
    addr: SocketAddr,
    path: &str,
    rcvbuf: Option<u32>,
) -> Result<(TcpStream, Vec<u8>), String> {
    let mut s = raw_connect_with(addr, rcvbuf).await?;
    write(&mut s, upgrade_request(path).as_bytes()).await?;
    match read_head(&mut s, WAIT).await {
        Head::Complete(h, rest) if h.starts_with("HTTP/1.1 101") => Ok((s, rest)),
        Head::Complete(h, _) => Err(format!(
            "{path}: upgrade refused: {}",
            h.lines().next().unwrap_or("")
        )),
        Head::Eof(_) => Err(format!("{path}: EOF during the upgrade")),
        Head::Reset(e) => Err(format!("{path}: {e} during the upgrade")),
        Head::Timeout => Err(format!("{path}: no 101 within the bound")),
    }
}

/// One server frame at the start of `buf` (never masked): its first byte,
/// its payload's range, and the bytes it takes.
fn parse_frame(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>)>, String> {
    let Some((b0, at, len)) = raw::parse_header(buf)? else {
        return Ok(None);
    };
    if len > 256 << 20 {
        return Err(format!("the server announced a {len}-byte frame"));
    }
    let end = at + len as usize;
    Ok((buf.len() >= end).then_some((b0, at..end)))
}

/// How a raw WebSocket connection ended, seen from the client.
#[derive(Debug)]
enum Ending {
    /// A close frame with this code (1005: none), then the TCP close or not.
    Close(u16, bool),
    Eof,
    Reset,
    Timeout,
    /// As many data frames as asked for, and nothing else yet.
    Enough,
    Bad(String),
}

impl Ending {
    fn describe(&self) -> String {
        match self {
            Ending::Close(code, true) => format!("close {code}"),
            Ending::Close(code, false) => format!("close {code}, TCP left open"),
            Ending::Eof => "EOF".into(),
            Ending::Reset => "reset".into(),
            Ending::Timeout => "no end within the bound".into(),
            Ending::Enough => "still open".into(),
            Ending::Bad(e) => e.clone(),
        }
    }
}

/// Read server frames until a close frame (then wait for the TCP close), EOF,
/// an error, `enough` data frames, or `limit`. Also returns how many data
/// frames came before.
async fn read_to_end(
    s: &mut TcpStream,
    mut buf: Vec<u8>,
    limit: Duration,
    enough: usize,
) -> (Ending, usize) {
    let deadline = Instant::now() + limit;
    let mut data = 0;
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        loop {
            match parse_frame(&buf) {
                Err(e) => return (Ending::Bad(e), data),
                Ok(None) => break,
                Ok(Some((b0, payload))) if b0 & 0x0f == 8 => {
                    let p = &buf[payload.clone()];
                    let code = if p.len() >= 2 {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        1005
                    };
                    if buf.len() > payload.end {
                        return (Ending::Bad("bytes after the close frame".into()), data);
                    }
                    let closed = match timeout_at(deadline, s.read(&mut tmp)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => true,
                        Ok(Ok(_)) => {
                            return (Ending::Bad("bytes after the close frame".into()), data)
                        }
                        Err(_) => false,
                    };
                    return (Ending::Close(code, closed), data);
                }
                Ok(Some((_, payload))) => {
                    data += 1;
                    buf.drain(..payload.end);
                    if data >= enough && buf.is_empty() {
                        return (Ending::Enough, data);
                    }
                }
            }
        }
        match timeout_at(deadline, s.read(&mut tmp)).await {
            Err(_) => return (Ending::Timeout, data),
            Ok(Ok(0)) => return (Ending::Eof, data),
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(Err(_)) => return (Ending::Reset, data),
        }
    }
}

/// Runs hostile iterations until the deadline, each bounded; each returns
/// its outcome (counted) or a description of a hang.
macro_rules! hostile_loop {
    ($name:ident, $once:ident, $counter:ident) => {
        async fn $name(addr: SocketAddr, mut rng: Rng, deadline: Instant, stats: Arc<Stats>) {
            while Instant::now() < deadline {
                match timeout(ITERATION_LIMIT, $once(addr, &mut rng, &stats)).await {
                    Ok(()) => {}
                    Err(_) => stats.failure(
                        &stats.hangs,
                        format!(
                            "{}: an iteration took over {ITERATION_LIMIT:?}",
                            stringify!($once)
                        ),
                    ),
                }
                stats.$counter.fetch_add(1, Relaxed);
                sleep(HOSTILE_PAUSE).await;
            }
        }
    };
}

hostile_loop!(malformed_loop, malformed_once, malformed);
hostile_loop!(abrupt_loop, abrupt_once, abrupt);
hostile_loop!(slow_loop, slow_once, slow);
hostile_loop!(garbage_loop, garbage_once, garbage);
hostile_loop!(misc_loop, misc_once, misc);

// --------------------------------------------------------- malformed frames

/// What a malformed input must get.
#[derive(Clone, Copy)]
enum Expect {
    /// A close frame with this code, then the TCP close.
    Close(u16),
    /// Any end (a close frame or EOF) after the client half-closes; not a hang.
    Ends,
}

fn malformed_case(rng: &mut Rng) -> (String, &'static str, Vec<u8>, Expect) {
    use Expect::Close;
    let echo = "/echo";
    let (name, path, bytes, expect): (String, _, _, _) = match rng.below(26) {
        0 => (
            "unmasked text frame".into(),
            echo,
            vec![0x81, 0x02, b'h', b'i'],
            Close(1002),
        ),
        1 => {
            let rsv = rng.pick(&[0x40u8, 0x20, 0x10]);
            (
                format!("RSV bits {rsv:#04x}"),
                echo,
                frame(0x81 | rsv, b"x"),
                Close(1002),
            )
        }
        2 => {
            let op = rng.pick(&[3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]);
            (
                "reserved opcode".into(),
                echo,
                frame(0x80 | op, b"x"),
                Close(1002),
            )
        }
        3 => {
            let op = rng.pick(&[0x8u8, 0x9, 0xa]);
            (
                "control frame of 126 bytes".into(),
                echo,
                frame(0x80 | op, &[b'p'; 126]),
                Close(1002),
            )
        }
        4 => (
            "fragmented ping".into(),
            echo,
            frame(0x09, b"ping"),
            Close(1002),
        ),
        5 => (
            "continuation with no message".into(),
            echo,
            frame(0x80, b"x"),
            Close(1002),
        ),
        6 => (
            "new message inside a fragmented one".into(),
            echo,
            cat(&[frame(0x01, b"a"), frame(0x81, b"b")]),
            Close(1002),
        ),
        7 => (
            "close payload of 1 byte".into(),
            echo,
            frame(0x88, &[0x03]),
            Close(1002),
        ),
        8 => {
            let code = rng.pick(&[0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]);
            (
                "close code not allowed on the wire".into(),
                echo,
                frame(0x88, &code.to_be_bytes()),
                Close(1002),
            )
        }
        9 => (
            "close reason not UTF-8".into(),
            echo,
            frame(0x88, b"\x03\xe8\xc0\xaf"),
            Close(1007),
        ),
        10 => {
            let bad = rng.pick(&[
                &b"\xc0\xaf"[..],
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\xff",
                b"\x80",
            ]);
            (
                "text not UTF-8".into(),
                echo,
                frame(0x81, &[&b"valid \xce\xba "[..], bad, b" tail"].concat()),
                Close(1007),
            )
        }
        11 => (
            "invalid UTF-8 across fragments".into(),
            echo,
            cat(&[frame(0x01, b"\xe2\x82"), frame(0x80, b"\x28")]),
            Close(1007),
        ),
        12 => (
            "text ending mid-character".into(),
            echo,
            frame(0x81, b"ok\xe2\x82"),
            Close(1007),
        ),
        13 => {
            let mut f = vec![0x82, 0x80 | 126, 0, 125];
            f.extend_from_slice(&MASK);
            f.extend_from_slice(&[0u8; 125]);
            ("non-minimal 16-bit length".into(), echo, f, Close(1002))
        }
        14 => {
            let mut f = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
            f.extend_from_slice(&MASK);
            ("non-minimal 64-bit length".into(), echo, f, Close(1002))
        }
        15 => {
            let mut f = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
            f.extend_from_slice(&MASK);
            (
                "64-bit length with its top bit set".into(),
                echo,
                f,
                Close(1002),
            )
        }
        16 => (
            "frame of 8001 bytes on /seed/maxframe (limit 8000)".into(),
            "/seed/maxframe",
            frame(0x82, &[7u8; 8001]),
            Close(1009),
        ),
        17 => (
            "header announcing 64 MiB + 1 on /echo (limit 64 MiB)".into(),
            echo,
            header(0x82, (64 << 20) + 1, Some(MASK)),
            Close(1009),
        ),
        18 => (
            "header announcing 1 TiB on /echo".into(),
            echo,
            header(0x82, 1 << 40, Some(MASK)),
            Close(1009),
        ),
        19 => (
            "2 x 600 KiB fragments on /seed/hibernate (message limit 1 MiB)".into(),
            "/seed/hibernate",
            cat(&[
                frame(0x02, &vec![1u8; 600 << 10]),
                header(0x80, 600 << 10, Some(MASK)),
            ]),
            Close(1009),
        ),
        20 => {
            let mut f = frame(0x02, b"");
            for _ in 0..16_383 {
                f.extend_from_slice(&frame(0x00, b""));
            }
            f.extend_from_slice(&frame(0x80, b""));
            (
                "16,385 fragments on /seed/hibernate (limit 16,384)".into(),
                "/seed/hibernate",
                f,
                Close(1009),
            )
        }
        21..=22 => {
            let n = 1 + rng.below(2048);
            ("random bytes".into(), echo, rng.bytes(n), Expect::Ends)
        }
        _ => {
            // A random first byte and length, masked or not, random payload.
            let b0 = rng.bytes(1)[0];
            let masked = rng.below(4) != 0;
            let len = rng.pick(&[0u64, 1, 5, 125, 126, 200, 4096, 70_000, 1 << 33]);
            let mut f = header(b0, len, masked.then_some(MASK));
            f.extend(rng.bytes((len as usize).min(4096)));
            ("random frame header".into(), echo, f, Expect::Ends)
        }
    };
    (name, path, bytes, expect)
}

async fn malformed_once(addr: SocketAddr, rng: &mut Rng, stats: &Stats) {
    let (name, path, bytes, expect) = malformed_case(rng);
    let (mut s, rest) = match raw_upgrade(addr, path).await {
        Ok(x) => x,
        Err(e) => return stats.failure(&stats.client_errors, format!("malformed {name}: {e}")),
    };
    if let Err(e) = write(&mut s, &bytes).await {
        // The server may close before it has read everything (a header
        // over the limit): what it sent says whether that was right.
        if e.contains("timed out") {
            return stats.failure(&stats.hangs, format!("malformed {name}: {e}"));
        }
    }
    if matches!(expect, Expect::Ends) {
        let _ = s.shutdown().await;
    }
    let (ending, _) = read_to_end(&mut s, rest, WAIT, usize::MAX).await;
    let got = ending.describe();
    stats.outcome(format!("malformed: {name} -> {got}"));
    match (expect, &ending) {
        (Expect::Close(want), Ending::Close(code, true)) if *code == want => {}
        (Expect::Ends, Ending::Close(_, true) | Ending::Eof | Ending::Reset) => {}
        (_, Ending::Timeout | Ending::Close(_, false)) => {
            stats.failure(&stats.hangs, format!("malformed {name} on {path}: {got}"))
        }
        (Expect::Close(want), _) => stats.failure(
            &stats.unexpected,
            format!("malformed {name} on {path}: expected close {want}, got {got}"),
        ),
        (Expect::Ends, _) => stats.failure(
            &stats.unexpected,
            format!("malformed {name} on {path}: {got}"),
        ),
    }
}

// ------------------------------------------------------- abrupt disconnects

async fn abrupt_once(addr: SocketAddr, rng: &mut Rng, stats: &Stats) {
    let case = rng.below(6);
    let result: Result<&str, String> = async {
        match case {
            0 => {
                drop(raw_connect(addr).await?);
                Ok("drop right after connecting")
            }
            1 => {
                let mut s = raw_connect(addr).await?;
                let req = upgrade_request("/echo");
                let cut = 1 + rng.below(req.len() - 1);
                write(&mut s, &req.as_bytes()[..cut]).await?;
                Ok("drop mid-handshake")
            }
            2 | 3 => {
                let (mut s, _) = raw_upgrade(addr, "/echo").await?;
                let f = frame(0x81, &[b'a'; 1000]);
                let cut = 1 + rng.below(f.len() - 1);
                write(&mut s, &f[..cut]).await?;
                if case == 3 {
                    let _ = s.set_zero_linger();
                    Ok("half a frame, then RST")
                } else {
                    Ok("half a frame, then drop")
                }
            }
            4 => {
                let (mut s, _) = raw_upgrade(addr, "/echo").await?;
                write(&mut s, &frame(0x01, &[b'b'; 100])).await?;
                Ok("drop mid fragmented message")
            }
            _ => {
                let (mut s, _) = raw_upgrade(addr, "/echo").await?;
                write(&mut s, &frame(0x88, &1000u16.to_be_bytes())).await?;
                Ok("close frame, then drop without reading")
            }
        }
    }
    .await;
    match result {
        Ok(what) => stats.outcome(format!("abrupt: {what}")),
        Err(e) => stats.failure(&stats.client_errors, format!("abrupt case {case}: {e}")),
    }
}

// ------------------------------------------------------------- slow readers

async fn slow_once(addr: SocketAddr, rng: &mut Rng, stats: &Stats) {
    if rng.below(2) == 0 {
        slow_echo(addr, rng, stats).await
    } else {
        slow_subscriber(addr, stats).await
    }
}

/// `/echo`: 50 x 64 KiB written without reading a reply for 5 s, then
/// dropped. The server stops reading while its replies back up, so the
/// writes may block (TCP flow control): they are given the 5 s, no more.
async fn slow_echo(addr: SocketAddr, rng: &mut Rng, stats: &Stats) {
    let (mut s, _) = match raw_upgrade_with(addr, "/echo", Some(SLOW_RCVBUF)).await {
        Ok(x) => x,
        Err(e) => return stats.failure(&stats.client_errors, format!("slow reader: {e}")),
    };
    let f = frame(0x82, &rng.bytes(SLOW_FRAME_SIZE));
    let until = Instant::now() + SLOW_PAUSE;
    let mut sent = 0;
    for _ in 0..SLOW_FRAMES {
        match timeout_at(until, s.write_all(&f)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => {
                return stats.failure(
                    &stats.unexpected,
                    format!("slow reader on /echo: write failed after {sent} frames: {e}"),
                )
            }
            Err(_) => break,
        }
    }
    sleep_until(until).await;
    let written = if sent == SLOW_FRAMES {
        "all 50 written".to_string()
    } else {
        format!(
            "writes blocked after {}-{} frames",
            sent / 10 * 10,
            sent / 10 * 10 + 9
        )
    };
    stats.outcome(format!(
        "slow reader on /echo: 50 x 64 KiB, {written}, nothing read for 5 s, dropped"
    ));
}

/// A `/seed/log` subscriber that does not read for 5 s while 100 x 64 KiB
/// are POSTed to `/log` for it: data pushed at a client that does not read
/// meets the send-queue limit (1 MiB by default), which closes with 1008.
async fn slow_subscriber(addr: SocketAddr, stats: &Stats) {
    let (mut s, rest) = match raw_upgrade_with(addr, "/seed/log", Some(SLOW_RCVBUF)).await {
        Ok(x) => x,
        Err(e) => return stats.failure(&stats.client_errors, format!("slow subscriber: {e}")),
    };
    let until = Instant::now() + SLOW_PAUSE;
    let body = "L".repeat(SLOW_FRAME_SIZE);
    let request = format!(
        "POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    for i in 0..SLOW_POSTS {
        let posted: Result<(), String> = async {
            let mut p = raw_connect(addr).await?;
            write(&mut p, request.as_bytes()).await?;
            match read_head(&mut p, WAIT).await {
                Head::Complete(h, _) if status_of(&h) == Some(202) => Ok(()),
                Head::Complete(h, _) => Err(format!("{:?}", h.lines().next())),
                Head::Timeout => Err("no answer within the bound".into()),
                _ => Err("no answer".into()),
            }
        }
        .await;
        if let Err(e) = posted {
            return stats.failure(&stats.client_errors, format!("POST /log {i}: {e}"));
        }
    }
    sleep_until(until).await;
    let (ending, got) = read_to_end(&mut s, rest, WAIT, usize::MAX).await;
    let ending = match ending {
        Ending::Close(1008, true) | Ending::Eof | Ending::Reset => ending.describe(),
        // Everything fitted in the socket buffers: never cut off.
        Ending::Timeout if got > 0 => "still open".to_string(),
        Ending::Timeout => {
            return stats.failure(
                &stats.hangs,
                "slow subscriber on /seed/log: nothing within the bound".into(),
            )
        }
        other => {
            return stats.failure(
                &stats.unexpected,
                format!(
                    "slow subscriber on /seed/log: {got} messages, then {}",
                    other.describe()
                ),
            )
        }
    };
    stats.outcome(format!(
        "slow subscriber on /seed/log (send-queue limit 1 MiB): {SLOW_POSTS} x 64 KiB POSTed \
         to /log, not read for 5 s, then read: some messages, then {ending}"
    ));
}

// ------------------------------------------------------------- garbage HTTP

async fn garbage_once(addr: SocketAddr, rng: &mut Rng, stats: &Stats) {
    let mut case = rng.below(12);
    if case == 11 && stats.slowloris_busy.swap(true, Relaxed) {
        case = 0;
    }
    if case == 11 {
        slowloris(addr, stats).await;
        stats.slowloris_busy.store(false, Relaxed);
        return;
    }
    let ws_headers =
        format!("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n");
    // (name, bytes, expected status: None for "any answer or EOF", half-close after)
    let (name, bytes, want, half_close): (&str, Vec<u8>, Option<u16>, bool) = match case {
        0..=2 => {
            let n = 1 + rng.below(4096);
            ("random bytes", rng.bytes(n), None, true)
        }
        3 | 4 => {
            let mut req = upgrade_request("/echo").into_bytes();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(req.len());
                req[i] = rng.bytes(1)[0];
            }
            ("upgrade request with random bytes changed", req, None, true)
        }
        5 => (
            "request head over 16 KiB",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(32 * 1024)
            )
            .into_bytes(),
            Some(431),
            false,
        ),
        6 => {
            let headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
            (
                "100 headers (limit 64)",
                format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes(),
                Some(431),
                false,
            )
        }
        7 => (
            "upgrade without Sec-WebSocket-Version",
            format!("GET /echo HTTP/1.1\r\nHost: x\r\n{ws_headers}\r\n").into_bytes(),
            Some(400),
            false,
        ),
        8 => (
            "upgrade with Sec-WebSocket-Version: 8",
            format!(
                "GET /echo HTTP/1.1\r\nHost: x\r\n{ws_headers}Sec-WebSocket-Version: 8\r\n\r\n"
            )
            .into_bytes(),
            Some(426),
            false,
        ),
        9 => (
            "upgrade with a short Sec-WebSocket-Key",
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n"
                .to_vec(),
            Some(400),
            false,
        ),
        _ => {
            let mut req =
                b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n".to_vec();
            req.resize(req.len() + (1 << 20) + 1, b'x');
            (
                "POST body of 1 MiB + 1 (limit 1 MiB)",
                req,
                Some(413),
                false,
            )
        }
    };
    let result: Result<String, String> = async {
        let mut s = raw_connect(addr).await?;
        if let Err(e) = write(&mut s, &bytes).await {
            if e.contains("timed out") {
                return Err(e);
            }
        }
        if half_close {
            let _ = s.shutdown().await;
        }
        Ok(match read_head(&mut s, WAIT).await {
            Head::Complete(h, _) => match status_of(&h) {
                Some(code) => format!("{code}"),
                None => format!("not HTTP: {:?}", h.lines().next().unwrap_or("")),
            },
            Head::Eof(b) if b.is_empty() => "EOF".into(),
            Head::Eof(b) => format!("{} bytes then EOF", b.len()),
            Head::Reset(_) => "reset".into(),
            Head::Timeout => return Err("no answer within the bound".into()),
        })
    }
    .await;
    match result {
        Err(e) => stats.failure(&stats.hangs, format!("garbage HTTP {name}: {e}")),
        Ok(got) => {
            stats.outcome(format!("garbage HTTP: {name} -> {got}"));
            let ok = match want {
                Some(code) => got == code.to_string(),
                // Random input: any answer short of a 5xx, or the connection closed.
                None => {
                    got == "EOF"
                        || got == "reset"
                        || got.parse::<u16>().is_ok_and(|c| (100..500).contains(&c))
                }
            };
            if !ok {
                stats.failure(
                    &stats.unexpected,
                    format!("garbage HTTP {name}: expected {want:?}, got {got}"),
                );
            }
        }
    }
}

/// Half a request head, then a byte every 500 ms: cut off at the header read
/// timeout (10 s).
async fn slowloris(addr: SocketAddr, stats: &Stats) {
    let name = "slowloris (a header byte every 500 ms)";
    let result: Result<(String, Duration), String> = async {
        let mut s = raw_connect(addr).await?;
        let t0 = Instant::now();
        write(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
        let mut buf = [0u8; 256];
        loop {
            if t0.elapsed() > HEADER_READ_TIMEOUT + WAIT {
                return Err("still open".into());
            }
            match timeout(Duration::from_millis(500), s.read(&mut buf)).await {
                Err(_) => {
                    if s.write_all(b"X").await.is_err() {
                        return Ok(("write failed".into(), t0.elapsed()));
                    }
                }
                Ok(Ok(0)) => return Ok(("EOF".into(), t0.elapsed())),
                Ok(Ok(n)) => {
                    let got = String::from_utf8_lossy(&buf[..n]);
                    let got = status_of(&got).map_or("bytes".into(), |c| c.to_string());
                    return Ok((got, t0.elapsed()));
                }
                Ok(Err(_)) => return Ok(("reset".into(), t0.elapsed())),
            }
        }
    }
    .await;
    match result {
        Err(e) => stats.failure(&stats.hangs, format!("{name}: {e}")),
        Ok((got, after)) => {
            let secs = after.as_secs();
            stats.outcome(format!("garbage HTTP: {name} -> {got} after {secs} s"));
            let in_time = after >= HEADER_READ_TIMEOUT - Duration::from_secs(1)
                && after <= HEADER_READ_TIMEOUT + Duration::from_secs(5);
            if !in_time || !matches!(got.as_str(), "EOF" | "408" | "reset" | "write failed") {
                stats.failure(&stats.unexpected, format!("{name}: {got} after {after:?}"));
            }
        }
    }
}

// ---------------------------------------------------- handler crash, idle

async fn misc_once(addr: SocketAddr, rng: &mut Rng, stats: &Stats) {
    let crash = rng.below(2) == 0;
    // The close code, and how long the idle client waited for it.
    let result: Result<(u16, Duration), String> = async {
        if crash {
            let mut ws = ws_connect(addr, "/seed/crash").await?;
            timeout(WAIT, ws.send(WsMessage::text("hi")))
                .await
                .map_err(|_| "send timed out".to_string())?
                .map_err(|e| e.to_string())?;
            if next_data(&mut ws).await? != WsMessage::text("hi") {
                return Err("wrong echo before the crash".into());
            }
            timeout(WAIT, ws.send(WsMessage::text("crash")))
                .await
                .map_err(|_| "send timed out".to_string())?
                .map_err(|e| e.to_string())?;
            Ok((next_close(&mut ws).await?, Duration::ZERO))
        } else {
            // Timed from before the connect: the server's idle timer starts
            // later (at the upgrade), so the close can never come sooner
            // than 2 s after this, however late this task gets to run.
            let t0 = Instant::now();
            let mut ws = ws_connect(addr, "/seed/idle").await?;
            let code = next_close(&mut ws).await?;
            Ok((code, t0.elapsed()))
        }
    }
    .await;
    match result {
        Ok((code, _)) if crash => {
            stats.outcome(format!(
                "crash+idle: handler panic on /seed/crash -> close {code}"
            ));
            if code != 1011 {
                stats.failure(
                    &stats.unexpected,
                    format!("/seed/crash: close {code}, not 1011"),
                );
            }
        }
        Ok((code, waited)) => {
            // The close comes 2 s after the upgrade; the TCP close follows at once.
            let in_time = waited >= Duration::from_secs(2) && waited <= Duration::from_secs(5);
            let when = if in_time { "2-5 s" } else { "out of 2-5 s" };
            stats.outcome(format!(
                "crash+idle: silent client on /seed/idle (2 s) -> close {code} after {when}"
            ));
            if code != 1000 || !in_time {
                stats.failure(
                    &stats.unexpected,
                    format!("/seed/idle: close {code} after {waited:?}"),
                );
            }
        }
        Err(e) => stats.failure(&stats.client_errors, format!("crash/idle client: {e}")),
    }
    sleep(Duration::from_millis(200)).await;
}

// ----------------------------------------------------------------- the soak

/// Is the server still answering: an echo through tungstenite and a plain GET.
async fn serving(addr: SocketAddr) -> Result<(), String> {
    let mut ws = ws_connect(addr, "/echo").await?;
    let probe = WsMessage::text("still serving?");
    timeout(WAIT, ws.send(probe.clone()))
        .await
        .map_err(|_| "send timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let got = next_data(&mut ws).await?;
    if got != probe {
        return Err(format!("echo probe got {}", describe(&got)));
    }
    let _ = timeout(WAIT, ws.close(None)).await;
    while let Ok(Some(Ok(_))) = timeout(WAIT, ws.next()).await {}
    let mut s = raw_connect(addr).await?;
    write(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await?;
    match read_head(&mut s, WAIT).await {
        Head::Complete(h, _) if status_of(&h) == Some(200) => Ok(()),
        Head::Complete(h, _) => Err(format!("GET / got {:?}", h.lines().next())),
        _ => Err("GET / got no answer".into()),
    }
}

/// The server's log, line by line with the timestamp and fields left out,
/// counted.
fn log_summary(path: &std::path::Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        // tracing's lines start with an RFC 3339 timestamp.
        if words
            .peek()
            .is_some_and(|w| w.len() > 20 && w.contains('T'))
        {
            words.next();
        }
        // Up to the first `field=value`; thread ids left out.
        let key: Vec<&str> = words
            .take_while(|w| !w.contains('='))
            .filter(|w| !(w.starts_with('(') && w.ends_with(')')))
            .collect();
        let mut key = key.join(" ");
        if key.len() > 120 {
            let mut end = 120;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
        }
        if !key.is_empty() {
            *lines.entry(key).or_insert(0u64) += 1;
        }
    }
    lines
}

#[test]
#[ignore = "a soak of SOAK_SECONDS (default 600): scripts/soak.sh"]
fn soak() {
    let secs: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut demo = Demo::spawn();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(&mut demo, Duration::from_secs(secs.max(1)), seed));
    // `demo` is dropped here, or while unwinding: the child is killed.
}

async fn run(demo: &mut Demo, soak: Duration, seed: u64) {
    let addr = demo.addr;
    let pid = demo.pid();
    let ready_by = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(demo.alive(), "the demo exited; see {}", demo.log.display());
        assert!(
            Instant::now() < ready_by,
            "the demo is not listening on {addr}"
        );
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(200)).await;
    let warmup = WARMUP.min(soak / 2);
    let every = SAMPLE_EVERY.min(warmup.max(Duration::from_secs(1)));
    println!(
        "soak: demo pid {pid} on {addr} (--threads 2), {} s, seed {seed}, server log {}",
        soak.as_secs(),
        demo.log.display()
    );
    let stats = Arc::new(Stats::default());
    let idle = sample(pid, Duration::ZERO).expect("read /proc/<pid>");
    println!(
        "[   idle] rss {:7.1} MiB  fds {:4}",
        mib(idle.rss_kib),
        idle.fds
    );

    let t0 = Instant::now();
    let deadline = t0 + soak;
    let mut clients = JoinSet::new();
    let mut n = 0u64;
    let mut rng = || {
        n += 1;
        Rng::new(seed ^ n.wrapping_mul(0x1000_0000_01b3))
    };
    for _ in 0..GOOD_CLIENTS {
        clients.spawn(good_loop(
            addr,
            "/echo",
            GOOD_MESSAGES,
            GOOD_MAX_SIZE,
            rng(),
            deadline,
            stats.clone(),
        ));
    }
    for _ in 0..HIBERNATE_CLIENTS {
        clients.spawn(good_loop(
            addr,
            "/seed/hibernate",
            HIBERNATE_MESSAGES,
            HIBERNATE_MAX_SIZE,
            rng(),
            deadline,
            stats.clone(),
        ));
    }
    for _ in 0..MALFORMED_CLIENTS {
        clients.spawn(malformed_loop(addr, rng(), deadline, stats.clone()));
    }
    for _ in 0..ABRUPT_CLIENTS {
        clients.spawn(abrupt_loop(addr, rng(), deadline, stats.clone()));
    }
    for _ in 0..SLOW_CLIENTS {
        clients.spawn(slow_loop(addr, rng(), deadline, stats.clone()));
    }
    for _ in 0..GARBAGE_CLIENTS {
        clients.spawn(garbage_loop(addr, rng(), deadline, stats.clone()));
    }
    for _ in 0..MISC_CLIENTS {
        clients.spawn(misc_loop(addr, rng(), deadline, stats.clone()));
    }

    let mut samples = Vec::new();
    let mut warm: Option<Sample> = None;
    let mut next = t0 + every;
    loop {
        sleep_until(next.min(deadline)).await;
        let Some(s) = sample(pid, t0.elapsed()) else {
            println!("soak: the demo process is gone");
            break;
        };
        println!(
            "[{:5} s] rss {:7.1} MiB  fds {:4} | {}",
            s.at.as_secs(),
            mib(s.rss_kib),
            s.fds,
            stats.line()
        );
        samples.push(s);
        if warm.is_none() && s.at >= warmup {
            warm = Some(s);
        }
        if Instant::now() >= deadline {
            break;
        }
        next += every;
    }

    println!("soak: time is up; waiting for every client to end its iteration");
    let stop_by = Instant::now() + ITERATION_LIMIT + Duration::from_secs(30);
    loop {
        match timeout_at(stop_by, clients.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                stats.failure(&stats.client_errors, format!("a client task failed: {e}"))
            }
            Err(_) => {
                let left = clients.len();
                stats.failure(
                    &stats.hangs,
                    format!("{left} client loops still running; aborted"),
                );
                clients.shutdown().await;
                break;
            }
        }
    }
    let stopped_at = t0.elapsed();

    // Every client is gone: the descriptors must come back down.
    let settle_by = Instant::now() + Duration::from_secs(30);
    let mut after = sample(pid, t0.elapsed());
    while let Some(s) = after {
        if s.fds <= idle.fds + FD_SLACK || Instant::now() >= settle_by {
            break;
        }
        sleep(Duration::from_secs(1)).await;
        after = sample(pid, t0.elapsed());
    }
    let alive = demo.alive();
    let serving = if alive {
        serving(addr).await
    } else {
        Err("the process has exited".into())
    };
    sleep(Duration::from_secs(1)).await;
    let end = sample(pid, t0.elapsed());
    if let Some(s) = end {
        samples.push(s);
    }

    // ------------------------------------------------------------- report
    let g = |c: &AtomicU64| c.load(Relaxed);
    println!("\n==================== soak summary ====================");
    println!(
        "duration {} s of traffic (clients stopped at {} s), seed {seed}",
        soak.as_secs(),
        stopped_at.as_secs()
    );
    let peak = samples.iter().max_by_key(|s| s.rss_kib).copied();
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    println!("RSS idle (before clients): {:.1} MiB", mib(idle.rss_kib));
    if let Some(w) = warm {
        println!(
            "RSS start (after {} s warm-up): {:.1} MiB",
            w.at.as_secs(),
            mib(w.rss_kib)
        );
    }
    if let Some(p) = peak {
        println!(
            "RSS peak: {:.1} MiB (at {} s)",
            mib(p.rss_kib),
            p.at.as_secs()
        );
    }
    if let Some(e) = end {
        println!("RSS end (clients gone): {:.1} MiB", mib(e.rss_kib));
    }
    println!(
        "fds idle {}, peak {}, after the clients stopped {}",
        idle.fds,
        peak_fds,
        after.map_or("?".into(), |s| s.fds.to_string())
    );
    println!("clients: {}", stats.line());
    println!("outcomes:");
    for (what, count) in stats
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("  {count:8}  {what}");
    }
    println!("server log ({}):", demo.log.display());
    for (line, count) in log_summary(&demo.log) {
        println!("  {count:8}  {line}");
    }
    let sigterm = if alive {
        demo.terminate()
    } else {
        Err("not running".into())
    };
    match &sigterm {
        Ok(t) => println!("SIGTERM: exited with success after {t:?}"),
        Err(e) => println!("SIGTERM: {e}"),
    }

    // -------------------------------------------------------------- checks
    let mut failed = Vec::new();
    for (what, counter) in [
        ("wrong echoes", &stats.wrong_echo),
        ("client errors", &stats.client_errors),
        ("hangs", &stats.hangs),
        ("unexpected answers", &stats.unexpected),
    ] {
        if g(counter) != 0 {
            failed.push(format!("{} {what}", g(counter)));
        }
    }
    if !alive {
        failed.push("the server process died".into());
    }
    if let Err(e) = &serving {
        failed.push(format!("the server no longer serves: {e}"));
    }
    match after {
        Some(s) if s.fds <= idle.fds + FD_SLACK => {}
        Some(s) => failed.push(format!(
            "{} fds open after the clients stopped (idle: {})",
            s.fds, idle.fds
        )),
        None => failed.push("no fd count after the clients stopped".into()),
    }
    match (warm, end) {
        (Some(w), Some(e)) => {
            let bound = w.rss_kib * 3 / 2 + 16 * 1024;
            if e.rss_kib > bound {
                failed.push(format!(
                    "RSS grew: end {:.1} MiB > warm-up {:.1} MiB x 1.5 + 16 MiB",
                    mib(e.rss_kib),
                    mib(w.rss_kib)
                ));
            }
        }
        _ => failed.push("no RSS figures for the warm-up and the end".into()),
    }
    if let Err(e) = &sigterm {
        failed.push(format!("SIGTERM: {e}"));
    }
    if g(&stats.good_sessions) == 0 {
        failed.push("no good session completed".into());
    }
    for d in stats
        .details
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("failure: {d}");
    }
    assert!(failed.is_empty(), "soak failed: {}", failed.join("; "));
    println!("soak: passed");
}
