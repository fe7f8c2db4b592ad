//! wss:// through rustls, with a client that is not lariat's: tokio-tungstenite
//! over a tokio-rustls client connection that trusts a certificate made here.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lariat::tls::rustls;
use lariat::{Context, Handler, Init, Message, Reply, Router, Server};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

struct Echo;

impl Handler for Echo {
    type Info = ();
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        match msg {
            Message::Text(t) => Reply::text(t),
            Message::Binary(b) => Reply::binary(b),
            _ => Reply::ok(),
        }
    }
}

async fn tls_server() -> (std::net::SocketAddr, CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let config = lariat::tls::config_from_der(vec![cert_der.clone()], key).unwrap();
    let server = Server::bind("127.0.0.1:0").await.unwrap().tls(config);
    let addr = server.local_addr().unwrap();
    let router = Router::new().route("/echo", |_req| async { Init::upgrade(Echo) });
    tokio::spawn(server.serve(router));
    (addr, cert_der)
}

fn client_config(cert: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A wss:// client of `/echo` through tokio-rustls, trusting `cert`; the
/// WebSocket handshake is bounded by 5 s.
async fn wss_connect(
    addr: std::net::SocketAddr,
    cert: CertificateDer<'static>,
) -> (
    WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>,
    Response,
) {
    let connector = tokio_rustls::TlsConnector::from(client_config(cert));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/echo", addr.port());
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn wss_echo_through_rustls() {
    let (addr, cert) = tls_server().await;
    let (mut ws, resp) = wss_connect(addr, cert).await;
    assert_eq!(resp.status(), 101);
    ws.send(WsMessage::text("over tls")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, WsMessage::text("over tls"));
    ws.close(None).await.unwrap();
}

/// Large payloads go out by reference with vectored writes: over TLS
/// too, several of them in a row come back whole and in order.
#[tokio::test]
async fn wss_large_messages_come_back_whole() {
    let (addr, cert) = tls_server().await;
    let (mut ws, _) = wss_connect(addr, cert).await;
    let sizes = [16 * 1024, 70_000, 300_000, 17];
    for (i, n) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..*n).map(|j| (i * 31 + j) as u8).collect();
        ws.send(WsMessage::binary(payload)).await.unwrap();
    }
    for (i, n) in sizes.iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let want: Vec<u8> = (0..*n).map(|j| (i * 31 + j) as u8).collect();
        assert_eq!(got, WsMessage::binary(want), "message {i}");
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn plaintext_to_the_tls_port_is_refused_and_the_server_goes_on() {
    let (addr, cert) = tls_server().await;
    // A plain HTTP request where a TLS ClientHello is expected: the server
    // drops it (no hang), and still serves TLS clients afterwards.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf))
        .await
        .unwrap();
    match n {
        // Dropped, or reset.
        Ok(0) | Err(_) => {}
        // Or a TLS alert record (content type 21), never an HTTP answer.
        Ok(_) => assert_eq!(buf[0], 0x15, "expected a TLS alert, got {:?}", &buf[..8]),
    }
    let (mut ws, _) = wss_connect(addr, cert).await;
    ws.send(WsMessage::text("still here")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, WsMessage::text("still here"));
}
