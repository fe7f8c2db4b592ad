//! S8 (keeping the connection alive).
//! - S8.1: client pings are answered with a pong by the server; `handle` still
//!   sees them, for information.
//! - S8.2: the server sends no pings of its own — unless the handler does:
//!   with `?ping=SECONDS`, a connection timer sends a ping that often, and the
//!   client's pongs count as activity.
//! - S8.3: set at the upgrade, an idle timeout of 10 s (lariat's default is
//!   60 s): a connection with no traffic from the client for that long is closed.
//!
//! Run: `cargo run --example s8_keepalive [ADDR]`, then
//! - `websocat ws://127.0.0.1:8080/`: say nothing, closed after 10 s;
//! - `websocat --ping-interval 3 ws://127.0.0.1:8080/`: client pings keep it open;
//! - `websocat 'ws://127.0.0.1:8080/?ping=4'`: the server's pings keep it open.

use std::time::Duration;

use lariat::{
    Bytes, Context, Frame, Handler, Init, Message, Reply, Request, Router, Server, Upgrade,
};

struct KeepAlive {
    /// Handler-side heartbeat period, if asked for.
    every: Option<Duration>,
}

/// The one message of this handler: time to ping.
struct Beat;

impl Handler for KeepAlive {
    type Info = Beat;
    async fn init(&mut self, ctx: &mut Context<Beat>) -> Reply {
        if let Some(every) = self.every {
            ctx.start_timer(every, Beat);
        }
        Reply::ok()
    }
    async fn handle(&mut self, msg: Message, ctx: &mut Context<Beat>) -> Reply {
        match msg {
            Message::Ping(_) => println!("conn {}: ping, pong already sent (S8.1)", ctx.id()),
            Message::Pong(_) => println!("conn {}: pong", ctx.id()),
            _ => {}
        }
        Reply::ok()
    }
    async fn info(&mut self, _: Beat, ctx: &mut Context<Beat>) -> Reply {
        if let Some(every) = self.every {
            ctx.start_timer(every, Beat); // re-arm
        }
        Reply::frame(Frame::Ping(Bytes::from_static(b"heartbeat")))
    }
}

async fn init(req: Request) -> Init<KeepAlive> {
    let every = req.query_param("ping").and_then(|s| s.parse().ok());
    Upgrade::new(KeepAlive {
        every: every.map(Duration::from_secs),
    })
    .idle_timeout(Duration::from_secs(10)) // S8.3
    .into()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::bind(addr.as_str()).await?;
    println!(
        "S8: ws://{}/ (idle timeout 10 s; ?ping=4 for server pings)",
        server.local_addr()?
    );
    server.serve(Router::new().route("/", init)).await
}
