//! # lariat
//!
//! Cowboy's WebSocket handler model in Rust. An HTTP/1.1 server whose route
//! init decides to upgrade (choosing a subprotocol, an idle timeout, frame
//! limits) or to answer plain HTTP; then, per connection, one lightweight task
//! runs the handler's callbacks — after-upgrade init, frames from the client,
//! messages sent to the connection's [`Handle`] from anywhere, timers — each
//! returning a [`Reply`]: nothing, frames to send, or stop, optionally
//! hibernating. Automatic pong, idle timeout, frame size limits, and close
//! with code and reason come built in. The protocol itself lives in
//! [`lariat_proto`], a sans-I/O core.
//!
//! ```no_run
//! use lariat::{Context, Handler, Init, Message, Reply, Router, Server};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Info = ();
//!     async fn handle(&mut self, msg: Message, _ctx: &mut Context<()>) -> Reply {
//!         match msg {
//!             Message::Text(t) => Reply::text(t),
//!             Message::Binary(b) => Reply::binary(b),
//!             _ => Reply::ok(),
//!         }
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::io::Result<()> {
//!     let router = Router::new().route("/echo", |_req| async { Init::upgrade(Echo) });
//!     Server::bind("127.0.0.1:8080").await?.serve(router).await
//! }
//! ```
#![deny(missing_docs)]

mod connection;
mod direct;
mod handle;
mod handler;
mod outbox;
mod parking;
pub mod pubsub;
mod request;
mod router;
mod server;
mod timer;
pub mod tls;
mod upgrade;

pub use handle::{Handle, MailboxOverflow, SendError};
pub use handler::{Command, Context, Handler, Reply, TerminateReason};
pub use request::{response, Request, Response};
pub use router::Router;
pub use server::{Server, ServerConfig, ServerStats};
pub use timer::TimerId;
pub use upgrade::{Init, SendQueueFull, Upgrade};

pub use bytes::Bytes;
pub use http;
/// The protocol core, for those who want to drive a session themselves.
pub use lariat_proto as proto;
pub use lariat_proto::deflate::DeflateConfig;
pub use lariat_proto::{CloseCode, CloseFrame, Frame, Message, ProtocolError, Text};
