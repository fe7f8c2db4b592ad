//! How the server reads large frames and how it ends the TCP connection,
//! through real sockets with raw TCP clients (frames written by hand).
//!
//! - A large payload is read straight into its message, and what follows it
//!   in the same read (the next frames) into the shared buffer: back-to-back
//!   large and small frames, all in one write, come back whole and in order
//!   (RFC 6455 §5.2, §5.4; S5 echo).
//! - RFC 6455 §7.1.1: once the closing handshake is complete, the server
//!   closes TCP at once. When the peer may still be sending (the server
//!   failed the connection), it half-closes and reads what comes until the
//!   peer closes, so that a reset does not destroy its close frame.

#[path = "support/raw.rs"]
mod raw;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use lariat::{Context, Handler, Init, Message, Reply, Router, Server, Upgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on any single wait for the server.
const T: Duration = Duration::from_secs(5);

/// One server frame, each part within [`T`]: (first byte, payload).
async fn read_frame(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> (u8, Vec<u8>) {
    raw::read_frame_within(s, T).await
}

/// Echoes text and binary messages (S5).
struct Echo;

impl Handler for Echo {
    type Info = ();

    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            Message::Binary(b) => Reply::binary(b),
            Message::Ping(_) | Message::Pong(_) => Reply::ok(),
        }
    }
}

async fn start() -> SocketAddr {
    let router = Router::new().route("/", |_| async {
        Init::Upgrade(Upgrade::new(Echo).max_frame_size(4 << 20))
    });
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(router));
    addr
}

/// Read until the server's end of stream; true if it came within [`T`].
async fn eof(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(T, s.read(&mut buf)).await {
            Ok(Ok(0)) => return true,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("read failed before the end of stream: {e}"),
            Err(_) => return false,
        }
    }
}

/// Write a few bytes after the server's end of stream and report whether
/// the server's socket answered with a reset (it was closed) or took them
/// (it was still reading, half-closed).
async fn reset_after_eof(s: &mut TcpStream) -> bool {
    for _ in 0..20 {
        match s.write_all(b"late bytes").await {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true
            }
            Err(e) => panic!("unexpected write error: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionReset => return true,
            Ok(Err(e)) => panic!("unexpected read error: {e}"),
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => panic!("{n} bytes after the end of stream"),
        }
    }
    false
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// RFC 6455 §5.2 (lengths), §5.4 (fragments), §8.1 (UTF-8 across reads),
/// S5 echo: large frames read straight into their message, with the next
/// frames arriving in the same read, come back whole and in order: equal
/// 64 KiB ones in a row, one just over the direct-read threshold, small
/// ones between, a text fragmented inside a character. Everything goes in
/// one write so that the server's reads see large payloads followed by more
/// frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_frames_back_to_back_come_back_in_order() {
    let addr = start().await;
    let (mut s, _) = raw::upgrade(addr, "/", "").await;
    let big = pattern(64 << 10, 1);
    let big_again = pattern(64 << 10, 5);
    let bigger = pattern(300 << 10, 2);
    let just_over = pattern((16 << 10) + 1, 6);
    // 48,000 bytes of characters one to four bytes long.
    let text = "añb€c𝄞".repeat(4_000);
    let frag_a = pattern(20 << 10, 3);
    let frag_b = pattern(50 << 10, 4);
    let mut wire = Vec::new();
    wire.extend(raw::frame(0x82, &big));
    wire.extend(raw::frame(0x82, &big_again));
    wire.extend(raw::frame(0x82, &big));
    wire.extend(raw::frame(0x82, &just_over));
    wire.extend(raw::frame(0x81, b"small one"));
    wire.extend(raw::frame(0x82, &bigger));
    wire.extend(raw::frame(0x89, b"ping"));
    wire.extend(raw::frame(0x81, text.as_bytes()));
    // A fragmented binary message: 20 KiB, then 50 KiB (§5.4).
    wire.extend(raw::frame(0x02, &frag_a));
    wire.extend(raw::frame(0x80, &frag_b));
    // A fragmented text, cut inside a four-byte character (§5.4, §8.1).
    let cut = text.find('𝄞').unwrap() + 2;
    wire.extend(raw::frame(0x01, &text.as_bytes()[..cut]));
    wire.extend(raw::frame(0x80, &text.as_bytes()[cut..]));
    wire.extend(raw::frame(0x81, b"last"));
    let got = {
        let (mut r, mut w) = s.into_split();
        let task = tokio::spawn(async move {
            w.write_all(&wire).await.unwrap();
            w
        });
        let mut got = Vec::new();
        for _ in 0..11 {
            got.push(read_frame(&mut r).await);
        }
        let w = task.await.unwrap();
        s = r.reunite(w).unwrap();
        got
    };
    let mut whole = frag_a.clone();
    whole.extend_from_slice(&frag_b);
    let expected: Vec<(u8, Vec<u8>)> = vec![
        (0x82, big.clone()),
        (0x82, big_again),
        (0x82, big),
        (0x82, just_over),
        (0x81, b"small one".to_vec()),
        (0x82, bigger),
        (0x81, text.clone().into_bytes()),
        (0x82, whole),
        (0x81, text.into_bytes()),
        (0x81, b"last".to_vec()),
    ];
    // §5.5.2: one pong answers the ping. It is urgent: it may overtake
    // echoes still queued, so only the data messages' order is checked.
    let (pongs, got): (Vec<_>, Vec<_>) = got.into_iter().partition(|(op, _)| *op == 0x8a);
    assert_eq!(pongs, vec![(0x8a, b"ping".to_vec())]);
    assert_eq!(got.len(), expected.len());
    for (i, ((op, payload), (want_op, want))) in got.iter().zip(&expected).enumerate() {
        assert_eq!(op, want_op, "frame {i}: opcode");
        assert_eq!(payload.len(), want.len(), "frame {i}: length");
        assert!(payload == want, "frame {i}: content differs");
    }
    // Still in step: one more echo.
    s.write_all(&raw::frame(0x81, b"after")).await.unwrap();
    assert_eq!(read_frame(&mut s).await, (0x81, b"after".to_vec()));
}

/// RFC 6455 §7.1.1: after the client's close frame has been answered, the
/// server closes TCP at once: the client sees the end of stream while its
/// own side is still open, and a byte it sends afterwards is answered with a
/// reset (the server's socket is closed, not lingering).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6455_7_1_1_server_closes_tcp_at_once_after_the_close_handshake() {
    let addr = start().await;
    let (mut s, _) = raw::upgrade(addr, "/", "").await;
    s.write_all(&raw::frame(0x81, b"hello")).await.unwrap();
    assert_eq!(read_frame(&mut s).await, (0x81, b"hello".to_vec()));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    s.write_all(&raw::frame(0x88, &close)).await.unwrap();
    // §5.5.1: the server echoes the code.
    let (op, payload) = read_frame(&mut s).await;
    assert_eq!(op, 0x88);
    assert_eq!(payload, 1000u16.to_be_bytes());
    assert!(
        eof(&mut s).await,
        "no end of stream after the close handshake"
    );
    assert!(
        reset_after_eof(&mut s).await,
        "the server's socket still took data after the close handshake"
    );
}

/// RFC 6455 §7.1.7 and §7.1.1: when the server fails the connection (here a
/// frame with a reserved opcode, §5.2: 1002), the client may still be
/// sending. The server half-closes and keeps reading what the client sends,
/// so the client reads the close frame and a clean end of stream, and more
/// bytes from it are taken, not reset; the server closes once the client
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6455_7_1_7_failed_connection_lingers_until_the_client_closes() {
    let addr = start().await;
    let (mut s, _) = raw::upgrade(addr, "/", "").await;
    s.write_all(&raw::frame(0x83, b"reserved opcode"))
        .await
        .unwrap();
    let (op, payload) = read_frame(&mut s).await;
    assert_eq!(op, 0x88);
    assert_eq!(&payload[..2], &1002u16.to_be_bytes());
    assert!(eof(&mut s).await, "no end of stream after the failure");
    assert!(
        !reset_after_eof(&mut s).await,
        "the server reset a connection whose client was still sending"
    );
    // The client closes its side: the server's socket is gone soon after.
    s.shutdown().await.unwrap();
    let mut buf = [0u8; 16];
    let end = tokio::time::timeout(T, s.read(&mut buf)).await;
    assert!(
        matches!(end, Ok(Ok(0)) | Ok(Err(_))),
        "unexpected read after both sides closed: {end:?}"
    );
}
