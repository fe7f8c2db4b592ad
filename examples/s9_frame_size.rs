//! S9 (frame size limit): a maximum frame size is set at the upgrade — the
//! seed's example uses 8,000,000 bytes — and a bigger frame closes the
//! connection with 1009 (message too big). lariat's default is 1 MiB;
//! `Upgrade::unlimited_size()` is Cowboy's historical "no limit", explicit.
//! Here the query chooses: `?max=BYTES`, or `?max=none` for no limit.
//!
//! Run: `cargo run --example s9_frame_size [ADDR]`, then in a browser console
//! `w = new WebSocket("ws://127.0.0.1:8080/?max=1000"); w.onclose = e => console.log(e.code);`
//! `w.send("x".repeat(1001))` logs 1009, while
//! `w.send("x".repeat(1000))` is answered `1000 bytes, accepted`.
//! Or with Python's `websockets`, which reports `received 1009 (message too big)`:
//! `python3 -c 'from websockets.sync.client import connect; w = connect("ws://127.0.0.1:8080/?max=1000"); w.send("x" * 1001); w.recv()'`

use lariat::{Context, Handler, Init, Message, Reply, Request, Router, Server, Upgrade};

struct Echo;

impl Handler for Echo {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(format!("{} bytes, accepted", t.len())),
            Message::Binary(b) => Reply::text(format!("{} bytes, accepted", b.len())),
            _ => Reply::ok(),
        }
    }
}

async fn init(req: Request) -> Init<Echo> {
    let up = Upgrade::new(Echo);
    match req.query_param("max").as_deref() {
        Some("none") => up.unlimited_size(),
        Some(n) => match n.parse::<u64>() {
            Ok(n) => up.max_frame_size(n),
            Err(_) => up.max_frame_size(8_000_000),
        },
        None => up.max_frame_size(8_000_000), // the seed's value
    }
    .into()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!("S9: ws://{}/?max=1000", server.local_addr()?);
    server.serve(Router::new().route("/", init)).await
}
