//! A raw WebSocket client for the integration tests: hand-built HTTP and
//! frames over a `TcpStream`, and every byte the server sends read and
//! checked (RFC 6455 §4, §5). Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/raw.rs"]
//! mod raw;
//! ```
//!
//! The frame builders and [`parse_header`] never panic; a [`Conn`] panics on
//! any failure, and bounds each of its waits by [`T`].

#![allow(dead_code)]

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The bound on every single wait.
pub const T: Duration = Duration::from_secs(5);

/// RFC 6455 §1.3's example key, and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An upgrade request for `path` (RFC 6455 §4.1) with [`KEY`]; `extra` holds
/// more header lines, each ending in CRLF.
pub fn upgrade_request(host: impl Display, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

// ------------------------------------------------------------ frame builders

/// A frame header (§5.2): `b0` (FIN, RSV, opcode), the length in its
/// shortest form, and the mask key when masked.
pub fn header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut h = vec![b0];
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= 0xffff {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        h.extend_from_slice(&k);
    }
    h
}

/// `payload` masked with [`MASK`], starting at payload offset `offset`.
pub fn masked(payload: &[u8], offset: usize) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ MASK[(offset + i) % 4])
        .collect()
}

/// A well-masked client frame.
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(b0, payload.len() as u64, Some(MASK));
    f.extend(masked(payload, 0));
    f
}

/// An unmasked frame (a server's, or a broken client's).
pub fn unmasked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(b0, payload.len() as u64, None);
    f.extend_from_slice(payload);
    f
}

pub fn text(s: &str) -> Vec<u8> {
    frame(0x81, s.as_bytes())
}

/// A masked close frame with `code` and `reason` (which need not be UTF-8).
pub fn close(code: u16, reason: impl AsRef<[u8]>) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_ref());
    frame(0x88, &p)
}

// ------------------------------------------------------------ frame parsing

/// The header of a server frame at the start of `buf`: its first byte, the
/// header's length and the payload's length; `Ok(None)` until the whole
/// header is there. A server frame must not be masked (§5.1): `Err`.
pub fn parse_header(buf: &[u8]) -> Result<Option<(u8, usize, u64)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err("a server frame must not be masked".into());
    }
    Ok(match buf[1] & 0x7f {
        126 if buf.len() >= 4 => Some((buf[0], 4, u16::from_be_bytes([buf[2], buf[3]]).into())),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            Some((buf[0], 10, u64::from_be_bytes(b)))
        }
        126 | 127 => None,
        n => Some((buf[0], 2, n.into())),
    })
}

/// One whole server frame at the start of `buf`: (first byte, payload, the
/// bytes it takes); None until all of it is there.
fn parse(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (b0, at, len) = parse_header(buf).unwrap_or_else(|e| panic!("{e}"))?;
    let end = at + len as usize;
    (buf.len() >= end).then(|| (b0, buf[at..end].to_vec(), end))
}

// ---------------------------------------------------------------- the client

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A client that writes hand-built HTTP and frames and reads every byte.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = timeout(T, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(T, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write failed");
    }

    /// Read once more; 0 at EOF.
    pub async fn fill(&mut self) -> usize {
        let mut tmp = vec![0u8; 64 * 1024];
        let n = timeout(T, self.stream.read(&mut tmp))
            .await
            .expect("timed out waiting for the server")
            .expect("read failed (a reset would lose the close frame)");
        self.buf.extend_from_slice(&tmp[..n]);
        n
    }

    /// One HTTP response head, and its body (by Content-Length).
    pub async fn read_response(&mut self) -> Response {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill().await > 0, "EOF before a whole response head");
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let mut r = Response {
            status,
            head,
            body: Vec::new(),
        };
        let len: usize = r
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        while self.buf.len() < len {
            assert!(self.fill().await > 0, "EOF inside a response body");
        }
        r.body = self.buf.drain(..len).collect();
        r
    }

    /// Open a WebSocket with hand-written headers; `pipelined` bytes go in
    /// the same write as the request.
    pub async fn upgrade(
        addr: SocketAddr,
        path: &str,
        extra: &str,
        pipelined: &[u8],
    ) -> (Conn, Response) {
        let mut c = Conn::open(addr).await;
        let mut req = upgrade_request(addr, path, extra).into_bytes();
        req.extend_from_slice(pipelined);
        c.send(&req).await;
        let r = c.read_response().await;
        (c, r)
    }

    /// Upgrade on `path` and check the 101 (RFC 6455 §4.2.2).
    pub async fn ws(addr: SocketAddr, path: &str) -> Conn {
        let (c, r) = Conn::upgrade(addr, path, "", b"").await;
        assert!(r.head.starts_with("HTTP/1.1 101"), "{}", r.head);
        assert_eq!(r.status, 101, "{}", r.head);
        assert_eq!(
            r.header("sec-websocket-accept").as_deref(),
            Some(ACCEPT),
            "{}",
            r.head
        );
        c
    }

    /// The next whole frame from the server: (first byte, payload), or
    /// None at EOF. Server frames must not be masked (§5.1).
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((b0, payload, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some((b0, payload));
            }
            if self.fill().await == 0 {
                assert!(self.buf.is_empty(), "EOF inside a frame: {:?}", self.buf);
                return None;
            }
        }
    }

    pub async fn read_text(&mut self) -> String {
        match self.read_frame().await {
            Some((0x81, p)) => String::from_utf8(p).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame must be a close frame: its code and reason.
    pub async fn read_close(&mut self) -> (u16, String) {
        match self.read_frame().await {
            Some((0x88, p)) => {
                assert!(p.len() >= 2, "close frame without a code");
                (
                    u16::from_be_bytes([p[0], p[1]]),
                    String::from_utf8(p[2..].to_vec()).unwrap(),
                )
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Every byte until the server closes TCP.
    pub async fn read_to_eof(&mut self) -> Vec<u8> {
        let t0 = std::time::Instant::now();
        while self.fill().await > 0 {
            assert!(t0.elapsed() < 2 * T, "the server never closed TCP");
        }
        std::mem::take(&mut self.buf)
    }
}
