//! The demo binary as a separate process, as a user runs it. Include it
//! from an integration test with
//!
//! ```ignore
//! #[path = "support/process.rs"]
//! mod process;
//! ```

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A demo process, killed on drop if it is still running. Its log (stdout)
/// is collected as it comes.
pub struct Demo {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait (bounded by `within`) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log().contains(needle)
    }

    /// Wait for the process to exit (bounded by `within`); its status and
    /// its whole log.
    pub fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return (s, self.log());
            }
            assert!(Instant::now() < deadline, "the demo did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start the demo with `extra` arguments and wait until it listens.
pub fn demo(extra: &[&str]) -> Demo {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lariat-demo"))
        .arg("--addr")
        .arg(addr.to_string())
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (out, sink) = (child.stdout.take().unwrap(), log.clone());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the demo did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Demo {
        child,
        addr,
        log,
        reader: Some(reader),
    }
}
