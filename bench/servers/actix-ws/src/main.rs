//! Echo server on actix-ws, following the example in actix-ws's README: `actix_ws::handle`,
//! then a spawned task that reads the message stream and answers through the session,
//! served by `HttpServer`.
//!
//! Differences from the example, all for the benchmark: the address comes from `--addr`,
//! the route is `/echo`; text and binary are echoed (the example prints text) and
//! pings answered as there; the server runs one worker (`workers(1)`) with TCP_NODELAY
//! (as lariat's sockets have); the frame limit is raised from actix's 64 KiB default
//! to 64 MiB, lariat's `/echo` limit, so a 64 KiB message fits; there is no Logger
//! middleware and nothing is printed.

use actix_web::{web, App, HttpRequest, HttpServer, Responder};
use actix_ws::Message;

async fn ws(req: HttpRequest, body: web::Payload) -> actix_web::Result<impl Responder> {
    let (response, mut session, msg_stream) = actix_ws::handle(&req, body)?;
    let mut msg_stream = msg_stream.max_frame_size(64 << 20);

    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = msg_stream.recv().await {
            match msg {
                Message::Ping(bytes) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Message::Text(msg) => {
                    if session.text(msg).await.is_err() {
                        return;
                    }
                }
                Message::Binary(msg) => {
                    if session.binary(msg).await.is_err() {
                        return;
                    }
                }
                _ => break,
            }
        }

        let _ = session.close(None).await;
    });

    Ok(response)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    HttpServer::new(move || App::new().route("/echo", web::get().to(ws)))
        .workers(1)
        .tcp_nodelay(true)
        .bind(addr_from_args())?
        .run()
        .await
}

/// `--addr HOST:PORT` (default 127.0.0.1:8080).
fn addr_from_args() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string())
}
