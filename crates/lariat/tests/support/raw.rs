//! Raw TCP for lariat's integration tests: a hand-written upgrade request
//! (RFC 6455 §4.1), the response head read byte by byte so that nothing
//! after it is consumed, and masked client frames (§5.2, §5.3). Include it
//! from an integration test with
//!
//! ```ignore
//! #[path = "support/raw.rs"]
//! mod raw;
//! ```

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on a single wait for the server.
pub const T: Duration = Duration::from_secs(10);

/// RFC 6455 §1.3's example key.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const MASK: [u8; 4] = [1, 2, 3, 4];

/// An upgrade request for `path` with [`KEY`]; `extra` holds more header
/// lines, each ending in CRLF.
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Read an HTTP response head, byte by byte, so nothing after it is consumed.
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(T, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Connect and upgrade on `path` with `extra` header lines; the stream and
/// the response head, which must be a 101 (§4.2.2).
pub async fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(upgrade_request(path, extra).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (s, head)
}

/// A masked client frame with first byte `b0` (FIN, RSV and opcode), the
/// length in its shortest form.
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// Read exactly `n` bytes within `within`.
pub async fn read_n(s: &mut (impl AsyncRead + Unpin), n: usize, within: Duration) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(within, s.read_exact(&mut buf))
        .await
        .expect("the server did not answer in time")
        .expect("read failed");
    buf
}

/// One server frame, each part of it read within `within`: (first byte: FIN,
/// RSV and opcode; payload). Server frames are not masked (RFC 6455 §5.1).
pub async fn read_frame_within(
    s: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (u8, Vec<u8>) {
    let head = read_n(s, 2, within).await;
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked (§5.1)");
    let len = match head[1] & 0x7f {
        126 => u16::from_be_bytes(read_n(s, 2, within).await.try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(read_n(s, 8, within).await.try_into().unwrap()) as usize,
        n => n as usize,
    };
    (head[0], read_n(s, len, within).await)
}

/// [`read_frame_within`] [`T`].
pub async fn read_frame(s: &mut (impl AsyncRead + Unpin)) -> (u8, Vec<u8>) {
    read_frame_within(s, T).await
}
