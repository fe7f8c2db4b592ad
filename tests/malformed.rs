//! Broken clients (RFC 6455 §5, §7.4, §8.1): raw `TcpStream`s that do their
//! own upgrade and write hand-built frames. For each violation: the server's
//! close frame carries exactly the right code, the server then closes TCP
//! (read returns 0) within a few seconds, and a fresh connection is still
//! served.
//!
//! Every wait is bounded by [`T`]; a test that would hang fails instead.

#[path = "support/raw.rs"]
mod raw;
#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use raw::{frame, header, masked, Conn, MASK, T};
use server::demo;

/// How soon after the violation the server must have closed TCP.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

// ------------------------------------------------------------------- checks

/// After the bytes sent so far: the next frame is a close frame with exactly
/// `code` (and a UTF-8 reason), nothing follows it, and the server closes
/// TCP within [`CLOSE_WITHIN`].
async fn expect_close_then_eof(c: &mut Conn, code: u16, what: &str) {
    let t0 = Instant::now();
    let (b0, payload) = c
        .read_frame()
        .await
        .unwrap_or_else(|| panic!("{what}: EOF without a close frame"));
    assert_eq!(b0, 0x88, "{what}: expected a close frame, got {payload:?}");
    assert!(payload.len() >= 2, "{what}: close frame without a code");
    assert_eq!(
        [payload[0], payload[1]],
        code.to_be_bytes(),
        "{what}: close code {} instead of {code}",
        u16::from_be_bytes([payload[0], payload[1]])
    );
    assert!(
        std::str::from_utf8(&payload[2..]).is_ok(),
        "{what}: the reason is not UTF-8"
    );
    let rest = c.read_to_eof().await;
    assert!(rest.is_empty(), "{what}: bytes after the close: {rest:?}");
    assert!(
        t0.elapsed() < CLOSE_WITHIN,
        "{what}: TCP closed only after {:?}",
        t0.elapsed()
    );
}

/// A fresh connection still works.
async fn assert_serves(addr: SocketAddr, path: &str) {
    let mut c = Conn::ws(addr, path).await;
    c.send(&frame(0x81, b"still serving")).await;
    assert_eq!(
        c.read_frame().await,
        Some((0x81, b"still serving".to_vec())),
        "a fresh connection on {path} is not served"
    );
}

/// Open `/seed/echo`, send `bytes`, expect close `code` and TCP close, then
/// check a fresh connection.
async fn fails_with(bytes: &[u8], code: u16, what: &str) {
    let addr = demo().await;
    fails_with_on(addr, "/seed/echo", bytes, code, what).await;
}

async fn fails_with_on(addr: SocketAddr, path: &str, bytes: &[u8], code: u16, what: &str) {
    let mut c = Conn::ws(addr, path).await;
    c.send(bytes).await;
    expect_close_then_eof(&mut c, code, what).await;
    assert_serves(addr, path).await;
}

// -------------------------------------------------------------------- tests

/// RFC 6455 §5.1: a client frame without a mask fails the connection (1002).
#[tokio::test]
async fn rfc6455_5_1_unmasked_client_frame_gets_1002() {
    let mut f = header(0x81, 5, None);
    f.extend_from_slice(b"naked");
    fails_with(&f, 1002, "unmasked text").await;
    fails_with(&[0x89, 0x00], 1002, "unmasked ping").await;
}

/// RFC 6455 §5.2: reserved opcodes 3-7 and 0xB-0xF get 1002.
#[tokio::test]
async fn rfc6455_5_2_reserved_opcodes_get_1002() {
    let addr = demo().await;
    for op in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        let what = format!("opcode {op:#x}");
        fails_with_on(addr, "/seed/echo", &frame(0x80 | op, b"x"), 1002, &what).await;
    }
}

/// RFC 6455 §5.2: RSV1-3 set with no extension negotiated get 1002.
#[tokio::test]
async fn rfc6455_5_2_rsv_bits_get_1002() {
    let addr = demo().await;
    for (b0, what) in [
        (0xc1, "RSV1 on text"),
        (0xa1, "RSV2 on text"),
        (0x91, "RSV3 on text"),
        (0xc2, "RSV1 on binary"),
        (0xc9, "RSV1 on ping"),
    ] {
        fails_with_on(addr, "/seed/echo", &frame(b0, b"x"), 1002, what).await;
    }
}

/// RFC 6455 §5.5: control frames must not be fragmented.
#[tokio::test]
async fn rfc6455_5_5_fragmented_ping_gets_1002() {
    let mut bytes = frame(0x09, b"part");
    bytes.extend(frame(0x80, b"rest"));
    fails_with(&bytes, 1002, "ping without FIN").await;
}

/// RFC 6455 §5.5: a control frame carries at most 125 bytes.
#[tokio::test]
async fn rfc6455_5_5_ping_of_126_bytes_gets_1002() {
    let f = frame(0x89, &[b'p'; 126]);
    assert_eq!(&f[..4], [0x89, 0xfe, 0x00, 126]);
    fails_with(&f, 1002, "126-byte ping").await;
    fails_with(
        &frame(0x88, &[0x03, 0xe8].repeat(63)),
        1002,
        "126-byte close",
    )
    .await;
}

/// RFC 6455 §8.1: text that is not UTF-8 fails the connection with 1007.
#[tokio::test]
async fn rfc6455_8_1_invalid_utf8_text_gets_1007() {
    let addr = demo().await;
    let cases: [(&[u8], &str); 5] = [
        (b"\xff", "0xff"),
        (b"ok \xc3\x28", "bad continuation byte"),
        (b"\xed\xa0\x80", "UTF-16 surrogate"),
        (b"\xc0\xaf", "overlong encoding"),
        (b"end \xe2\x82", "truncated at the end of the message"),
    ];
    for (payload, what) in cases {
        fails_with_on(addr, "/seed/echo", &frame(0x81, payload), 1007, what).await;
    }
    // Across fragments: valid on its own, invalid once continued.
    let mut bytes = frame(0x01, b"caf\xc3");
    bytes.extend(frame(0x80, b"\x28"));
    fails_with_on(addr, "/seed/echo", &bytes, 1007, "invalid across fragments").await;
}

/// RFC 6455 §8.1 (fail fast): invalid UTF-8 at the start of a big frame is
/// refused before the rest of the frame is sent.
#[tokio::test]
async fn rfc6455_8_1_invalid_utf8_fails_mid_frame() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/echo").await;
    let mut bytes = header(0x81, 100_000, Some(MASK));
    bytes.extend(masked(b"a valid start, then \xff and more", 0));
    c.send(&bytes).await;
    // ~99,970 payload bytes are never sent.
    expect_close_then_eof(&mut c, 1007, "invalid UTF-8 mid-frame").await;

    // Same inside the first fragment of a message whose end never comes.
    let mut c = Conn::ws(addr, "/seed/echo").await;
    c.send(&frame(0x01, b"first fragment \xfe")).await;
    expect_close_then_eof(&mut c, 1007, "invalid UTF-8 in a first fragment").await;
    assert_serves(addr, "/seed/echo").await;
}

/// RFC 6455 §7.4: close codes that may not appear on the wire get 1002.
#[tokio::test]
async fn rfc6455_7_4_invalid_close_codes_get_1002() {
    let addr = demo().await;
    for code in [
        1005u16, 999, 0, 1004, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let what = format!("close code {code}");
        fails_with_on(addr, "/seed/echo", &raw::close(code, b""), 1002, &what).await;
    }
}

/// RFC 6455 §5.5.1: a close payload of one byte cannot hold a code: 1002.
#[tokio::test]
async fn rfc6455_5_5_1_one_byte_close_payload_gets_1002() {
    fails_with(&frame(0x88, &[0x03]), 1002, "one-byte close payload").await;
}

/// RFC 6455 §5.5.1, §8.1: a close reason that is not UTF-8 gets 1007.
#[tokio::test]
async fn rfc6455_5_5_1_close_reason_not_utf8_gets_1007() {
    fails_with(&raw::close(1000, b"bad \xff reason"), 1007, "close reason").await;
}

/// S9: a header announcing a 1 TB frame closes with 1009 at once, without
/// waiting for (or allocating) its payload; also on `/echo`'s 64 MiB limit.
#[tokio::test]
async fn s9_header_announcing_1tb_frame_gets_1009_at_once() {
    let addr = demo().await;
    for path in ["/seed/echo", "/echo", "/seed/maxframe"] {
        for b0 in [0x82u8, 0x81] {
            let mut c = Conn::ws(addr, path).await;
            let h = header(b0, 1 << 40, Some(MASK));
            assert_eq!(&h[..10], [b0, 0xff, 0, 0, 1, 0, 0, 0, 0, 0]);
            let t0 = Instant::now();
            c.send(&h).await;
            c.send(&masked(b"just a few bytes", 0)).await;
            let what = format!("1 TB frame on {path}");
            expect_close_then_eof(&mut c, 1009, &what).await;
            assert!(t0.elapsed() < Duration::from_secs(2), "{what}: not at once");
        }
        assert_serves(addr, path).await;
    }
}

/// RFC 6455 §5.4: a continuation frame with no message to continue: 1002.
#[tokio::test]
async fn rfc6455_5_4_continuation_without_start_gets_1002() {
    let addr = demo().await;
    fails_with_on(
        addr,
        "/seed/echo",
        &frame(0x80, b"cont"),
        1002,
        "final continuation",
    )
    .await;
    fails_with_on(
        addr,
        "/seed/echo",
        &frame(0x00, b"cont"),
        1002,
        "continuation",
    )
    .await;
}

/// S9: a message over the (default, 1 MiB) message limit, in frames each
/// under the frame limit, gets 1009 once the sum goes over.
#[tokio::test]
async fn s9_fragmented_message_over_the_limit_gets_1009() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/echo").await;
    let chunk = vec![b'f'; 64 * 1024];
    c.send(&frame(0x01, &chunk)).await;
    for _ in 0..15 {
        c.send(&frame(0x00, &chunk)).await;
    }
    // 1 MiB so far: one more byte is too many.
    c.send(&frame(0x80, b"!")).await;
    expect_close_then_eof(&mut c, 1009, "1 MiB + 1 in 17 fragments").await;
    assert_serves(addr, "/seed/echo").await;
}

/// RFC 6455 §5.4: a new data message inside an unfinished one: 1002.
#[tokio::test]
async fn rfc6455_5_4_new_message_inside_fragmented_one_gets_1002() {
    let mut bytes = frame(0x01, b"start");
    bytes.extend(frame(0x81, b"another"));
    fails_with(&bytes, 1002, "text inside a fragmented text").await;
}

/// RFC 6455 §5.2: a 64-bit length with its most significant bit set: 1002.
/// (And lariat holds peers to the minimal length encoding §5.2 requires.)
#[tokio::test]
async fn rfc6455_5_2_bad_lengths_get_1002() {
    let addr = demo().await;
    let mut msb = vec![0x82, 0xff];
    msb.extend_from_slice(&(1u64 << 63).to_be_bytes());
    msb.extend_from_slice(&MASK);
    fails_with_on(addr, "/seed/echo", &msb, 1002, "length MSB set").await;
    // 5 bytes announced in the 16-bit form.
    let mut short16 = vec![0x81, 0xfe, 0x00, 0x05];
    short16.extend_from_slice(&MASK);
    short16.extend(masked(b"hello", 0));
    fails_with_on(
        addr,
        "/seed/echo",
        &short16,
        1002,
        "non-minimal 16-bit length",
    )
    .await;
}

/// RFC 6455 §7.1.7: messages before the violation are still handled and
/// answered, in order, before the close frame.
#[tokio::test]
async fn violation_after_valid_frames_answers_them_first() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/echo").await;
    let mut bytes = frame(0x81, b"one");
    bytes.extend(frame(0x81, b"two"));
    bytes.extend(frame(0x83, b"bad"));
    bytes.extend(frame(0x81, b"never"));
    c.send(&bytes).await;
    assert_eq!(c.read_frame().await, Some((0x81, b"one".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x81, b"two".to_vec())));
    expect_close_then_eof(&mut c, 1002, "reserved opcode after two texts").await;
}

/// A request that is not HTTP gets an error, not a crash; the server goes on.
#[tokio::test]
async fn garbage_instead_of_http_does_not_hurt_the_server() {
    let addr = demo().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x00\x01GARBAGE \xff\xfe\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = timeout(T, s.read_to_end(&mut out))
        .await
        .expect("the server neither answered nor closed");
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 4"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    assert_serves(addr, "/seed/echo").await;
}
