//! A raw HTTP/1.1 client for the plain-HTTP routes (one request per connection, read to
//! the end), and a long-poll transport driven with it.

use std::net::SocketAddr;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::WAIT;

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the answer otherwise.
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer within [`WAIT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw, &format!("{method} {path}")).await
}

/// `GET path` as HTTP/1.0 (the answer is then never chunked), read to the end within
/// [`WAIT`].
pub async fn get_http10(addr: SocketAddr, path: &str) -> HttpReply {
    let raw = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    exchange(addr, raw.as_bytes(), &format!("GET {path}")).await
}

/// Writes `raw`, reads the answer to the end of the connection and parses it.
async fn exchange(addr: SocketAddr, raw: &[u8], what: &str) -> HttpReply {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(raw).await.expect("write request");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read answer");
        out
    };
    let out = timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"));
    parse(&out).unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&out)))
}

/// Parses one answer (its body: everything after the head, or `Content-Length` bytes).
pub fn parse(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let Some(len) = len {
        body.truncate(len);
    }
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

/// One long-poll transport, driven with raw requests.
#[derive(Debug)]
pub struct LongPollPeer {
    pub addr: SocketAddr,
    /// `<base>/<transport id>`.
    pub url: String,
    /// The protocol the router chose.
    pub protocol: String,
}

impl LongPollPeer {
    /// Opens a transport at `base`, offering `protocols`; panics unless it is answered 200.
    pub async fn open(addr: SocketAddr, base: &str, protocols: &[&str]) -> LongPollPeer {
        let body = json!({ "protocols": protocols }).to_string();
        let r = request(addr, "POST", &format!("{base}/open"), &[], body.as_bytes()).await;
        assert_eq!(r.status, 200, "open: {r:?}");
        let j = r.json();
        let id = j["transport"].as_str().expect("transport id").to_owned();
        LongPollPeer {
            addr,
            url: format!("{base}/{id}"),
            protocol: j["protocol"].as_str().expect("protocol").to_owned(),
        }
    }

    /// POSTs `body` to `<url>/<op>`.
    pub async fn post(&self, op: &str, body: &[u8]) -> HttpReply {
        request(self.addr, "POST", &format!("{}/{op}", self.url), &[], body).await
    }

    /// Sends one JSON message; panics unless it is answered 204.
    pub async fn send(&self, msg: &Json) {
        let r = self.post("send", msg.to_string().as_bytes()).await;
        assert_eq!(r.status, 204, "send {msg}: {r:?}");
    }

    /// Polls until a message arrives (an empty 204 answer polls again); panics on anything
    /// else but 200 and 204.
    pub async fn receive(&self) -> Vec<u8> {
        let poll = async {
            loop {
                let r = self.post("receive", b"").await;
                match r.status {
                    200 => return r.body,
                    204 => continue,
                    _ => panic!("receive: {r:?}"),
                }
            }
        };
        timeout(WAIT, poll).await.expect("a message within WAIT")
    }

    /// The next message, as JSON (an unbatched JSON transport).
    pub async fn recv_json(&self) -> Json {
        let body = self.receive().await;
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
    }

    /// Sends HELLO for `realm` and returns the WELCOME's session id.
    pub async fn join(&self, realm: &str) -> u64 {
        let roles = json!({"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}});
        self.send(&json!([1, realm, { "roles": roles }])).await;
        let welcome = self.recv_json().await;
        assert_eq!(welcome[0], 2, "WELCOME expected: {welcome}");
        welcome[1].as_u64().expect("session id")
    }
}
