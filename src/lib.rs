//! The lariat demo server: one route per behaviour of Cowboy's WebSocket
//! guide (see `../shared/SPEC.md` S1-S11), plus `/echo` for conformance runs.
//! `cargo run --release` serves it on 127.0.0.1:8080.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lariat::http::StatusCode;
use lariat::{
    response, Context, Frame, Handle, Handler, Init, Message, Reply, Request, Router,
    TerminateReason, Upgrade,
};

/// The demo page: try `/echo` and `/seed/log` from a browser.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

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

/// The demo's routes.
pub fn app() -> Router {
    let hub = Arc::new(LogHub::default());
    let post_hub = hub.clone();
    Router::new()
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
