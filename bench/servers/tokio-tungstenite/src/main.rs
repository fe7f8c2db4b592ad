//! Echo server on tokio-tungstenite, following the crate's `examples/echo-server.rs`:
//! `accept_async`, split, forward every text and binary message back.
//!
//! Differences from the example, all for the benchmark: the address comes from `--addr`,
//! the runtime is a current_thread one, accepted sockets get TCP_NODELAY (as lariat's do),
//! there is no logging, and a connection that ends with an error is dropped quietly
//! instead of panicking its task.

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind(addr_from_args()).await?;
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(accept_connection(stream));
    }
    Ok(())
}

async fn accept_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws_stream) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws_stream.split();
    // We should not forward messages other than text or binary.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

/// `--addr HOST:PORT` (default 127.0.0.1:8080).
fn addr_from_args() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string())
}
