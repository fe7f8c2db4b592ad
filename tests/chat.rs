//! The demo's chat on one node (issue #7, part 3): `/chat/:room` broadcasts
//! each text message to everyone in the room, sender included, and to no
//! other room; `/chat` serves the page. Driven with tokio-tungstenite and raw
//! HTTP over real sockets.

#[path = "support/chat.rs"]
mod chat;
#[path = "support/server.rs"]
mod server;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use chat::{join, next_text, Ws};

const T: Duration = Duration::from_secs(10);

async fn next(ws: &mut Ws) -> String {
    next_text(ws, T).await.expect("a text message")
}

/// Nothing arrives for a while.
async fn quiet(ws: &mut Ws) {
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ws.next())
            .await
            .is_err(),
        "a message arrived"
    );
}

/// Issue #7: everyone in the room gets each message in order, the sender
/// included; another room hears nothing; keep-alive (empty) messages are not
/// broadcast.
#[tokio::test]
async fn chat_room_broadcasts_to_everyone_in_it_and_nowhere_else() {
    let addr = server::demo().await;
    let mut alice = join(addr, "garden").await;
    let mut bob = join(addr, "garden").await;
    let mut carol = join(addr, "kitchen").await;
    // Joining is done in the connection's init: give it a moment to run.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = [
        r#"{"name":"alice","text":"hello"}"#,
        r#"{"name":"alice","text":"anyone?"}"#,
    ];
    alice.send(Message::text("")).await.unwrap();
    for l in lines {
        alice.send(Message::text(l)).await.unwrap();
    }
    for l in lines {
        assert_eq!(next(&mut alice).await, l);
        assert_eq!(next(&mut bob).await, l);
    }
    bob.send(Message::text(r#"{"name":"bob","text":"hi"}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut alice).await, r#"{"name":"bob","text":"hi"}"#);
    quiet(&mut carol).await;
}

/// A bad room name is refused before the upgrade (400); the page is served.
#[tokio::test]
async fn chat_refuses_bad_room_names_and_serves_the_page() {
    let addr = server::demo().await;
    let err = tokio_tungstenite::connect_async(format!("ws://{addr}/chat/no%20spaces"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 400),
        e => panic!("{e}"),
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut page))
        .await
        .unwrap()
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("/chat/"), "the page opens /chat/<room>");
}
