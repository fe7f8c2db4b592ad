//! Headless Chromium driven over the Chrome DevTools Protocol (CDP), for
//! lariat's browser tests.
//!
//! Self-contained: tokio, tokio-tungstenite (for its re-export of
//! `tungstenite`, whose synchronous client runs over a non-blocking tokio
//! socket, so no futures crate is needed), serde_json and std. Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/browser.rs"]
//! mod browser;
//! ```
//!
//! and install the browser first with `scripts/install-chromium.sh`
//! (Debian's `chromium`; `$CHROMIUM` overrides the path).
//!
//! Every call is bounded in time and reports failure as `Err(String)`; the
//! module does not panic. Dropping the [`Browser`] kills the Chromium process
//! tree and removes its temporary profile directory.
//!
//! The connection is one WebSocket to the browser endpoint; pages are targets
//! attached with flattened sessions (`Target.attachToTarget {flatten: true}`).
//! The socket is driven by one tokio task, so it works on a current-thread
//! runtime (`#[tokio::test]`) next to the server under test.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::{self, Message};

/// How long [`Browser::launch`] waits for Chromium to open its DevTools port.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound for one DevTools command (and for one `eval`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Page::goto`] / [`Browser::new_page`] wait for the load event.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll interval of [`Page::wait_for`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Events kept per session (oldest dropped first).
const MAX_EVENTS: usize = 10_000;

/// A CDP event: `method` and `params` as Chromium sent them.
#[derive(Clone, Debug)]
pub struct Event {
    pub method: String,
    pub params: Value,
    seq: u64,
}

/// A running headless Chromium with a DevTools connection.
pub struct Browser {
    conn: Arc<Conn>,
    pump: tokio::task::JoinHandle<()>,
    ws_url: String,
    launch_time: Duration,
    // Last, so that it drops after the pump is aborted.
    proc: ProcGuard,
}

/// One tab, attached through a flattened CDP session.
pub struct Page {
    conn: Arc<Conn>,
    target_id: String,
    session_id: String,
}

impl Browser {
    /// Starts `$CHROMIUM` (default `/usr/bin/chromium`) headless with a fresh
    /// profile in a temporary directory and connects to its DevTools socket.
    pub async fn launch() -> Result<Browser, String> {
        Self::launch_with_args(&[]).await
    }

    /// As [`Browser::launch`], with extra command-line switches
    /// (e.g. `--window-size=1024,768`).
    pub async fn launch_with_args(extra_args: &[&str]) -> Result<Browser, String> {
        let started = Instant::now();
        let exe = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        if !exe.is_file() {
            return Err(format!(
                "{} not found: run scripts/install-chromium.sh (or set $CHROMIUM)",
                exe.display()
            ));
        }

        let dir = unique_temp_dir()?;
        let mut proc = ProcGuard {
            child: None,
            dir: dir.clone(),
        };
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile)
            .map_err(|e| format!("cannot create {}: {e}", profile.display()))?;
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| format!("cannot create {}: {e}", stderr_path.display()))?;

        let mut cmd = Command::new(&exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
            "--hide-scrollbars",
            "--mute-audio",
        ]);
        cmd.arg(format!("--user-data-dir={}", profile.display()));
        cmd.args(extra_args);
        cmd.arg("about:blank");
        // Keep crash-report databases and caches inside our temp dir too
        // (otherwise they land in ~/.config/chromium).
        cmd.env("XDG_CONFIG_HOME", dir.join("config"));
        cmd.env("XDG_CACHE_HOME", dir.join("cache"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        proc.child = Some(child);

        // Chromium writes "<port>\n<browser ws path>\n" once it listens.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = started + LAUNCH_TIMEOUT;
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    if let (Ok(port), true) = (port.trim().parse::<u16>(), path.starts_with('/')) {
                        break (port, path.trim().to_string());
                    }
                }
            }
            if let Some(status) = proc.try_wait() {
                return Err(format!(
                    "chromium exited early ({status}); stderr:\n{}",
                    tail(&stderr_path)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromium did not open its DevTools port within {LAUNCH_TIMEOUT:?}; stderr:\n{}",
                    tail(&stderr_path)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };

        let ws_url = format!("ws://127.0.0.1:{port}{path}");
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2));
        let ws = tokio::time::timeout(remaining, connect(&ws_url))
            .await
            .map_err(|_| format!("connecting to {ws_url} timed out"))??;

        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            next_id: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
            out: tx,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
        });
        let pump = tokio::spawn(pump(ws, rx, conn.clone()));
        let browser = Browser {
            conn,
            pump,
            ws_url,
            launch_time: started.elapsed(),
            proc,
        };
        // One round trip proves the connection works.
        browser.version().await?;
        Ok(browser)
    }

    /// The browser's DevTools WebSocket URL.
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// From spawning Chromium until the DevTools socket was connected.
    pub fn launch_time(&self) -> Duration {
        self.launch_time
    }

    /// PID of the Chromium browser process.
    pub fn pid(&self) -> Option<u32> {
        self.proc.child.as_ref().map(|c| c.id())
    }

    /// `Browser.getVersion` (product, protocolVersion, userAgent, ...).
    pub async fn version(&self) -> Result<Value, String> {
        self.call("Browser.getVersion", json!({})).await
    }

    /// Sends a browser-level CDP command and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.conn.call(None, method, params, COMMAND_TIMEOUT).await
    }

    /// Opens a new tab, attaches to it, enables the Page and Runtime domains,
    /// then navigates to `url` and waits for its load event (skipped for
    /// `about:blank`).
    pub async fn new_page(&self, url: &str) -> Result<Page, String> {
        let created = self
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = str_field(&created, "targetId")?;
        let attached = self
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session_id = str_field(&attached, "sessionId")?;
        let page = Page {
            conn: self.conn.clone(),
            target_id,
            session_id,
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Runtime.enable", json!({})).await?;
        if url != "about:blank" {
            page.goto(url).await?;
        }
        Ok(page)
    }

    /// Asks Chromium to quit (`Browser.close`) and waits up to 5 s for it;
    /// whatever is left is killed as on drop.
    pub async fn close(mut self) {
        let _ = self
            .conn
            .call(None, "Browser.close", json!({}), Duration::from_secs(2))
            .await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.proc.try_wait().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Drop does the rest.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.pump.abort();
        self.conn.fail_all("the browser was dropped".to_string());
        // `proc` drops after this: kills Chromium, removes the temp dir.
    }
}

impl Page {
    pub fn target_id(&self) -> &str {
        &self.target_id
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Sends a CDP command to this page's session and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.conn
            .call(Some(&self.session_id), method, params, COMMAND_TIMEOUT)
            .await
    }

    /// Navigates and waits (up to [`LOAD_TIMEOUT`]) for the load event.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        let since = self.conn.next_seq.load(Ordering::SeqCst);
        let nav = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(err) = nav.get("errorText").and_then(Value::as_str) {
            if !err.is_empty() {
                return Err(format!("navigating to {url}: {err}"));
            }
        }
        if nav.get("loaderId").is_none() {
            return Ok(()); // same-document navigation: no load event
        }
        self.wait_event("Page.loadEventFired", since, LOAD_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| format!("navigating to {url}: {e}"))
    }

    /// Evaluates `js` in the page (`Runtime.evaluate` with `returnByValue`
    /// and `awaitPromise`) and returns its value as JSON (`undefined` →
    /// `null`). A thrown exception is an `Err` with its description.
    pub async fn eval(&self, js: &str) -> Result<Value, String> {
        self.eval_timeout(js, COMMAND_TIMEOUT).await
    }

    /// As [`Page::eval`], with its own bound.
    pub async fn eval_timeout(&self, js: &str, timeout: Duration) -> Result<Value, String> {
        self.eval_truthy(js, timeout).await.map(|(v, _)| v)
    }

    /// Evaluates `js`; returns its value and its JavaScript truthiness.
    async fn eval_truthy(&self, js: &str, timeout: Duration) -> Result<(Value, bool), String> {
        let params = json!({
            "expression": js,
            "returnByValue": true,
            "awaitPromise": true,
            "userGesture": true,
        });
        let r = self
            .conn
            .call(Some(&self.session_id), "Runtime.evaluate", params, timeout)
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex
                .pointer("/exception/description")
                .and_then(Value::as_str)
                .or_else(|| ex.get("text").and_then(Value::as_str))
                .unwrap_or("exception");
            return Err(format!("JS error: {text}"));
        }
        let result = r.get("result").cloned().unwrap_or(Value::Null);
        if let Some(v) = result.get("value") {
            return Ok((v.clone(), truthy(v)));
        }
        if let Some(u) = result.get("unserializableValue").and_then(Value::as_str) {
            // NaN, Infinity, -0, 123n: handed back as strings.
            let t = !matches!(u, "NaN" | "-0" | "0n");
            return Ok((Value::String(u.to_string()), t));
        }
        // undefined, or a value that returnByValue cannot carry.
        let t = result.get("type").and_then(Value::as_str) != Some("undefined");
        Ok((Value::Null, t))
    }

    /// Polls `js` every [`POLL_INTERVAL`] until it evaluates to a truthy
    /// value, and returns that value. Errors thrown while polling (element
    /// not there yet, page navigating) count as "not yet". On timeout the
    /// error names the last value or error and the page's console output.
    pub async fn wait_for(&self, js: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bound = left.min(COMMAND_TIMEOUT).max(Duration::from_millis(50));
            match self.eval_truthy(js, bound).await {
                Ok((v, true)) => return Ok(v),
                Ok((v, false)) => last = format!("value {v}"),
                Err(e) => {
                    if self.conn.closed().is_some() {
                        return Err(e);
                    }
                    last = format!("error {e}");
                }
            }
            if Instant::now() >= deadline {
                let console = self.console();
                let console = if console.is_empty() {
                    String::from("(empty)")
                } else {
                    console.join("\n  ")
                };
                return Err(format!(
                    "timed out after {timeout:?} waiting for `{js}`; last {last}; console:\n  {console}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL.min(left)).await;
        }
    }

    /// Waits for an event of this session named `method` that arrived after
    /// the event sequence number `since` (0: any buffered one).
    pub async fn wait_event(
        &self,
        method: &str,
        since: u64,
        timeout: Duration,
    ) -> Result<Event, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.conn.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.conn.lock();
                if let Some(q) = st.events.get(&self.session_id) {
                    if let Some(ev) = q.iter().find(|e| e.seq >= since && e.method == method) {
                        return Ok(ev.clone());
                    }
                }
                if let Some(why) = &st.closed {
                    return Err(why.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Err(format!("no {method} event within {timeout:?}"));
            }
        }
    }

    /// Sequence number to pass to [`Page::wait_event`] to see only events
    /// that arrive from now on.
    pub fn event_seq(&self) -> u64 {
        self.conn.next_seq.load(Ordering::SeqCst)
    }

    /// All buffered CDP events of this page, oldest first.
    pub fn events(&self) -> Vec<Event> {
        let st = self.conn.lock();
        st.events
            .get(&self.session_id)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Console messages and uncaught exceptions seen so far, one line each
    /// (`log: text`, `error: text`, `exception: description`).
    pub fn console(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| match e.method.as_str() {
                "Runtime.consoleAPICalled" => {
                    let kind = e
                        .params
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("log");
                    let args: Vec<String> = e
                        .params
                        .get("args")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(remote_object_text).collect())
                        .unwrap_or_default();
                    Some(format!("{kind}: {}", args.join(" ")))
                }
                "Runtime.exceptionThrown" => {
                    let d = &e.params["exceptionDetails"];
                    let text = d
                        .pointer("/exception/description")
                        .and_then(Value::as_str)
                        .or_else(|| d.get("text").and_then(Value::as_str))
                        .unwrap_or("exception");
                    Some(format!("exception: {text}"))
                }
                _ => None,
            })
            .collect()
    }

    /// Clicks the centre of the first element matching the CSS `selector`
    /// with real mouse events (`Input.dispatchMouseEvent`).
    pub async fn click(&self, selector: &str) -> Result<(), String> {
        let sel = serde_json::to_string(selector).unwrap_or_default();
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        );
        let at = self.eval(&js).await?;
        let (x, y) = match (
            at.get(0).and_then(Value::as_f64),
            at.get(1).and_then(Value::as_f64),
        ) {
            (Some(x), Some(y)) => (x, y),
            _ => return Err(format!("click: no element matches {selector}")),
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await?;
        }
        Ok(())
    }

    /// Focuses the first element matching `selector`.
    pub async fn focus(&self, selector: &str) -> Result<(), String> {
        let sel = serde_json::to_string(selector).unwrap_or_default();
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.focus(); return true; }})()"
            ))
            .await?;
        if found == Value::Bool(true) {
            Ok(())
        } else {
            Err(format!("focus: no element matches {selector}"))
        }
    }

    /// Types `text` into the focused element as a person would
    /// (`Input.insertText`: fires `input` events).
    pub async fn type_text(&self, text: &str) -> Result<(), String> {
        self.call("Input.insertText", json!({ "text": text }))
            .await
            .map(|_| ())
    }

    /// Presses and releases a key on the focused element: `Enter`, `Tab`,
    /// `Escape`, `Backspace`, or a single character.
    pub async fn press_key(&self, key: &str) -> Result<(), String> {
        let (code, vk, text): (String, i64, String) = match key {
            "Enter" => ("Enter".into(), 13, "\r".into()),
            "Tab" => ("Tab".into(), 9, String::new()),
            "Escape" => ("Escape".into(), 27, String::new()),
            "Backspace" => ("Backspace".into(), 8, String::new()),
            k if k.chars().count() == 1 => {
                let c = k.chars().next().unwrap_or(' ');
                let up = c.to_ascii_uppercase();
                let code = if up.is_ascii_alphabetic() {
                    format!("Key{up}")
                } else if c.is_ascii_digit() {
                    format!("Digit{c}")
                } else {
                    String::new()
                };
                (code, up as i64, k.to_string())
            }
            other => return Err(format!("press_key: unsupported key {other:?}")),
        };
        let mut down = json!({
            "type": if text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key, "code": code,
            "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
        });
        if !text.is_empty() {
            down["text"] = Value::String(text.clone());
            down["unmodifiedText"] = Value::String(text);
        }
        self.call("Input.dispatchKeyEvent", down).await?;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key, "code": code,
                    "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk }),
        )
        .await
        .map(|_| ())
    }

    /// Sets the viewport size in CSS pixels (scale 1).
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<(), String> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await
        .map(|_| ())
    }

    /// PNG of the viewport (`full_page`: of the whole document).
    pub async fn screenshot(&self, full_page: bool) -> Result<Vec<u8>, String> {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": full_page }),
            )
            .await?;
        let data = r
            .get("data")
            .and_then(Value::as_str)
            .ok_or("captureScreenshot: no data")?;
        base64_decode(data)
    }

    /// Writes [`Page::screenshot`] to `path`.
    pub async fn save_screenshot(
        &self,
        path: impl AsRef<Path>,
        full_page: bool,
    ) -> Result<(), String> {
        let png = self.screenshot(full_page).await?;
        std::fs::write(path.as_ref(), png)
            .map_err(|e| format!("writing {}: {e}", path.as_ref().display()))
    }

    /// Closes the tab.
    pub async fn close(self) -> Result<(), String> {
        self.conn
            .call(
                None,
                "Target.closeTarget",
                json!({ "targetId": self.target_id }),
                COMMAND_TIMEOUT,
            )
            .await
            .map(|_| ())
    }
}

// ---------------------------------------------------------------------------
// The DevTools connection.

struct Conn {
    next_id: AtomicU64,
    next_seq: AtomicU64,
    out: mpsc::UnboundedSender<String>,
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, oneshot::Sender<Result<Value, String>>>,
    events: HashMap<String, VecDeque<Event>>,
    closed: Option<String>,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_string());
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if let Some(why) = &st.closed {
                return Err(format!("{method}: {why}"));
            }
            st.pending.insert(id, tx);
        }
        if self.out.send(msg.to_string()).is_err() {
            self.lock().pending.remove(&id);
            return Err(format!("{method}: the DevTools connection is gone"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: the DevTools connection is gone")),
            Err(_) => {
                self.lock().pending.remove(&id);
                Err(format!("{method}: no answer within {timeout:?}"))
            }
        }
    }

    fn dispatch(&self, text: &str) {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            let tx = self.lock().pending.remove(&id);
            if let Some(tx) = tx {
                let result = match msg.get("error") {
                    Some(err) => Err(format!(
                        "{} {}",
                        err.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("error"),
                        err.get("data").and_then(Value::as_str).unwrap_or("")
                    )
                    .trim_end()
                    .to_string()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = tx.send(result);
            }
            return;
        }
        if let Some(method) = msg.get("method").and_then(Value::as_str) {
            let session = msg
                .get("sessionId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ev = Event {
                method: method.to_string(),
                params: msg.get("params").cloned().unwrap_or(Value::Null),
                seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
            };
            {
                let mut st = self.lock();
                let q = st.events.entry(session).or_default();
                if q.len() >= MAX_EVENTS {
                    q.pop_front();
                }
                q.push_back(ev);
            }
            self.notify.notify_waiters();
        }
    }

    fn fail_all(&self, why: String) {
        let pending: Vec<_> = {
            let mut st = self.lock();
            if st.closed.is_none() {
                st.closed = Some(why.clone());
            }
            st.pending.drain().map(|(_, tx)| tx).collect()
        };
        for tx in pending {
            let _ = tx.send(Err(why.clone()));
        }
        self.notify.notify_waiters();
    }
}

/// Non-blocking std `Read`/`Write` over a tokio socket, so that tungstenite's
/// synchronous codec can run inside a task: `WouldBlock` means "wait for
/// readiness", which the pump does with `readable()` / `writable()`.
struct Io(tokio::net::TcpStream);

impl io::Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl io::Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn connect(ws_url: &str) -> Result<tungstenite::WebSocket<Io>, String> {
    let addr = ws_url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("bad DevTools URL {ws_url}"))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    // tungstenite's client handshake over the non-blocking socket: on
    // `Interrupted` wait for the answer (re-trying every 10 ms in case it
    // was the request's write that would have blocked). The caller bounds
    // the whole thing in time.
    let mut attempt = tungstenite::client::client(ws_url, Io(tcp));
    loop {
        match attempt {
            Ok((ws, _response)) => return Ok(ws),
            Err(tungstenite::HandshakeError::Interrupted(mid)) => {
                let tcp = &mid.get_ref().get_ref().0;
                tokio::select! {
                    r = tcp.readable() => r.map_err(|e| format!("DevTools socket: {e}"))?,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
                attempt = mid.handshake();
            }
            Err(tungstenite::HandshakeError::Failure(e)) => {
                return Err(format!("WebSocket handshake with {ws_url}: {e}"))
            }
        }
    }
}

fn is_would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// Owns the socket: reads frames and dispatches them, writes queued commands.
async fn pump(
    mut ws: tungstenite::WebSocket<Io>,
    mut rx: mpsc::UnboundedReceiver<String>,
    conn: Arc<Conn>,
) {
    enum Wake {
        Ready,
        Send(String),
        Stop(String),
    }
    let why = 'outer: loop {
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => conn.dispatch(text.as_str()),
                Ok(Message::Close(_)) => {
                    break 'outer String::from("Chromium closed the DevTools connection")
                }
                Ok(_) => {}
                Err(e) if is_would_block(&e) => break,
                Err(e) => break 'outer format!("DevTools connection failed: {e}"),
            }
        }
        let want_write = match ws.flush() {
            Ok(()) => false,
            Err(e) if is_would_block(&e) => true,
            Err(e) => break format!("DevTools connection failed: {e}"),
        };
        let wake = {
            let tcp = &ws.get_ref().0;
            tokio::select! {
                r = tcp.readable() => match r {
                    Ok(()) => Wake::Ready,
                    Err(e) => Wake::Stop(format!("DevTools socket: {e}")),
                },
                r = tcp.writable(), if want_write => match r {
                    Ok(()) => Wake::Ready,
                    Err(e) => Wake::Stop(format!("DevTools socket: {e}")),
                },
                m = rx.recv() => match m {
                    Some(text) => Wake::Send(text),
                    None => Wake::Stop(String::from("the browser was dropped")),
                },
            }
        };
        match wake {
            Wake::Ready => {}
            Wake::Stop(why) => break why,
            Wake::Send(first) => {
                let mut next = Some(first);
                while let Some(text) = next {
                    match ws.write(Message::text(text)) {
                        Ok(()) => {}
                        Err(e) if is_would_block(&e) => {}
                        Err(e) => break 'outer format!("DevTools connection failed: {e}"),
                    }
                    next = rx.try_recv().ok();
                }
            }
        }
    };
    conn.fail_all(why);
}

// ---------------------------------------------------------------------------
// The Chromium process and its temp dir.

struct ProcGuard {
    child: Option<Child>,
    dir: PathBuf,
}

impl ProcGuard {
    /// `Some(status)` once the browser process has exited.
    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for ProcGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Chromium's helpers (zygotes, renderers, GPU and network
            // processes) outlive a SIGKILLed parent for a few seconds, and
            // its crashpad handlers are reparented to init at once: collect
            // them first — the descendants of our PID, and any process whose
            // command line names our unique temp dir — then kill them all.
            let mut pids = descendants(child.id());
            pids.extend(processes_mentioning(&self.dir));
            pids.remove(&std::process::id());
            let _ = child.kill();
            if !pids.is_empty() {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .args(pids.iter().map(|p| p.to_string()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.wait();
        }
        for attempt in 0..10 {
            match std::fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound && attempt < 9 => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
    }
}

/// PIDs of all live descendants of `root` (from /proc/*/stat).
fn descendants(root: u32) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok())
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = HashSet::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if out.insert(c) {
                todo.push(c);
            }
        }
    }
    out
}

/// PIDs whose command line contains `dir` (our unique temp dir).
fn processes_mentioning(dir: &Path) -> HashSet<u32> {
    let needle = dir.to_string_lossy().into_owned().into_bytes();
    let mut out = HashSet::new();
    if needle.len() < 8 {
        return out;
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                if cmdline
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
                {
                    out.insert(pid);
                }
            }
        }
    }
    out
}

fn unique_temp_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "lariat-chromium-{}-{n}-{nanos:x}",
            std::process::id()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(String::from("cannot create a unique temp dir"))
}

/// The last 40 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ---------------------------------------------------------------------------
// Small helpers.

fn str_field(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("missing {key} in {v}"))
}

/// JavaScript truthiness of a `returnByValue` result.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Text of a CDP `RemoteObject` (console argument).
fn remote_object_text(o: &Value) -> String {
    match o.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => o
            .get("unserializableValue")
            .or_else(|| o.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("undefined")
            .to_string(),
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a') as u32 + 26),
            b'0'..=b'9' => Some((c - b'0') as u32 + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.as_bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = val(c).ok_or_else(|| format!("bad base64 byte {c:#x}"))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
