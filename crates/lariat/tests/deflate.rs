//! permessage-deflate (RFC 7692) through a real socket, with a raw TCP client
//! that compresses with flate2 itself: negotiation answers, compressed and
//! fragmented messages with control frames between, the zip-bomb limit, and
//! the per-message `Deflate` command.

#[path = "support/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use lariat::{
    Command, Context, DeflateConfig, Frame, Handler, Message, Reply, Router, Server, Upgrade,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use raw::T;

/// Echo; text `plain` turns compression off for what follows, `deflate` back on.
struct Echo;

impl Handler for Echo {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) if t == "plain" => {
                Reply::command(Command::Deflate(false)).and(Frame::text("x".repeat(200)))
            }
            Message::Text(t) if t == "deflate" => {
                Reply::command(Command::Deflate(true)).and(Frame::text("x".repeat(200)))
            }
            Message::Text(t) => Reply::text(t),
            Message::Binary(b) => Reply::binary(b),
            _ => Reply::ok(),
        }
    }
}

async fn start(config: DeflateConfig, max_message: u64) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let router = Router::new().route("/", move |_| {
        let config = config.clone();
        async move {
            Upgrade::new(Echo)
                .deflate(config)
                .max_message_size(max_message)
                .max_frame_size(max_message)
                .into()
        }
    });
    tokio::spawn(server.serve(router));
    addr
}

/// Upgrade with `offer`; returns the stream and the response head.
async fn connect(addr: SocketAddr, offer: &str) -> (TcpStream, String) {
    let ext = if offer.is_empty() {
        String::new()
    } else {
        format!("Sec-WebSocket-Extensions: {offer}\r\n")
    };
    raw::upgrade(addr, "/", &ext).await
}

fn extensions_header(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("sec-websocket-extensions: "))
        .map(str::to_string)
}

/// A masked client frame.
fn frame(fin: bool, rsv1: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    raw::frame((fin as u8) << 7 | (rsv1 as u8) << 6 | op, payload)
}

/// Compress a message as RFC 7692 §7.2.1 says: sync flush, trailer removed.
fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let start = c.total_in() as usize;
    loop {
        out.reserve(4096);
        c.compress_vec(
            &data[c.total_in() as usize - start..],
            &mut out,
            FlushCompress::Sync,
        )
        .unwrap();
        if c.total_in() as usize - start == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() * 8 + 1024);
    let start = d.total_in() as usize;
    loop {
        out.reserve(64 * 1024);
        d.decompress_vec(
            &input[d.total_in() as usize - start..],
            &mut out,
            FlushDecompress::Sync,
        )
        .unwrap();
        if d.total_in() as usize - start == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    out
}

/// Read one server frame: (fin, rsv1, opcode, payload).
async fn read_frame(s: &mut TcpStream) -> (bool, bool, u8, Vec<u8>) {
    let (b0, payload) = raw::read_frame(s).await;
    (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f, payload)
}

#[tokio::test]
async fn negotiation_answers_through_the_socket_rfc7692_7_1() {
    let addr = start(DeflateConfig::default(), 1 << 20).await;
    let cases = [
        ("", None),
        ("x-unknown", None),
        ("permessage-deflate; bogus", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        (
            "permessage-deflate",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (
            "permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=10; client_max_window_bits",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"),
        ),
    ];
    for (offer, want) in cases {
        let (_, head) = connect(addr, offer).await;
        assert_eq!(extensions_header(&head).as_deref(), want, "offer {offer:?}");
    }
}

#[tokio::test]
async fn compressed_fragments_with_control_frames_between_with_takeover() {
    let config = DeflateConfig {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let addr = start(config, 1 << 20).await;
    let (mut s, head) = connect(addr, "permessage-deflate").await;
    assert_eq!(
        extensions_header(&head).as_deref(),
        Some("permessage-deflate")
    );
    let mut tx = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut rx = Decompress::new_with_window_bits(false, 15);
    let text = "Les sanglots longs des violons de l'automne. ".repeat(40);
    for round in 0..3 {
        // One compressed message in three fragments; RSV1 only on the first
        // (§6.1), a ping and a pong between the fragments.
        let z = deflate(&mut tx, text.as_bytes());
        let (a, rest) = z.split_at(z.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut wire = frame(false, true, 0x1, a);
        wire.extend(frame(true, false, 0x9, b"between"));
        wire.extend(frame(false, false, 0x0, b));
        wire.extend(frame(true, false, 0xA, b"pong"));
        wire.extend(frame(true, false, 0x0, c));
        s.write_all(&wire).await.unwrap();
        let (fin, rsv1, op, pong) = read_frame(&mut s).await;
        assert_eq!(
            (fin, rsv1, op, pong.as_slice()),
            (true, false, 0xA, &b"between"[..])
        );
        let (fin, rsv1, op, payload) = read_frame(&mut s).await;
        assert!(fin && rsv1 && op == 0x1, "round {round}");
        assert_eq!(inflate(&mut rx, &payload), text.as_bytes(), "round {round}");
        if round > 0 {
            // With context takeover the repeat costs next to nothing.
            assert!(payload.len() < 40, "round {round}: {} bytes", payload.len());
        }
    }
}

#[tokio::test]
async fn zip_bomb_closes_with_1009_at_the_limit() {
    let addr = start(DeflateConfig::default(), 1 << 20).await;
    let (mut s, _) = connect(addr, "permessage-deflate").await;
    let mut tx = Compress::new_with_window_bits(Compression::best(), false, 15);
    // 64 MiB of zeros in about 64 KiB on the wire, against a 1 MiB limit.
    let z = deflate(&mut tx, &vec![0u8; 64 << 20]);
    assert!(z.len() < 1 << 20);
    s.write_all(&frame(true, true, 0x2, &z)).await.unwrap();
    let (_, _, op, payload) = read_frame(&mut s).await;
    assert_eq!(op, 0x8);
    assert_eq!(&payload[..2], 1009u16.to_be_bytes());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(T, s.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the server closes the stream after its close frame"
    );
}

#[tokio::test]
async fn invalid_compressed_data_and_rsv1_on_control_frames_fail() {
    let addr = start(DeflateConfig::default(), 1 << 20).await;
    // Compressed bytes that are not DEFLATE: 1007.
    let (mut s, _) = connect(addr, "permessage-deflate").await;
    s.write_all(&frame(true, true, 0x2, &[0xff; 32]))
        .await
        .unwrap();
    let (_, _, op, payload) = read_frame(&mut s).await;
    assert_eq!((op, &payload[..2]), (0x8, &1007u16.to_be_bytes()[..]));
    // RSV1 on a ping: 1002 (RFC 7692 §6.1).
    let (mut s, _) = connect(addr, "permessage-deflate").await;
    s.write_all(&frame(true, true, 0x9, b"x")).await.unwrap();
    let (_, _, op, payload) = read_frame(&mut s).await;
    assert_eq!((op, &payload[..2]), (0x8, &1002u16.to_be_bytes()[..]));
    // RSV1 without the extension negotiated: 1002.
    let (mut s, _) = connect(addr, "").await;
    s.write_all(&frame(true, true, 0x1, b"x")).await.unwrap();
    let (_, _, op, payload) = read_frame(&mut s).await;
    assert_eq!((op, &payload[..2]), (0x8, &1002u16.to_be_bytes()[..]));
}

#[tokio::test]
async fn deflate_command_sends_some_messages_plain() {
    let addr = start(DeflateConfig::default(), 1 << 20).await;
    let (mut s, _) = connect(addr, "permessage-deflate").await;
    let mut rx = Decompress::new_with_window_bits(false, 15);
    s.write_all(&frame(true, false, 0x1, b"plain"))
        .await
        .unwrap();
    let (_, rsv1, _, payload) = read_frame(&mut s).await;
    assert!(!rsv1);
    assert_eq!(payload, "x".repeat(200).as_bytes());
    s.write_all(&frame(true, false, 0x1, b"deflate"))
        .await
        .unwrap();
    let (_, rsv1, _, payload) = read_frame(&mut s).await;
    assert!(rsv1);
    assert_eq!(inflate(&mut rx, &payload), "x".repeat(200).as_bytes());
    // Below the threshold (128 bytes), messages go out plain.
    s.write_all(&frame(true, false, 0x1, b"short"))
        .await
        .unwrap();
    let (_, rsv1, _, payload) = read_frame(&mut s).await;
    assert_eq!((rsv1, payload.as_slice()), (false, &b"short"[..]));
    // Data that does not shrink (no context takeover here) goes out plain,
    // not 5% bigger.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    s.write_all(&frame(true, false, 0x2, &noise)).await.unwrap();
    let (_, rsv1, op, payload) = read_frame(&mut s).await;
    assert_eq!((rsv1, op), (false, 0x2));
    assert_eq!(payload, noise);
}

/// Echo that hibernates after every message (S10).
struct Sleepy;

impl Handler for Sleepy {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t).hibernate(),
            _ => Reply::ok().hibernate(),
        }
    }
}

#[tokio::test]
async fn context_takeover_survives_hibernation_s10() {
    // The server drops its zlib states at every hibernate and keeps only the
    // windows; a client that keeps its own contexts all along must still
    // read every echo, and see the server compress against earlier messages.
    let config = DeflateConfig {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let router = Router::new().route("/", move |_| {
        let config = config.clone();
        async move { Upgrade::new(Sleepy).deflate(config).into() }
    });
    tokio::spawn(server.serve(router));
    let (mut s, head) = connect(addr, "permessage-deflate").await;
    assert_eq!(
        extensions_header(&head).as_deref(),
        Some("permessage-deflate")
    );
    let mut tx = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut rx = Decompress::new_with_window_bits(false, 15);
    let mut sizes = Vec::new();
    for round in 0..5 {
        let text = format!(
            "{round} {}",
            "a sentence that repeats across messages. ".repeat(30)
        );
        s.write_all(&frame(true, true, 0x1, &deflate(&mut tx, text.as_bytes())))
            .await
            .unwrap();
        let (_, rsv1, op, payload) = read_frame(&mut s).await;
        assert!(rsv1 && op == 0x1);
        assert_eq!(inflate(&mut rx, &payload), text.as_bytes(), "round {round}");
        sizes.push(payload.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sizes[1..].iter().all(|&n| n < sizes[0] / 2), "{sizes:?}");
}
