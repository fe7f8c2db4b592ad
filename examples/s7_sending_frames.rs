//! S7 (sending frames): what a callback returns is what is sent.
//! Send one of these words:
//! - `nothing`: `Reply::ok()`, nothing is sent (S7.1);
//! - `one`: one text frame (S7.2);
//! - `ping`: a ping frame — any frame type can be sent (S7.3); the client pongs;
//! - `many`: the seed's list, in order: text `Hello`, text `world!`, binary of
//!   1,000 zero bytes (S7.4);
//! - `close`: a close frame, code 1000 (S7.3, S11.2).
//!
//! Run: `cargo run --example s7_sending_frames [ADDR]`, then
//! `websocat ws://127.0.0.1:8080/` and type the words. In a browser console:
//! `w = new WebSocket("ws://127.0.0.1:8080/"); w.onmessage = e => console.log(e.data); w.send("many")`.

use lariat::{Bytes, Context, Frame, Handler, Init, Message, Reply, Router, Server};

struct Sender;

impl Handler for Sender {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        let Message::Text(word) = msg else {
            return Reply::ok();
        };
        match word.as_str() {
            "one" => Reply::text("one frame"),
            "ping" => Reply::frame(Frame::Ping(Bytes::from_static(b"are you there?"))),
            "many" => Reply::frames([
                Frame::text("Hello"),
                Frame::text("world!"),
                Frame::binary(vec![0u8; 1000]),
            ]),
            "close" => Reply::frame(Frame::close(1000, "as asked")),
            _ => Reply::ok(), // "nothing", and anything else
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!(
        "S7: ws://{}/ — send nothing, one, ping, many or close",
        server.local_addr()?
    );
    let router = Router::new().route("/", |_req| async { Init::upgrade(Sender) });
    server.serve(router).await
}
