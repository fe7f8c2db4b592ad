//! S10 (saving memory): any callback result can ask to hibernate. Once the
//! callback returns, the connection gives back the memory it can rebuild
//! (read and write buffers, mailbox and timer storage), so an idle connection
//! costs as little as possible; the handler's own state is kept. It costs a
//! little CPU on busy connections (see the benchmarks).
//!
//! Run: `cargo run --example s10_hibernate [ADDR]`, then
//! `websocat ws://127.0.0.1:8080/`: each line comes back numbered, the count
//! surviving the hibernation between messages. In a browser console:
//! `w = new WebSocket("ws://127.0.0.1:8080/"); w.onmessage = e => console.log(e.data); w.send("a")`.

use lariat::{Context, Handler, Init, Message, Reply, Router, Server};

/// Handler state survives hibernation; only rebuildable buffers are freed.
struct Sleepy {
    seen: u64,
}

impl Handler for Sleepy {
    type Info = ();

    async fn init(&mut self, _: &mut Context<()>) -> Reply {
        Reply::ok().hibernate() // idle from the start: hibernate at once
    }

    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => {
                self.seen += 1;
                Reply::text(format!("#{} {t}", self.seen)).hibernate()
            }
            _ => Reply::ok().hibernate(),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!("S10: ws://{}/", server.local_addr()?);
    let router = Router::new().route("/", |_req| async { Init::upgrade(Sleepy { seen: 0 }) });
    server.serve(router).await
}
