//! The two ways a WebSocket upgrade is served (`crates/lariat/src/direct.rs`):
//! the direct path (a whole head in the first read, answered without hyper)
//! and hyper's, which takes everything else with the bytes already read.
//! Each test drives one case through a raw `TcpStream` (hand-built HTTP and
//! frames) and checks every byte it relies on (RFC 6455 §4.2, S1).

#[path = "support/raw.rs"]
mod raw;
#[path = "support/server.rs"]
mod server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lariat::{Context, Handler, Init, Message, Reply, Request, Router};

use raw::{Conn, ACCEPT};
use server::serve;

struct Echo;

impl Handler for Echo {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

/// `/ws` upgrades unless `?deny` (then init answers 403); `/plain` is plain
/// HTTP. Counts init runs on `/ws`.
async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let inits = Arc::new(AtomicUsize::new(0));
    let counted = inits.clone();
    let router = Router::new()
        .route("/ws", move |req: Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            let deny = req.query().is_some_and(|q| q.contains("deny"));
            async move {
                if deny {
                    Init::respond(lariat::response(
                        lariat::http::StatusCode::FORBIDDEN,
                        "no\n",
                    ))
                } else {
                    Init::upgrade(Echo)
                }
            }
        })
        .route("/boom", |_req: Request| async {
            if true {
                panic!("init panics (test)");
            }
            Init::upgrade(Echo)
        })
        .http("/plain", |_req: Request| async {
            lariat::response(lariat::http::StatusCode::OK, "plain\n")
        });
    (serve(router).await, inits)
}

fn assert_101(r: &raw::Response) {
    assert_eq!(r.status, 101, "{}", r.head);
    assert!(r.head.starts_with("HTTP/1.1 101"), "{}", r.head);
    assert_eq!(
        r.header("sec-websocket-accept").as_deref(),
        Some(ACCEPT),
        "{}",
        r.head
    );
    assert!(
        r.header("upgrade")
            .unwrap()
            .eq_ignore_ascii_case("websocket"),
        "{}",
        r.head
    );
    assert!(
        r.header("connection")
            .unwrap()
            .eq_ignore_ascii_case("upgrade"),
        "{}",
        r.head
    );
}

/// RFC 6455 §4.2.2 on the direct path: the 101, then frames pipelined
/// behind the request in the same write reach the handler in order (S1.1).
#[tokio::test]
async fn rfc6455_4_2_2_whole_head_in_one_write_upgrades_directly() {
    let (addr, inits) = server().await;
    let mut bytes = raw::text("one");
    bytes.extend(raw::text("two"));
    let (mut c, r) = Conn::upgrade(addr, "/ws", "", &bytes).await;
    assert_101(&r);
    assert_eq!(c.read_text().await, "one");
    assert_eq!(c.read_text().await, "two");
    assert_eq!(inits.load(Ordering::SeqCst), 1);
}

/// A head split over two writes (the first read sees half of it) is
/// served by hyper from its first byte: still a 101 and an echo.
#[tokio::test]
async fn head_split_over_two_writes_still_upgrades() {
    let (addr, inits) = server().await;
    let mut c = Conn::open(addr).await;
    let req = raw::upgrade_request(addr, "/ws", "");
    let (a, b) = req.as_bytes().split_at(20);
    c.send(a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut rest = b.to_vec();
    rest.extend(raw::text("after the split"));
    c.send(&rest).await;
    let r = c.read_response().await;
    assert_101(&r);
    assert_eq!(c.read_text().await, "after the split");
    assert_eq!(inits.load(Ordering::SeqCst), 1);
}

/// S1: init answers plain HTTP on an upgrade route: its response, once (init
/// ran once), then the connection stays open for the next request
/// (keep-alive), which is served too.
#[tokio::test]
async fn init_answering_plain_http_runs_once_and_keeps_the_connection() {
    let (addr, inits) = server().await;
    let mut c = Conn::open(addr).await;
    c.send(raw::upgrade_request(addr, "/ws?deny", "").as_bytes())
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 403, "{}", r.head);
    assert_eq!(r.body, b"no\n");
    assert_eq!(inits.load(Ordering::SeqCst), 1, "init ran once");
    c.send(format!("GET /plain HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b"plain\n");
    // And an upgrade as the third request on the same connection.
    c.send(raw::upgrade_request(addr, "/ws", "").as_bytes())
        .await;
    let r = c.read_response().await;
    assert_101(&r);
    c.send(&raw::text("third")).await;
    assert_eq!(c.read_text().await, "third");
    assert_eq!(inits.load(Ordering::SeqCst), 2);
}

/// More headers than the direct path parses (32): hyper takes the request
/// (its limit is 64) and the upgrade goes ahead.
#[tokio::test]
async fn many_headers_upgrade_through_hyper() {
    let (addr, _) = server().await;
    let extra: String = (0..40).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let (mut c, r) = Conn::upgrade(addr, "/ws", &extra, &raw::text("many")).await;
    assert_101(&r);
    assert_eq!(c.read_text().await, "many");
}

/// RFC 6455 §4.2.1: a request the direct path sees whole but must refuse
/// (no Sec-WebSocket-Key) gets hyper's 400, and init never runs (S1.2).
#[tokio::test]
async fn rfc6455_4_2_1_invalid_handshake_seen_whole_gets_400() {
    let (addr, inits) = server().await;
    let mut c = Conn::open(addr).await;
    c.send(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 400, "{}", r.head);
    // Init runs first (S1.3: it may answer plain HTTP); the upgrade it asked
    // for is refused.
    assert_eq!(inits.load(Ordering::SeqCst), 1);
}

/// A route init that panics while the direct path runs it: a 500 (with a
/// log line), the connection still served (keep-alive), the server
/// unaffected.
#[tokio::test]
async fn init_panicking_on_the_direct_path_gets_500() {
    let (addr, _) = server().await;
    let mut c = Conn::open(addr).await;
    c.send(raw::upgrade_request(addr, "/boom", "").as_bytes())
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 500, "{}", r.head);
    c.send(format!("GET /plain HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(c.read_response().await.status, 200);
    let mut ws = Conn::ws(addr, "/ws").await;
    ws.send(&raw::text("still here")).await;
    assert_eq!(ws.read_text().await, "still here");
}

/// A head larger than the direct path's first read (4 KiB; here a 5 KiB
/// cookie, under the 16 KiB limit): hyper reads the rest and upgrades.
#[tokio::test]
async fn head_over_4_kib_upgrades_through_hyper() {
    let (addr, _) = server().await;
    let extra = format!("Cookie: c={}\r\n", "x".repeat(5 * 1024));
    let (mut c, r) = Conn::upgrade(addr, "/ws", &extra, &raw::text("big head")).await;
    assert_101(&r);
    assert_eq!(c.read_text().await, "big head");
}
