//! S5 (receiving frames): `handle` is called for every text, binary, ping and
//! pong message from the client — fragmented messages arrive whole. The seed's
//! example: echo text, ignore the rest. Pings were already answered by the
//! server (S8.1); they are printed here to show they arrive for information.
//!
//! Run: `cargo run --example s5_receiving_frames [ADDR]`, then
//! `websocat ws://127.0.0.1:8080/` (each line comes back; `websocat --binary`
//! sends binary, which is ignored), or in a browser console
//! `w = new WebSocket("ws://127.0.0.1:8080/"); w.onmessage = e => console.log(e.data); w.send("hi")`.

use lariat::{Context, Handler, Init, Message, Reply, Router, Server};

struct SeedEcho;

impl Handler for SeedEcho {
    type Info = ();
    async fn handle(&mut self, msg: Message, ctx: &mut Context<()>) -> Reply {
        match msg {
            // Reply: `{[{text, Data}], State}`.
            Message::Text(t) => Reply::text(t),
            // Ignore: `{[], State}`.
            Message::Binary(b) => {
                println!("conn {}: {} binary bytes, ignored", ctx.id(), b.len());
                Reply::ok()
            }
            Message::Ping(_) => {
                println!("conn {}: ping (already answered)", ctx.id());
                Reply::ok()
            }
            Message::Pong(_) => Reply::ok(),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!("S5: ws://{}/", server.local_addr()?);
    let router = Router::new().route("/", |_req| async { Init::upgrade(SeedEcho) });
    server.serve(router).await
}
