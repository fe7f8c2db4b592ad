//! S1 (upgrade): the route's init sees the request and decides — upgrade to
//! WebSocket, or answer plain HTTP. S1.3: what the connection needs (here
//! the `name` query parameter) is moved into the handler; the request is gone.
//!
//! Run: `cargo run --example s1_upgrade [ADDR]` (default 127.0.0.1:8080), then
//! - `websocat 'ws://127.0.0.1:8080/?name=ann'`: every line comes back as `ann: line`;
//! - `curl -i 'http://127.0.0.1:8080/?http=1'`: init answers plain HTTP, 200;
//! - `curl -i http://127.0.0.1:8080/`: init wants to upgrade but the client did not
//!   ask: 400 (S1.2); with `-H 'Sec-WebSocket-Version: 8'` and the other upgrade
//!   headers: 426 with `Sec-WebSocket-Version: 13`.

use lariat::http::StatusCode;
use lariat::{response, Context, Handler, Init, Message, Reply, Request, Router, Server};

/// The handler state: all the connection keeps from its request (S1.3).
struct Named {
    name: String,
}

impl Handler for Named {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(format!("{}: {t}", self.name)),
            _ => Reply::ok(),
        }
    }
}

/// S1: init consumes the request and returns an upgrade or a response.
async fn init(req: Request) -> Init<Named> {
    if req.query_param("http").is_some() {
        return Init::respond(response(StatusCode::OK, "plain HTTP, as asked\n"));
    }
    let name = req
        .query_param("name")
        .unwrap_or_else(|| "anonymous".into());
    Init::upgrade(Named { name }) // S1.1: the handshake happens at once
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!(
        "S1: ws://{}/?name=you or http://{0}/?http=1",
        server.local_addr()?
    );
    server.serve(Router::new().route("/", init)).await
}
