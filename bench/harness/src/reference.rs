//! What the two reference servers, `floor` (epoll) and `floor-uring` (io_uring), share:
//! their command line, their answer to loadgen's upgrade request, reading a client
//! frame's header, writing the echo's header, and unmasking. Neither is a WebSocket server (see their docs); this
//! is only as much of the protocol as echoing loadgen's frames needs.

use std::net::SocketAddr;

use crate::args::Args;
use crate::ws;

/// A reference server's `main`: parse `--addr HOST:PORT` and run `serve` on it; a bad
/// command line exits with 2, an error from `serve` with 1, each after a line on stderr
/// that starts with `name`.
pub fn run(name: &str, serve: impl FnOnce(SocketAddr) -> std::io::Result<()>) {
    let args = Args::parse(std::env::args().skip(1), &[]).unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        std::process::exit(2)
    });
    let addr: SocketAddr = args
        .str("addr")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("{name}: --addr HOST:PORT");
            std::process::exit(2)
        });
    if let Err(e) = serve(addr) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// The reply to a whole upgrade request head, and whether it is the 101: only loadgen's
/// own key ([`ws::KEY`]) is answered, with [`ws::ACCEPT`]; anything else gets a 400.
pub fn upgrade_reply(head: &[u8]) -> (Vec<u8>, bool) {
    let req = String::from_utf8_lossy(head);
    let ours = req.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("sec-websocket-key") && v.trim() == ws::KEY
        })
    });
    let reply = if ours {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
            ws::ACCEPT
        )
    } else {
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
    };
    (reply.into_bytes(), ours)
}

/// A client frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// The first byte (FIN, RSV, opcode), echoed as it is.
    pub first: u8,
    /// Header bytes, the mask key included.
    pub header_len: usize,
    pub payload_len: usize,
    pub mask: Option<[u8; 4]>,
}

impl FrameHead {
    /// Reads the header at the start of `b`; `None` until all of it is there.
    pub fn parse(b: &[u8]) -> Option<FrameHead> {
        if b.len() < 2 {
            return None;
        }
        let (payload_len, mut header_len) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let mask = if b[1] & 0x80 != 0 {
            let at = header_len;
            header_len += 4;
            if b.len() < header_len {
                return None;
            }
            Some([b[at], b[at + 1], b[at + 2], b[at + 3]])
        } else {
            None
        };
        Some(FrameHead {
            first: b[0],
            header_len,
            payload_len,
            mask,
        })
    }

    /// The header of the unmasked echo of this frame (a server's frame), and its length.
    pub fn echo_header(&self) -> ([u8; 10], usize) {
        let mut h = [0u8; 10];
        h[0] = self.first;
        let len = self.payload_len;
        let n = if len < 126 {
            h[1] = len as u8;
            2
        } else if len <= 0xffff {
            h[1] = 126;
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            h[1] = 127;
            h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        (h, n)
    }
}

/// XORs `data` with the 4-byte mask, eight bytes at a time (the compiler vectorizes it).
pub fn unmask(data: &mut [u8], m: [u8; 4]) {
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for ch in &mut chunks {
        let v = u64::from_ne_bytes((&*ch).try_into().expect("8 bytes")) ^ word;
        ch.copy_from_slice(&v.to_ne_bytes());
    }
    for (k, x) in chunks.into_remainder().iter_mut().enumerate() {
        *x ^= m[k & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loadgens_frames_and_writes_their_echo_headers() {
        let payload = vec![5u8; 300];
        let f = ws::masked_frame(ws::OP_BINARY, &payload, [1, 2, 3, 4]);
        assert_eq!(FrameHead::parse(&f[..3]), None, "incomplete");
        let h = FrameHead::parse(&f).expect("whole header");
        assert_eq!(
            (h.header_len, h.payload_len, h.mask),
            (8, 300, Some([1, 2, 3, 4]))
        );
        let mut body = f[8..].to_vec();
        unmask(&mut body, [1, 2, 3, 4]);
        assert_eq!(body, payload);
        let (eh, n) = h.echo_header();
        assert_eq!(&eh[..n], &[0x82, 126, 1, 44]);
        let (reply, ours) = upgrade_reply(&ws::upgrade_request("h", "/echo", false));
        assert!(ours && reply.starts_with(b"HTTP/1.1 101"));
        assert!(!upgrade_reply(b"GET / HTTP/1.1\r\n\r\n").1);
    }
}
