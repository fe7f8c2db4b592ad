//! Topics on one node (issue #7, part 1), through real sockets: fan-out to
//! 1,000 tokio-tungstenite subscribers, delivery to `info`, leaving, slow
//! subscribers (disconnect with 1008, or skip and notify), one compressed
//! encoding for permessage-deflate subscribers (RFC 7692).

#[path = "support/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lariat::pubsub::{SlowSubscriber, Topics};
use lariat::{
    Context, DeflateConfig, Frame, Handler, Init, MailboxOverflow, Message, Reply, Router,
    SendQueueFull, Server, TerminateReason, Upgrade,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use raw::T;

/// Subscribes in `init` (frames straight out, or to `info` when `info`);
/// a text `leave` leaves; any other text is published to the topic; reports
/// how it ended; tells the client how many publications it missed.
struct Member {
    topics: Topics,
    topic: String,
    info: bool,
    done: Option<mpsc::UnboundedSender<TerminateReason>>,
}

impl Handler for Member {
    type Info = String;
    async fn init(&mut self, ctx: &mut Context<String>) -> Reply {
        let ok = if self.info {
            ctx.subscribe_info(&self.topics, &self.topic, |p| {
                format!("info:{}", p.text().unwrap_or("<binary>"))
            })
        } else {
            ctx.subscribe(&self.topics, &self.topic)
        };
        assert!(ok);
        // A second subscription to the same topic is refused.
        assert!(!ctx.subscribe(&self.topics, &self.topic));
        Reply::ok()
    }
    async fn handle(&mut self, msg: Message, ctx: &mut Context<String>) -> Reply {
        match msg {
            Message::Text(t) if &*t == "block" => {
                // Busy in a callback: the mailbox fills meanwhile.
                tokio::time::sleep(Duration::from_millis(500)).await;
                Reply::text("unblocked")
            }
            Message::Text(t) if &*t == "leave" => {
                assert!(ctx.unsubscribe(&self.topics, &self.topic));
                assert_eq!(ctx.subscriptions().count(), 0);
                Reply::text("left")
            }
            Message::Text(t) => {
                self.topics.publish(&self.topic, t).await.unwrap();
                Reply::ok()
            }
            _ => Reply::ok(),
        }
    }
    async fn info(&mut self, text: String, _: &mut Context<String>) -> Reply {
        Reply::text(text)
    }
    async fn missed(&mut self, count: u64, ctx: &mut Context<String>) -> Reply {
        assert!(ctx.missed_publications() >= count);
        Reply::text(format!("missed:{count}"))
    }
    fn terminate(&mut self, reason: &TerminateReason) {
        if let Some(d) = &self.done {
            let _ = d.send(reason.clone());
        }
    }
}

/// A server with `/sub/:topic`, `/info/:topic`, `/small/:topic` (64 KiB
/// send-queue limit), `/bounded/:topic` (mailbox of 2) and `/deflate/:topic`
/// on `topics`.
async fn server(
    topics: Topics,
    done: Option<mpsc::UnboundedSender<TerminateReason>>,
) -> SocketAddr {
    let member = move |req: &lariat::Request, info: bool| Member {
        topics: topics.clone(),
        topic: req.param("topic").unwrap().to_string(),
        info,
        done: done.clone(),
    };
    let (m1, m2, m3, m4, m5) = (
        member.clone(),
        member.clone(),
        member.clone(),
        member.clone(),
        member,
    );
    let router =
        Router::new()
            .route("/sub/:topic", move |req| {
                let h = m1(&req, false);
                async move { Init::upgrade(h) }
            })
            .route("/info/:topic", move |req| {
                let h = m2(&req, true);
                async move { Init::upgrade(h) }
            })
            .route("/small/:topic", move |req| {
                let h = m3(&req, false);
                async move {
                    Init::Upgrade(
                        Upgrade::new(h)
                            .backpressure_limit(16 * 1024)
                            .send_queue_limit(64 * 1024, SendQueueFull::Close),
                    )
                }
            })
            .route("/bounded/:topic", move |req| {
                let h = m5(&req, false);
                async move {
                    Init::Upgrade(Upgrade::new(h).mailbox_capacity(2, MailboxOverflow::Reject))
                }
            })
            .route("/deflate/:topic", move |req| {
                let h = m4(&req, false);
                async move { Init::Upgrade(Upgrade::new(h).deflate(DeflateConfig::default())) }
            });
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(router));
    addr
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Issue #7: every one of 1,000 subscribers gets every message, in order
/// per publisher (two publishers, 50 messages each, published at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_reaches_1000_subscribers_in_order_per_publisher() {
    const SUBS: usize = 1000;
    const EACH: usize = 50;
    let topics = Topics::new();
    let addr = server(topics.clone(), None).await;
    let mut clients = Vec::new();
    for _ in 0..SUBS {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sub/news"))
            .await
            .unwrap();
        clients.push(ws);
    }
    wait_for("1000 subscribers", || {
        topics.subscriber_count("news") == SUBS
    })
    .await;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut next = [0usize; 2];
                while next.iter().sum::<usize>() < 2 * EACH {
                    let msg = tokio::time::timeout(T, ws.next())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    let WsMessage::Text(t) = msg else {
                        panic!("{msg:?}")
                    };
                    let (who, seq) = t.split_once(':').unwrap();
                    let p = usize::from(who == "B");
                    assert_eq!(seq.parse::<usize>().unwrap(), next[p], "publisher {who}");
                    next[p] += 1;
                }
                ws.close(None).await.unwrap();
            })
        })
        .collect();
    let publishers: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|who| {
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sub/news"))
                    .await
                    .unwrap();
                for i in 0..EACH {
                    ws.send(WsMessage::text(format!("{who}:{i}")))
                        .await
                        .unwrap();
                }
                ws
            })
        })
        .collect();
    for r in readers {
        r.await.unwrap();
    }
    for p in publishers {
        drop(p.await.unwrap());
    }
    // Every connection leaves its topics when it ends.
    wait_for("all left", || topics.subscriber_count("news") == 0).await;
    assert_eq!(topics.topic_count(), 0);
}

/// Issue #7: delivery to the handler's `info`, mapped; publishing from
/// outside any connection.
#[tokio::test]
async fn info_subscribers_get_publications_through_their_handler() {
    let topics = Topics::new();
    let addr = server(topics.clone(), None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/info/alerts"))
        .await
        .unwrap();
    wait_for("subscribed", || topics.subscriber_count("alerts") == 1).await;
    assert_eq!(topics.publish_local("alerts", "disk full").unwrap(), 1);
    assert_eq!(topics.publish_local("nobody-here", "x").unwrap(), 0);
    assert!(topics
        .publish_local("alerts", Frame::Ping(Default::default()))
        .is_err());
    let msg = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(msg, WsMessage::text("info:disk full"));
}

/// Issue #7: leaving from a callback, and leaving everything on terminate.
#[tokio::test]
async fn connections_leave_on_request_and_when_they_end() {
    let topics = Topics::new();
    let addr = server(topics.clone(), None).await;
    let url = format!("ws://{addr}/sub/room");
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    wait_for("two", || topics.subscriber_count("room") == 2).await;
    a.send(WsMessage::text("leave")).await.unwrap();
    let msg = tokio::time::timeout(T, a.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(msg, WsMessage::text("left"));
    assert_eq!(topics.subscriber_count("room"), 1);
    // Dropped without a closing handshake: terminate still leaves.
    drop(b);
    wait_for("none", || topics.topic_count() == 0).await;
    // `a` gets nothing published after it left.
    assert_eq!(topics.publish_local("room", "after").unwrap(), 0);
    assert!(tokio::time::timeout(Duration::from_millis(300), a.next())
        .await
        .is_err());
}

/// Server frames (unmasked) parsed from `bytes`: (first byte, payload).
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let (len, at) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        if bytes.len() < at + len {
            break;
        }
        out.push((bytes[0], bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    out
}

/// Read a raw socket until EOF (or `T`).
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    out
}

/// Issue #7: a subscriber that does not read is cut off with 1008 under the
/// default policy, while a reading one gets everything and the publisher
/// never waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_disconnected_with_1008() {
    let topics = Topics::new();
    let (tx, mut done) = mpsc::unbounded_channel();
    let addr = server(topics.clone(), Some(tx)).await;
    let (mut slow, _) = raw::upgrade(addr, "/small/feed", "").await;
    let (mut fast, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sub/feed"))
        .await
        .unwrap();
    wait_for("two", || topics.subscriber_count("feed") == 2).await;
    let reader = tokio::spawn(async move {
        for i in 0..200u8 {
            let m = tokio::time::timeout(T, fast.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(m, WsMessage::binary(vec![i; 16 * 1024]));
        }
        fast
    });
    for i in 0..200u8 {
        topics
            .publish_local("feed", Frame::binary(vec![i; 16 * 1024]))
            .unwrap();
        // Let the queues move so the reading client never lags.
        if i % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let _fast = reader.await.unwrap();
    let reason = tokio::time::timeout(T, done.recv()).await.unwrap().unwrap();
    assert_eq!(reason, TerminateReason::SlowConsumer);
    assert_eq!(topics.subscriber_count("feed"), 1);
    let got = frames(&read_to_end(&mut slow).await);
    let (b0, payload) = got.last().expect("some frames").clone();
    assert_eq!(b0, 0x88, "ends with a close frame");
    assert_eq!(&payload[..2], &1008u16.to_be_bytes());
    assert!(got.len() < 200);
}

/// Issue #7: under `SlowSubscriber::Drop`, a subscriber that does not read
/// skips publications, stays connected, and is told how many it missed once
/// it catches up; nothing is lost silently (received + missed = published).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_drop_policy_skips_and_notifies() {
    let topics = Topics::builder()
        .slow_subscriber(SlowSubscriber::Drop)
        .build();
    let addr = server(topics.clone(), None).await;
    let (mut slow, _) = raw::upgrade(addr, "/small/feed", "").await;
    wait_for("one", || topics.subscriber_count("feed") == 1).await;
    for i in 0..200u8 {
        topics
            .publish_local("feed", Frame::binary(vec![i; 16 * 1024]))
            .unwrap();
    }
    // Catch up: read until the server has reported the misses.
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut received, mut missed) = (0u64, 0u64);
    let mut last = None;
    while received + missed < 200 {
        let n = tokio::time::timeout(T, slow.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {received} received, {missed} missed");
        bytes.extend_from_slice(&buf[..n]);
        let all = frames(&bytes);
        received = 0;
        missed = 0;
        for (b0, payload) in &all {
            match b0 {
                0x82 => {
                    // In order: each later than the one before.
                    received += 1;
                    assert!(last.is_none_or(|l| payload[0] > l || received == 1));
                    last = Some(payload[0]);
                }
                0x81 => {
                    let t = String::from_utf8(payload.clone()).unwrap();
                    missed += t.strip_prefix("missed:").unwrap().parse::<u64>().unwrap();
                }
                other => panic!("unexpected frame {other:#x}"),
            }
        }
    }
    assert_eq!(received + missed, 200);
    assert!(missed > 0, "the client never lagged");
    assert_eq!(topics.subscriber_count("feed"), 1, "still connected");
}

/// Issue #7 with RFC 7692: a publication reaches a permessage-deflate
/// subscriber compressed (RSV1) and inflates to the text published.
#[tokio::test]
async fn deflate_subscribers_get_the_compressed_encoding() {
    let topics = Topics::new();
    let addr = server(topics.clone(), None).await;
    let (mut s, head) = raw::upgrade(
        addr,
        "/deflate/news",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    assert!(head.contains("permessage-deflate"), "{head}");
    wait_for("one", || topics.subscriber_count("news") == 1).await;
    let text: String = (0..60)
        .map(|i| format!("{{\"id\":{i},\"room\":\"news\"}}"))
        .collect();
    topics.publish_local("news", text.clone()).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let got = loop {
        let n = tokio::time::timeout(T, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        bytes.extend_from_slice(&buf[..n]);
        if let Some(f) = frames(&bytes).into_iter().next() {
            break f;
        }
    };
    assert_eq!(got.0, 0xc1, "FIN, RSV1, text");
    assert!(got.1.len() < text.len() / 2);
    let mut body = got.1.clone();
    body.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut inflate = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(text.len() * 2);
    inflate
        .decompress_vec(&body, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), text);
}

/// Publish ten messages while the subscriber's handler is busy in a
/// callback and its mailbox (capacity 2) is full; the texts it then gets.
async fn publish_into_a_full_mailbox(topics: Topics) -> (Vec<String>, Option<u16>) {
    let addr = server(topics.clone(), None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/bounded/feed"))
        .await
        .unwrap();
    wait_for("one", || topics.subscriber_count("feed") == 1).await;
    ws.send(WsMessage::text("block")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    for i in 0..10 {
        topics.publish_local("feed", format!("m{i}")).unwrap();
    }
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Text(t))) => {
                texts.push(t.to_string());
                if texts.len() == 4 {
                    return (texts, None);
                }
            }
            Some(Ok(WsMessage::Close(c))) => return (texts, c.map(|c| u16::from(c.code))),
            other => panic!("{other:?}"),
        }
    }
}

/// Issue #7: a bounded mailbox full of publications applies the
/// slow-subscriber policy too. `Drop`: two delivered, eight reported missed.
#[tokio::test]
async fn full_mailbox_under_drop_policy_reports_the_missed() {
    let topics = Topics::builder()
        .slow_subscriber(SlowSubscriber::Drop)
        .build();
    let (texts, close) = publish_into_a_full_mailbox(topics).await;
    assert_eq!(close, None);
    assert_eq!(texts[0], "unblocked");
    let mut rest = texts[1..].to_vec();
    rest.sort();
    assert_eq!(rest, ["m0", "m1", "missed:8"]);
}

/// `Disconnect` (the default): closed with 1008 once the callback returns.
#[tokio::test]
async fn full_mailbox_under_disconnect_policy_closes_with_1008() {
    let (texts, close) = publish_into_a_full_mailbox(Topics::new()).await;
    assert_eq!(texts, ["unblocked"]);
    assert_eq!(close, Some(1008));
}
