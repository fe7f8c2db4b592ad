//! floor: the least any readiness-based (epoll) server can do per echoed message, to
//! measure the kernel's share that no WebSocket library can remove. Not a WebSocket
//! server: one single-threaded mio loop, one read and one (vectored) write per ready
//! socket, frames unmasked in place and written straight from the read buffer, no
//! UTF-8 check, no limits, no timers, no ping handling. It answers only the
//! benchmark's own upgrade request (`ws::KEY`, whose accept value is `ws::ACCEPT`) and
//! refuses anything else with a 400, so it cannot pass for a server. Frames sent behind
//! the upgrade request in the same read wait for the next read (loadgen sends none).
//!
//! ```text
//! floor --addr 127.0.0.1:9000
//! ```
//!
//! The suite runs it in every echo scenario, interleaved with lariat and the peers, but
//! ranks nothing by it; BENCHMARKS.md's "floor" section quotes what it measured.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

use lariat_bench::reference::{self, unmask, FrameHead};
use lariat_bench::ws;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// Read buffer per connection: room for several 64 KiB frames.
const READ_BUF: usize = 256 * 1024;
/// A partial frame is moved to the front of the buffer only when less room than this is
/// left behind it.
const COMPACT_BELOW: usize = 128 * 1024;

struct Conn {
    sock: TcpStream,
    upgraded: bool,
    buf: Vec<u8>,
    /// `buf[start..len]`: read and not yet answered.
    start: usize,
    len: usize,
    /// Output a short write left behind; the socket is then waited on for writing.
    pending: Vec<u8>,
}

fn main() {
    reference::run("floor", serve);
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            // A signal (a debugger or strace attaching): wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    sock.set_nodelay(true)?;
                    let i = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry().register(
                        &mut sock,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns[i] = Some(Conn {
                        sock,
                        upgraded: false,
                        buf: vec![0; READ_BUF],
                        start: 0,
                        len: 0,
                        pending: Vec::new(),
                    });
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns[i].as_mut() else { continue };
            let alive = (!ev.is_writable() || flush(c)) && (!ev.is_readable() || serve_reads(c));
            if !alive {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(i);
            }
        }
    }
}

/// Writes what a short write left; false if the connection is done.
fn flush(c: &mut Conn) -> bool {
    while !c.pending.is_empty() {
        match c.sock.write(&c.pending) {
            Ok(0) => return false,
            Ok(n) => {
                c.pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads until a read comes back short (edge-triggered epoll reports the next
/// arrival anew), answering what each read completes. False if the connection is done.
fn serve_reads(c: &mut Conn) -> bool {
    loop {
        if c.len == c.buf.len() {
            // A frame larger than the buffer: grow it.
            let n = c.buf.len() * 2;
            c.buf.resize(n, 0);
        }
        let room = c.buf.len() - c.len;
        let n = match c.sock.read(&mut c.buf[c.len..]) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        c.len += n;
        let used = if c.upgraded {
            match echo_frames(c) {
                Some(used) => used,
                None => return false,
            }
        } else {
            match upgrade(c) {
                Some(used) => used,
                None => return false,
            }
        };
        c.start += used;
        if c.start == c.len {
            c.start = 0;
            c.len = 0;
        } else if c.buf.len() - c.len < COMPACT_BELOW {
            // Little room left behind a partial frame: move it to the front.
            c.buf.copy_within(c.start..c.len, 0);
            c.len -= c.start;
            c.start = 0;
        }
        if n < room {
            return true;
        }
    }
}

/// Answers a whole upgrade request; Some(bytes used), None to close.
fn upgrade(c: &mut Conn) -> Option<usize> {
    let Some(head) = ws::head_len(&c.buf[..c.len]) else {
        return Some(0);
    };
    let (reply, ours) = reference::upgrade_reply(&c.buf[..head]);
    c.pending.extend_from_slice(&reply);
    if !flush(c) || !ours {
        return None;
    }
    c.upgraded = true;
    Some(head)
}

/// Frames answered per vectored write; more wait for the next write of the same read.
const BATCH: usize = 64;

/// Echoes every whole frame in the buffer, up to [`BATCH`] frames per vectored write;
/// Some(bytes used), None to close (a close frame, or the socket failed). Allocates
/// nothing unless a write comes back short.
fn echo_frames(c: &mut Conn) -> Option<usize> {
    let mut at = c.start;
    let mut closing = false;
    loop {
        // (header, header length, payload start, payload end)
        let mut out = [([0u8; 10], 0usize, 0usize, 0usize); BATCH];
        let mut k = 0;
        while !closing && k < BATCH {
            let Some(head) = FrameHead::parse(&c.buf[at..c.len]) else {
                break;
            };
            if c.len - at < head.header_len + head.payload_len {
                break;
            }
            let start = at + head.header_len;
            let len = head.payload_len;
            if let Some(m) = head.mask {
                unmask(&mut c.buf[start..start + len], m);
            }
            closing = head.first & 0x0f == ws::OP_CLOSE;
            let (header, n) = head.echo_header();
            out[k] = (header, n, start, start + len);
            k += 1;
            at = start + len;
        }
        if k == 0 {
            break;
        }
        if !write_frames(c, &out[..k]) {
            return None;
        }
        if closing {
            return None;
        }
        if k < BATCH {
            break;
        }
    }
    Some(at - c.start)
}

/// Writes the frames `out` describes with one vectored write, queueing what the kernel
/// does not take (or everything, behind output already queued); false if the socket failed.
fn write_frames(c: &mut Conn, out: &[([u8; 10], usize, usize, usize)]) -> bool {
    let mut slices = [IoSlice::new(&[]); 2 * BATCH];
    for (i, (h, n, s, e)) in out.iter().enumerate() {
        slices[2 * i] = IoSlice::new(&h[..*n]);
        slices[2 * i + 1] = IoSlice::new(&c.buf[*s..*e]);
    }
    let slices = &slices[..2 * out.len()];
    let total: usize = slices.iter().map(|s| s.len()).sum();
    if !c.pending.is_empty() {
        // Behind output still waiting: queue after it, in order.
        for s in slices {
            c.pending.extend_from_slice(s);
        }
        return flush(c);
    }
    let wrote = loop {
        match c.sock.write_vectored(slices) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    };
    if wrote < total {
        // Keep what the kernel did not take, in order.
        let mut skip = wrote;
        let mut rest = Vec::with_capacity(total - wrote);
        for s in slices {
            if skip >= s.len() {
                skip -= s.len();
            } else {
                rest.extend_from_slice(&s[skip..]);
                skip = 0;
            }
        }
        c.pending.extend_from_slice(&rest);
    }
    true
}
