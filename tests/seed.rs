//! The seed's behaviours (SPEC.md S1-S11), each driven through a real socket
//! on 127.0.0.1 by an independent client: tokio-tungstenite where a full
//! client helps, a raw `TcpStream` speaking hand-built HTTP and frames where
//! every byte the server sends must be seen (RFC 6455 §5, §7).
//!
//! Every wait is bounded by [`T`]; a test that would hang fails instead.

#[path = "support/raw.rs"]
mod raw;
#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lariat::{
    Command, Context, Frame, Handle, Handler, Init, Message, ProtocolError, Reply, Request, Router,
    SendError, TerminateReason, TimerId, Upgrade,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use raw::{Conn, T};
use server::{demo, serve};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

// ------------------------------------------------------------------ servers

/// What a [`Script`] handler tells the test from inside the server.
#[derive(Debug)]
enum Report {
    Terminate(TerminateReason),
    Handle(Handle<String>),
}

/// A test handler driven by text commands (from the client, from its own
/// handle, or from its after-upgrade init), so that one handler covers every
/// callback × every result kind (S4) and every runtime command.
struct Script {
    init: String,
    tx: UnboundedSender<Report>,
    timer: Option<TimerId>,
}

/// The result kinds of S4, by name; a `+h` suffix adds hibernate (S10).
fn result_for(kind: &str) -> Option<Reply> {
    let (k, hibernate) = match kind.strip_suffix("+h") {
        Some(k) => (k, true),
        None => (kind, false),
    };
    let r = match k {
        "ok" => Reply::ok(),
        "frame" => Reply::frame(Frame::text("one")),
        "frames" => Reply::frames([
            Frame::text("a"),
            Frame::binary(vec![1u8, 2, 3]),
            Frame::text("b"),
        ]),
        "stop" => Reply::stop(),
        "close" => Reply::close(4000, "bye"),
        _ => return None,
    };
    Some(if hibernate { r.hibernate() } else { r })
}

impl Script {
    fn dispatch(&mut self, cmd: &str, ctx: &mut Context<String>) -> Reply {
        if let Some(r) = result_for(cmd) {
            return r;
        }
        if let Some(rest) = cmd.strip_prefix("info:") {
            // S6: a message to our own handle, delivered to `info`.
            ctx.handle().send(rest.to_string()).unwrap();
            return Reply::ok();
        }
        if let Some(rest) = cmd.strip_prefix("echo:") {
            return Reply::text(rest.to_string());
        }
        if let Some(ms) = cmd.strip_prefix("idle:") {
            let t = Duration::from_millis(ms.parse().unwrap());
            return Reply::command(Command::SetIdleTimeout(Some(t))).and(Frame::text("idle set"));
        }
        if let Some(n) = cmd.strip_prefix("max:") {
            return Reply::command(Command::SetMaxFrameSize(Some(n.parse().unwrap())))
                .and(Frame::text("max set"));
        }
        if let Some(r) = cmd.strip_prefix("reason:") {
            return Reply::command(Command::ShutdownReason(r.to_string()))
                .and(Frame::text("reason set"));
        }
        match cmd {
            "noidle" => Reply::command(Command::SetIdleTimeout(None)).and(Frame::text("idle set")),
            "pause" => {
                // Cowboy's `active`: stop reading; a timer resumes.
                ctx.start_timer(Duration::from_millis(500), "resume".to_string());
                Reply::text("paused").then(Command::Active(false))
            }
            "resume" => Reply::command(Command::Active(true)).and(Frame::text("resumed")),
            "timers" => {
                self.timer = Some(ctx.start_timer(Duration::from_millis(300), "echo:A".into()));
                ctx.start_timer(Duration::from_millis(600), "echo:B".into());
                Reply::text(format!("timers started {}", ctx.timer_count()))
            }
            "cancel" => {
                let id = self.timer.take().unwrap();
                let first = ctx.cancel_timer(id);
                let again = ctx.cancel_timer(id);
                Reply::text(format!(
                    "cancelled {first:?} again {again:?} left {}",
                    ctx.timer_count()
                ))
            }
            "ticks" => {
                // Messages to the handle every 100 ms, from another task,
                // until the connection is gone.
                let h = ctx.handle().clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if h.send("echo:tick".to_string()).is_err() {
                            break;
                        }
                    }
                });
                Reply::text("ticking")
            }
            "handle" => {
                self.tx.send(Report::Handle(ctx.handle().clone())).unwrap();
                Reply::text("handle sent")
            }
            "proto" => Reply::text(format!("proto {:?}", ctx.protocol())),
            // S7.3: every frame type, and S11.3: nothing after the close.
            "all-kinds" => Reply::frames([
                Frame::Ping(lariat::Bytes::from_static(b"p1")),
                Frame::Pong(lariat::Bytes::from_static(b"p2")),
                Frame::text("t"),
                Frame::binary(vec![9u8]),
                Frame::close(4001, "all kinds"),
                Frame::text("after close"),
            ]),
            "panic" => panic!("script panic"),
            other => Reply::text(other.to_string()),
        }
    }
}

impl Handler for Script {
    type Info = String;

    async fn init(&mut self, ctx: &mut Context<String>) -> Reply {
        let cmd = std::mem::take(&mut self.init);
        if cmd.is_empty() {
            Reply::ok()
        } else {
            self.dispatch(&cmd, ctx)
        }
    }

    async fn handle(&mut self, msg: Message, ctx: &mut Context<String>) -> Reply {
        match msg {
            Message::Text(t) => self.dispatch(t.as_str(), ctx),
            Message::Binary(b) => Reply::binary(b),
            Message::Ping(p) => Reply::text(format!("saw ping {}", String::from_utf8_lossy(&p))),
            Message::Pong(p) => Reply::text(format!("saw pong {}", String::from_utf8_lossy(&p))),
        }
    }

    async fn info(&mut self, msg: String, ctx: &mut Context<String>) -> Reply {
        self.dispatch(&msg, ctx)
    }

    fn terminate(&mut self, reason: &TerminateReason) {
        let _ = self.tx.send(Report::Terminate(reason.clone()));
    }
}

/// `/script?init=CMD&idle=MS&max=N&unlimited=1&close_timeout=MS&proto=P`.
fn script_app(tx: UnboundedSender<Report>) -> Router {
    Router::new().route("/script", move |req: Request| {
        let tx = tx.clone();
        async move {
            let init = req.query_param("init").unwrap_or_default();
            let mut up = Upgrade::new(Script {
                init,
                tx,
                timer: None,
            });
            if let Some(ms) = req.query_param("idle") {
                up = up.idle_timeout(Duration::from_millis(ms.parse().unwrap()));
            }
            if let Some(n) = req.query_param("max") {
                up = up.max_frame_size(n.parse().unwrap());
            }
            if req.query_param("unlimited").is_some() {
                up = up.unlimited_size();
            }
            if let Some(ms) = req.query_param("close_timeout") {
                up = up.close_timeout(Duration::from_millis(ms.parse().unwrap()));
            }
            if let Some(p) = req.query_param("proto") {
                up = up.protocol(p);
            }
            up.into()
        }
    })
}

async fn script_server() -> (SocketAddr, UnboundedReceiver<Report>) {
    let (tx, rx) = unbounded_channel();
    (serve(script_app(tx)).await, rx)
}

async fn terminate_reason(rx: &mut UnboundedReceiver<Report>) -> TerminateReason {
    loop {
        match timeout(T, rx.recv())
            .await
            .expect("terminate was not called")
        {
            Some(Report::Terminate(r)) => return r,
            Some(Report::Handle(_)) => continue,
            None => panic!("report channel closed"),
        }
    }
}

async fn reported_handle(rx: &mut UnboundedReceiver<Report>) -> Handle<String> {
    match timeout(T, rx.recv()).await.expect("no handle reported") {
        Some(Report::Handle(h)) => h,
        other => panic!("expected a handle, got {other:?}"),
    }
}

// ------------------------------------------------------ tungstenite client

async fn connect(addr: SocketAddr, path: &str) -> Client {
    timeout(
        T,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("connect timed out")
    .expect("connect failed")
    .0
}

async fn recv(ws: &mut Client) -> WsMessage {
    timeout(T, ws.next())
        .await
        .expect("timed out waiting for a message")
        .expect("stream ended")
        .expect("websocket error")
}

async fn recv_text(ws: &mut Client) -> String {
    match recv(ws).await {
        WsMessage::Text(t) => t.as_str().to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn recv_close(ws: &mut Client) -> (u16, String) {
    match recv(ws).await {
        WsMessage::Close(Some(f)) => (f.code.into(), f.reason.as_str().to_string()),
        other => panic!("expected a close frame with a code, got {other:?}"),
    }
}

async fn send_text(ws: &mut Client, text: &str) {
    timeout(T, ws.send(WsMessage::text(text)))
        .await
        .expect("send timed out")
        .expect("send failed");
}

/// After the closing handshake: the stream ends (the server closed TCP).
async fn expect_end(ws: &mut Client) {
    match timeout(T, ws.next()).await.expect("server did not close") {
        None | Some(Err(_)) => {}
        Some(Ok(m)) => panic!("expected the end of the stream, got {m:?}"),
    }
}

/// The client closes (no code): the server answers with an empty close
/// frame (RFC 6455 §5.5.1), then closes TCP.
async fn client_close(ws: &mut Client) {
    timeout(T, ws.close(None)).await.unwrap().unwrap();
    assert_eq!(recv(ws).await, WsMessage::Close(None));
    expect_end(ws).await;
}

/// Messages that arrive within `window`, in order.
async fn collect_for(ws: &mut Client, window: Duration) -> Vec<WsMessage> {
    let deadline = tokio::time::Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, ws.next()).await {
        out.push(m.expect("websocket error"));
    }
    out
}

// --------------------------------------------------------------- raw client

/// A plain HTTP exchange on a fresh connection.
async fn http(addr: SocketAddr, request: &str) -> raw::Response {
    let mut c = Conn::open(addr).await;
    c.send(request.as_bytes()).await;
    c.read_response().await
}

fn ws_get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n")
}

// ======================================================================= S1

/// S1, S1.1: a route's init upgrades; the 101 carries the RFC 6455 §4.2.2
/// headers and the connection works at once.
#[tokio::test]
async fn s1_1_upgrade_handshake_is_rfc6455_4_2_2() {
    let addr = demo().await;
    let (mut c, r) = Conn::upgrade(addr, "/seed/echo", "", b"").await;
    assert_eq!(r.status, 101, "{}", r.head);
    assert_eq!(
        r.header("upgrade").unwrap().to_ascii_lowercase(),
        "websocket"
    );
    assert!(r
        .header("connection")
        .unwrap()
        .to_ascii_lowercase()
        .contains("upgrade"));
    assert_eq!(
        r.header("sec-websocket-accept").as_deref(),
        Some(raw::ACCEPT)
    );
    assert_eq!(r.header("sec-websocket-protocol"), None);
    c.send(&raw::text("hi")).await;
    assert_eq!(c.read_text().await, "hi");
    // And an independent client agrees.
    let mut ws = connect(addr, "/seed/echo").await;
    send_text(&mut ws, "tungstenite").await;
    assert_eq!(recv_text(&mut ws).await, "tungstenite");
}

/// S1.1, RFC 6455 §4.2.1: header values are matched as case-insensitive
/// tokens in lists (as browsers send them).
#[tokio::test]
async fn s1_1_browser_style_headers_are_accepted() {
    let addr = demo().await;
    let mut c = Conn::open(addr).await;
    let req = format!(
        "GET /seed/echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: WebSocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {}\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: http://{addr}\r\n\r\n",
        raw::KEY
    );
    c.send(req.as_bytes()).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 101, "{}", r.head);
    assert_eq!(
        r.header("sec-websocket-accept").as_deref(),
        Some(raw::ACCEPT)
    );
    c.send(&raw::text("browser")).await;
    assert_eq!(c.read_text().await, "browser");
}

/// S1.1: frames the client pipelines right behind its upgrade request (read
/// by the HTTP layer with the request) reach the handler.
#[tokio::test]
async fn s1_1_frames_pipelined_with_the_request_are_handled() {
    let addr = demo().await;
    let mut bytes = raw::text("first");
    bytes.extend(raw::text("second"));
    let (mut c, r) = Conn::upgrade(addr, "/seed/echo", "", &bytes).await;
    assert_eq!(r.status, 101);
    assert_eq!(c.read_text().await, "first");
    assert_eq!(c.read_text().await, "second");
}

/// S1: init can answer plain HTTP instead (a route with no such path: 404).
#[tokio::test]
async fn s1_plain_http_and_unknown_paths() {
    let addr = demo().await;
    let r = http(addr, &ws_get("/", "")).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("<"));
    let r = http(addr, &ws_get("/no/such/route", "")).await;
    assert_eq!(r.status, 404);
}

/// S1.2: no valid upgrade request gets a clear 400, never a hang or a crash.
#[tokio::test]
async fn s1_2_missing_upgrade_headers_get_400() {
    let addr = demo().await;
    let key = format!("Sec-WebSocket-Key: {}\r\n", raw::KEY);
    let up = "Upgrade: websocket\r\n";
    let conn = "Connection: Upgrade\r\n";
    let ver = "Sec-WebSocket-Version: 13\r\n";
    let cases = [
        ("nothing", String::new()),
        ("no Upgrade", format!("{conn}{key}{ver}")),
        ("Upgrade: h2c", format!("Upgrade: h2c\r\n{conn}{key}{ver}")),
        ("no Connection", format!("{up}{key}{ver}")),
        (
            "Connection: keep-alive",
            format!("{up}Connection: keep-alive\r\n{key}{ver}"),
        ),
        ("no key", format!("{up}{conn}{ver}")),
        (
            "short key",
            format!("{up}{conn}Sec-WebSocket-Key: c2hvcnQ=\r\n{ver}"),
        ),
        ("no version", format!("{up}{conn}{key}")),
    ];
    for (what, headers) in cases {
        for path in ["/seed/echo", "/seed/mqtt", "/echo"] {
            let r = http(addr, &ws_get(path, &headers)).await;
            assert_eq!(r.status, 400, "{what} on {path}: {}", r.head);
            assert!(!r.body.is_empty(), "{what}: the refusal says why");
        }
    }
    // A POST is no upgrade either.
    let r = http(
        addr,
        &format!(
            "POST /seed/echo HTTP/1.1\r\nHost: x\r\n{up}{conn}{key}{ver}Content-Length: 0\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.head);
    // Still serving.
    let mut ws = connect(addr, "/seed/echo").await;
    send_text(&mut ws, "alive").await;
    assert_eq!(recv_text(&mut ws).await, "alive");
}

/// S1.2, RFC 6455 §4.1: an upgrade needs HTTP/1.1 or later.
#[tokio::test]
async fn s1_2_http_1_0_upgrade_gets_400() {
    let addr = demo().await;
    let r = http(
        addr,
        &format!(
            "GET /seed/echo HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            raw::KEY
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.head);
}

/// S1.2, RFC 6455 §4.2.2: a version lariat does not speak gets 426 with
/// `Sec-WebSocket-Version: 13`.
#[tokio::test]
async fn s1_2_version_8_gets_426_with_version_13() {
    let addr = demo().await;
    let headers = format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 8\r\n",
        raw::KEY
    );
    let r = http(addr, &ws_get("/seed/echo", &headers)).await;
    assert_eq!(r.status, 426, "{}", r.head);
    assert_eq!(r.header("sec-websocket-version").as_deref(), Some("13"));
}

/// S1.2, RFC 9110 §15.5.22 (and §7.8): "The server MUST send an Upgrade
/// header field in a 426 response to indicate the required protocol(s)",
/// with the `upgrade` option in `Connection`.
#[tokio::test]
async fn s1_2_426_names_the_required_protocol() {
    let addr = demo().await;
    let headers = format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 8\r\n",
        raw::KEY
    );
    let r = http(addr, &ws_get("/seed/echo", &headers)).await;
    assert_eq!(r.status, 426, "{}", r.head);
    assert_eq!(
        r.header("upgrade")
            .map(|v| v.to_ascii_lowercase())
            .as_deref(),
        Some("websocket"),
        "{}",
        r.head
    );
    assert!(
        r.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{}",
        r.head
    );
}

/// A route that keeps what it needs from the request it consumed.
struct Room {
    room: String,
    user: String,
}

impl Handler for Room {
    type Info = ();
    async fn init(&mut self, _: &mut Context<()>) -> Reply {
        Reply::text(format!("{} joined {}", self.user, self.room))
    }
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(format!("[{}] {t}", self.room)),
            _ => Reply::ok(),
        }
    }
}

/// S1.3: init takes the `Request` by value (the compiler enforces that it is
/// gone afterwards); what the connection needs is moved into the handler.
#[tokio::test]
async fn s1_3_init_consumes_request_and_moves_data_into_handler() {
    let router = Router::new().route("/rooms/:room", |req: Request| async move {
        let room = req.param("room").unwrap().to_string();
        let user = req.header("x-user").unwrap_or("anonymous").to_string();
        drop(req); // owned: init may do this; nothing can use it after.
        Init::upgrade(Room { room, user })
    });
    let addr = serve(router).await;
    let mut req = format!("ws://{addr}/rooms/lobby")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-user", "ada".parse().unwrap());
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "ada joined lobby");
    send_text(&mut ws, "hi").await;
    assert_eq!(recv_text(&mut ws).await, "[lobby] hi");
    let mut other = connect(addr, "/rooms/kitchen").await;
    assert_eq!(recv_text(&mut other).await, "anonymous joined kitchen");
}

// ======================================================================= S2

async fn mqtt_connect(
    addr: SocketAddr,
    protocols: Option<&str>,
) -> Result<(Client, Option<String>), tungstenite::Error> {
    let mut req = format!("ws://{addr}/seed/mqtt")
        .into_client_request()
        .unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let (ws, resp) = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect timed out")?;
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((ws, proto))
}

/// S2.1: init reads the offered list and chooses `mqtt`; it is sent back.
#[tokio::test]
async fn s2_1_chosen_subprotocol_is_in_the_101() {
    let addr = demo().await;
    let (mut ws, proto) = mqtt_connect(addr, Some("v12.stomp, mqtt")).await.unwrap();
    assert_eq!(proto.as_deref(), Some("mqtt"));
    send_text(&mut ws, "over mqtt").await;
    assert_eq!(recv_text(&mut ws).await, "over mqtt");
}

/// S2.1: the offer may span several header lines (RFC 7230 §3.2.2).
#[tokio::test]
async fn s2_1_offer_over_several_header_lines() {
    let addr = demo().await;
    let (mut c, r) = Conn::upgrade(
        addr,
        "/seed/mqtt",
        "Sec-WebSocket-Protocol: v12.stomp\r\nSec-WebSocket-Protocol: mqtt\r\n",
        b"",
    )
    .await;
    assert_eq!(r.status, 101, "{}", r.head);
    assert_eq!(r.header("sec-websocket-protocol").as_deref(), Some("mqtt"));
    c.send(&raw::text("m")).await;
    assert_eq!(c.read_text().await, "m");
}

/// S2.2: none supported: init refuses with a plain 400.
#[tokio::test]
async fn s2_2_no_supported_subprotocol_gets_400() {
    let addr = demo().await;
    match mqtt_connect(addr, Some("v12.stomp")).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        Err(e) => panic!("expected an HTTP 400, got {e}"),
        Ok(_) => panic!("expected an HTTP 400, got an upgrade"),
    }
}

/// S2.3: no header, no subprotocol: the upgrade goes ahead without one.
#[tokio::test]
async fn s2_3_no_protocol_header_upgrades_without_one() {
    let addr = demo().await;
    let (mut ws, proto) = mqtt_connect(addr, None).await.unwrap();
    assert_eq!(proto, None);
    send_text(&mut ws, "plain").await;
    assert_eq!(recv_text(&mut ws).await, "plain");
}

/// S2.4: init picks a subprotocol the client did not offer: the 101 carries
/// no protocol header, and the connection sees none.
#[tokio::test]
async fn s2_4_never_answers_an_unoffered_subprotocol() {
    let (addr, _rx) = script_server().await;
    for offered in ["Sec-WebSocket-Protocol: mqtt, v12.stomp\r\n", ""] {
        let (mut c, r) = Conn::upgrade(addr, "/script?proto=bogus", offered, b"").await;
        assert_eq!(r.status, 101, "{}", r.head);
        assert_eq!(r.header("sec-websocket-protocol"), None, "{}", r.head);
        c.send(&raw::text("proto")).await;
        assert_eq!(c.read_text().await, "proto None");
    }
    // An offered one is answered.
    let (mut c, r) = Conn::upgrade(
        addr,
        "/script?proto=mqtt",
        "Sec-WebSocket-Protocol: v12.stomp, mqtt\r\n",
        b"",
    )
    .await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol").as_deref(), Some("mqtt"));
    c.send(&raw::text("proto")).await;
    assert_eq!(c.read_text().await, "proto Some(\"mqtt\")");
}

// ======================================================================= S3

/// S3.1: the after-upgrade init starts a 1 s timer; its `"Hello!"` reaches
/// `info` and the client after about a second, not before 0.9 s.
#[tokio::test]
async fn s3_1_timer_started_in_init_delivers_hello_after_1s() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/timer").await;
    let t0 = Instant::now();
    assert_eq!(recv_text(&mut ws).await, "Hello!");
    let e = t0.elapsed();
    assert!(e >= Duration::from_millis(900), "too early: {e:?}");
    assert!(e < Duration::from_millis(3000), "too late: {e:?}");
    // Exactly once.
    assert!(collect_for(&mut ws, Duration::from_millis(300))
        .await
        .is_empty());
}

/// S3.2: the after-upgrade init sends a frame at once, before the client
/// sends anything.
#[tokio::test]
async fn s3_2_init_sends_hello_at_once() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/hello").await;
    let t0 = Instant::now();
    assert_eq!(recv_text(&mut ws).await, "Hello!");
    assert!(t0.elapsed() < Duration::from_millis(900), "not at once");
}

/// An after-upgrade init that takes its time.
struct SlowInit;

impl Handler for SlowInit {
    type Info = ();
    async fn init(&mut self, _: &mut Context<()>) -> Reply {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Reply::text("init done")
    }
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

/// S3: the after-upgrade init runs before any frame is handled, even frames
/// the client pipelined with its request, and even when init awaits.
#[tokio::test]
async fn s3_init_runs_before_any_frame() {
    let router = Router::new().route("/slow", |_req| async { Init::upgrade(SlowInit) });
    let addr = serve(router).await;
    let (mut c, r) = Conn::upgrade(addr, "/slow", "", &raw::text("pipelined")).await;
    assert_eq!(r.status, 101);
    assert_eq!(c.read_text().await, "init done");
    assert_eq!(c.read_text().await, "pipelined");

    let (addr, _rx) = script_server().await;
    let (mut c, r) = Conn::upgrade(
        addr,
        "/script?init=echo:from%20init",
        "",
        &raw::text("echo:from frame"),
    )
    .await;
    assert_eq!(r.status, 101);
    assert_eq!(c.read_text().await, "from init");
    assert_eq!(c.read_text().await, "from frame");
}

// ======================================================================= S4

#[derive(Clone, Copy, Debug)]
enum Callback {
    Init,
    Handle,
    Info,
}

/// S4: one result kind returned by one callback, checked on the wire and in
/// terminate.
async fn check_result(callback: Callback, kind: &str) {
    let (addr, mut rx) = script_server().await;
    let path = match callback {
        Callback::Init => format!("/script?init={}", kind.replace('+', "%2B")),
        _ => "/script".to_string(),
    };
    let mut ws = connect(addr, &path).await;
    match callback {
        Callback::Init => {}
        Callback::Handle => send_text(&mut ws, kind).await,
        Callback::Info => send_text(&mut ws, &format!("info:{kind}")).await,
    }
    let what = format!("{callback:?} returning {kind}");
    match kind.trim_end_matches("+h") {
        "ok" => {}
        "frame" => assert_eq!(recv_text(&mut ws).await, "one", "{what}"),
        "frames" => {
            assert_eq!(recv_text(&mut ws).await, "a", "{what}");
            match recv(&mut ws).await {
                WsMessage::Binary(b) => assert_eq!(&b[..], [1, 2, 3], "{what}"),
                other => panic!("{what}: expected binary, got {other:?}"),
            }
            assert_eq!(recv_text(&mut ws).await, "b", "{what}");
        }
        "stop" => {
            assert_eq!(recv_close(&mut ws).await, (1000, String::new()), "{what}");
            expect_end(&mut ws).await;
            drop(ws); // the client closes TCP: no linger wait
            assert_eq!(
                terminate_reason(&mut rx).await,
                TerminateReason::Stop,
                "{what}"
            );
            return;
        }
        "close" => {
            assert_eq!(recv_close(&mut ws).await, (4000, "bye".into()), "{what}");
            expect_end(&mut ws).await;
            drop(ws); // the client closes TCP: no linger wait
            assert_eq!(
                terminate_reason(&mut rx).await,
                TerminateReason::Normal,
                "{what}"
            );
            return;
        }
        _ => unreachable!(),
    }
    // The connection goes on; for "ok", this proves nothing was sent before.
    send_text(&mut ws, "echo:after").await;
    assert_eq!(recv_text(&mut ws).await, "after", "{what}");
}

const KINDS: [&str; 10] = [
    "ok", "frame", "frames", "stop", "close", "ok+h", "frame+h", "frames+h", "stop+h", "close+h",
];

/// S4, S10: every result kind from the after-upgrade init.
#[tokio::test]
async fn s4_every_result_kind_from_init() {
    for kind in KINDS {
        check_result(Callback::Init, kind).await;
    }
}

/// S4, S10: every result kind from handle.
#[tokio::test]
async fn s4_every_result_kind_from_handle() {
    for kind in KINDS {
        check_result(Callback::Handle, kind).await;
    }
}

/// S4, S10: every result kind from info.
#[tokio::test]
async fn s4_every_result_kind_from_info() {
    for kind in KINDS {
        check_result(Callback::Info, kind).await;
    }
}

// ======================================================================= S5

/// S5: the seed's example echoes text and ignores binary, ping and pong:
/// after binary, ping and pong, only the text comes back (and the automatic
/// pong, S8.1).
#[tokio::test]
async fn s5_seed_echo_echoes_text_ignores_the_rest() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/echo").await;
    c.send(&raw::frame(0x82, b"binary")).await;
    c.send(&raw::frame(0x89, b"pi")).await;
    c.send(&raw::frame(0x8a, b"po")).await;
    c.send(&raw::text("text")).await;
    assert_eq!(c.read_frame().await, Some((0x8a, b"pi".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x81, b"text".to_vec())));
    c.send(&raw::close(1000, "")).await;
    assert_eq!(c.read_close().await, (1000, String::new()));
    assert!(c.read_to_eof().await.is_empty(), "nothing else was sent");
}

/// S5: handle is called for every text, binary, ping and pong frame.
#[tokio::test]
async fn s5_handle_sees_text_binary_ping_and_pong() {
    let (addr, _rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::text("t")).await;
    assert_eq!(c.read_text().await, "t");
    c.send(&raw::frame(0x82, &[0, 255])).await;
    assert_eq!(c.read_frame().await, Some((0x82, vec![0, 255])));
    c.send(&raw::frame(0x89, b"x")).await;
    assert_eq!(c.read_frame().await, Some((0x8a, b"x".to_vec())));
    assert_eq!(c.read_text().await, "saw ping x");
    c.send(&raw::frame(0x8a, b"y")).await;
    assert_eq!(c.read_text().await, "saw pong y");
}

/// S5, RFC 6455 §5.4: a fragmented message (with a ping between fragments,
/// and a character split across them) reaches handle whole.
#[tokio::test]
async fn s5_fragmented_message_arrives_whole() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/echo").await;
    let text = "Héllo, wörld";
    let b = text.as_bytes();
    // Split inside 'é' (2 bytes at index 1..3).
    c.send(&raw::frame(0x01, &b[..2])).await;
    c.send(&raw::frame(0x89, b"mid")).await;
    c.send(&raw::frame(0x00, &b[2..8])).await;
    c.send(&raw::frame(0x80, &b[8..])).await;
    assert_eq!(c.read_frame().await, Some((0x8a, b"mid".to_vec())));
    assert_eq!(c.read_text().await, text);
}

// ======================================================================= S6

/// S6: `POST /log` sends `{log, Text}` to the `/seed/log` connection's
/// handle; info forwards it as a text frame.
#[tokio::test]
async fn s6_post_log_reaches_the_connection_as_text() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/log").await;
    let body = "a line of log";
    let post = format!(
        "POST /log HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // The connection registers in its after-upgrade init: retry until it has.
    let t0 = Instant::now();
    loop {
        let r = http(addr, &post).await;
        assert_eq!(r.status, 202, "{}", r.head);
        let said = String::from_utf8(r.body).unwrap();
        if said.contains("delivered to 1 ") {
            break;
        }
        assert!(said.contains("delivered to 0 "), "{said}");
        assert!(t0.elapsed() < T, "the connection never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recv_text(&mut ws).await, body);
    // After the client closes, nobody receives.
    client_close(&mut ws).await;
    let t0 = Instant::now();
    loop {
        let said = String::from_utf8(http(addr, &post).await.body).unwrap();
        if said.contains("delivered to 0 ") {
            break;
        }
        assert!(
            t0.elapsed() < T,
            "closed connection still registered: {said}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// S6: the handle is `Send` and works from a plain std thread; messages
/// arrive in order.
#[tokio::test]
async fn s6_handle_send_from_std_thread() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script?init=handle").await;
    assert_eq!(recv_text(&mut ws).await, "handle sent");
    let handle = reported_handle(&mut rx).await;
    let t = std::thread::spawn(move || {
        for i in 0..5 {
            handle.send(format!("echo:from thread {i}")).unwrap();
        }
    });
    t.join().unwrap();
    for i in 0..5 {
        assert_eq!(recv_text(&mut ws).await, format!("from thread {i}"));
    }
}

// ======================================================================= S7

/// S7.1: a callback returning nothing sends nothing: the next bytes on the
/// wire are the next reply's.
#[tokio::test]
async fn s7_1_ok_sends_nothing() {
    let (addr, _rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::text("ok")).await;
    c.send(&raw::text("info:ok")).await;
    c.send(&raw::text("echo:next")).await;
    assert_eq!(c.read_frame().await, Some((0x81, b"next".to_vec())));
    assert!(c.buf.is_empty());
}

/// S7.2: one frame returned, one frame sent.
#[tokio::test]
async fn s7_2_one_frame_is_sent() {
    let (addr, _rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::text("frame")).await;
    c.send(&raw::text("echo:next")).await;
    assert_eq!(c.read_frame().await, Some((0x81, b"one".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x81, b"next".to_vec())));
}

/// S7.3: text, binary, ping, pong and close can all be sent (and S11.3:
/// nothing after the close).
#[tokio::test]
async fn s7_3_every_frame_type_can_be_sent() {
    let (addr, mut rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::text("all-kinds")).await;
    assert_eq!(c.read_frame().await, Some((0x89, b"p1".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x8a, b"p2".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x81, b"t".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x82, vec![9])));
    assert_eq!(c.read_close().await, (4001, "all kinds".to_string()));
    c.send(&raw::close(4001, "")).await;
    assert!(c.read_to_eof().await.is_empty(), "nothing after the close");
    drop(c); // the client closes TCP: no linger wait
    assert_eq!(terminate_reason(&mut rx).await, TerminateReason::Normal);
}

/// S7.3 with an independent client: it answers lariat's ping.
#[tokio::test]
async fn s7_3_server_ping_is_answered_by_tungstenite() {
    let (addr, _rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "all-kinds").await;
    assert_eq!(recv(&mut ws).await, WsMessage::Ping(b"p1".to_vec().into()));
    assert_eq!(recv(&mut ws).await, WsMessage::Pong(b"p2".to_vec().into()));
    assert_eq!(recv_text(&mut ws).await, "t");
    assert_eq!(recv(&mut ws).await, WsMessage::Binary(vec![9u8].into()));
    assert_eq!(recv_close(&mut ws).await, (4001, "all kinds".into()));
    expect_end(&mut ws).await;
}

/// S7.4: the seed's list — exactly `Hello`, `world!`, 1000 zero bytes, in
/// that order, and nothing else.
#[tokio::test]
async fn s7_4_frames_sent_in_order() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/multi").await;
    c.send(&raw::text("go")).await;
    assert_eq!(c.read_frame().await, Some((0x81, b"Hello".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x81, b"world!".to_vec())));
    assert_eq!(c.read_frame().await, Some((0x82, vec![0u8; 1000])));
    c.send(&raw::close(1000, "")).await;
    assert_eq!(c.read_close().await, (1000, String::new()));
    assert!(c.read_to_eof().await.is_empty());
}

// ======================================================================= S8

/// S8.1: a client ping gets a pong with the same payload, and the ping still
/// reaches handle.
#[tokio::test]
async fn s8_1_ping_gets_pong_and_reaches_handle() {
    let (addr, _rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    ws.send(WsMessage::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut ws).await,
        WsMessage::Pong(b"are you there".to_vec().into())
    );
    assert_eq!(recv_text(&mut ws).await, "saw ping are you there");
    // Empty and maximal (125-byte) payloads too.
    for payload in [Vec::new(), vec![b'z'; 125]] {
        ws.send(WsMessage::Ping(payload.clone().into()))
            .await
            .unwrap();
        assert_eq!(recv(&mut ws).await, WsMessage::Pong(payload.clone().into()));
        assert_eq!(
            recv_text(&mut ws).await,
            format!("saw ping {}", String::from_utf8(payload).unwrap())
        );
    }
}

/// S8.1: the handler need not do anything: the seed's echo ignores pings and
/// they are answered anyway.
#[tokio::test]
async fn s8_1_pong_without_handler_help() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/echo").await;
    for i in 0..3u8 {
        ws.send(WsMessage::Ping(vec![i; 3].into())).await.unwrap();
        assert_eq!(recv(&mut ws).await, WsMessage::Pong(vec![i; 3].into()));
    }
    // Every ping of a pipelined burst, in order.
    let mut c = Conn::ws(addr, "/seed/echo").await;
    let burst: Vec<u8> = (0..200u32)
        .flat_map(|i| raw::frame(0x89, i.to_string().as_bytes()))
        .collect();
    c.send(&burst).await;
    for i in 0..200u32 {
        assert_eq!(
            c.read_frame().await,
            Some((0x8a, i.to_string().into_bytes()))
        );
    }
}

/// S8.2: the server sends no pings of its own.
#[tokio::test]
async fn s8_2_no_server_pings_during_silence() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/echo").await;
    let got = collect_for(&mut ws, Duration::from_millis(1500)).await;
    assert!(got.is_empty(), "the server sent {got:?}");
}

/// S8.3: `/seed/idle` (2 s) closes a silent connection with 1000.
#[tokio::test]
async fn s8_3_idle_connection_is_closed_with_1000() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/idle").await;
    let t0 = Instant::now();
    let (code, _) = recv_close(&mut ws).await;
    let e = t0.elapsed();
    assert_eq!(code, 1000);
    assert!(e >= Duration::from_millis(1800), "too early: {e:?}");
    assert!(e < Duration::from_millis(3500), "too late: {e:?}");
    expect_end(&mut ws).await;
}

/// S8.3: traffic from the client keeps the connection open past the timeout.
#[tokio::test]
async fn s8_3_client_traffic_keeps_it_open() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/idle").await;
    let t0 = Instant::now();
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if i % 2 == 0 {
            send_text(&mut ws, &format!("keep {i}")).await;
            assert_eq!(recv_text(&mut ws).await, format!("keep {i}"));
        } else {
            // Control frames are traffic too.
            ws.send(WsMessage::Ping(vec![i as u8].into()))
                .await
                .unwrap();
            assert_eq!(recv(&mut ws).await, WsMessage::Pong(vec![i as u8].into()));
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(3000));
    // Then silence closes it, about 2 s after the last message.
    let t1 = Instant::now();
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    assert!(t1.elapsed() >= Duration::from_millis(1500));
}

/// S8.3: messages to the handle (and frames sent to the client) are not
/// activity: only data from the client resets the idle timer.
#[tokio::test]
async fn s8_3_handle_messages_do_not_reset_idle_timer() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script?init=ticks&idle=800").await;
    let t0 = Instant::now();
    assert_eq!(recv_text(&mut ws).await, "ticking");
    let mut ticks = 0;
    let code = loop {
        assert!(t0.elapsed() < T, "ticks kept the connection open");
        match recv(&mut ws).await {
            WsMessage::Text(t) if t.as_str() == "tick" => ticks += 1,
            WsMessage::Close(Some(f)) => break u16::from(f.code),
            other => panic!("unexpected {other:?}"),
        }
    };
    let e = t0.elapsed();
    assert_eq!(code, 1000);
    assert!(ticks >= 3, "only {ticks} ticks were delivered");
    assert!(e >= Duration::from_millis(700), "too early: {e:?}");
    assert!(e < Duration::from_millis(2000), "ticks kept it open: {e:?}");
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::IdleTimeout
    );
}

// ======================================================================= S9

/// S9: `/seed/maxframe` (8000 bytes): 8000 are echoed, 8001 close with 1009.
#[tokio::test]
async fn s9_max_frame_size_8000() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/maxframe").await;
    ws.send(WsMessage::binary(vec![7u8; 8000])).await.unwrap();
    assert_eq!(
        recv(&mut ws).await,
        WsMessage::Binary(vec![7u8; 8000].into())
    );
    send_text(&mut ws, &"t".repeat(8000)).await;
    assert_eq!(recv_text(&mut ws).await.len(), 8000);
    ws.send(WsMessage::binary(vec![7u8; 8001])).await.unwrap();
    assert_eq!(recv_close(&mut ws).await.0, 1009);
    expect_end(&mut ws).await;
}

/// S9: the documented default (1 MiB) applies when init sets none, and "no
/// limit" can be asked for explicitly.
#[tokio::test]
async fn s9_default_limit_and_explicit_no_limit() {
    let (addr, _rx) = script_server().await;
    let mib = 1 << 20;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, &"x".repeat(mib)).await;
    assert_eq!(recv_text(&mut ws).await.len(), mib);
    send_text(&mut ws, &"x".repeat(mib + 1)).await;
    assert_eq!(recv_close(&mut ws).await.0, 1009);

    let mut ws = connect(addr, "/script?unlimited=1").await;
    send_text(&mut ws, &"y".repeat(3 * mib)).await;
    assert_eq!(recv_text(&mut ws).await.len(), 3 * mib);
}

// ====================================================================== S10

/// S10: hibernating while part of the next frame is buffered keeps that
/// part: the frame completes when the rest arrives.
#[tokio::test]
async fn s10_hibernate_keeps_a_partial_frame() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/hibernate").await;
    let second = raw::frame(0x82, &[5u8; 3000]);
    let mut bytes = raw::text("first");
    bytes.extend_from_slice(&second[..1000]);
    c.send(&bytes).await;
    assert_eq!(c.read_text().await, "first");
    // The handler has hibernated with 1000 bytes of the next frame held.
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send(&second[1000..]).await;
    assert_eq!(c.read_frame().await, Some((0x82, vec![5u8; 3000])));
    // Same inside a fragmented text message, split in a character.
    let text = "añb".repeat(500);
    let b = text.as_bytes();
    c.send(&raw::frame(0x01, &b[..2])).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(&raw::frame(0x80, &b[2..])).await;
    assert_eq!(c.read_text().await, text);
}

/// S10: `/seed/hibernate` hibernates after every callback and still echoes,
/// many messages of many sizes, pipelined, in order (and answers pings).
#[tokio::test]
async fn s10_hibernate_echoes_many_messages() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/hibernate").await;
    let sizes = [0usize, 1, 125, 126, 1000, 65535, 65536, 200_000, 3];
    // Pipelined a round at a time (~270 kB in flight).
    for round in 0..20 {
        let mut sent = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let m = if (round + i) % 2 == 0 {
                WsMessage::text(format!("{round}:{i}:{}", "h".repeat(n)))
            } else {
                WsMessage::binary(vec![(round + i) as u8; n])
            };
            ws.feed(m.clone()).await.unwrap();
            sent.push(m);
        }
        ws.flush().await.unwrap();
        for m in &sent {
            assert_eq!(&recv(&mut ws).await, m);
        }
    }
    // Hibernated, then woken by a ping.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.send(WsMessage::Ping(b"zz".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await, WsMessage::Pong(b"zz".to_vec().into()));
    send_text(&mut ws, "last").await;
    assert_eq!(recv_text(&mut ws).await, "last");
}

// ====================================================================== S11

/// S11.1: text `stop` stops the connection: a close frame with 1000, then the
/// server closes TCP.
#[tokio::test]
async fn s11_1_stop_closes_with_1000_then_tcp() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/stop").await;
    c.send(&raw::text("before")).await;
    assert_eq!(c.read_text().await, "before");
    c.send(&raw::text("stop")).await;
    assert_eq!(c.read_close().await, (1000, String::new()));
    c.send(&raw::close(1000, "")).await;
    let t0 = Instant::now();
    assert!(c.read_to_eof().await.is_empty());
    assert!(t0.elapsed() < Duration::from_secs(2));
}

/// S11.1 with an independent client.
#[tokio::test]
async fn s11_1_stop_with_tungstenite() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/stop").await;
    send_text(&mut ws, "stop").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    expect_end(&mut ws).await;
}

/// S11.2: a close frame starts the closing handshake at once: data the client
/// sends afterwards reaches no callback, and the server closes TCP once the
/// client answers.
#[tokio::test]
async fn s11_2_close_frame_starts_closing_handshake() {
    let (addr, mut rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::text("close")).await;
    assert_eq!(c.read_close().await, (4000, "bye".to_string()));
    c.send(&raw::text("echo:too late")).await;
    c.send(&raw::frame(0x89, b"late ping")).await;
    c.send(&raw::close(4000, "")).await;
    assert!(
        c.read_to_eof().await.is_empty(),
        "nothing may follow the server's close frame"
    );
    drop(c); // the client closes TCP: no linger wait
    assert_eq!(terminate_reason(&mut rx).await, TerminateReason::Normal);
}

/// S11.2, RFC 6455 §7.1.1: a client that never answers the close frame is
/// dropped after the close timeout.
#[tokio::test]
async fn s11_2_unanswered_close_is_dropped_after_close_timeout() {
    let (addr, mut rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script?close_timeout=300").await;
    c.send(&raw::text("close")).await;
    let t0 = Instant::now();
    assert_eq!(c.read_close().await, (4000, "bye".to_string()));
    assert!(c.read_to_eof().await.is_empty());
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(c); // the client closes TCP: no linger wait
    let _ = terminate_reason(&mut rx).await;
}

/// S11.3, S11.4: `/seed/close` sends close 1000 `some-reason`; the frame after
/// it in the list is never sent. Every byte up to the server's TCP close is
/// checked.
#[tokio::test]
async fn s11_3_s11_4_close_with_reason_and_nothing_after() {
    let addr = demo().await;
    let mut c = Conn::ws(addr, "/seed/close").await;
    c.send(&raw::text("please close")).await;
    let mut expected = vec![0x88, 13, 0x03, 0xe8];
    expected.extend_from_slice(b"some-reason");
    while c.buf.len() < expected.len() {
        assert!(c.fill().await > 0, "EOF before the close frame");
    }
    c.send(&raw::close(1000, "")).await;
    let all = c.read_to_eof().await;
    assert_eq!(all, expected, "{:?}", String::from_utf8_lossy(&all));
}

/// S11.4 with an independent client.
#[tokio::test]
async fn s11_4_close_reason_with_tungstenite() {
    let addr = demo().await;
    let mut ws = connect(addr, "/seed/close").await;
    send_text(&mut ws, "x").await;
    assert_eq!(recv_close(&mut ws).await, (1000, "some-reason".into()));
    expect_end(&mut ws).await;
}

// ============================================================ crash, terminate

/// A panic in a route's init (before any upgrade) is answered 500; a panic
/// in the after-upgrade init closes with 1011. The server goes on.
#[tokio::test]
async fn crash_in_route_init_or_websocket_init() {
    let (tx, mut rx) = unbounded_channel();
    let router = script_app(tx).route("/boom", |req: Request| async move {
        if !req.path().is_empty() {
            panic!("route init panic");
        }
        Init::upgrade(lariat_demo::SeedEcho)
    });
    let addr = serve(router).await;
    let r = http(
        addr,
        &ws_get(
            "/boom",
            &format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\n\
                 Sec-WebSocket-Version: 13\r\n",
                raw::KEY
            ),
        ),
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.head);
    let mut ws = connect(addr, "/script?init=panic").await;
    assert_eq!(recv_close(&mut ws).await.0, 1011);
    expect_end(&mut ws).await;
    drop(ws);
    assert!(matches!(
        terminate_reason(&mut rx).await,
        TerminateReason::Crash(_)
    ));
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "echo:fine").await;
    assert_eq!(recv_text(&mut ws).await, "fine");
}

/// A handler panic closes its connection with 1011 and affects no other
/// connection.
#[tokio::test]
async fn crash_closes_with_1011_and_spares_other_connections() {
    let addr = demo().await;
    let mut a = connect(addr, "/seed/crash").await;
    let mut b = connect(addr, "/seed/crash").await;
    send_text(&mut a, "a").await;
    assert_eq!(recv_text(&mut a).await, "a");
    send_text(&mut a, "crash").await;
    assert_eq!(recv_close(&mut a).await.0, 1011);
    expect_end(&mut a).await;
    send_text(&mut b, "still here").await;
    assert_eq!(recv_text(&mut b).await, "still here");
    let mut c = connect(addr, "/seed/crash").await;
    send_text(&mut c, "new").await;
    assert_eq!(recv_text(&mut c).await, "new");
}

/// terminate: the client closed first (its code and reason), and the server
/// echoed the code (RFC 6455 §5.5.1).
#[tokio::test]
async fn terminate_reason_remote_close() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    ws.close(Some(CloseFrame {
        code: 4001.into(),
        reason: "client bye".into(),
    }))
    .await
    .unwrap();
    assert_eq!(recv_close(&mut ws).await.0, 4001);
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::Remote {
            code: 4001.into(),
            reason: "client bye".into()
        }
    );
}

/// terminate: a close frame without a code is reported as 1005.
#[tokio::test]
async fn terminate_reason_remote_close_without_code() {
    let (addr, mut rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::frame(0x88, b"")).await;
    assert_eq!(c.read_frame().await, Some((0x88, vec![])));
    assert!(c.read_to_eof().await.is_empty());
    drop(c); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::Remote {
            code: 1005.into(),
            reason: String::new()
        }
    );
}

/// terminate: the handler stopped (S11.1).
#[tokio::test]
async fn terminate_reason_stop() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "stop").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(terminate_reason(&mut rx).await, TerminateReason::Stop);
}

/// terminate: idle timeout (S8.3).
#[tokio::test]
async fn terminate_reason_idle_timeout() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script?idle=300").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::IdleTimeout
    );
}

/// terminate: a panic in a callback, with its message; the wire says 1011.
#[tokio::test]
async fn terminate_reason_crash() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "panic").await;
    assert_eq!(recv_close(&mut ws).await.0, 1011);
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    match terminate_reason(&mut rx).await {
        TerminateReason::Crash(m) => assert!(m.contains("script panic"), "{m}"),
        other => panic!("expected Crash, got {other:?}"),
    }
}

/// terminate: the client broke the protocol (an unmasked frame, RFC 6455 §5.1).
#[tokio::test]
async fn terminate_reason_protocol_error() {
    let (addr, mut rx) = script_server().await;
    let mut c = Conn::ws(addr, "/script").await;
    c.send(&raw::unmasked(0x81, b"naked")).await;
    assert_eq!(c.read_close().await.0, 1002);
    assert!(c.read_to_eof().await.is_empty());
    drop(c); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::Protocol(ProtocolError::BadMasking)
    );
}

/// terminate: the TCP connection dropped without a closing handshake.
#[tokio::test]
async fn terminate_reason_connection_lost() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "echo:x").await;
    assert_eq!(recv_text(&mut ws).await, "x");
    drop(ws);
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::ConnectionLost
    );
}

// ========================================================== runtime commands

/// `Command::Active(false)` stops reading from the client; `Active(true)`
/// resumes, and what was held back is then handled.
#[tokio::test]
async fn command_active_false_then_true() {
    let (addr, _rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "pause").await;
    assert_eq!(recv_text(&mut ws).await, "paused");
    let t0 = Instant::now();
    send_text(&mut ws, "echo:held").await;
    ws.send(WsMessage::Ping(b"held ping".to_vec().into()))
        .await
        .unwrap();
    // The timer set by "pause" (500 ms) resumes reading.
    assert_eq!(recv_text(&mut ws).await, "resumed");
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );
    // Then the held text and ping are handled, in order; the automatic pong
    // may overtake the echo (pongs go ahead of queued data).
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(recv(&mut ws).await);
    }
    let texts: Vec<_> = got.iter().filter(|m| m.is_text()).cloned().collect();
    assert_eq!(
        texts,
        [
            WsMessage::text("held"),
            WsMessage::text("saw ping held ping")
        ]
    );
    assert!(got.contains(&WsMessage::Pong(b"held ping".to_vec().into())));
}

/// `Command::SetIdleTimeout`: shortened at run time (S8.3).
#[tokio::test]
async fn command_set_idle_timeout_shortens() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await; // default: 60 s
    send_text(&mut ws, "idle:300").await;
    assert_eq!(recv_text(&mut ws).await, "idle set");
    let t0 = Instant::now();
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::IdleTimeout
    );
}

/// `Command::SetIdleTimeout(None)`: no idle timeout any more.
#[tokio::test]
async fn command_set_idle_timeout_none_disables() {
    let (addr, _rx) = script_server().await;
    let mut ws = connect(addr, "/script?idle=400").await;
    send_text(&mut ws, "noidle").await;
    assert_eq!(recv_text(&mut ws).await, "idle set");
    let got = collect_for(&mut ws, Duration::from_millis(1200)).await;
    assert!(got.is_empty(), "{got:?}");
    send_text(&mut ws, "echo:alive").await;
    assert_eq!(recv_text(&mut ws).await, "alive");
}

/// `Command::SetMaxFrameSize` at run time (S9).
#[tokio::test]
async fn command_set_max_frame_size() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "max:100").await;
    assert_eq!(recv_text(&mut ws).await, "max set");
    send_text(&mut ws, &"m".repeat(100)).await;
    assert_eq!(recv_text(&mut ws).await, "m".repeat(100));
    send_text(&mut ws, &"m".repeat(101)).await;
    assert_eq!(recv_close(&mut ws).await.0, 1009);
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::Protocol(ProtocolError::FrameTooBig)
    );
}

/// `Command::ShutdownReason`: terminate gets `Custom` in place of `Stop`.
#[tokio::test]
async fn command_shutdown_reason_is_reported() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "reason:moved on").await;
    assert_eq!(recv_text(&mut ws).await, "reason set");
    send_text(&mut ws, "stop").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    expect_end(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    assert_eq!(
        terminate_reason(&mut rx).await,
        TerminateReason::Custom("moved on".into())
    );
}

/// S3.1: timers can be cancelled (`Context::cancel_timer` gives the message
/// back once); a cancelled timer never fires, the others do.
#[tokio::test]
async fn timers_cancel() {
    let (addr, _rx) = script_server().await;
    let mut ws = connect(addr, "/script").await;
    send_text(&mut ws, "timers").await;
    send_text(&mut ws, "cancel").await;
    // Everything up to B (timed at 600 ms; A, cancelled, was due at 300 ms).
    let mut got = Vec::new();
    while got.last().map(String::as_str) != Some("B") {
        got.push(recv_text(&mut ws).await);
        assert!(got.len() <= 3, "{got:?}");
    }
    assert_eq!(
        got,
        [
            "timers started 2",
            "cancelled Some(\"echo:A\") again None left 1",
            "B"
        ]
    );
    // And A never comes later either.
    let late = collect_for(&mut ws, Duration::from_millis(300)).await;
    assert!(late.is_empty(), "{late:?}");
}

/// `Handle::send` to a connection that has ended fails and gives the message
/// back.
#[tokio::test]
async fn handle_send_to_closed_connection_is_err() {
    let (addr, mut rx) = script_server().await;
    let mut ws = connect(addr, "/script?init=handle").await;
    assert_eq!(recv_text(&mut ws).await, "handle sent");
    let handle = reported_handle(&mut rx).await;
    assert!(!handle.is_closed());
    handle.send("echo:open".into()).unwrap();
    assert_eq!(recv_text(&mut ws).await, "open");
    client_close(&mut ws).await;
    drop(ws); // the client closes TCP: no linger wait
    let _ = terminate_reason(&mut rx).await;
    assert!(handle.is_closed());
    assert_eq!(
        handle.send("too late".to_string()),
        Err(SendError::Closed("too late".to_string()))
    );
}

// ================================================================== HTTP

/// Plain HTTP keeps the connection alive: two GETs on one TCP connection.
#[tokio::test]
async fn http_keep_alive_two_gets_on_one_connection() {
    let addr = demo().await;
    let mut c = Conn::open(addr).await;
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        let r = c.read_response().await;
        assert_eq!(r.status, 200, "{}", r.head);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(!r.body.is_empty());
    }
}
