//! Hibernation (S10) through real sockets: a connection whose callback
//! returns `Reply::hibernate()` with nothing in flight parks in the server's
//! parking lot (no task, socket in the lot's epoll set), and comes back for
//! data, a mailbox message, a timer, its idle timeout, a close or a server
//! shutdown. Every test drives a real server on loopback with an independent
//! client (tokio-tungstenite, or raw TCP frames), and waits only in bounded
//! polls.

#[path = "support/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lariat::{
    Bytes, CloseCode, Command, Context, Handle, Handler, Init, Message, Reply, Router, SendError,
    Server, ServerStats, TerminateReason, Upgrade,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The bound on any single wait for the server.
const T: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ------------------------------------------------------------------ harness

/// A server on `127.0.0.1:0` serving `router` until the test ends.
async fn start(router: Router) -> (SocketAddr, ServerStats) {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    tokio::spawn(server.serve(router));
    (addr, stats)
}

/// Poll until exactly `n` connections are parked (S10), within [`T`].
#[track_caller]
fn wait_parked(stats: &ServerStats, n: usize) -> impl std::future::Future<Output = ()> + '_ {
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + T;
        loop {
            if stats.hibernating() == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{caller}: expected {n} parked connections, still {stats:?} after {T:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn connect(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(
        T,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("upgrade timed out")
    .expect("upgrade failed");
    ws
}

/// The next message from the server, within [`T`].
async fn next(ws: &mut Ws) -> WsMessage {
    match tokio::time::timeout(T, ws.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(other) => panic!("connection ended: {other:?}"),
        Err(_) => panic!("no message from the server within {T:?}"),
    }
}

/// The next text message, skipping nothing: anything else fails.
async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        WsMessage::Text(t) => t.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Read until the server's close frame (within [`T`]), then keep polling so
/// that tokio-tungstenite answers it, until the stream ends (within [`T`]).
async fn expect_close(ws: &mut Ws) -> WsCloseFrame {
    let close = loop {
        match next(ws).await {
            WsMessage::Close(c) => break c.expect("a close frame with a code"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let ended = tokio::time::timeout(T, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    assert!(
        ended.is_ok(),
        "the server did not close TCP after the close handshake"
    );
    close
}

/// The connection's terminate reason, within [`T`].
async fn terminated(done: &mut mpsc::UnboundedReceiver<TerminateReason>) -> TerminateReason {
    tokio::time::timeout(T, done.recv())
        .await
        .expect("terminate did not run in time")
        .expect("reporter gone")
}

/// Read a raw socket until EOF (true) or [`T`] (false).
async fn read_to_eof(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

// ----------------------------------------------------------------- handlers

/// Hibernates after every callback (S10): echoes text and binary (S5),
/// forwards mailbox messages and timers as text (S6, S3.1). Sends its handle
/// out from init, and reports its terminate reason.
struct Sleepy {
    handles: Option<mpsc::UnboundedSender<Handle<String>>>,
    done: Option<mpsc::UnboundedSender<TerminateReason>>,
    /// Timers to start in init (S3.1): after, message.
    timers: Vec<(Duration, String)>,
    /// Command::Active(false) in init: stop reading from the client.
    passive: bool,
}

impl Sleepy {
    fn new() -> Sleepy {
        Sleepy {
            handles: None,
            done: None,
            timers: Vec::new(),
            passive: false,
        }
    }
}

impl Handler for Sleepy {
    type Info = String;

    async fn init(&mut self, ctx: &mut Context<String>) -> Reply {
        if let Some(h) = &self.handles {
            let _ = h.send(ctx.handle().clone());
        }
        for (after, msg) in std::mem::take(&mut self.timers) {
            ctx.start_timer(after, msg);
        }
        if self.passive {
            Reply::command(Command::Active(false)).hibernate()
        } else {
            Reply::ok().hibernate()
        }
    }

    async fn handle(&mut self, msg: Message, _: &mut Context<String>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t).hibernate(),
            Message::Binary(b) => Reply::binary(b).hibernate(),
            // S8.1: the pong went out before this is called.
            Message::Ping(_) | Message::Pong(_) => Reply::ok().hibernate(),
        }
    }

    async fn info(&mut self, msg: String, ctx: &mut Context<String>) -> Reply {
        match msg.as_str() {
            // A timer that starts the next one, while parked in between.
            "tick" => {
                ctx.start_timer(Duration::from_millis(200), "tock".to_string());
                Reply::text(msg).hibernate()
            }
            "read again" => Reply::text(format!("info: {msg}"))
                .then(Command::Active(true))
                .hibernate(),
            _ => Reply::text(format!("info: {msg}")).hibernate(),
        }
    }

    fn terminate(&mut self, reason: &TerminateReason) {
        if let Some(done) = &self.done {
            let _ = done.send(reason.clone());
        }
    }
}

/// Channels to a [`Sleepy`] route: its handles and terminate reasons.
struct Probes {
    handles: mpsc::UnboundedReceiver<Handle<String>>,
    done: mpsc::UnboundedReceiver<TerminateReason>,
}

/// A router whose `/` upgrades to a [`Sleepy`] made by `make` (then given
/// its probes), with `upgrade` applied to the upgrade options.
fn sleepy_router(
    make: impl Fn() -> Sleepy + Send + Sync + 'static,
    upgrade: impl Fn(Upgrade<Sleepy>) -> Upgrade<Sleepy> + Send + Sync + 'static,
) -> (Router, Probes) {
    let (handles_tx, handles) = mpsc::unbounded_channel();
    let (done_tx, done) = mpsc::unbounded_channel();
    let router = Router::new().route("/", move |_| {
        let mut h = make();
        h.handles = Some(handles_tx.clone());
        h.done = Some(done_tx.clone());
        let up = upgrade(Upgrade::new(h));
        async move { Init::Upgrade(up) }
    });
    (router, Probes { handles, done })
}

async fn next_handle(p: &mut Probes) -> Handle<String> {
    tokio::time::timeout(T, p.handles.recv())
        .await
        .expect("init did not run in time")
        .expect("route gone")
}

// -------------------------------------------------------------------- tests

/// S10 hibernate, S5 echo, S8.1 automatic pong: a connection that hibernates
/// after every callback parks as soon as init returns, comes back for each
/// text, binary and ping frame, answers it correctly, and parks
/// again after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernating_connection_parks_and_still_echoes() {
    let (router, _probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let mut ws = connect(addr, "/").await;
    // S3 then S10: init hibernated; nothing is in flight: parked.
    wait_parked(&stats, 1).await;
    assert_eq!(stats.websockets(), 1);

    for i in 0..5 {
        let text = format!("round {i}: héllo");
        ws.send(WsMessage::text(text.clone())).await.unwrap();
        assert_eq!(next_text(&mut ws).await, text);
        wait_parked(&stats, 1).await;

        let bin: Vec<u8> = (0..64u32).map(|b| (b * 7 + i) as u8).collect();
        ws.send(WsMessage::binary(bin.clone())).await.unwrap();
        match next(&mut ws).await {
            WsMessage::Binary(b) => assert_eq!(&b[..], &bin[..]),
            other => panic!("expected binary, got {other:?}"),
        }
        wait_parked(&stats, 1).await;
    }

    // S8.1: a ping to a parked connection gets its pong, with its payload.
    ws.send(WsMessage::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    match next(&mut ws).await {
        WsMessage::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    wait_parked(&stats, 1).await;

    // And it still works after the ping.
    ws.send(WsMessage::text("after the ping")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "after the ping");
    wait_parked(&stats, 1).await;
}

/// S10 hibernate, S5 echo, with a message bigger than the backpressure
/// limit (64 KiB by default): a 100 KiB binary message sent to a parked
/// connection is read (in several socket reads) after its resume and echoed
/// intact; the handler's `handle` asked to hibernate, so once the echo is
/// written out the connection parks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernating_connection_echoes_100_kib_and_parks_again() {
    let (router, _probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let mut ws = connect(addr, "/").await;
    wait_parked(&stats, 1).await;

    // A 100 KiB binary message: read in several socket reads, most of them
    // straight into the message buffer, after a resume from the lot.
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
    ws.send(WsMessage::binary(big.clone())).await.unwrap();
    match next(&mut ws).await {
        WsMessage::Binary(b) => {
            assert_eq!(b.len(), big.len());
            assert!(b[..] == big[..], "100 KiB echo differs");
        }
        other => panic!("expected binary, got {other:?}"),
    }
    wait_parked(&stats, 1).await;

    // Still echoing, and parking, afterwards.
    ws.send(WsMessage::text("after the big one")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "after the big one");
    wait_parked(&stats, 1).await;
}

/// S10, S6: a parked connection woken by a mailbox message answers with
/// more than the socket buffers hold (24 MiB) while the client is not
/// reading. The connection, back from the lot outside tokio's reactor,
/// finds its write blocked, waits for the client as a task (it does not park
/// with bytes unsent), delivers every byte once the client reads, and parks
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connection_whose_reply_blocks_waits_then_parks_again() {
    const BIG: usize = 24 << 20;
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let (mut s, _) = raw::upgrade(addr, "/", "").await;
    let h = next_handle(&mut probes).await;
    wait_parked(&stats, 1).await;

    let body: String = (0..BIG).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    h.send(body.clone()).unwrap();
    // The reply cannot all fit in the kernel's buffers: the connection is
    // woken and stays awake, with bytes unsent, while nobody reads.
    let deadline = Instant::now() + T;
    while stats.hibernating() != 0 {
        assert!(Instant::now() < deadline, "the connection never woke");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stats.hibernating(),
        0,
        "parked again with its reply not yet sent"
    );

    // Now read the whole frame: a text frame, unmasked (§5.1), 64-bit length.
    let mut head = [0u8; 10];
    tokio::time::timeout(T, s.read_exact(&mut head))
        .await
        .expect("reply in time")
        .unwrap();
    assert_eq!(head[0], 0x81);
    assert_eq!(head[1], 127);
    let len = u64::from_be_bytes(head[2..10].try_into().unwrap()) as usize;
    let want = format!("info: {body}");
    assert_eq!(len, want.len());
    let mut got = vec![0u8; len];
    tokio::time::timeout(T, s.read_exact(&mut got))
        .await
        .expect("the whole reply in time")
        .unwrap();
    assert!(got == want.as_bytes(), "the 24 MiB reply differs");
    wait_parked(&stats, 1).await;

    // Still answering after that, and parking.
    s.write_all(&raw::frame(0x81, b"still here")).await.unwrap();
    let mut echo = [0u8; 12];
    tokio::time::timeout(T, s.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&echo[..2], &[0x81, 10]);
    assert_eq!(&echo[2..], b"still here");
    wait_parked(&stats, 1).await;
}

/// S10 hibernate at scale: 200 hibernating connections all park, each is
/// resumed for its own distinct message and answers it (no wake goes to the
/// wrong connection, none is lost), and all park again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_connections_all_park_and_each_echoes_its_own() {
    const N: usize = 200;
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let mut clients = Vec::with_capacity(N);
    let mut handles = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(connect(addr, "/").await);
        // Init runs before any frame: handle i belongs to client i.
        handles.push(next_handle(&mut probes).await);
    }
    wait_parked(&stats, N).await;
    assert_eq!(stats.websockets(), N);

    for round in 0..2 {
        // Every client sends before any reads: many wakes at once (more than
        // one resume batch of the lot).
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(WsMessage::text(format!("client {i} round {round}")))
                .await
                .unwrap();
        }
        for (i, ws) in clients.iter_mut().enumerate() {
            assert_eq!(next_text(ws).await, format!("client {i} round {round}"));
        }
        wait_parked(&stats, N).await;
    }

    // S6: every parked connection woken through its mailbox at once, from
    // another thread.
    let senders = handles.clone();
    std::thread::spawn(move || {
        for (i, h) in senders.iter().enumerate() {
            h.send(format!("to {i}")).unwrap();
        }
    })
    .join()
    .unwrap();
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(next_text(ws).await, format!("info: to {i}"));
    }
    wait_parked(&stats, N).await;
}

/// S8.3 idle timeout, S10: activity from the client defers the idle timeout
/// of a connection that parks between messages. With a 300 ms timeout and a
/// message every 100 ms for over a second, it stays open (each message is
/// echoed); once the client goes quiet, it is closed with 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_defers_the_idle_timeout_of_a_parked_connection() {
    let (router, mut probes) =
        sleepy_router(Sleepy::new, |u| u.idle_timeout(Duration::from_millis(300)));
    let (addr, stats) = start(router).await;
    let mut ws = connect(addr, "/").await;
    wait_parked(&stats, 1).await;
    for i in 0..12 {
        // Client pacing, not an assertion: well inside the idle timeout.
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(WsMessage::text(format!("keepalive {i}")))
            .await
            .unwrap();
        assert_eq!(next_text(&mut ws).await, format!("keepalive {i}"));
        wait_parked(&stats, 1).await;
    }
    let quiet = Instant::now();
    let close = expect_close(&mut ws).await;
    assert_eq!(close.code, WsCloseCode::Normal, "{close:?}");
    assert!(
        quiet.elapsed() < Duration::from_secs(3),
        "{:?}",
        quiet.elapsed()
    );
    assert_eq!(
        terminated(&mut probes.done).await,
        TerminateReason::IdleTimeout
    );
}

/// S6 info messages, S10: a message sent to a parked connection's handle
/// wakes it; `info` runs and its frame reaches the client; it parks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_message_wakes_a_parked_connection() {
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let mut ws = connect(addr, "/").await;
    let h = next_handle(&mut probes).await;
    wait_parked(&stats, 1).await;

    for i in 0..3 {
        h.send(format!("message {i}")).unwrap();
        assert_eq!(next_text(&mut ws).await, format!("info: message {i}"));
        wait_parked(&stats, 1).await;
    }

    // Several messages in a row, while parked: all delivered, in order.
    for i in 0..10 {
        h.send(format!("burst {i}")).unwrap();
    }
    for i in 0..10 {
        assert_eq!(next_text(&mut ws).await, format!("info: burst {i}"));
    }
    wait_parked(&stats, 1).await;
}

/// S10, S6: two parked connections woken in turn by their sockets and by
/// their mailboxes. A socket's event disarms it in the lot's epoll set (one
/// shot) and the next park re-arms it; a mailbox wake leaves the socket
/// armed with its old slot, which the two trade as they go, so a stale event
/// must wake no one. Every wake must reach its own connection, and each must
/// park again after every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_woken_in_turn_by_data_and_mailbox_answer_each_their_own() {
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let mut a = connect(addr, "/").await;
    let ha = next_handle(&mut probes).await;
    let mut b = connect(addr, "/").await;
    let hb = next_handle(&mut probes).await;
    wait_parked(&stats, 2).await;
    for round in 0..6 {
        // Data for one, a message for the other; then the other way round.
        let (data_ws, mail_ws, mail_h) = if round % 2 == 0 {
            (&mut a, &mut b, &hb)
        } else {
            (&mut b, &mut a, &ha)
        };
        data_ws
            .send(WsMessage::text(format!("data {round}")))
            .await
            .unwrap();
        assert_eq!(next_text(data_ws).await, format!("data {round}"));
        wait_parked(&stats, 2).await;
        mail_h.send(format!("mail {round}")).unwrap();
        assert_eq!(next_text(mail_ws).await, format!("info: mail {round}"));
        wait_parked(&stats, 2).await;
        // The one woken by its mailbox last: its socket, re-armed, wakes it.
        mail_ws
            .send(WsMessage::text(format!("after mail {round}")))
            .await
            .unwrap();
        assert_eq!(next_text(mail_ws).await, format!("after mail {round}"));
        wait_parked(&stats, 2).await;
    }
    // Nothing arrived that was not answered above.
    for ws in [&mut a, &mut b] {
        assert!(
            tokio::time::timeout(Duration::from_millis(100), ws.next())
                .await
                .is_err(),
            "an unexpected frame"
        );
    }
}

/// S3.1 timers, S10: a timer started in init fires while the connection is
/// parked (its deadline is in the lot's list); `info` gets its message, which
/// reaches the client. A timer started from that `info` fires too, after the
/// connection parked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_while_parked() {
    let (router, _probes) = sleepy_router(
        || {
            let mut s = Sleepy::new();
            s.timers = vec![(Duration::from_millis(300), "tick".to_string())];
            s
        },
        |u| u,
    );
    let (addr, stats) = start(router).await;
    let t0 = Instant::now();
    let mut ws = connect(addr, "/").await;
    // Parks well before the timer falls.
    wait_parked(&stats, 1).await;
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "parking took {:?}: the test cannot tell the timer fired while parked",
        t0.elapsed()
    );
    assert_eq!(next_text(&mut ws).await, "tick");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    // The "tock" timer (200 ms) was started in info: parked again meanwhile.
    let t1 = Instant::now();
    wait_parked(&stats, 1).await;
    assert_eq!(next_text(&mut ws).await, "info: tock");
    assert!(t1.elapsed() < T);
    wait_parked(&stats, 1).await;
}

/// S8.3 idle timeout, S10: a parked connection with no activity for its idle
/// timeout (300 ms) is resumed at that deadline and closed by the server
/// with 1000; terminate gets `IdleTimeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_a_parked_connection() {
    let (router, mut probes) =
        sleepy_router(Sleepy::new, |u| u.idle_timeout(Duration::from_millis(300)));
    let (addr, stats) = start(router).await;
    let t0 = Instant::now();
    let mut ws = connect(addr, "/").await;
    wait_parked(&stats, 1).await;
    let close = expect_close(&mut ws).await;
    let elapsed = t0.elapsed();
    assert_eq!(close.code, WsCloseCode::Normal, "{close:?}");
    assert!(
        elapsed >= Duration::from_millis(300),
        "closed after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    assert_eq!(
        terminated(&mut probes.done).await,
        TerminateReason::IdleTimeout
    );
    wait_parked(&stats, 0).await;
}

/// S10 with "shutdown closes with 1001": a graceful shutdown
/// (`serve_with_shutdown`) wakes every parked connection through its
/// mailbox, closes it with 1001, runs terminate with `Shutdown`, and the
/// server returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_parked_connections_with_1001() {
    const N: usize = 5;
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(router, async {
        let _ = stop_rx.await;
    }));
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(connect(addr, "/").await);
    }
    wait_parked(&stats, N).await;

    let t0 = Instant::now();
    stop_tx.send(()).unwrap();
    for ws in &mut clients {
        let close = expect_close(ws).await;
        assert_eq!(close.code, WsCloseCode::Away, "{close:?}");
    }
    for _ in 0..N {
        assert_eq!(
            terminated(&mut probes.done).await,
            TerminateReason::Shutdown
        );
    }
    tokio::time::timeout(T, serving)
        .await
        .expect("serve_with_shutdown did not return")
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() < T, "{:?}", t0.elapsed());
    assert_eq!(stats.hibernating(), 0);
    assert_eq!(stats.websockets(), 0);
}

/// RFC 6455 §7 (§5.5.1: the answer echoes the code), S10: a close frame
/// sent to a parked connection wakes it through its socket; the server
/// answers with a close frame carrying the same code, closes TCP, and
/// terminate gets `Remote` with the client's code and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_close_frame_while_parked_is_answered() {
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let (mut s, _) = raw::upgrade(addr, "/", "").await;
    wait_parked(&stats, 1).await;

    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    s.write_all(&raw::frame(0x88, &payload)).await.unwrap();
    let (got, eof) = read_to_eof(&mut s).await;
    assert_eq!(got, [0x88, 2, 0x0f, 0xa0], "a close frame echoing 4000");
    assert!(eof, "the server did not close TCP");
    assert_eq!(
        terminated(&mut probes.done).await,
        TerminateReason::Remote {
            code: CloseCode(4000),
            reason: "bye".to_string()
        }
    );
    wait_parked(&stats, 0).await;
}

/// RFC 6455 §7.1.5 (closed without a closing handshake: 1006), S10: a
/// client that drops TCP while its connection is parked wakes it (EOF is
/// readable); terminate gets `ConnectionLost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_dropping_tcp_while_parked_is_connection_lost() {
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let (s, _) = raw::upgrade(addr, "/", "").await;
    wait_parked(&stats, 1).await;
    drop(s);
    assert_eq!(
        terminated(&mut probes.done).await,
        TerminateReason::ConnectionLost
    );
    wait_parked(&stats, 0).await;
    let deadline = Instant::now() + T;
    while stats.websockets() != 0 {
        assert!(Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// S11.4 (close with code and reason) through the handle, S10: `Handle::close`
/// on a parked connection wakes it and closes it with the given code and
/// reason; terminate gets `Stop`, and the handle then refuses messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_close_closes_a_parked_connection() {
    let (router, mut probes) = sleepy_router(Sleepy::new, |u| u);
    let (addr, stats) = start(router).await;
    let mut ws = connect(addr, "/").await;
    let h = next_handle(&mut probes).await;
    wait_parked(&stats, 1).await;

    assert!(h.close(CloseCode(4001), "closed by the handle"));
    let close = expect_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 4001, "{close:?}");
    assert_eq!(close.reason.as_str(), "closed by the handle");
    assert_eq!(terminated(&mut probes.done).await, TerminateReason::Stop);
    assert!(h.is_closed());
    assert!(matches!(h.send("late".into()), Err(SendError::Closed(_))));
    wait_parked(&stats, 0).await;
}

/// S10 with `Command::Active(false)` (Cowboy's `active`), S6: a handler that
/// stopped reading still parks (its socket is not watched); a client frame
/// then stays unread, a mailbox message still wakes it, and once `info`
/// turns reading back on the waiting frame is read and echoed — after the
/// info's own frame, proving it was not read before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_connection_parks_and_the_mailbox_wakes_it() {
    let (router, mut probes) = sleepy_router(
        || {
            let mut s = Sleepy::new();
            s.passive = true;
            s
        },
        |u| u,
    );
    let (addr, stats) = start(router).await;
    let mut ws = connect(addr, "/").await;
    let h = next_handle(&mut probes).await;
    wait_parked(&stats, 1).await;

    // Not read while passive: it waits in the socket.
    ws.send(WsMessage::text("sent while passive"))
        .await
        .unwrap();

    h.send("still passive".into()).unwrap();
    assert_eq!(next_text(&mut ws).await, "info: still passive");
    wait_parked(&stats, 1).await;

    h.send("read again".into()).unwrap();
    assert_eq!(next_text(&mut ws).await, "info: read again");
    assert_eq!(next_text(&mut ws).await, "sent while passive");
    wait_parked(&stats, 1).await;

    // Reading again, and still parking between messages.
    ws.send(WsMessage::text("active now")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "active now");
    wait_parked(&stats, 1).await;
}
