//! lariat servers in the test process, on ephemeral ports of 127.0.0.1.
//! Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/server.rs"]
//! mod server;
//! ```

#![allow(dead_code)]

use std::net::SocketAddr;

/// Serve `router` on an ephemeral port of 127.0.0.1.
pub async fn serve(router: lariat::Router) -> SocketAddr {
    let server = lariat::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(router));
    addr
}

/// Serve the demo's routes (`lariat_demo::app()`).
pub async fn demo() -> SocketAddr {
    serve(lariat_demo::app()).await
}
