//! The WebSocket transport: the HTTP upgrade (path, Origin, subprotocol, RFC 6455 checks)
//! on any byte stream, and the framing after it ([`frames`]).
//!
//! The handshake reads the request head itself (no peeking, so it works the same on TCP,
//! Unix sockets and TLS); bytes a client sends after its head, before our answer, are
//! handed to the connection as early input.

#[cfg(test)]
mod differential;
pub(crate) mod frames;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wamp_proto::Serializer;

use crate::config::WebSocketTransport;

/// The longest request head accepted (431 beyond).
const MAX_HEAD: usize = 16 * 1024;
/// The most request headers accepted (431 beyond).
const MAX_HEADERS: usize = 64;

/// Why an upgrade was refused (logged by the caller).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The HTTP request was answered with this status and reason.
    Http(u16, String),
    /// The stream failed or closed during the handshake.
    Handshake(String),
}

/// A completed upgrade.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The serializer of the selected subprotocol.
    pub(crate) serializer: Serializer,
    /// Bytes the client sent after its request head (frames sent before our answer).
    pub(crate) early: Vec<u8>,
}

/// What a connection's first request turned out to be.
#[derive(Debug)]
pub(crate) enum Handshake {
    /// A WebSocket upgrade, answered with 101.
    Upgraded(Accepted),
    /// A request for another path: every byte read so far, for the plain-HTTP server
    /// (`transport::http`), which answers it (404 if it has no such route).
    Plain(Vec<u8>),
}

/// A refused request: status, reason text, extra header lines.
struct HttpError {
    status: u16,
    why: String,
    extra: &'static str,
}

fn refuse(status: u16, why: impl Into<String>) -> HttpError {
    HttpError {
        status,
        why: why.into(),
        extra: "",
    }
}

/// Performs the WebSocket handshake on `io`, selecting the WAMP serializer, or hands a
/// request for another path over as [`Handshake::Plain`]. A refused request gets its HTTP
/// answer before `Err`.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    t: &WebSocketTransport,
) -> Result<Handshake, Refusal> {
    let (mut head, end) = read_head(io).await?;
    let checked = match end {
        Some(end) => check_request(&head[..end], t).map(|c| c.map(|(ser, key)| (ser, key, end))),
        None => Err(refuse(431, "request head too large")),
    };
    match checked {
        Ok(None) => Ok(Handshake::Plain(head)),
        Ok(Some((serializer, key, end))) => {
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {key}\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
                serializer.subprotocol()
            );
            write_all(io, reply.as_bytes()).await?;
            let early = head.split_off(end);
            Ok(Handshake::Upgraded(Accepted { serializer, early }))
        }
        Err(e) => {
            let reply = format!(
                "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n{}\r\n{}",
                e.status,
                reason_phrase(e.status),
                e.why.len(),
                e.extra,
                e.why
            );
            // Best effort: the refusal is logged whether or not the client reads it.
            let _ = write_all(io, reply.as_bytes()).await;
            let _ = io.shutdown().await;
            Err(Refusal::Http(e.status, e.why))
        }
    }
}

/// Answers a connection over the transport's limit with HTTP 503, before reading anything.
pub(crate) async fn refuse_busy<S: AsyncWrite + Unpin>(io: &mut S) {
    let why = "too many connections";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{why}",
        why.len()
    );
    let _ = write_all(io, reply.as_bytes()).await;
    let _ = io.shutdown().await;
}

async fn write_all<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> Result<(), Refusal> {
    io.write_all(bytes)
        .await
        .and(io.flush().await)
        .map_err(|e| Refusal::Handshake(format!("cannot write the handshake answer: {e}")))
}

/// Reads until the blank line ending the request head: the bytes read, and where the head
/// ends (`None` if it grew past [`MAX_HEAD`]).
async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> Result<(Vec<u8>, Option<usize>), Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|e| Refusal::Handshake(format!("read failed: {e}")))?;
        if n == 0 {
            return Err(Refusal::Handshake(
                "the connection closed during the handshake".into(),
            ));
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((buf, Some(from + p + 4)));
        }
        if buf.len() > MAX_HEAD {
            return Ok((buf, None));
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Whether header `name`'s comma-separated tokens include `token` (case-insensitive).
fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Checks the request (path, then RFC 6455 4.2.1, Origin and subprotocol): the serializer
/// picked and the `Sec-WebSocket-Accept` value, or `None` for a request to another path.
fn check_request(
    head: &[u8],
    t: &WebSocketTransport,
) -> Result<Option<(Serializer, String)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(refuse(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(refuse(431, "too many headers")),
        Err(e) => return Err(refuse(400, format!("malformed HTTP request: {e}"))),
    }
    let path = req.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    if path != t.path {
        return Ok(None);
    }
    if req.method != Some("GET") {
        return Err(HttpError {
            extra: "Allow: GET\r\n",
            ..refuse(405, "a WebSocket upgrade must use GET")
        });
    }
    if req.version != Some(1) {
        return Err(refuse(400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    let h = req.headers;
    if !has_token(h, "upgrade", "websocket") {
        return Err(HttpError {
            extra: "Upgrade: websocket\r\n",
            ..refuse(
                426,
                "this is a WebSocket endpoint (Upgrade: websocket is required)",
            )
        });
    }
    if !has_token(h, "connection", "upgrade") {
        return Err(refuse(
            400,
            "not a WebSocket upgrade (Connection: Upgrade is required)",
        ));
    }
    if header(h, "sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(HttpError {
            extra: "Sec-WebSocket-Version: 13\r\n",
            ..refuse(426, "unsupported Sec-WebSocket-Version (13 is supported)")
        });
    }
    let key = header(h, "sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .filter(|k| is_base64_16(k))
        .ok_or_else(|| refuse(400, "missing or invalid Sec-WebSocket-Key"))?;
    if let Some(origin) = header(h, "origin") {
        let origin = std::str::from_utf8(origin).unwrap_or("");
        if !origin_allowed(origin, &t.allowed_origins) {
            return Err(refuse(403, format!("origin `{origin}` is not allowed")));
        }
    }
    let offered: Vec<&str> = h
        .iter()
        .filter(|x| x.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .filter_map(|x| std::str::from_utf8(x.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let serializer = offered
        .iter()
        .filter_map(|p| Serializer::from_subprotocol(p))
        .find(|s| t.serializers.iter().any(|c| c.0 == *s))
        .ok_or_else(|| {
            let supported: Vec<&str> = t.serializers.iter().map(|s| s.0.subprotocol()).collect();
            refuse(
                400,
                format!(
                    "no supported WAMP subprotocol offered (offered: [{}]; supported: [{}])",
                    offered.join(", "),
                    supported.join(", ")
                ),
            )
        })?;
    Ok(Some((serializer, derive_accept_key(key))))
}

/// Whether `key` is the base64 form of 16 bytes (24 characters ending in `==`).
fn is_base64_16(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Whether `origin` matches one of `allowed` (`*` matches any run); empty allows all.
pub(crate) fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed
            .iter()
            .any(|p| glob_match(p.as_bytes(), origin.as_bytes()))
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec![
            "https://app.example.com".to_owned(),
            "http://*.local:*".to_owned(),
        ];
        assert!(origin_allowed("https://app.example.com", &allowed));
        assert!(origin_allowed("http://a.b.local:8080", &allowed));
        assert!(!origin_allowed("https://evil.com", &allowed));
        assert!(!origin_allowed(
            "https://app.example.com.evil.com",
            &allowed
        ));
        assert!(origin_allowed("anything", &[]));
        assert!(origin_allowed("x", &["*".to_owned()]));
    }
}
