//! Our client (`wamp_client`) over TLS against the real router: `wss://` and `rss://` with a
//! CA made at test time (none is committed), certificates it must refuse, mutual TLS with
//! authmethod `tls`, and keep-alive pings both ways (the router's answered by the client, the
//! client's own noticing a router that went silent).

use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::time::timeout;
use wamp_client::{
    CallError, Client, ClientBuilder, CloseKind, ConnectError, Invocation, ReconnectPolicy,
    Serializer, Value,
};
use wamp_tests::proxy::SilentProxy;
use wamp_tests::rawsocket::TempDir;
use wamp_tests::{TestRouter, WAIT};

/// A CA that signs the router's (and the clients') certificates.
type Ca = CertifiedIssuer<'static, KeyPair>;

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate `ca` signs for the names `sans` (DNS names or IP addresses) with subject
/// CN `cn`: its PEM and its key's PEM.
fn issue(ca: &Ca, sans: &[&str], cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let issuer: &rcgen::Issuer<'_, KeyPair> = ca;
    (
        params.signed_by(&key, issuer).unwrap().pem(),
        key.serialize_pem(),
    )
}

/// A router with TLS on a WebSocket and a RawSocket transport, its certificate for `sans`
/// signed by `ca`; `tls_extra` goes into both `tls = { .. }` tables (`CA_FILE` in it names
/// the file with `ca`'s certificate), `transport_extra` under both transports, `realm_extra`
/// under the realm.
struct TlsRouter {
    router: TestRouter,
    _dir: TempDir,
}

impl TlsRouter {
    async fn start(ca: &Ca, sans: &[&str], extra: [&str; 3]) -> TlsRouter {
        let [tls_extra, transport_extra, realm_extra] = extra;
        let dir = TempDir::new();
        let (cert, key) = issue(ca, sans, "router");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let tls_extra = tls_extra.replace("CA_FILE", &format!("{:?}", file("ca.pem", &ca.pem())));
        let tls = format!(
            "tls = {{ certificate = {:?}, key = {:?}{tls_extra} }}",
            file("server.pem", &cert),
            file("server.key", &key)
        );
        let transport = |kind: &str| {
            format!("[[transport]]\ntype = \"{kind}\"\nbind = \"127.0.0.1:0\"\n{tls}\n{transport_extra}\n")
        };
        let router = TestRouter::with_config(&format!(
            "{}{}[[realm]]\nname = \"realm1\"\n{realm_extra}",
            transport("websocket"),
            transport("rawsocket")
        ))
        .await;
        TlsRouter { router, _dir: dir }
    }

    /// `wss://localhost:PORT/ws` and `rss://localhost:PORT`.
    fn urls(&self) -> [String; 2] {
        let urls = self.router.server().urls();
        assert!(urls[0].starts_with("wss://127.0.0.1:"), "{urls:?}");
        assert!(urls[1].starts_with("rss://127.0.0.1:"), "{urls:?}");
        [0, 1].map(|i| urls[i].replace("127.0.0.1", "localhost"))
    }
}

/// A builder for realm1 at `url` that trusts `ca`.
fn trusting(url: &str, ca: &Ca) -> ClientBuilder {
    Client::builder(url)
        .realm("realm1")
        .tls_root_certificates_pem(ca.pem())
}

async fn join(builder: ClientBuilder) -> Client {
    let what = format!("{builder:?}");
    timeout(WAIT, builder.connect())
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn refused(builder: ClientBuilder) -> ConnectError {
    timeout(WAIT, builder.connect())
        .await
        .expect("refused in time")
        .expect_err("the connection is refused")
}

/// The message of a TLS handshake failure; panics on any other error.
fn tls_failure(e: ConnectError) -> String {
    match e {
        ConnectError::Transport(t) => t.message().to_owned(),
        other => panic!("expected a TLS handshake failure, got {other:?}"),
    }
}

async fn echo_callee(client: &Client, procedure: &str) -> wamp_client::Registration {
    let register = client.register(procedure, |inv: Invocation| async move {
        Ok::<_, CallError>(inv.args)
    });
    timeout(WAIT, register)
        .await
        .expect("register in time")
        .expect("register")
}

async fn call_echo(client: &Client, procedure: &str, arg: &str) {
    let r = timeout(WAIT, client.call(procedure).arg(arg))
        .await
        .expect("call answered in time")
        .unwrap_or_else(|e| panic!("call {procedure} over {client:?}: {e}"));
    assert_eq!(r.args, vec![Value::from(arg)]);
}

/// The client registers an echo procedure and calls it: the session works.
async fn call_echo_self(client: &Client) {
    let procedure = format!("com.example.self.{}", client.session_id());
    let _reg = echo_callee(client, &procedure).await;
    call_echo(client, &procedure, "still here").await;
}

#[tokio::test]
async fn our_client_joins_and_calls_over_wss_rss_and_tcps_trusting_the_test_ca() {
    let ca = new_ca("test CA");
    let r = TlsRouter::start(&ca, &["localhost"], ["", "", ""]).await;
    let [wss, rss] = r.urls();
    let callee = join(trusting(&wss, &ca).serializer(Serializer::Json)).await;
    assert_eq!(callee.serializer(), Serializer::Json);
    let _reg = echo_callee(&callee, "com.example.tls.echo").await;
    let tcps = rss.replace("rss://", "tcps://");
    for (url, ser) in [(&rss, Serializer::MsgPack), (&tcps, Serializer::Json)] {
        let caller = join(trusting(url, &ca).serializer(ser)).await;
        assert_eq!(caller.serializer(), ser);
        call_echo(&caller, "com.example.tls.echo", url).await;
        caller.leave().await.expect("leave");
    }
    // Trusting only the test CA (no Mozilla roots) is enough too.
    let only = join(trusting(&wss, &ca).tls_default_roots(false)).await;
    call_echo(&only, "com.example.tls.echo", "only the test CA").await;
}

#[tokio::test]
async fn untrusted_or_misnamed_certificates_and_bad_pem_fail_clearly() {
    let ca = new_ca("test CA");
    let r = TlsRouter::start(&ca, &["localhost"], ["", "", ""]).await;
    let [wss, rss] = r.urls();
    for url in [&wss, &rss] {
        // Mozilla's roots alone do not know the test CA.
        let e = refused(Client::builder(url).realm("realm1")).await;
        let text = e.to_string();
        let m = tls_failure(e);
        assert!(
            m.contains("TLS handshake with localhost failed")
                && m.contains("invalid peer certificate: UnknownIssuer"),
            "{m}"
        );
        assert!(
            text.starts_with("connection failed: TLS handshake"),
            "{text}"
        );
        // A trusted certificate, but for another name than the URL's host.
        let by_ip = url.replace("localhost", "127.0.0.1");
        let m = tls_failure(refused(trusting(&by_ip, &ca)).await);
        assert!(
            m.contains("TLS handshake with 127.0.0.1 failed: invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
            "{m}"
        );
    }
    // PEM without a certificate, a client key that is no key, no roots at all.
    for (builder, why) in [
        (
            Client::builder(&rss).tls_root_certificates_pem("not PEM"),
            "tls_root_certificates_pem (#1) holds no CERTIFICATE",
        ),
        (
            trusting(&rss, &ca).tls_client_certificate(ca.pem(), "no key"),
            "not a PEM private key",
        ),
        (
            Client::builder(&wss).tls_default_roots(false),
            "no trusted root certificates",
        ),
    ] {
        match refused(builder.realm("realm1")).await {
            ConnectError::TlsConfig(m) => assert!(m.contains(why), "{m} (wanted {why})"),
            other => panic!("expected TlsConfig, got {other:?}"),
        }
    }

    // Another router whose certificate, from another CA, is for the IP address 127.0.0.1.
    let other_ca = new_ca("other CA");
    let by_ip = TlsRouter::start(&other_ca, &["127.0.0.1"], ["", "", ""]).await;
    let ip_rss = by_ip.router.server().urls()[1].clone();
    let m = tls_failure(refused(trusting(&ip_rss, &ca)).await);
    assert!(m.contains("UnknownIssuer"), "{m}");
    let both = trusting(&ip_rss, &ca).tls_root_certificates_pem(other_ca.pem());
    let client = join(both).await;
    call_echo_self(&client).await;
    // The refused clients did not disturb the first router.
    let after = join(trusting(&wss, &ca)).await;
    assert!(!after.is_closed());
}

#[tokio::test]
async fn a_client_certificate_logs_in_with_authmethod_tls() {
    let ca = new_ca("test CA");
    let client_ca = ", client_ca = CA_FILE";
    let user = "[[realm.user]]\nauthid = \"device-17\"\nrole = \"device\"\ntls = true\n";
    let r = TlsRouter::start(&ca, &["localhost"], [client_ca, "", user]).await;
    let (cert, key) = issue(&ca, &[], "device-17");
    let [wss, rss] = r.urls();
    for (url, authid) in [(&rss, None), (&wss, Some("device-17"))] {
        let mut b = trusting(url, &ca).tls_client_certificate(&cert, &key);
        if let Some(a) = authid {
            b = b.authid(a);
        }
        let device = join(b).await;
        assert_eq!(device.authmethod(), Some("tls"), "{url}");
        assert_eq!(device.authid(), Some("device-17"));
        assert_eq!(device.authrole(), Some("device"));
        device.leave().await.expect("leave");
    }
    // A certificate of the CA for a CN that is no `tls` user: not this user, refused.
    let (cert2, key2) = issue(&ca, &[], "someone-else");
    let e = refused(trusting(&rss, &ca).tls_client_certificate(&cert2, &key2)).await;
    assert!(
        matches!(&e, ConnectError::AuthenticationFailed { reason, .. }
            if reason == "wamp.error.no_such_principal"),
        "{e:?}"
    );
    // The right CN from a CA the router does not trust: the TLS handshake fails.
    let (cert3, key3) = issue(&new_ca("rogue CA"), &[], "device-17");
    match refused(trusting(&rss, &ca).tls_client_certificate(&cert3, &key3)).await {
        ConnectError::Transport(_) | ConnectError::Closed => {}
        other => panic!("expected the TLS alert to fail the connection, got {other:?}"),
    }
}

#[tokio::test]
async fn our_keepalive_notices_a_router_gone_silent_and_fails_pending_calls() {
    let ca = new_ca("test CA");
    let r = TlsRouter::start(&ca, &["localhost"], ["", "", ""]).await;
    let [wss, rss] = r.urls();
    let callee = join(trusting(&wss, &ca)).await;
    let _reg = echo_callee(&callee, "com.example.ka.echo").await;
    for url in [wss, rss] {
        let port = url.split(':').nth(2).unwrap();
        let port = port.split('/').next().unwrap();
        let proxy = SilentProxy::start(format!("127.0.0.1:{port}")).await;
        let via_proxy = url.replace(&format!(":{port}"), &format!(":{}", proxy.port()));
        let interval = Duration::from_millis(100);
        let client = join(
            trusting(&via_proxy, &ca)
                .keepalive(interval)
                .reconnect(ReconnectPolicy::never()),
        )
        .await;
        // Pings answered: the idle session stays through several intervals.
        let idle = timeout(8 * interval, client.closed()).await;
        assert!(
            idle.is_err(),
            "{url}: closed while the router answered: {idle:?}"
        );
        call_echo(&client, "com.example.ka.echo", &url).await;

        proxy.silence_all();
        let started = Instant::now();
        let pending = async { client.call("com.example.ka.echo").arg("lost").await };
        let (reason, answer) = timeout(WAIT, async { tokio::join!(client.closed(), pending) })
            .await
            .expect("the silence is noticed in time");
        let took = started.elapsed();
        assert_eq!(reason.kind, CloseKind::TransportLost, "{url}: {reason}");
        assert_eq!(reason.reason, wamp_client::TRANSPORT_LOST);
        let message = reason.message.unwrap_or_default();
        assert!(message.contains("keep-alive ping"), "{message}");
        assert_eq!(answer.unwrap_err(), CallError::ConnectionClosed);
        // Expected after two or three intervals; generous for a loaded machine.
        assert!(
            took < 15 * interval,
            "{url}: noticed after {took:?}, not within a few intervals of {interval:?}"
        );
    }
}

#[tokio::test]
async fn the_routers_pings_are_answered_and_ours_too() {
    let ca = new_ca("test CA");
    let keepalive = "keepalive_interval_ms = 100\nkeepalive_timeout_ms = 150";
    let r = TlsRouter::start(&ca, &["localhost"], ["", keepalive, ""]).await;
    let quiet = TlsRouter::start(&ca, &["localhost"], ["", "", ""]).await;
    let [wss, rss] = r.urls();
    let [_, quiet_rss] = quiet.urls();
    // Idle clients of a router that pings every 100 ms and gives up 150 ms later, and one
    // that pings a router that never pings (RawSocket's default) itself.
    let clients = [
        join(trusting(&wss, &ca)).await,
        join(trusting(&rss, &ca).serializer(Serializer::Json)).await,
        join(
            trusting(&quiet_rss, &ca)
                .keepalive(Duration::from_millis(100))
                .reconnect(ReconnectPolicy::never()),
        )
        .await,
    ];
    assert_eq!(r.router.server().session_count(), 2);
    let window = Duration::from_millis(800);
    for c in &clients {
        let closed = timeout(window, c.closed()).await;
        assert!(closed.is_err(), "{c:?} closed: {closed:?}");
    }
    assert_eq!(r.router.server().session_count(), 2, "both still there");
    for c in &clients {
        call_echo_self(c).await;
    }
}
