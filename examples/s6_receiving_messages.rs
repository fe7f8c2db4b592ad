//! S6 (receiving messages): whatever is sent to the connection's `Handle`
//! (Cowboy's pid) — from any thread or task — reaches `info`, in order, as do
//! timers. The seed's example forwards `{log, Text}` to the client as text.
//! Here a plain `std::thread`, started by the after-upgrade init (S3), sends a
//! `Log` every second; it stops when `send` fails because the connection ended.
//!
//! Run: `cargo run --example s6_receiving_messages [ADDR]`, then
//! `websocat ws://127.0.0.1:8080/` prints `tick 1`, `tick 2`, ... once a second.
//! In a browser console:
//! `w = new WebSocket("ws://127.0.0.1:8080/"); w.onmessage = e => console.log(e.data)`.

use std::time::Duration;

use lariat::{Context, Handler, Init, Message, Reply, Router, Server};

/// What can be sent to this handler's connection.
enum Info {
    Log(String),
}

struct Ticker;

impl Handler for Ticker {
    type Info = Info;

    async fn init(&mut self, ctx: &mut Context<Info>) -> Reply {
        let handle = ctx.handle().clone(); // cloneable and Send
        std::thread::spawn(move || {
            for n in 1.. {
                std::thread::sleep(Duration::from_secs(1));
                if handle.send(Info::Log(format!("tick {n}"))).is_err() {
                    println!("conn {}: closed, the thread stops", handle.id());
                    return;
                }
            }
        });
        Reply::ok()
    }

    async fn handle(&mut self, _: Message, _: &mut Context<Info>) -> Reply {
        Reply::ok()
    }

    // `websocket_info({log, Text}, State) -> {[{text, Text}], State}`.
    async fn info(&mut self, info: Info, _: &mut Context<Info>) -> Reply {
        match info {
            Info::Log(text) => Reply::text(text),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!("S6: ws://{}/", server.local_addr()?);
    let router = Router::new().route("/", |_req| async { Init::upgrade(Ticker) });
    server.serve(router).await
}
