//! S11 (closing). Send one of these words:
//! - `stop`: the handler stops; the server closes properly, with 1000 (S11.1);
//! - `close`: the seed's close frame, code 1000 and reason `some-reason`
//!   (S11.2, S11.4); the text frame listed after it is never sent (S11.3);
//! - anything else is echoed.
//!
//! And at any time (S11.1): a timer stops every connection after 60 s.
//! `terminate` prints why each connection ended.
//!
//! Run: `cargo run --example s11_closing [ADDR]`, then `websocat ws://127.0.0.1:8080/`,
//! or in a browser console: `w = new WebSocket("ws://127.0.0.1:8080/");`
//! `w.onclose = e => console.log(e.code, e.reason); w.send("close")` logs `1000 some-reason`.

use std::time::Duration;

use lariat::{Context, Frame, Handler, Init, Message, Reply, Router, Server, TerminateReason};

struct Closer;

/// The timer's message: time is up.
struct TimeUp;

impl Handler for Closer {
    type Info = TimeUp;

    async fn init(&mut self, ctx: &mut Context<TimeUp>) -> Reply {
        ctx.start_timer(Duration::from_secs(60), TimeUp);
        Reply::ok()
    }

    async fn handle(&mut self, msg: Message, _: &mut Context<TimeUp>) -> Reply {
        match msg {
            Message::Text(t) if t == "stop" => Reply::stop(),
            Message::Text(t) if t == "close" => {
                Reply::close(1000, "some-reason").and(Frame::text("never sent"))
            }
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }

    async fn info(&mut self, _: TimeUp, _: &mut Context<TimeUp>) -> Reply {
        Reply::stop()
    }

    fn terminate(&mut self, reason: &TerminateReason) {
        println!("connection ended: {reason:?}");
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!(
        "S11: ws://{}/ — send stop, close, or anything",
        server.local_addr()?
    );
    let router = Router::new().route("/", |_req| async { Init::upgrade(Closer) });
    server.serve(router).await
}
