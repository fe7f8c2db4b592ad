//! The lariat demo server: one route per behaviour of Cowboy's WebSocket
//! guide (see `../shared/SPEC.md` S1-S11), plus `/echo` for conformance runs.
//! `cargo run --release` serves it on 127.0.0.1:8080.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lariat::http::StatusCode;
use lariat::pubsub::Topics;
use lariat::{
    response, Context, Frame, Handle, Handler, Init, Message, Reply, Request, Router,
    TerminateReason, Upgrade,
};

/// The demo page: try `/echo` and `/seed/log` from a browser.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

/// The chat page (`/chat`): rooms are topics.
pub const CHAT_HTML: &str = include_str!("../static/chat.html");

/// `/echo`: every text and binary message echoed unchanged.
pub struct Echo;

impl Handler for Echo {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            Message::Binary(b) => Reply::binary(b),
            _ => Reply::ok(),
        }
    }
}

/// S5: the seed's example — text echoed; binary, ping and pong ignored.
pub struct SeedEcho;

impl Handler for SeedEcho {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

/// S3.2: a frame sent by the after-upgrade init.
pub struct Hello;

impl Handler for Hello {
    type Info = ();
    async fn init(&mut self, _: &mut Context<()>) -> Reply {
        Reply::text("Hello!")
    }
    async fn handle(&mut self, _: Message, _: &mut Context<()>) -> Reply {
        Reply::ok()
    }
}

/// S3.1: the after-upgrade init starts a 1 s timer; `info` sends its message.
pub struct Timer;

impl Handler for Timer {
    type Info = &'static str;
    async fn init(&mut self, ctx: &mut Context<&'static str>) -> Reply {
        ctx.start_timer(Duration::from_secs(1), "Hello!");
        Reply::ok()
    }
    async fn handle(&mut self, _: Message, _: &mut Context<&'static str>) -> Reply {
        Reply::ok()
    }
    async fn info(&mut self, msg: &'static str, _: &mut Context<&'static str>) -> Reply {
        Reply::text(msg)
    }
}

/// S7.4: text `Hello`, text `world!`, 1,000 zero bytes, in that order.
pub struct Multi;

impl Handler for Multi {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(_) => Reply::frames([
                Frame::text("Hello"),
                Frame::text("world!"),
                Frame::binary(vec![0u8; 1000]),
            ]),
            _ => Reply::ok(),
        }
    }
}

/// S11.3, S11.4: close 1000 `some-reason`, then a frame that must never be sent.
pub struct Close;

impl Handler for Close {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(_) => Reply::close(1000, "some-reason").and(Frame::text("never sent")),
            _ => Reply::ok(),
        }
    }
}

/// S11.1: text `stop` stops the connection; other text is echoed.
pub struct Stop;

impl Handler for Stop {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) if t == "stop" => Reply::stop(),
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

/// S10: text and binary echoed; every callback hibernates.
pub struct Hibernate;

impl Handler for Hibernate {
    type Info = ();
    async fn init(&mut self, _: &mut Context<()>) -> Reply {
        Reply::ok().hibernate()
    }
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            Message::Binary(b) => Reply::binary(b),
            _ => Reply::ok(),
        }
        .hibernate()
    }
    async fn info(&mut self, _: (), _: &mut Context<()>) -> Reply {
        Reply::ok().hibernate()
    }
}

/// Text `crash` makes the handler panic (the connection closes with 1011,
/// others are unaffected); other text is echoed.
pub struct Crash;

impl Handler for Crash {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) if t == "crash" => panic!("crash requested by the client"),
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

/// The connections of `/seed/log`, by id, for `POST /log` to reach.
#[derive(Default)]
pub struct LogHub {
    subscribers: Mutex<HashMap<u64, Handle<String>>>,
}

impl LogHub {
    /// Deliver `text` to every `/seed/log` connection; returns how many.
    pub fn publish(&self, text: &str) -> usize {
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.values()
            .filter(|h| h.send(text.to_string()).is_ok())
            .count()
    }
}

/// S6: messages sent to the connection's handle (here by `POST /log`) are
/// forwarded to the client as text frames.
pub struct Log {
    hub: Arc<LogHub>,
    id: u64,
}

impl Handler for Log {
    type Info = String;
    async fn init(&mut self, ctx: &mut Context<String>) -> Reply {
        self.id = ctx.id();
        let mut subs = self
            .hub
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subs.insert(ctx.id(), ctx.handle().clone());
        Reply::ok()
    }
    async fn handle(&mut self, _: Message, _: &mut Context<String>) -> Reply {
        Reply::ok()
    }
    async fn info(&mut self, text: String, _: &mut Context<String>) -> Reply {
        Reply::text(text)
    }
    fn terminate(&mut self, _: &TerminateReason) {
        let mut subs = self
            .hub
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subs.remove(&self.id);
    }
}

/// S2: choose `mqtt` when offered; 400 when the header lists no `mqtt`;
/// a plain upgrade when there is no header.
pub async fn mqtt_init(req: Request) -> Init<SeedEcho> {
    if !req.has_protocol_header() {
        return Init::upgrade(SeedEcho); // S2.3
    }
    if req.protocols().contains(&"mqtt") {
        Upgrade::new(SeedEcho).protocol("mqtt").into() // S2.1
    } else {
        Init::respond(response(
            StatusCode::BAD_REQUEST,
            "mqtt is the only subprotocol spoken here\n",
        )) // S2.2
    }
}

/// `/chat/:room`: the connection joins the room's topic; each text message
/// it sends goes to everyone in the room, on every node, the sender
/// included. The page sends an empty message now and then to stay within
/// the idle timeout; those are not broadcast.
pub struct Chat {
    topics: Topics,
    topic: String,
}

/// What the chat says to one of its clients (JSON, like the chat messages).
fn chat_notice(text: &str) -> Reply {
    Reply::text(serde_json::json!({ "system": text }).to_string())
}

impl Handler for Chat {
    type Info = ();
    async fn init(&mut self, ctx: &mut Context<()>) -> Reply {
        ctx.subscribe(&self.topics, &self.topic);
        Reply::ok()
    }
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) if t.is_empty() => Reply::ok(),
            Message::Text(t) => match self.topics.publish(&self.topic, t).await {
                Ok(_) => Reply::ok(),
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "chat message not delivered everywhere");
                    chat_notice(&format!("not delivered everywhere: {e}"))
                }
            },
            _ => Reply::ok(),
        }
    }
    async fn missed(&mut self, count: u64, _: &mut Context<()>) -> Reply {
        chat_notice(&format!(
            "you missed {count} message(s): the connection was too slow"
        ))
    }
}

/// A room name: 1-64 letters, digits, `-` or `_`.
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `/bench/sub`: subscribed to topic `bench`, publications written straight
/// out (the fan-out benchmark's subscribers).
pub struct BenchSub {
    topics: Topics,
}

impl Handler for BenchSub {
    type Info = ();
    async fn init(&mut self, ctx: &mut Context<()>) -> Reply {
        ctx.subscribe(&self.topics, "bench");
        Reply::ok()
    }
    async fn handle(&mut self, _: Message, _: &mut Context<()>) -> Reply {
        Reply::ok()
    }
}

/// `/bench/pub`: each text message is published to topic `bench` (once,
/// whatever the number of subscribers); the publisher gets back the
/// number of subscribers reached, as text.
pub struct BenchPub {
    topics: Topics,
}

impl Handler for BenchPub {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => match self.topics.publish("bench", t).await {
                Ok(n) => Reply::text(n.to_string()),
                Err(e) => Reply::text(format!("error: {e}")),
            },
            _ => Reply::ok(),
        }
    }
}

/// `/bench/loop-pub`: the fan-out benchmark's baseline without topics —
/// each text message is sent to every `/bench/loop` connection's handle in
/// a loop, and each connection's handler sends it as a frame (the
/// `/seed/log` pattern). Replies with the number reached.
pub struct BenchLoopPub {
    hub: Arc<LogHub>,
}

impl Handler for BenchLoopPub {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(self.hub.publish(&t).to_string()),
            _ => Reply::ok(),
        }
    }
}

/// The demo's routes, with topics on this node only.
pub fn app() -> Router {
    app_with(Topics::new())
}

/// The demo's routes; `/chat/:room` and the `/bench/*` topic routes use
/// `topics` (which may span several nodes through Redis).
pub fn app_with(topics: Topics) -> Router {
    let hub = Arc::new(LogHub::default());
    let post_hub = hub.clone();
    let bench_hub = Arc::new(LogHub::default());
    let bench_loop_hub = bench_hub.clone();
    let (chat_topics, sub_topics, pub_topics) = (topics.clone(), topics.clone(), topics);
    Router::new()
        .http("/chat", |_req| async {
            let mut r = response(StatusCode::OK, CHAT_HTML);
            r.headers_mut().insert(
                "content-type",
                "text/html; charset=utf-8".parse().expect("static header"),
            );
            r
        })
        .route("/chat/:room", move |req| {
            let topics = chat_topics.clone();
            async move {
                let room = req.param("room").unwrap_or_default();
                if !valid_room(room) {
                    return Init::respond(response(
                        StatusCode::BAD_REQUEST,
                        "a room name is 1-64 letters, digits, '-' or '_'\n",
                    ));
                }
                let topic = format!("chat:{room}");
                Upgrade::new(Chat { topics, topic })
                    .max_message_size(64 * 1024)
                    .idle_timeout(Duration::from_secs(90))
                    .deflate(lariat::DeflateConfig::default())
                    .into()
            }
        })
        .route("/bench/sub", move |_req| {
            let topics = sub_topics.clone();
            async move { Init::upgrade(BenchSub { topics }) }
        })
        .route("/bench/pub", move |_req| {
            let topics = pub_topics.clone();
            async move { Init::upgrade(BenchPub { topics }) }
        })
        .route("/bench/loop", move |_req| {
            let hub = bench_hub.clone();
            async move { Init::upgrade(Log { hub, id: 0 }) }
        })
        .route("/bench/loop-pub", move |_req| {
            let hub = bench_loop_hub.clone();
            async move { Init::upgrade(BenchLoopPub { hub }) }
        })
        .http("/", |_req| async {
            let mut r = response(StatusCode::OK, INDEX_HTML);
            r.headers_mut().insert(
                "content-type",
                "text/html; charset=utf-8".parse().expect("static header"),
            );
            r
        })
        .route("/echo", |_req| async {
            Upgrade::new(Echo)
                .max_frame_size(64 << 20)
                .max_message_size(64 << 20)
                .max_fragments(1 << 20)
                .send_queue_limit(128 << 20, lariat::SendQueueFull::Close)
                .deflate(lariat::DeflateConfig::default())
                .idle_timeout(Duration::from_secs(60))
                .into()
        })
        .route("/seed/echo", |_req| async { Init::upgrade(SeedEcho) })
        .route("/seed/hello", |_req| async { Init::upgrade(Hello) })
        .route("/seed/timer", |_req| async { Init::upgrade(Timer) })
        .route("/seed/mqtt", mqtt_init)
        .route("/seed/multi", |_req| async { Init::upgrade(Multi) })
        .route("/seed/close", |_req| async { Init::upgrade(Close) })
        .route("/seed/stop", |_req| async { Init::upgrade(Stop) })
        .route("/seed/idle", |_req| async {
            Upgrade::new(SeedEcho)
                .idle_timeout(Duration::from_secs(2))
                .into()
        })
        .route("/seed/maxframe", |_req| async {
            Upgrade::new(Echo).max_frame_size(8_000).into()
        })
        .route("/seed/hibernate", |_req| async { Init::upgrade(Hibernate) })
        .route("/seed/crash", |_req| async { Init::upgrade(Crash) })
        .route("/seed/log", move |_req| {
            let hub = hub.clone();
            async move { Init::upgrade(Log { hub, id: 0 }) }
        })
        .http("/log", move |req| {
            let hub = post_hub.clone();
            async move {
                if req.method() != lariat::http::Method::POST {
                    return response(StatusCode::METHOD_NOT_ALLOWED, "POST a text body\n");
                }
                match std::str::from_utf8(req.body()) {
                    Ok(text) => {
                        let n = hub.publish(text);
                        response(
                            StatusCode::ACCEPTED,
                            format!("delivered to {n} connection(s)\n"),
                        )
                    }
                    Err(_) => response(StatusCode::BAD_REQUEST, "the body must be UTF-8 text\n"),
                }
            }
        })
}

/// The README's handler example, compiled as a doc test so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
