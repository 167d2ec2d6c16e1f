//! The WebSocket transport: path and Origin checks, subprotocol negotiation, limits.

use http::{header, StatusCode};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wamp_proto::Serializer;

use super::request::RequestHead;
use crate::config::TransportConfig;

/// Why an upgrade was refused (logged by the caller).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The HTTP request was refused with this status and reason.
    Http(StatusCode, String),
    /// The handshake failed at the transport level.
    Handshake(String),
}

/// Performs the WebSocket handshake, selecting the WAMP serializer. On success the socket
/// holds exactly what the client sent after its request.
pub(crate) async fn accept(
    mut stream: TcpStream,
    t: &TransportConfig,
) -> Result<(TcpStream, Serializer), Refusal> {
    let mut selected = None;
    let mut refused = None;
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        match check_request(req, t) {
            Ok(ser) => {
                selected = Some(ser);
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    header::HeaderValue::from_static(ser.subprotocol()),
                );
                Ok(resp)
            }
            Err((status, why)) => {
                refused = Some((status, why.clone()));
                let mut r = ErrorResponse::new(Some(why));
                *r.status_mut() = status;
                Err(r)
            }
        }
    };
    // The WebSocket tungstenite builds is dropped at once: frames are ours to read.
    let config = WebSocketConfig::default().read_buffer_size(0);
    let result = tokio_tungstenite::accept_hdr_async_with_config(
        RequestHead::new(&mut stream),
        callback,
        Some(config),
    )
    .await
    .map(drop);
    match (result, selected, refused) {
        (Ok(()), Some(ser), _) => Ok((stream, ser)),
        (_, _, Some((status, why))) => Err(Refusal::Http(status, why)),
        (Err(e), _, None) => Err(Refusal::Handshake(e.to_string())),
        (Ok(()), None, None) => Err(Refusal::Handshake("no serializer selected".into())),
    }
}

/// Checks path and Origin, and picks the first offered subprotocol we support.
fn check_request(req: &Request, t: &TransportConfig) -> Result<Serializer, (StatusCode, String)> {
    if req.uri().path() != t.path {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no WAMP endpoint at `{}`", req.uri().path()),
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, &t.allowed_origins) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("origin `{origin}` is not allowed"),
            ));
        }
    }
    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    offered
        .iter()
        .filter_map(|p| Serializer::from_subprotocol(p))
        .find(|s| t.serializers.iter().any(|c| c.0 == *s))
        .ok_or_else(|| {
            let supported: Vec<&str> = t.serializers.iter().map(|s| s.0.subprotocol()).collect();
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "no supported WAMP subprotocol offered (offered: [{}]; supported: [{}])",
                    offered.join(", "),
                    supported.join(", ")
                ),
            )
        })
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
