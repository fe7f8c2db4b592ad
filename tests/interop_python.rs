//! Interop with Python `websockets` (an independent implementation that
//! compresses by default): the demo's /echo negotiates permessage-deflate
//! (RFC 7692) and echoes text and binary up to 1 MiB under several offers.
//! The interpreter comes from `scripts/setup-python.sh` (run by
//! `scripts/test.sh`), or `LARIAT_PYTHON`.

#[path = "support/python.rs"]
mod python;
#[path = "support/server.rs"]
mod server;

use std::time::Duration;

use python::python;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_compressed_echo_rfc7692() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let addr = server::demo().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/python_websockets.py"
    );
    let child = tokio::process::Command::new(&python)
        .arg(script)
        .arg(format!("ws://{addr}/echo"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("the Python client finished in time")
        .expect("the Python client ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all scenarios ok"), "{stdout}");
    // The default offer was answered with permessage-deflate.
    assert!(
        stdout.contains("ok default offer: permessage-deflate"),
        "{stdout}"
    );
}
