//! S2 (subprotocols): the seed's example. Init reads the client's list from
//! `sec-websocket-protocol`; it picks `mqtt` and sends it back (S2.1), refuses
//! with 400 when `mqtt` is not listed (S2.2), and upgrades without a
//! subprotocol when there is no such header (S2.3). lariat never answers with
//! a subprotocol the client did not offer (S2.4).
//!
//! Run: `cargo run --example s2_subprotocols [ADDR]`, then
//! - `websocat --protocol 'v12.stomp, mqtt' ws://127.0.0.1:8080/`: the first
//!   frame says `subprotocol: mqtt`;
//! - `websocat --protocol v12.stomp ws://127.0.0.1:8080/`: refused, HTTP 400;
//! - `websocat ws://127.0.0.1:8080/`: `subprotocol: none`.
//!
//! In a browser console: `new WebSocket("ws://127.0.0.1:8080/", ["mqtt"]).protocol`.

use lariat::http::StatusCode;
use lariat::{response, Context, Handler, Init, Message, Reply, Request, Router, Server, Upgrade};

struct Echo;

impl Handler for Echo {
    type Info = ();
    async fn init(&mut self, ctx: &mut Context<()>) -> Reply {
        // The chosen subprotocol is known inside the connection too.
        Reply::text(format!("subprotocol: {}", ctx.protocol().unwrap_or("none")))
    }
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            _ => Reply::ok(),
        }
    }
}

async fn init(req: Request) -> Init<Echo> {
    if !req.has_protocol_header() {
        return Init::upgrade(Echo); // S2.3
    }
    if req.protocols().contains(&"mqtt") {
        Upgrade::new(Echo).protocol("mqtt").into() // S2.1
    } else {
        Init::respond(response(
            StatusCode::BAD_REQUEST,
            "only mqtt is spoken here\n",
        )) // S2.2
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!("S2: ws://{}/ (offer mqtt)", server.local_addr()?);
    server.serve(Router::new().route("/", init)).await
}
