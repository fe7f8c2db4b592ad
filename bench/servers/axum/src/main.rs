//! Echo server on axum's WebSocket extractor, following the example at the top of
//! `axum::extract::ws`'s documentation: `WebSocketUpgrade::on_upgrade`, then
//! `recv` / `send` every message back, served by `axum::serve`.
//!
//! Differences from the example, all for the benchmark: the address comes from `--addr`,
//! the route is `/echo`, the runtime is a current_thread one, and accepted sockets get
//! TCP_NODELAY (as lariat's do; the way axum's own serve tests set it).

use axum::{
    extract::ws::{WebSocket, WebSocketUpgrade},
    response::Response,
    routing::any,
    serve::ListenerExt,
    Router,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/echo", any(handler));
    let listener = tokio::net::TcpListener::bind(addr_from_args())
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await
}

async fn handler(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(handle_socket)
}

async fn handle_socket(mut socket: WebSocket) {
    while let Some(msg) = socket.recv().await {
        let msg = if let Ok(msg) = msg {
            msg
        } else {
            // client disconnected
            return;
        };

        if socket.send(msg).await.is_err() {
            // client disconnected
            return;
        }
    }
}

/// `--addr HOST:PORT` (default 127.0.0.1:8080).
fn addr_from_args() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string())
}
