//! The lariat demo server. `cargo run --release -- --help` for options.

use std::net::SocketAddr;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Every behaviour of Cowboy's WebSocket guide, one route each.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Runtime worker threads (1: a single-threaded runtime). Default: one per core.
    #[arg(long)]
    threads: Option<usize>,
    /// Serve TLS (https://, wss://) with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Share the chat's topics with every demo process using this Redis
    /// (e.g. redis://127.0.0.1:6379/). Without it, topics are this process's own.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Open connections (HTTP and WebSocket) beyond which new ones get 503.
    #[arg(long, default_value_t = lariat::ServerConfig::default().max_connections)]
    max_connections: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let mut server = lariat::Server::bind(args.addr)
            .await?
            .config(lariat::ServerConfig {
                max_connections: args.max_connections,
                ..lariat::ServerConfig::default()
            });
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            server = server.tls(lariat::tls::config_from_pem(cert, key)?);
        }
        let topics = match &args.redis {
            Some(url) => {
                let backend = lariat_redis::RedisBackend::new(url).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("--redis {url}: {e}"))
                })?;
                lariat::pubsub::Topics::builder().backend(backend).build()
            }
            None => lariat::pubsub::Topics::new(),
        };
        tracing::info!(addr = %server.local_addr()?, threads, tls = args.tls_cert.is_some(), redis = args.redis.as_deref().unwrap_or("none"), "lariat demo listening");
        // SIGINT or SIGTERM: stop accepting, close every WebSocket with 1001,
        // wait for the closing handshakes (each handler's terminate runs).
        server
            .serve_with_shutdown(lariat_demo::app_with(topics), shutdown_signal())
            .await?;
        tracing::info!("shut down");
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
