//! The accept loop survives running out of file descriptors (EMFILE). In a
//! test binary of its own: it lowers the whole process's descriptor limit.

use std::time::Duration;

use lariat::http::StatusCode;
use lariat::{response, Router, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test]
async fn accept_loop_survives_emfile() {
    // Connections accepted as they come, silent ones included: each one the
    // kernel hands over takes one of the server's descriptors.
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .config(ServerConfig {
            defer_accept: false,
            ..ServerConfig::default()
        });
    let addr = server.local_addr().unwrap();
    tokio::spawn(
        server.serve(Router::new().http("/", |_| async { response(StatusCode::OK, "ok") })),
    );

    // Leave room for ~30 more descriptors in the whole process.
    let limit = open_fds() + 30;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    let old = rl;
    rl.rlim_cur = limit;
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);

    // Connect until the process runs out: the server's accepts fail with
    // EMFILE along the way (each accepted socket is a descriptor too).
    let mut clients = Vec::new();
    let mut exhausted = false;
    for _ in 0..200 {
        match TcpStream::connect(addr).await {
            Ok(c) => clients.push(c),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                exhausted = true;
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    assert!(exhausted, "never ran out of descriptors");
    // Let the server hit EMFILE on accept for a while.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Free the descriptors: the server goes on accepting and serving.
    clients.clear();
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}
