//! lariat's side-by-side benchmark.
//!
//! Two programs share this library:
//! - `loadgen` (src/bin/loadgen.rs): the WebSocket client that loads one server and prints
//!   one JSON [`LoadResult`]. Raw TCP on a single-threaded mio loop, its own HTTP upgrade,
//!   frames masked once ahead of time, every echo checked byte for byte.
//! - `suite` (src/bin/suite.rs): starts each server pinned to core 0, runs `loadgen` pinned
//!   to core 1, interleaves the servers over repetitions, and writes `BENCHMARKS.md` with a
//!   chart.
//!
//! Modules: [`ws`] frames and the handshake, [`procfs`] what we read from `/proc`,
//! [`args`] a tiny `--key value` parser, [`reference`] what the two reference servers
//! (`floor`, `floor-uring`) share, and the result types below.

pub mod args;
pub mod procfs;
pub mod reference;
pub mod ws;

use serde::{Deserialize, Serialize};

/// What one `loadgen` run prints on stdout, as a single JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LoadResult {
    Echo(EchoResult),
    Handshake(HandshakeResult),
    Idle(IdleResult),
    /// The run failed (a wrong echo, a refused upgrade, a stall...): it does not score.
    Error {
        message: String,
    },
}

/// Echo mode: C connections, each keeping W messages of S bytes in flight.
///
/// A "message" is one round trip: a frame sent and its echo received and verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EchoResult {
    /// Messages echoed (and verified) inside the measured window.
    pub msgs: u64,
    /// Length of the measured window, seconds.
    pub secs: f64,
    pub msg_per_s: f64,
    /// Payload megabytes (10^6) echoed per second, one direction.
    pub mb_per_s: f64,
    /// Server utime+stime over the window, seconds (from /proc/PID/stat).
    pub server_cpu_s: f64,
    /// Server CPU time per message, microseconds.
    pub cpu_per_msg_us: f64,
    /// Fraction of one core the server used over the window.
    pub server_busy: f64,
    /// Fraction of one core the load generator used over the window.
    pub loadgen_busy: f64,
    /// Round-trip latency percentiles over the window, microseconds (from the moment a
    /// frame was queued to the moment its echo was complete).
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Message size in bytes (the payload before any compression).
    #[serde(default)]
    pub msg_bytes: u64,
    /// permessage-deflate was agreed (`--deflate`): loadgen sent its messages compressed.
    #[serde(default)]
    pub deflate: bool,
    /// Mean bytes on the wire per message, frame headers included: the frame loadgen sent
    /// (client to server), and its echo (server to client, over the window's messages).
    #[serde(default)]
    pub wire_up_per_msg: f64,
    #[serde(default)]
    pub wire_down_per_msg: f64,
    /// Share of the window's echoes that came compressed (RSV1 set); 0 without deflate.
    #[serde(default)]
    pub compressed_share: f64,
}

/// Handshake mode: K clients in parallel, each looping connect → upgrade → close.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandshakeResult {
    /// Complete cycles (TCP connect, upgrade verified, close handshake) in the window.
    pub handshakes: u64,
    pub secs: f64,
    pub per_s: f64,
    pub server_cpu_s: f64,
    /// Server CPU time per cycle, microseconds.
    pub cpu_per_hs_us: f64,
    pub server_busy: f64,
    pub loadgen_busy: f64,
    /// Cycles in the window where the server closed TCP without answering our close
    /// frame with its own (an RFC 6455 §5.5.1 "MUST"); they count, but are reported.
    pub closed_without_close_frame: u64,
}

/// Idle mode: N connections opened and left idle, then each woken by one message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    pub conns: u64,
    /// Server VmRSS before the first connection, bytes.
    pub rss_before: u64,
    /// Server VmRSS with N idle connections open, bytes.
    pub rss_open: u64,
    /// Server VmRSS after every connection echoed one message, bytes.
    pub rss_woken: u64,
    /// Seconds it took to open the N connections (one after another).
    pub open_secs: f64,
    /// (rss_open - rss_before) / N.
    pub bytes_per_conn_open: f64,
    /// (rss_woken - rss_before) / N.
    pub bytes_per_conn_woken: f64,
    /// Size of the one message each connection sent, bytes (before any compression).
    #[serde(default)]
    pub msg_bytes: u64,
    /// permessage-deflate was agreed on every connection (`--deflate`).
    #[serde(default)]
    pub deflate: bool,
    /// How many of the N echoes came compressed.
    #[serde(default)]
    pub compressed_echoes: u64,
}
