//! Echo server on fastwebsockets with hyper's upgrade, following the crate's
//! `examples/echo_server.rs` (the README's "HTTP Upgrade" section): hyper http1 with
//! upgrades, `upgrade::upgrade`, a `FragmentCollector`, every text and binary frame
//! written back, the connection task run `unconstrained`.
//!
//! Differences from the example, all for the benchmark: the address comes from `--addr`,
//! accepted sockets get TCP_NODELAY (as lariat's do), and nothing is printed per
//! connection. The runtime is the example's own current_thread one.

use fastwebsockets::upgrade;
use fastwebsockets::OpCode;
use fastwebsockets::WebSocketError;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper::Response;
use tokio::net::TcpListener;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fastwebsockets::FragmentCollector::new(fut.await?);

    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                ws.write_frame(frame).await?;
            }
            _ => {}
        }
    }

    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;

    tokio::task::spawn(async move {
        // Errors (a client that leaves without a close frame) are expected at the end of
        // every benchmark run; the example prints them, we stay quiet.
        let _ = tokio::task::unconstrained(handle_client(fut)).await;
    });

    Ok(response)
}

fn main() -> Result<(), WebSocketError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();

    rt.block_on(async move {
        let listener = TcpListener::bind(addr_from_args()).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn_fut = http1::Builder::new()
                    .serve_connection(io, service_fn(server_upgrade))
                    .with_upgrades();
                let _ = conn_fut.await;
            });
        }
    })
}

/// `--addr HOST:PORT` (default 127.0.0.1:8080).
fn addr_from_args() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string())
}
