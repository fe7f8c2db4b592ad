//! floor-uring: `floor`'s question asked of io_uring instead of epoll: the least a
//! completion-based server does per echoed message. Like `floor` it is no WebSocket
//! server (no UTF-8 check, no limits, no ping handling; it answers only loadgen's own
//! upgrade key). One ring, one thread: every connection always has one receive queued,
//! and one send whenever it has output; the thread submits everything it queued and
//! collects every completion in one `io_uring_enter` per turn, so one system call
//! serves many sockets' reads and writes. Replies are copied into a per-connection
//! output buffer (frames are small in the scenarios this is for; `floor` writes them
//! straight from the read buffer).
//!
//! ```text
//! floor-uring --addr 127.0.0.1:9000
//! ```
//!
//! Not run by the suite: an experiment (the README's "floor-uring" paragraph) that tells
//! whether a server built on io_uring could go below what any epoll server pays.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};
use lariat_bench::reference::{self, unmask, FrameHead};
use lariat_bench::ws;

const ACCEPT: u64 = u64::MAX;
const RECV: u64 = 0;
const SEND: u64 = 1;
const READ_BUF: usize = 256 * 1024;

struct Conn {
    fd: RawFd,
    upgraded: bool,
    buf: Vec<u8>,
    start: usize,
    len: usize,
    /// Replies not yet handed to the kernel.
    out: Vec<u8>,
    /// The send in flight (`sent` bytes of it done).
    sending: Vec<u8>,
    sent: usize,
    recv_inflight: bool,
    send_inflight: bool,
    closing: bool,
}

fn main() {
    reference::run("floor-uring", serve);
}

fn push(ring: &mut IoUring, e: &squeue::Entry) -> io::Result<()> {
    // SAFETY: every buffer an entry points to lives in a `Conn` that is not freed,
    // and not resized, while the operation is in flight.
    while unsafe { ring.submission().push(e) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let lfd = listener.as_raw_fd();
    let mut ring = IoUring::new(4096)?;
    let accept = || {
        opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(ACCEPT)
    };
    push(&mut ring, &accept())?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(4096);
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            if ud == ACCEPT {
                if res >= 0 {
                    let fd = res;
                    let one: libc::c_int = 1;
                    // SAFETY: a valid socket and a c_int option value.
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as u32,
                        );
                    }
                    let i = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    conns[i] = Some(Conn {
                        fd,
                        upgraded: false,
                        buf: vec![0; READ_BUF],
                        start: 0,
                        len: 0,
                        out: Vec::new(),
                        sending: Vec::new(),
                        sent: 0,
                        recv_inflight: false,
                        send_inflight: false,
                        closing: false,
                    });
                    recv(&mut ring, conns[i].as_mut().expect("just set"), i)?;
                }
                push(&mut ring, &accept())?;
                continue;
            }
            let i = (ud >> 1) as usize;
            let Some(c) = conns[i].as_mut() else { continue };
            if ud & 1 == RECV {
                c.recv_inflight = false;
                if res <= 0 {
                    c.closing = true;
                } else {
                    c.len += res as usize;
                    let used = if c.upgraded {
                        echo_frames(c)
                    } else {
                        upgrade(c)
                    };
                    c.start += used;
                    if c.start == c.len {
                        c.start = 0;
                        c.len = 0;
                    } else if c.buf.len() - c.len < READ_BUF / 2 {
                        c.buf.copy_within(c.start..c.len, 0);
                        c.len -= c.start;
                        c.start = 0;
                    }
                    if !c.closing {
                        recv(&mut ring, c, i)?;
                    }
                }
            } else {
                c.send_inflight = false;
                if res < 0 {
                    c.closing = true;
                } else {
                    c.sent += res as usize;
                    if c.sent == c.sending.len() {
                        c.sending.clear();
                        c.sent = 0;
                    }
                }
            }
            if !c.send_inflight && (!c.sending.is_empty() || !c.out.is_empty()) && res >= 0 {
                if c.sending.is_empty() {
                    std::mem::swap(&mut c.sending, &mut c.out);
                }
                let rest = &c.sending[c.sent..];
                let e = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
                    .build()
                    .user_data(((i as u64) << 1) | SEND);
                c.send_inflight = true;
                push(&mut ring, &e)?;
            }
            if c.closing && !c.recv_inflight && !c.send_inflight {
                // SAFETY: the socket is ours and no operation uses it any more.
                unsafe { libc::close(c.fd) };
                conns[i] = None;
                free.push(i);
            }
        }
    }
}

/// Queues the connection's next receive into the free end of its buffer.
fn recv(ring: &mut IoUring, c: &mut Conn, i: usize) -> io::Result<()> {
    if c.len == c.buf.len() {
        let n = c.buf.len() * 2;
        c.buf.resize(n, 0);
    }
    let room = &mut c.buf[c.len..];
    let e = opcode::Recv::new(types::Fd(c.fd), room.as_mut_ptr(), room.len() as u32)
        .build()
        .user_data(((i as u64) << 1) | RECV);
    c.recv_inflight = true;
    push(ring, &e)
}

/// Answers a whole upgrade request; the bytes used.
fn upgrade(c: &mut Conn) -> usize {
    let Some(head) = ws::head_len(&c.buf[c.start..c.len]) else {
        return 0;
    };
    let (reply, ours) = reference::upgrade_reply(&c.buf[c.start..c.start + head]);
    c.out.extend_from_slice(&reply);
    c.upgraded = ours;
    c.closing = !ours;
    head
}

/// Appends the echo of every whole frame in the buffer to the output; the bytes used.
/// A close frame is echoed, and the connection then closes.
fn echo_frames(c: &mut Conn) -> usize {
    let mut at = c.start;
    while !c.closing {
        let Some(head) = FrameHead::parse(&c.buf[at..c.len]) else {
            break;
        };
        let (start, len) = (at + head.header_len, head.payload_len);
        if c.len < start + len {
            break;
        }
        let (header, n) = head.echo_header();
        c.out.extend_from_slice(&header[..n]);
        let from = c.out.len();
        c.out.extend_from_slice(&c.buf[start..start + len]);
        if let Some(m) = head.mask {
            unmask(&mut c.out[from..], m);
        }
        c.closing = head.first & 0x0f == ws::OP_CLOSE;
        at = start + len;
    }
    at - c.start
}
