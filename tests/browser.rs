//! End to end through a real browser: the demo page (`static/index.html`,
//! served at `/`) in headless Chromium talks to the demo server running in
//! this process.
//!
//! - S1, S5: the page's `/echo` socket opens (the browser's own handshake),
//!   a message typed into `#message` and sent with Enter, then another sent
//!   with the `#send` button, come back and show up in `#log` as `← text`.
//! - S6: text POSTed to `/log` with the page's form is handed by the server
//!   to every open `/seed/log` connection's handle; each forwards it as a
//!   text frame, which shows up in `#seed-log` — in two tabs at once.
//! - Issue #7: the chat page (`/chat`) on two demo processes sharing a real
//!   Redis: two pages, one per node, talk in one room.
//!
//! Needs Debian's Chromium: if `/usr/bin/chromium` (or `$CHROMIUM`) is
//! missing, `scripts/install-chromium.sh` is run first; if that fails, the
//! tests fail saying so. Every wait is bounded, and each test as a whole is
//! bounded by [`TEST_TIMEOUT`]; Chromium is killed when the `Browser` drops.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use browser::{Browser, Page};

/// Bound of one whole test, browser launch included.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound of one wait for the page to show something.
const WAIT: Duration = Duration::from_secs(10);

/// Make sure Chromium is there, installing it with the project's script if
/// not. Runs once per test binary (the tests run in parallel).
fn ensure_chromium() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let exe = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        if exe.is_file() {
            return Ok(());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-chromium.sh");
        eprintln!("{} is missing: running {}", exe.display(), script.display());
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !status.success() || !exe.is_file() {
            return Err(format!(
                "Chromium is needed for the browser tests and {} could not install it \
                 ({status}); install Debian's `chromium` package (as root: \
                 scripts/install-chromium.sh) or point $CHROMIUM at a Chromium binary",
                script.display()
            ));
        }
        Ok(())
    })
    .clone()
}

/// The demo app, in process, on an ephemeral port.
async fn start_demo() -> Result<SocketAddr, String> {
    let server = lariat::Server::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = server
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    tokio::spawn(server.serve(lariat_demo::app()));
    Ok(addr)
}

/// A JavaScript string literal for `s`.
fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// JS: does the list `#id` have a line whose text is exactly `text`?
fn has_line(id: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll({})].some(d => d.textContent === {})",
        js_str(&format!("#{id} > div")),
        js_str(text)
    )
}

/// JS: the text of `#id`.
fn text_of(id: &str) -> String {
    format!("document.getElementById({}).textContent", js_str(id))
}

/// Launch Chromium and the demo, run `body` against them within
/// [`TEST_TIMEOUT`], and on failure panic with what the pages showed
/// (a screenshot of the first page is saved to the temp dir).
async fn with_browser<F>(name: &str, body: F)
where
    F: for<'a> FnOnce(&'a Browser, SocketAddr) -> BoxFut<'a>,
{
    if let Err(e) = ensure_chromium() {
        panic!("{name}: {e}");
    }
    let started = Instant::now();
    let outcome = tokio::time::timeout(TEST_TIMEOUT, async {
        let addr = start_demo().await?;
        let browser = Browser::launch().await?;
        let result = body(&browser, addr).await;
        browser.close().await;
        result
    })
    .await;
    match outcome {
        Ok(Ok(())) => eprintln!("{name}: passed in {:.2?}", started.elapsed()),
        Ok(Err(e)) => panic!("{name}: {e}"),
        Err(_) => panic!("{name}: did not finish within {TEST_TIMEOUT:?}"),
    }
}

type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>;

/// Wait for `js` to be truthy; on timeout, add a screenshot and the page's
/// log lines to the error.
async fn wait(page: &Page, what: &str, js: &str) -> Result<(), String> {
    match page.wait_for(js, WAIT).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let shot = std::env::temp_dir().join(format!(
                "lariat-browser-{}-{}.png",
                std::process::id(),
                page.target_id()
            ));
            let saved = match page.save_screenshot(&shot, true).await {
                Ok(()) => format!("screenshot: {}", shot.display()),
                Err(e) => format!("no screenshot: {e}"),
            };
            let logs = page
                .eval("[...document.querySelectorAll('.log > div')].map(d => d.textContent).join(' | ')")
                .await
                .unwrap_or_default();
            Err(format!("{what}: {e}\n  page logs: {logs}\n  {saved}"))
        }
    }
}

/// The page's script threw nothing and logged no error.
fn no_exceptions(page: &Page) -> Result<(), String> {
    let bad: Vec<String> = page
        .console()
        .into_iter()
        .filter(|l| l.starts_with("exception:") || l.starts_with("error:"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("the page reported errors:\n  {}", bad.join("\n  ")))
    }
}

/// Open the demo page and wait until the socket whose badge is `#status_id`
/// is open.
async fn open_page(browser: &Browser, addr: SocketAddr, status_id: &str) -> Result<Page, String> {
    let page = browser.new_page(&format!("http://{addr}/")).await?;
    let js = format!("{} === 'open'", text_of(status_id));
    wait(&page, &format!("#{status_id} says open"), &js).await?;
    Ok(page)
}

/// Type `text` into `#message`, then press Enter or click `#send`.
async fn send(page: &Page, text: &str, by_button: bool) -> Result<(), String> {
    page.focus("#message").await?;
    page.type_text(text).await?;
    if by_button {
        page.click("#send").await
    } else {
        page.press_key("Enter").await
    }
}

/// S1, S5: the browser's WebSocket to `/echo` opens, and what is typed comes
/// back, whether sent with Enter or with the Send button.
#[tokio::test]
async fn s1_s5_echo_in_the_demo_page() {
    with_browser("s1_s5_echo_in_the_demo_page", |b, addr| {
        Box::pin(echo_in_the_demo_page(b, addr))
    })
    .await;
}

async fn echo_in_the_demo_page(browser: &Browser, addr: SocketAddr) -> Result<(), String> {
    let page = open_page(browser, addr, "status").await?;
    wait(&page, "#log shows the open event", &has_line("log", "open")).await?;

    // Typed, then Enter (UTF-8 beyond ASCII on purpose).
    let first = "héllo from Chromium ✓";
    send(&page, first, false).await?;
    wait(
        &page,
        "the sent line",
        &has_line("log", &format!("→ {first}")),
    )
    .await?;
    wait(&page, "the echo", &has_line("log", &format!("← {first}"))).await?;
    let input = page
        .eval("document.getElementById('message').value")
        .await?;
    if input != "" {
        return Err(format!("#message was not cleared after sending: {input}"));
    }

    // Typed, then the Send button.
    let second = "second message, by button";
    send(&page, second, true).await?;
    wait(
        &page,
        "the second echo",
        &has_line("log", &format!("← {second}")),
    )
    .await?;

    // In order, and nothing else: open, →1, ←1, →2, ←2.
    let lines = page
        .eval("[...document.querySelectorAll('#log > div')].map(d => d.textContent)")
        .await?;
    let expected = serde_json::json!([
        "open",
        format!("→ {first}"),
        format!("← {first}"),
        format!("→ {second}"),
        format!("← {second}"),
    ]);
    if lines != expected {
        return Err(format!("#log is {lines}, expected {expected}"));
    }

    // The Disconnect button: the browser closes with 1000, the server
    // completes the closing handshake, the page reports a clean close.
    page.click("#connect").await?;
    let closed = format!("{} === 'closed'", text_of("status"));
    wait(&page, "#status says closed", &closed).await?;
    let clean = "[...document.querySelectorAll('#log > div')]\
                 .some(d => d.textContent.startsWith('closed 1000'))";
    wait(&page, "a clean close in #log", clean).await?;

    // Connect again: a new connection, which echoes too.
    page.click("#connect").await?;
    let open = format!("{} === 'open'", text_of("status"));
    wait(&page, "#status says open again", &open).await?;
    send(&page, "again", false).await?;
    wait(
        &page,
        "the echo after reconnecting",
        &has_line("log", "← again"),
    )
    .await?;
    no_exceptions(&page)
}

/// S6: text POSTed with the page's form reaches, through each connection's
/// handle and `info`, every open `/seed/log` socket — in two tabs.
#[tokio::test]
async fn s6_post_to_log_reaches_every_seed_log_socket() {
    with_browser("s6_post_to_log_reaches_every_seed_log_socket", |b, addr| {
        Box::pin(post_to_log_reaches_every_seed_log_socket(b, addr))
    })
    .await;
}

async fn post_to_log_reaches_every_seed_log_socket(
    browser: &Browser,
    addr: SocketAddr,
) -> Result<(), String> {
    let poster = open_page(browser, addr, "log-status").await?;
    let other = open_page(browser, addr, "log-status").await?;

    let text = "logged from the browser: ünïcode ✓";
    poster.focus("#log-body").await?;
    poster.type_text(text).await?;
    poster.click("#log-post").await?;
    let posted = format!(
        "{}.startsWith('posted (HTTP 202)')",
        text_of("log-post-result")
    );
    wait(&poster, "the POST result", &posted).await?;
    let line = has_line("seed-log", text);
    wait(&poster, "the text in the posting tab", &line).await?;
    wait(&other, "the text in the other tab", &line).await?;

    // The form was cleared, and each tab got the text exactly once.
    let body = poster
        .eval("document.getElementById('log-body').value")
        .await?;
    if body != "" {
        return Err(format!("#log-body was not cleared after posting: {body}"));
    }
    for (name, page) in [("posting", &poster), ("other", &other)] {
        let n = page
            .eval("document.querySelectorAll('#seed-log > div').length")
            .await?;
        if n != 1 {
            return Err(format!("{name} tab: #seed-log has {n} lines, expected 1"));
        }
        no_exceptions(page)?;
    }
    Ok(())
}

/// RFC 7692 with a real browser: Chromium offers permessage-deflate, the
/// demo's `/echo` accepts it, and compressed messages both ways (Chromium
/// compresses what it sends; lariat compresses its echo) come back intact.
#[tokio::test]
async fn rfc7692_chromium_negotiates_deflate_and_echoes() {
    with_browser(
        "rfc7692_chromium_negotiates_deflate_and_echoes",
        |b, addr| Box::pin(chromium_deflate(b, addr)),
    )
    .await;
}

async fn chromium_deflate(browser: &Browser, addr: SocketAddr) -> Result<(), String> {
    let page = open_page(browser, addr, "status").await?;
    let result = page
        .eval(
            r#"new Promise((resolve, reject) => {
                const big = "compress me, lariat! ".repeat(5000);
                const w = new WebSocket(location.origin.replace(/^http/, "ws") + "/echo");
                const got = [];
                w.onopen = () => { w.send(big); w.send("short"); };
                w.onmessage = e => {
                    got.push(e.data);
                    if (got.length === 2) {
                        resolve({ extensions: w.extensions, big: got[0] === big, short: got[1] === "short" });
                        w.close(1000);
                    }
                };
                w.onerror = () => reject("websocket error");
                setTimeout(() => reject("timeout"), 8000);
            })"#,
        )
        .await?;
    let extensions = result["extensions"].as_str().unwrap_or_default();
    if !extensions.starts_with("permessage-deflate") {
        return Err(format!("no permessage-deflate negotiated: {result}"));
    }
    if result["big"] != true || result["short"] != true {
        return Err(format!("echo differs: {result}"));
    }
    no_exceptions(&page)
}

/// Issue #7: two chat pages, each served by its own demo process, the two
/// processes sharing a real Redis (`--redis`): what one page sends shows up
/// in both, and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue7_two_chat_pages_on_two_nodes_share_a_room() {
    if let Err(e) = ensure_chromium() {
        panic!("{e}");
    }
    let redis = redis::RedisServer::start();
    let url = redis.url();
    let a = process::demo(&["--threads", "1", "--redis", &url]);
    let b = process::demo(&["--threads", "1", "--redis", &url]);
    let outcome = tokio::time::timeout(TEST_TIMEOUT, async {
        let browser = Browser::launch().await?;
        let result = two_chat_pages(&browser, &redis, a.addr, b.addr).await;
        browser.close().await;
        result
    })
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}\nnode A log:\n{}\nnode B log:\n{}", a.log(), b.log()),
        Err(_) => panic!("did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// JS: does `#messages` hold a chat line from `name` saying `text`?
fn chat_line(name: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li')].some(l => l.dataset.name === {} && l.dataset.text === {})",
        js_str(name),
        js_str(text)
    )
}

async fn two_chat_pages(
    browser: &Browser,
    redis: &redis::RedisServer,
    a: SocketAddr,
    b: SocketAddr,
) -> Result<(), String> {
    let ann = browser
        .new_page(&format!("http://{a}/chat?room=lounge&name=ann"))
        .await?;
    let ben = browser
        .new_page(&format!("http://{b}/chat?room=lounge&name=ben"))
        .await?;
    let open = "document.getElementById('status').dataset.state === 'open'";
    wait(&ann, "ann's page connected", open).await?;
    wait(&ben, "ben's page connected", open).await?;
    // Both nodes have subscribed to the room in Redis.
    let deadline = Instant::now() + WAIT;
    loop {
        let n = redis
            .command(&["PUBSUB", "NUMSUB", "lariat:chat:lounge"])
            .unwrap_or_default();
        if n.lines().nth(1).map(str::trim) == Some("2") {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the two nodes did not both subscribe: {n:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (from, name, to, text) in [
        (&ann, "ann", &ben, "hello from node A ✓"),
        (&ben, "ben", &ann, "and back from node B"),
    ] {
        from.focus("#text").await?;
        from.type_text(text).await?;
        from.click("#send").await?;
        wait(
            to,
            "the message on the other node's page",
            &chat_line(name, text),
        )
        .await?;
        wait(
            from,
            "the message on the sender's page",
            &chat_line(name, text),
        )
        .await?;
    }
    for page in [&ann, &ben] {
        let n = page
            .eval("document.querySelectorAll('#messages li[data-name]').length")
            .await?;
        if n != 2 {
            return Err(format!("expected 2 chat lines on each page, got {n}"));
        }
        no_exceptions(page)?;
    }
    Ok(())
}
