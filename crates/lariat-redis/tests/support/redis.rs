//! A real `redis-server` (Debian's) on a loopback port for lariat-redis's
//! tests: started with no persistence, killed by its PID on drop,
//! restartable on the same port, and freezable (SIGSTOP) to stand for a
//! server that keeps connections open but no longer answers. If
//! `redis-server` is missing, `scripts/install-redis.sh` is run first.
//! Include it with
//!
//! ```ignore
//! #[path = "support/redis.rs"]
//! mod redis_server;
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
        let have = |bin: &str| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if have("redis-server") && have("redis-cli") {
            return;
        }
        // Included by this crate's tests and by the workspace root's.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = [here.join("scripts/install-redis.sh"), here.join("../../scripts/install-redis.sh")]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| here.join("scripts/install-redis.sh"));
        eprintln!("redis-server is missing: running {}", script.display());
        let ok = Command::new("bash")
            .arg(&script)
            .status()
            .is_ok_and(|s| s.success());
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
        while !self.ping() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "redis-server exited at once ({status}); port {} taken?",
                    self.port
                );
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Does it answer `PING`?
    pub fn ping(&self) -> bool {
        self.command(&["PING"]).is_some_and(|r| r.trim() == "PONG")
    }

    /// Run one command with `redis-cli` (bounded: 2 s); its output, if the
    /// server answered.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("timeout")
            .args(["2", "redis-cli", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// The channels with subscribers (`PUBSUB CHANNELS`), sorted.
    pub fn channels(&self) -> Vec<String> {
        let out = self.command(&["PUBSUB", "CHANNELS"]).unwrap_or_default();
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    /// Subscribers of `channel` (`PUBSUB NUMSUB`).
    pub fn numsub(&self, channel: &str) -> u32 {
        let out = self
            .command(&["PUBSUB", "NUMSUB", channel])
            .unwrap_or_default();
        out.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Connected clients other than the `redis-cli` asking.
    pub fn other_clients(&self) -> usize {
        let out = self.command(&["CLIENT", "LIST"]).unwrap_or_default();
        out.lines()
            .filter(|l| l.starts_with("id="))
            .count()
            .saturating_sub(1)
    }

    /// `PUBLISH channel message` with `message` as raw bytes (redis-cli -x
    /// takes the last argument from stdin, byte for byte).
    pub fn publish_raw(&self, channel: &str, message: &[u8]) -> bool {
        use std::io::Write;
        let Ok(mut child) = Command::new("timeout")
            .args(["2", "redis-cli", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-x", "PUBLISH", channel])
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

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server is not running")
            .id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// Stop it (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Let it go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
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
        // SIGKILL ends a frozen server too.
        self.stop();
    }
}
