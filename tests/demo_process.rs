//! The demo binary as a user runs it: TLS from `--tls-cert`/`--tls-key` with
//! an independent TLS stack (Python's ssl, i.e. OpenSSL), and a graceful
//! shutdown on SIGTERM that closes WebSockets with 1001 and exits 0.

#[path = "support/process.rs"]
mod process;
#[path = "support/python.rs"]
mod python;

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use process::demo;
use python::python;

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_0() {
    let mut d = demo(&[]);
    let (mut a, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", d.addr))
        .await
        .unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(format!("ws://{}/seed/hibernate", d.addr))
        .await
        .unwrap();
    let pid = d.child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    for ws in [&mut a, &mut b] {
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Close(c))) => break c.unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(close.code, CloseCode::Away);
        // tokio-tungstenite answers the close on its next poll.
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    }
    let status = tokio::task::spawn_blocking(move || d.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    assert!(status.1.contains("SIGTERM received"), "{}", status.1);
    assert!(status.1.contains("shut down"), "{}", status.1);
}

#[test]
fn wss_with_openssl_client_against_tls_flags() {
    let dir = std::env::temp_dir().join(format!("lariat-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let d = demo(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/python_wss.py"
        ))
        .arg(format!("wss://localhost:{}/echo", d.addr.port()))
        .arg(&cert_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("wss interop ok"), "{stdout}");
    eprintln!("{stdout}");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
