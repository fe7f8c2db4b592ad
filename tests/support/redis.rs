//! A real `redis-server` (Debian's) on a loopback port, for the cluster
//! tests: started with no persistence, stopped by its PID on drop, and
//! restartable on the same port. If `redis-server` is missing,
//! `scripts/install-redis.sh` is run first. Include it with
//!
//! ```ignore
//! #[path = "support/redis.rs"]
//! mod redis;
//! ```

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running redis-server, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

fn ensure_installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if Command::new("redis-server").arg("--version").output().is_ok() {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-redis.sh");
        let script = if script.is_file() {
            script
        } else {
            // A crate of the workspace: the script is at the root.
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-redis.sh")
        };
        eprintln!("redis-server is missing: running {}", script.display());
        let ok = Command::new("bash").arg(&script).status().is_ok_and(|s| s.success());
        assert!(
            ok,
            "redis-server is needed and {} could not install it (Debian: apt-get install redis-server)",
            script.display()
        );
    });
}

impl RedisServer {
    /// Start on a free loopback port and wait until it answers.
    pub fn start() -> RedisServer {
        ensure_installed();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = RedisServer { child: None, port };
        r.spawn();
        r
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Does it answer `PING`?
    pub fn ping(&self) -> bool {
        self.command(&["PING"]).is_some_and(|r| r.trim() == "PONG")
    }

    /// Run one command with `redis-cli` (installed with redis-server);
    /// its output, if the server answered.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// `PUBLISH channel message` with `message` as raw bytes (redis-cli -x
    /// takes the last argument from stdin, byte for byte).
    pub fn publish_raw(&self, channel: &str, message: &[u8]) -> bool {
        use std::io::Write;
        let Ok(mut child) = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-x",
                "PUBLISH",
                channel,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        let wrote = child
            .stdin
            .take()
            .is_some_and(|mut i| i.write_all(message).is_ok());
        wrote && child.wait().is_ok_and(|s| s.success())
    }

    /// Kill it (by its PID) and wait for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
