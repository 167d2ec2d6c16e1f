//! TLS: `wss://` and RawSocket over TLS with certificates made at test time, client
//! certificates (method `tls`), reloading the files, and clients that get TLS wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::Hello;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Serializer, Uri, Value};
use wamp_tests::rawsocket::{RsPeer, TempDir};
use wamp_tests::{hello, TestRouter, WAIT};

/// A CA, and a server certificate for `localhost` it signed, written as PEM files.
struct Pki {
    dir: TempDir,
    ca: rcgen::Certificate,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let pki = Pki {
            dir,
            ca,
            ca_params: params,
            ca_key,
        };
        pki.server_cert("server");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.pem` / `<name>.key`: a `localhost` certificate signed by the CA.
    fn server_cert(&self, name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// A client certificate with subject CN `cn`, signed by the CA.
    fn client_cert(&self, cn: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), der)
    }

    fn tls_option(&self, extra: &str) -> String {
        format!(
            "tls = {{ certificate = {:?}, key = {:?}{extra} }}",
            self.path("server.pem").display().to_string(),
            self.path("server.key").display().to_string()
        )
    }

    fn connector(
        &self,
        client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// `ws(s)://ADDR/ws` or `rs(s)://ADDR` → ADDR.
fn addr_of(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap();
    rest.split('/').next().unwrap()
}

async fn tls_stream(
    pki: &Pki,
    url: &str,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr_of(url)).await?;
    let name = ServerName::try_from("localhost").unwrap();
    timeout(WAIT, pki.connector(client).connect(name, tcp))
        .await
        .expect("TLS handshake in time")
}

async fn router(pki: &Pki, tls_extra: &str, realm: &str) -> TestRouter {
    let tls = pki.tls_option(tls_extra);
    TestRouter::with_config(&format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\n{tls}\n\
         [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n{tls}\n\
         [[realm]]\nname = \"realm1\"\n{realm}"
    ))
    .await
}

/// A WebSocket session over TLS: WELCOME's session id, or the close.
async fn wss_join(pki: &Pki, url: &str) -> Message {
    let stream = tls_stream(pki, url, None).await.expect("TLS connects");
    let mut req = url
        .replace("wss://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wamp.2.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    let hello = Serializer::Json.encode(&hello("realm1")).unwrap();
    ws.send(WsMessage::Text(
        hello.as_bytes().to_vec().try_into().unwrap(),
    ))
    .await
    .unwrap();
    match timeout(WAIT, ws.next()).await.expect("answer in time") {
        Some(Ok(WsMessage::Text(t))) => Serializer::Json.decode(t.as_bytes()).unwrap(),
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

#[tokio::test]
async fn wss_and_rawsocket_over_tls_join_and_plain_text_clients_are_closed() {
    let pki = Pki::new();
    let router = router(&pki, "", "").await;
    let [wss, rss] = router.server().urls() else {
        panic!("two URLs");
    };
    assert!(
        wss.starts_with("wss://") && rss.starts_with("rss://"),
        "{wss} {rss}"
    );
    assert!(matches!(wss_join(&pki, wss).await, Message::Welcome(_)));

    let stream = tls_stream(&pki, rss, None).await.expect("TLS connects");
    let mut rs = RsPeer::over(stream);
    rs.accept_handshake(Serializer::MsgPack).await;
    rs.hello("realm1").await;

    // A plain-text client on a TLS port: closed, and nobody else notices.
    for plain in [
        &b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x7f, 0xf2, 0, 0][..],
    ] {
        let mut tcp = TcpStream::connect(addr_of(wss)).await.unwrap();
        tcp.write_all(plain).await.unwrap();
        let mut buf = Vec::new();
        let read = timeout(WAIT, tcp.read_to_end(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            read.is_err() || !buf.starts_with(b"HTTP"),
            "no plain answer: {buf:?}"
        );
    }
    assert!(matches!(wss_join(&pki, wss).await, Message::Welcome(_)));
    let _ = rs.request();
}

fn tls_hello(authid: Option<&str>) -> Message {
    let role = || Value::Dict(dict([("features", Value::Dict(Dict::new()))]));
    let mut details = dict([
        ("roles", Value::Dict(dict([("caller", role())]))),
        ("authmethods", Value::List(vec!["tls".into()])),
    ]);
    if let Some(a) = authid {
        details.insert("authid".into(), a.into());
    }
    Hello {
        realm: Uri::new("realm1"),
        details,
    }
    .into()
}

#[tokio::test]
async fn a_verified_client_certificate_logs_in_with_method_tls() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem").display().to_string();
    let router = router(
        &pki,
        &format!(", client_ca = {ca:?}"),
        "[[realm.user]]\nauthid = \"device-17\"\nrole = \"device\"\ntls = true\n",
    )
    .await;
    let rss = &router.server().urls()[1];
    let stream = tls_stream(&pki, rss, Some(pki.client_cert("device-17")))
        .await
        .expect("TLS connects");
    let mut p = RsPeer::over(stream);
    p.accept_handshake(Serializer::Json).await;
    p.send(&tls_hello(None)).await;
    match p.recv().await {
        Message::Welcome(w) => {
            assert_eq!(w.details.get("authid"), Some(&Value::from("device-17")));
            assert_eq!(w.details.get("authmethod"), Some(&Value::from("tls")));
            assert_eq!(w.details.get("authrole"), Some(&Value::from("device")));
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }

    // Another CN, or no certificate at all: not this user.
    for client in [Some(pki.client_cert("someone-else")), None] {
        let stream = tls_stream(&pki, rss, client).await.expect("TLS connects");
        let mut p = RsPeer::over(stream);
        p.accept_handshake(Serializer::Json).await;
        p.send(&tls_hello(Some("device-17"))).await;
        p.expect_abort(uris::NO_SUCH_PRINCIPAL).await;
    }
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_one() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem").display().to_string();
    let router = router(
        &pki,
        &format!(", client_ca = {ca:?}, client_certificates = \"required\""),
        "",
    )
    .await;
    let rss = &router.server().urls()[1];
    // TLS 1.3: the refusal shows on the first read after the handshake.
    let refused = match tls_stream(&pki, rss, None).await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(&[0x7f, 0xf1, 0, 0]).await;
            let mut buf = [0u8; 4];
            timeout(WAIT, s.read(&mut buf))
                .await
                .expect("in time")
                .map_or(true, |n| n == 0)
        }
    };
    assert!(refused, "a client without a certificate is refused");
    let stream = tls_stream(&pki, rss, Some(pki.client_cert("anyone")))
        .await
        .expect("TLS connects");
    let mut p = RsPeer::over(stream);
    p.accept_handshake(Serializer::Json).await;
    p.hello("realm1").await;
}

#[tokio::test]
async fn reloading_the_files_serves_the_new_certificate_and_keeps_open_connections() {
    let pki = Pki::new();
    let router = router(&pki, "", "").await;
    let rss = router.server().urls()[1].clone();
    let stream = tls_stream(&pki, &rss, None).await.unwrap();
    let mut open = RsPeer::over(stream);
    open.accept_handshake(Serializer::Json).await;
    open.hello("realm1").await;

    let before = peer_cert(&pki, &rss).await;
    let new = pki.server_cert("next");
    std::fs::rename(pki.path("next.pem"), pki.path("server.pem")).unwrap();
    std::fs::rename(pki.path("next.key"), pki.path("server.key")).unwrap();
    router.server().reload_tls().expect("reload");
    let after = peer_cert(&pki, &rss).await;
    assert_ne!(before, after);
    assert_eq!(after, new);

    // A broken file keeps the current certificate in use.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    let e = router.server().reload_tls().unwrap_err();
    assert!(e.to_string().contains("server.key"), "{e}");
    assert_eq!(peer_cert(&pki, &rss).await, new);

    // The connection opened before the reloads still works.
    let _ = open.register("com.example.still.here").await;
}

async fn peer_cert(pki: &Pki, url: &str) -> CertificateDer<'static> {
    let s = tls_stream(pki, url, None).await.unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_file() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem").display().to_string();
    let key = pki.path("server.key").display().to_string();
    let text = format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\ntls = {{ certificate = {missing:?}, key = {key:?} }}\n\
         [[realm]]\nname = \"r\"\n"
    );
    let config = wamp_router::Config::from_toml(&text, "t").unwrap();
    let e = wamp_router::Server::start(config).await.unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let _ = Path::new(&missing);
}

/// The long-poll transport rides the WebSocket port's TLS: `open` over HTTPS.
#[tokio::test]
async fn longpoll_over_https() {
    let pki = Pki::new();
    let tls = pki.tls_option("");
    let router = TestRouter::with_config(&format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\nlongpoll = {{ path = \"/lp\" }}\n{tls}\n\
         [[realm]]\nname = \"realm1\"\n"
    ))
    .await;
    let mut s = tls_stream(&pki, router.url(), None).await.expect("TLS");
    let body = r#"{"protocols": ["wamp.2.json"]}"#;
    let req = format!(
        "POST /lp/open HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // The router closes without close_notify after `Connection: close`; what was read counts.
    let _ = timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("answer in time");
    let answer = wamp_tests::http::parse(&out).expect("an HTTP answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["protocol"], "wamp.2.json");
}
