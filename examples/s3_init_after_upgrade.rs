//! S3 (initialisation after the upgrade): the handler's `init` runs inside
//! the connection, after the handshake and before any frame is handled.
//! - S3.1: the connection's own things work there: it starts a 1-second
//!   timer whose message, `Hello!`, later reaches `info` (S6), which sends it.
//! - S3.2: it can send frames at once: `Hello!` right after the upgrade.
//!
//! Run: `cargo run --example s3_init_after_upgrade [ADDR]`, then
//! `websocat ws://127.0.0.1:8080/` prints `Hello! (from init)` at once and
//! `Hello! (from the timer)` a second later. In a browser console:
//! `w = new WebSocket("ws://127.0.0.1:8080/"); w.onmessage = e => console.log(e.data)`.

use std::time::Duration;

use lariat::{Context, Handler, Init, Message, Reply, Router, Server};

struct Greeter;

impl Handler for Greeter {
    type Info = &'static str;

    async fn init(&mut self, ctx: &mut Context<&'static str>) -> Reply {
        // S3.1: Erlang's `erlang:start_timer(1000, self(), <<"Hello!">>)`.
        ctx.start_timer(Duration::from_secs(1), "Hello! (from the timer)");
        // S3.2: `{[{text, <<"Hello!">>}], State}`.
        Reply::text("Hello! (from init)")
    }

    async fn handle(&mut self, _: Message, _: &mut Context<&'static str>) -> Reply {
        Reply::ok()
    }

    async fn info(&mut self, msg: &'static str, _: &mut Context<&'static str>) -> Reply {
        Reply::text(msg)
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!("S3: ws://{}/", server.local_addr()?);
    let router = Router::new().route("/", |_req| async { Init::upgrade(Greeter) });
    server.serve(router).await
}
