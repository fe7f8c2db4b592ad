//! A chat client for the demo's `/chat/:room` (tokio-tungstenite). Include
//! it from an integration test with
//!
//! ```ignore
//! #[path = "support/chat.rs"]
//! mod chat;
//! ```

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Join `room` on the demo at `addr`.
pub async fn join(addr: SocketAddr, room: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/chat/{room}"))
        .await
        .unwrap()
        .0
}

/// The next text within `within`, if any (pings and pongs skipped).
pub async fn next_text(ws: &mut Ws, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("{other:?}"),
        }
    }
}
