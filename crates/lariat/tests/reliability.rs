//! Hostile and broken clients, slow consumers, bounded mailboxes, shutdown:
//! each case driven through real sockets, by raw TCP or by tokio-tungstenite.

#[path = "support/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lariat::http::StatusCode;
use lariat::{
    response, CloseCode, Context, Frame, Handle, Handler, Init, MailboxOverflow, Message, Reply,
    Router, SendError, SendQueueFull, Server, ServerConfig, TerminateReason, Upgrade,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raw::T;

async fn start(router: Router, config: ServerConfig) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0").await.unwrap().config(config);
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(router));
    addr
}

/// A server whose `/` upgrades to [`Echo`].
async fn echo_server(config: ServerConfig) -> SocketAddr {
    start(
        Router::new().route("/", |_| async { Init::upgrade(Echo) }),
        config,
    )
    .await
}

/// [`echo_server`] with `header_read_timeout` set to `t`.
async fn echo_server_with_header_timeout(t: Duration) -> SocketAddr {
    echo_server(ServerConfig {
        header_read_timeout: t,
        ..ServerConfig::default()
    })
    .await
}

/// `got` starts with an HTTP/1.1 status line with `status`.
#[track_caller]
fn assert_status(got: &[u8], status: u16) {
    assert!(
        got.starts_with(format!("HTTP/1.1 {status}").as_bytes()),
        "{:?}",
        String::from_utf8_lossy(got)
    );
}

/// Read from a raw socket until EOF or `limit`; returns what came and when it ended.
async fn read_all(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// Reports how each connection ended.
struct Reporter<H> {
    inner: H,
    done: mpsc::UnboundedSender<TerminateReason>,
}

impl<H: Handler> Handler for Reporter<H> {
    type Info = H::Info;
    async fn init(&mut self, ctx: &mut Context<H::Info>) -> Reply {
        self.inner.init(ctx).await
    }
    async fn handle(&mut self, msg: Message, ctx: &mut Context<H::Info>) -> Reply {
        self.inner.handle(msg, ctx).await
    }
    async fn info(&mut self, info: H::Info, ctx: &mut Context<H::Info>) -> Reply {
        self.inner.info(info, ctx).await
    }
    async fn drain(&mut self, ctx: &mut Context<H::Info>) -> Reply {
        self.inner.drain(ctx).await
    }
    fn terminate(&mut self, reason: &TerminateReason) {
        self.inner.terminate(reason);
        let _ = self.done.send(reason.clone());
    }
}

struct Echo;

impl Handler for Echo {
    type Info = String;
    async fn handle(&mut self, msg: Message, _: &mut Context<String>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
    async fn info(&mut self, text: String, _: &mut Context<String>) -> Reply {
        Reply::text(text)
    }
}

// ------------------------------------------------------------ handshake limits

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let addr = echo_server(ServerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(32 * 1024);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (got, closed) = read_all(&mut s, T).await;
    assert_status(&got, 431);
    assert!(closed);
}

#[tokio::test]
async fn too_many_headers_gets_431() {
    let addr = echo_server(ServerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let (got, _) = read_all(&mut s, T).await;
    assert_status(&got, 431);
}

#[tokio::test]
async fn slowloris_is_cut_off_at_the_header_deadline() {
    let addr = echo_server_with_header_timeout(Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One more header byte every 200 ms: never a complete head.
    let mut closed = false;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
            // EOF, or a 408 before the close.
            assert!(n == 0 || b.starts_with(b"HTTP/1.1 408"), "{:?}", &b[..n]);
            closed = true;
            break;
        }
    }
    let waited = t0.elapsed();
    assert!(closed, "still open after {waited:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

/// A connection that never sends a byte is held no longer than one that
/// sends half a head: the header read timeout counts from the accept.
#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_deadline() {
    // Accepted at once (not deferred until its first bytes): the deadline
    // counts from the accept.
    let addr = echo_server(ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        defer_accept: false,
        ..ServerConfig::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(4), s.read(&mut b))
        .await
        .expect("a silent connection was still open after 4 s")
        .unwrap_or(0);
    let waited = t0.elapsed();
    assert!(
        n == 0 || b.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&b[..n])
    );
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}

/// A header read timeout too large to add to the clock means no deadline:
/// a client that waits before its request is still upgraded (no panic in
/// the connection's task).
#[tokio::test]
async fn a_header_read_timeout_of_duration_max_waits_without_a_deadline() {
    let addr = echo_server_with_header_timeout(Duration::MAX).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server's first read finds nothing: it arms the deadline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(raw::upgrade_request("/", "").as_bytes())
        .await
        .unwrap();
    let head = raw::read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&raw::frame(0x81, b"late")).await.unwrap();
    let mut echo = [0u8; 6];
    tokio::time::timeout(T, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"\x81\x04late");
}

/// `ServerConfig::defer_accept` (Linux `TCP_DEFER_ACCEPT`, tcp(7)): a
/// connection is not accepted, nor counted, until its first bytes come; then
/// it is served as any other (RFC 6455 §4.2.1 upgrade). A connection that
/// stays silent is still accepted after about a second, and then closed at
/// the header read timeout.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_connection_is_accepted_once_its_first_bytes_come() {
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .config(ServerConfig {
            header_read_timeout: Duration::from_millis(500),
            ..ServerConfig::default()
        });
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    tokio::spawn(server.serve(Router::new().route("/", |_| async { Init::upgrade(Echo) })));
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stats.open_connections(),
        0,
        "accepted before any bytes came"
    );
    s.write_all(raw::upgrade_request("/", "").as_bytes())
        .await
        .unwrap();
    let head = raw::read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(stats.open_connections(), 1);
    s.write_all(&raw::frame(0x81, b"first")).await.unwrap();
    let mut echo = [0u8; 7];
    tokio::time::timeout(T, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"\x81\x05first");
    // The silent one: accepted late, then closed at its header deadline.
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(6), quiet.read(&mut b))
        .await
        .expect("a silent connection was still open after 6 s")
        .unwrap_or(0);
    assert!(
        n == 0 || b.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&b[..n])
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_service_resumes() {
    let config = ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    };
    let router = Router::new().http("/", |_| async { response(StatusCode::OK, "ok") });
    let addr = start(router, config).await;
    // Each held connection has begun its request, so that it is accepted
    // (the server defers a connection until its first bytes).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    extra.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let (got, closed) = read_all(&mut extra, T).await;
    assert_status(&got, 503);
    assert!(closed);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_all(&mut s, T).await;
    assert_status(&got, 200);
}

#[tokio::test]
async fn origin_allow_list_refuses_other_sites() {
    let router = Router::new().route("/", |req: lariat::Request| async move {
        if !req.origin_allowed(&["https://good.example"]) {
            return Init::respond(response(StatusCode::FORBIDDEN, "origin not allowed"));
        }
        Init::upgrade(Echo)
    });
    let addr = start(router, ServerConfig::default()).await;
    for (origin, status) in [
        ("Origin: https://evil.example\r\n", "HTTP/1.1 403"),
        ("Origin: https://GOOD.example\r\n", "HTTP/1.1 101"),
        ("", "HTTP/1.1 101"),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw::upgrade_request("/", origin).as_bytes())
            .await
            .unwrap();
        let mut b = [0u8; 12];
        tokio::time::timeout(T, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, status.as_bytes(), "{origin}");
    }
}

// -------------------------------------------------------------- slow consumers

/// On any text: send `count` binary frames of `size` bytes.
struct Flood {
    size: usize,
    count: usize,
    dropped: Option<mpsc::UnboundedSender<u64>>,
}

impl Handler for Flood {
    type Info = ();
    async fn handle(&mut self, msg: Message, ctx: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) if t == "go" => {
                Reply::frames((0..self.count).map(|_| Frame::binary(vec![7u8; self.size])))
            }
            Message::Text(t) if t == "report" => {
                if let Some(d) = &self.dropped {
                    let _ = d.send(ctx.dropped_frames());
                }
                Reply::ok()
            }
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_clients_that_never_read_keep_memory_bounded() {
    // Each non-reading client asks for 64 x 16 KiB = 1 MiB; with a 64 KiB
    // hard limit the server holds at most ~80 KiB for each, then cuts it off.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let router = Router::new().route("/flood", move |_| {
        let done = done_tx.clone();
        async move {
            Upgrade::new(Reporter {
                inner: Flood {
                    size: 16 * 1024,
                    count: 64,
                    dropped: None,
                },
                done,
            })
            .send_queue_limit(64 * 1024, SendQueueFull::Close)
            .close_timeout(Duration::from_secs(1))
            .into()
        }
    });
    let addr = start(router, ServerConfig::default()).await;
    let before = vm_rss_kib();
    let mut stuck = Vec::new();
    for _ in 0..1000 {
        // This client reads nothing after the head.
        let (mut s, _) = raw::upgrade(addr, "/flood", "").await;
        s.write_all(&raw::frame(0x81, b"go")).await.unwrap();
        stuck.push(s);
    }
    // A client that reads keeps getting answers on time meanwhile.
    let (mut reader, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/flood"))
        .await
        .unwrap();
    let t0 = Instant::now();
    reader.send(WsMessage::text("hi")).await.unwrap();
    let got = tokio::time::timeout(T, reader.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, WsMessage::text("hi"));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Every stuck client is cut off as a slow consumer.
    let mut slow = 0;
    while slow < 1000 {
        match tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            TerminateReason::SlowConsumer => slow += 1,
            other => panic!("unexpected end: {other:?}"),
        }
    }
    let grown_mib = vm_rss_kib().saturating_sub(before) / 1024;
    eprintln!("1000 non-reading clients: RSS grew by {grown_mib} MiB");
    // Unbounded, this would be 1000 x 1 MiB; the bound is ~1000 x 80 KiB.
    assert!(grown_mib < 300, "RSS grew by {grown_mib} MiB");
}

#[tokio::test]
async fn drop_policy_drops_frames_and_keeps_the_connection() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = Router::new().route("/flood", move |_| {
        let tx = tx.clone();
        async move {
            Upgrade::new(Flood {
                size: 16 * 1024,
                count: 64,
                dropped: Some(tx),
            })
            .send_queue_limit(64 * 1024, SendQueueFull::Drop)
            .into()
        }
    });
    let addr = start(router, ServerConfig::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/flood"))
        .await
        .unwrap();
    // Ask for a flood and a report in the same breath: the frames beyond the
    // limit are dropped at once, before the client can read.
    ws.send(WsMessage::text("go")).await.unwrap();
    ws.send(WsMessage::text("report")).await.unwrap();
    let dropped = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert!(dropped > 0 && dropped < 64, "dropped {dropped}");
    let mut binaries = 0;
    loop {
        ws.send(WsMessage::text("ping?")).await.unwrap();
        match tokio::time::timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WsMessage::Binary(b) => {
                assert_eq!(b.len(), 16 * 1024);
                binaries += 1;
            }
            WsMessage::Text(t) => {
                assert_eq!(t.as_str(), "ping?");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(binaries as u64 + dropped, 64);
}

#[tokio::test]
async fn a_client_that_floods_before_reading_is_slowed_not_cut_off() {
    // 8 MiB of echo requests written before reading a single reply: the
    // server stops reading while its replies back up (TCP flow control), and
    // every echo arrives, in order; the 1 MiB hard limit is never reached.
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let router = Router::new().route("/echo", move |_| {
        let done = done_tx.clone();
        async move { Init::upgrade(Reporter { inner: Echo, done }) }
    });
    let addr = start(router, ServerConfig::default()).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let count = 128usize;
    let writer = tokio::spawn(async move {
        for i in 0..count {
            let text = format!("{i:08}{}", "e".repeat(64 * 1024));
            tx.send(WsMessage::text(text)).await.unwrap();
        }
        tx
    });
    // Start reading only once the writer is well ahead (or blocked by TCP).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..count {
        let m = tokio::time::timeout(T, rx.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let WsMessage::Text(t) = m else {
            panic!("{m:?}")
        };
        assert_eq!(&t.as_str()[..8], format!("{i:08}"));
        assert_eq!(t.len(), 8 + 64 * 1024);
    }
    let mut tx = writer.await.unwrap();
    tx.send(WsMessage::Close(None)).await.unwrap();
    let reason = tokio::time::timeout(T, done.recv()).await.unwrap().unwrap();
    assert!(
        matches!(reason, TerminateReason::Remote { .. }),
        "{reason:?}"
    );
}

/// Sends numbered messages, pausing whenever the connection is backpressured
/// and resuming in `drain`.
struct Producer {
    next: u32,
    total: u32,
    drains: mpsc::UnboundedSender<u32>,
}

impl Producer {
    fn produce(&mut self, ctx: &Context<()>) -> Reply {
        let mut reply = Reply::ok();
        while self.next < self.total {
            reply = reply.and(Frame::binary(self.next.to_be_bytes().repeat(1024)));
            self.next += 1;
            // The frames in this reply are not queued yet: stop at 64 KiB.
            if ctx.is_backpressured() || reply.commands().len() * 4096 >= 64 * 1024 {
                break;
            }
        }
        reply
    }
}

impl Handler for Producer {
    type Info = ();
    async fn handle(&mut self, _: Message, ctx: &mut Context<()>) -> Reply {
        self.produce(ctx)
    }
    async fn drain(&mut self, ctx: &mut Context<()>) -> Reply {
        let _ = self.drains.send(self.next);
        self.produce(ctx)
    }
}

#[tokio::test]
async fn backpressure_and_drain_pace_a_producer() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = Router::new().route("/produce", move |_| {
        let drains = tx.clone();
        async move {
            Upgrade::new(Producer {
                next: 0,
                total: 400,
                drains,
            })
            .backpressure_limit(32 * 1024)
            .send_queue_limit(1 << 20, SendQueueFull::Close)
            .into()
        }
    });
    let addr = start(router, ServerConfig::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/produce"))
        .await
        .unwrap();
    ws.send(WsMessage::text("start")).await.unwrap();
    for i in 0..400u32 {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            WsMessage::binary(i.to_be_bytes().repeat(1024)),
            "message {i}"
        );
        if i % 50 == 0 {
            // A slow reader.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The producer was paused and resumed by drain more than once.
    let mut drains = 0;
    while rx.try_recv().is_ok() {
        drains += 1;
    }
    assert!(drains >= 2, "drain ran {drains} times");
}

// --------------------------------------------------------------------- mailbox

/// `info` takes 10 ms per message: a consumer slower than its producers.
struct Slow {
    handles: mpsc::UnboundedSender<Handle<u32>>,
}

impl Handler for Slow {
    type Info = u32;
    async fn init(&mut self, ctx: &mut Context<u32>) -> Reply {
        let _ = self.handles.send(ctx.handle().clone());
        Reply::ok()
    }
    async fn handle(&mut self, _: Message, _: &mut Context<u32>) -> Reply {
        Reply::ok()
    }
    async fn info(&mut self, n: u32, _: &mut Context<u32>) -> Reply {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Reply::text(n.to_string())
    }
}

async fn slow_route(
    capacity: Option<(usize, MailboxOverflow)>,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Handle<u32>>,
    mpsc::UnboundedReceiver<TerminateReason>,
) {
    let (htx, hrx) = mpsc::unbounded_channel();
    let (dtx, drx) = mpsc::unbounded_channel();
    let router = Router::new().route("/slow", move |_| {
        let handles = htx.clone();
        let done = dtx.clone();
        async move {
            let up = Upgrade::new(Reporter {
                inner: Slow { handles },
                done,
            });
            match capacity {
                Some((c, p)) => up.mailbox_capacity(c, p).into(),
                None => up.into(),
            }
        }
    });
    (start(router, ServerConfig::default()).await, hrx, drx)
}

#[tokio::test]
async fn bounded_mailbox_rejects_when_full() {
    let (addr, mut handles, _) = slow_route(Some((8, MailboxOverflow::Reject))).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/slow"))
        .await
        .unwrap();
    let h = handles.recv().await.unwrap();
    let results: Vec<_> = (0..50).map(|i| h.send(i)).collect();
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(SendError::Full(_))))
        .count();
    assert!(full >= 40, "only {full} refused");
    // What was accepted arrives, in order.
    let accepted: Vec<u32> = results
        .iter()
        .zip(0..)
        .filter(|(r, _)| r.is_ok())
        .map(|(_, i)| i)
        .collect();
    for want in accepted {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m, WsMessage::text(want.to_string()));
    }
}

#[tokio::test]
async fn mailbox_overflow_can_close_with_1008() {
    let (addr, mut handles, mut done) = slow_route(Some((4, MailboxOverflow::Close))).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/slow"))
        .await
        .unwrap();
    let h = handles.recv().await.unwrap();
    for i in 0..20 {
        let _ = h.send(i);
    }
    let close = loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Close(c))) => break c,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, WsCloseCode::Policy);
    assert_eq!(
        tokio::time::timeout(T, done.recv()).await.unwrap(),
        Some(TerminateReason::MailboxOverflow)
    );
    // A closed connection refuses further messages.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(h.send(99), Err(SendError::Closed(99))));
}

#[tokio::test]
async fn a_close_is_never_stuck_behind_a_flood_of_messages() {
    let (addr, mut handles, mut done) = slow_route(None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/slow"))
        .await
        .unwrap();
    let h = handles.recv().await.unwrap();
    // 100,000 messages would take the handler 1,000 s.
    for i in 0..100_000 {
        h.send(i).unwrap();
    }
    let t0 = Instant::now();
    assert!(h.close(CloseCode::NORMAL, "enough"));
    let close = loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Close(c))) => break c.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        (close.code, close.reason.as_str()),
        (WsCloseCode::Normal, "enough")
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        tokio::time::timeout(T, done.recv()).await.unwrap(),
        Some(TerminateReason::Stop)
    );
}

// -------------------------------------------------------------------- shutdown

#[tokio::test]
async fn graceful_shutdown_closes_every_websocket_with_1001() {
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/ws", move |_| {
            let done = done_tx.clone();
            async move { Init::upgrade(Reporter { inner: Echo, done }) }
        })
        .http("/", |_| async { response(StatusCode::OK, "ok") });
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(router, async {
        let _ = stop_rx.await;
    }));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        clients.push(ws);
    }
    let t0 = Instant::now();
    stop_tx.send(()).unwrap();
    for ws in &mut clients {
        let close = loop {
            match tokio::time::timeout(T, ws.next()).await.unwrap() {
                Some(Ok(WsMessage::Close(c))) => break c.unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(close.code, WsCloseCode::Away);
    }
    // The clients answer the close (tokio-tungstenite does on its next poll)...
    for ws in &mut clients {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    }
    // ...every terminate runs, and the server returns well before the drain timeout.
    for _ in 0..3 {
        assert_eq!(
            tokio::time::timeout(T, done.recv()).await.unwrap(),
            Some(TerminateReason::Shutdown)
        );
    }
    tokio::time::timeout(T, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    // No longer accepting.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A connection that has sent nothing yet (its first request not begun) is
/// closed at shutdown at once, and the server returns without waiting out
/// the drain timeout (10 s) for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_a_connection_that_sent_nothing() {
    let router = Router::new().route("/ws", |_| async { Init::upgrade(Echo) });
    // Accepted before its first bytes (with `defer_accept` it would still be
    // the kernel's, and be reset when it sent them).
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .config(ServerConfig {
            defer_accept: false,
            ..ServerConfig::default()
        });
    let addr = server.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(router, async {
        let _ = stop_rx.await;
    }));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Accepted, and waiting for its first byte.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    stop_tx.send(()).unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("the silent connection was not closed at shutdown")
        .unwrap_or(0);
    assert_eq!(n, 0, "no bytes, only the close");
    tokio::time::timeout(Duration::from_secs(3), serving)
        .await
        .expect("serve_with_shutdown waited for the silent connection")
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

// --------------------------------------------------------------------- defaults

#[tokio::test]
async fn default_limits_refuse_a_frame_over_1_mib_with_1009() {
    let addr = echo_server(ServerConfig::default()).await;
    let (mut s, _) = raw::upgrade(addr, "/", "").await;
    // Only the header of a (1 MiB + 1) binary frame: refused from it.
    let mut h = vec![0x82, 0x80 | 127];
    h.extend_from_slice(&((1u64 << 20) + 1).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    s.write_all(&h).await.unwrap();
    let (got, closed) = read_all(&mut s, T).await;
    assert_eq!(&got[..4], [0x88, 15, 0x03, 0xf1], "close 1009");
    assert!(closed);
}
