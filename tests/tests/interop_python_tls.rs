//! Interop over TLS with autobahn-python: `wss://` and RawSocket over TLS (`rss://`) with a
//! CA made at test time, through our router, against our `wamp_client`.
//!
//! Drives `tests/interop/python/tls_peer.py` (peer.py's modes, over TLS trusting the CA file
//! given with `--cafile`; `--certfile`/`--keyfile` for mutual TLS and authmethod `tls`). The
//! router has TLS on a WebSocket and a RawSocket transport, verifies optional client
//! certificates against the same CA, and knows one `tls` user.
//!
//! Needs `WAMP_INTEROP_PYTHON` (see `interop_python.rs`): skipped with a notice without it,
//! failed under CI.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::{CallError, CallResult, Client, Dict, Invocation, Serializer, Value};
use wamp_tests::interop::{python, ScriptPeer, REALM};
use wamp_tests::rawsocket::TempDir;
use wamp_tests::{TestRouter, WAIT};

use Serializer::{Json as J, MsgPack as M};

const TEST: &str = "autobahn-python TLS interop test";

/// The files of a CA made for one test, and a router that uses them.
struct Setup {
    router: TestRouter,
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Setup {
    async fn start() -> Setup {
        let dir = TempDir::new();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "interop CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        issue(&ca, dir.path(), "server", &["localhost"]);
        issue(&ca, dir.path(), "device-17", &[]);
        let path = |name: &str| dir.path().join(name).display().to_string();
        let tls = format!(
            "tls = {{ certificate = {:?}, key = {:?}, client_ca = {:?} }}",
            path("server.pem"),
            path("server.key"),
            path("ca.pem")
        );
        let router = TestRouter::with_config(&format!(
            "[[transport]]\nbind = \"127.0.0.1:0\"\n{tls}\n\
             [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n{tls}\n\
             [[realm]]\nname = \"{REALM}\"\nanonymous = true\n\
             [[realm.user]]\nauthid = \"device-17\"\nrole = \"device\"\ntls = true\n"
        ))
        .await;
        Setup { router, dir, ca }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `wss://localhost:PORT/ws` (`wss: true`) or `rss://localhost:PORT`.
    fn url(&self, wss: bool) -> String {
        let url = &self.router.server().urls()[usize::from(!wss)];
        let scheme = if wss { "wss://" } else { "rss://" };
        assert!(url.starts_with(scheme), "{url}");
        url.replace("127.0.0.1", "localhost")
    }

    /// Our client on `url`, trusting the CA.
    async fn client(&self, url: &str, serializer: Serializer) -> Client {
        let connect = Client::builder(url)
            .realm(REALM)
            .serializer(serializer)
            .tls_root_certificates_pem(self.ca.pem())
            .connect();
        timeout(WAIT, connect)
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("rust client over {url}: {e}"))
    }

    /// tls_peer.py on `url` trusting `cafile`, in `mode` (`extra` flags before it).
    fn peer(
        &self,
        python: &Path,
        url: &str,
        ser: Serializer,
        cafile: &Path,
        extra: &[&str],
        mode: &[&str],
    ) -> ScriptPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/python/tls_peer.py");
        let cafile = cafile.display().to_string();
        let mut args = vec!["--cafile", &cafile];
        args.extend_from_slice(extra);
        args.extend_from_slice(mode);
        ScriptPeer::spawn(python, &script, None, url, ser, &args, true)
    }
}

/// Writes `<cn>.pem` and `<cn>.key` into `dir`: a certificate `ca` signs for `sans`, with
/// subject CN `cn`.
fn issue(ca: &CertifiedIssuer<'static, KeyPair>, dir: &Path, cn: &str, sans: &[&str]) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let issuer: &rcgen::Issuer<'_, KeyPair> = ca;
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{cn}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{cn}.key")), key.serialize_pem()).unwrap();
}

/// The payload our caller sends and the Python callee echoes.
fn payload() -> (Vec<Value>, Dict) {
    let args = vec![
        Value::UInt(7),
        Value::from("über TLS"),
        Value::Bytes(vec![0, 0x7f, 0xff]),
    ];
    let kwargs = Dict::from([("secure".into(), Value::Bool(true))]);
    (args, kwargs)
}

/// A Python caller's lines (after any `joined` line): the echo of its CALL_ARGS and
/// CALL_KWARGS, the `.fail` error, and `no_such_procedure`.
fn assert_python_caller(lines: &[Json]) {
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        lines[0]["result_args"],
        json!([1, "two", {"three": 3.5}, null, true, {"$bytes": "0001ff"}])
    );
    assert_eq!(lines[0]["result_kwargs"]["b"], json!({"$bytes": "6869"}));
    assert_eq!(lines[1]["error"], "com.example.error.tls");
    assert_eq!(lines[2]["error"], "wamp.error.no_such_procedure");
}

/// Registers `proc_` (an echo) and `proc_.fail` on our client.
async fn rust_callee(client: &Client, proc_: &str) -> [wamp_client::Registration; 2] {
    let echo = client.register(proc_, |inv: Invocation| async move {
        Ok::<_, CallError>(
            CallResult::new()
                .with_args(inv.args)
                .with_kwargs(inv.kwargs),
        )
    });
    let fail = client.register(&format!("{proc_}.fail"), |_inv: Invocation| async move {
        Err::<CallResult, _>(CallError::new("com.example.error.tls"))
    });
    let (echo, fail) = timeout(WAIT, async { tokio::join!(echo, fail) })
        .await
        .expect("registered in time");
    [echo.expect("register echo"), fail.expect("register fail")]
}

#[tokio::test]
async fn python_callee_over_wss_serves_our_caller_over_rss() {
    let Some(python) = python(TEST) else { return };
    let s = Setup::start().await;
    let proc_ = "com.example.tls.py_echo";
    let mut callee = s.peer(
        &python,
        &s.url(true),
        J,
        &s.file("ca.pem"),
        &[],
        &["callee", proc_],
    );
    callee.ready().await;
    let caller = s.client(&s.url(false), M).await;
    let (args, kwargs) = payload();
    let r = timeout(
        WAIT,
        caller.call(proc_).args(args.clone()).kwargs(kwargs.clone()),
    )
    .await
    .expect("answered in time")
    .expect("the Python callee answers");
    assert_eq!((r.args, r.kwargs), (args, kwargs));
    let e = timeout(WAIT, caller.call(&format!("{proc_}.fail")))
        .await
        .expect("answered in time")
        .expect_err(".fail fails");
    assert_eq!(e.uri(), Some("com.example.error.failed"), "{e}");
    caller.leave().await.expect("leave");
    assert_eq!(callee.succeed().await, Vec::<Json>::new());
}

#[tokio::test]
async fn python_caller_over_rss_reaches_our_callee_over_wss() {
    let Some(python) = python(TEST) else { return };
    let s = Setup::start().await;
    let proc_ = "com.example.tls.rust_echo";
    let callee = s.client(&s.url(true), J).await;
    let _regs = rust_callee(&callee, proc_).await;
    let caller = s.peer(
        &python,
        &s.url(false),
        M,
        &s.file("ca.pem"),
        &[],
        &["caller", proc_],
    );
    assert_python_caller(&caller.succeed().await);
}

#[tokio::test]
async fn python_with_a_client_certificate_logs_in_with_authmethod_tls() {
    let Some(python) = python(TEST) else { return };
    let s = Setup::start().await;
    let proc_ = "com.example.tls.device";
    let callee = s.client(&s.url(false), M).await;
    let _regs = rust_callee(&callee, proc_).await;
    let (cert, key) = (s.file("device-17.pem"), s.file("device-17.key"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let flags = ["--certfile", cert.as_str(), "--keyfile", key.as_str()];
    for (wss, ser) in [(false, J), (true, M)] {
        let peer = s.peer(
            &python,
            &s.url(wss),
            ser,
            &s.file("ca.pem"),
            &flags,
            &["caller", proc_],
        );
        let lines = peer.succeed().await;
        assert_eq!(
            lines.first(),
            Some(
                &json!({"joined": {"authid": "device-17", "authmethod": "tls", "authrole": "device"}})
            ),
            "{lines:#?}"
        );
        assert_python_caller(&lines[1..]);
    }
}

#[tokio::test]
async fn python_refuses_a_router_certificate_from_a_ca_it_does_not_trust() {
    let Some(python) = python(TEST) else { return };
    let s = Setup::start().await;
    let other = Setup::start().await; // its CA signed nothing of the first router's
    for wss in [true, false] {
        let peer = s.peer(
            &python,
            &s.url(wss),
            J,
            &other.file("ca.pem"),
            &[],
            &["caller", "p"],
        );
        let (status, lines, stderr) = peer.finish().await;
        assert!(!status.success(), "{lines:?}");
        assert!(lines.is_empty(), "{lines:?}");
        assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{stderr}");
    }
    // Trusting the right CA, the same peer gets through.
    let peer = s.peer(
        &python,
        &s.url(false),
        J,
        &s.file("ca.pem"),
        &[],
        &["publisher", "t", "1"],
    );
    assert_eq!(peer.succeed().await, vec![json!({"published": 1})]);
}
