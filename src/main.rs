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
        let server = lariat::Server::bind(args.addr).await?;
        tracing::info!(addr = %server.local_addr()?, threads, "lariat demo listening");
        tokio::select! {
            r = server.serve(lariat_demo::app()) => r,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted; exiting");
                Ok(())
            }
        }
    })
}
