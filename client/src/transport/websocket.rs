//! The WebSocket transport (`ws://`, and `wss://` over our own TLS handshake), on
//! tokio-tungstenite.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use wamp_proto::{Encoded, Serializer};

use super::{tcp, BoxTransport, Incoming, Transport};
use crate::error::{ConnectError, TransportError};
use crate::tls::{self, TlsOptions};

/// A joined WebSocket over `S` (TCP, or TLS over TCP) and the serializer its subprotocol
/// selected.
pub(crate) struct WebSocket<S> {
    ws: WebSocketStream<S>,
    serializer: Serializer,
    /// Something arrived since [`Transport::take_activity`] last looked.
    active: bool,
}

/// Opens the WebSocket at `url` (over TLS with `tls`, for `wss://`), offering `offered` as
/// subprotocols in this order.
pub(crate) async fn connect(
    url: &str,
    offered: &[Serializer],
    tls: Option<&TlsOptions>,
) -> Result<(BoxTransport, Serializer), ConnectError> {
    let invalid_url = |reason: String| ConnectError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| invalid_url(e.to_string()))?;
    let secure = tls.is_some();
    let scheme = if secure { "wss" } else { "ws" };
    if request.uri().scheme_str() != Some(scheme) {
        return Err(invalid_url(format!("the scheme must be {scheme}://")));
    }
    let names: Vec<&'static str> = offered.iter().map(|s| s.subprotocol()).collect();
    let protocols =
        HeaderValue::from_str(&names.join(", ")).map_err(|e| invalid_url(e.to_string()))?;
    request
        .headers_mut()
        .insert(header::SEC_WEBSOCKET_PROTOCOL, protocols);
    let uri = request.uri();
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid_url("no host".into()))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    match tls {
        None => {
            let stream = tcp((bare_host, port)).await?;
            let (ws, serializer) = upgrade(url, request, stream, offered).await?;
            Ok((Box::new(ws), serializer))
        }
        Some(options) => {
            let name = tls::server_name(&host).map_err(invalid_url)?;
            let stream = tcp((bare_host, port)).await?;
            let stream = tls::handshake(stream, name, &host, options).await?;
            let (ws, serializer) = upgrade(url, request, stream, offered).await?;
            Ok((Box::new(ws), serializer))
        }
    }
}

/// The WebSocket opening handshake over `stream`.
async fn upgrade<S>(
    url: &str,
    request: Request,
    stream: S,
    offered: &[Serializer],
) -> Result<(WebSocket<S>, Serializer), ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let names = || offered.iter().map(|s| s.subprotocol()).collect();
    let (ws, response) =
        match tokio_tungstenite::client_async_with_config(request, stream, None).await {
            Ok(ok) => ok,
            Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(_))) => {
                return Err(ConnectError::NoSerializer { offered: names() })
            }
            Err(tungstenite::Error::Url(e)) => {
                return Err(ConnectError::InvalidUrl {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })
            }
            Err(tungstenite::Error::Io(e)) => return Err(ConnectError::Transport(e.into())),
            Err(e) => return Err(ConnectError::WebSocket(transport_error(e))),
        };
    let serializer = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Serializer::from_subprotocol(v.trim()))
        .filter(|s| offered.contains(s))
        .ok_or_else(|| ConnectError::NoSerializer { offered: names() })?;
    let ws = WebSocket {
        ws,
        serializer,
        active: false,
    };
    Ok((ws, serializer))
}

/// Our error for tungstenite's, keeping the I/O error kind.
fn transport_error(e: tungstenite::Error) -> TransportError {
    match e {
        tungstenite::Error::Io(e) => e.into(),
        other => TransportError::new(other.to_string()),
    }
}

/// The WebSocket frame for an encoded message: text for JSON, binary for msgpack and CBOR.
fn ws_message(frame: Encoded) -> WsMessage {
    match frame {
        Encoded::Text(s) => WsMessage::text(s),
        Encoded::Binary(b) => WsMessage::binary(b),
    }
}

impl<S> Transport for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Incoming, TransportError>>> {
        loop {
            let next = ready!(Pin::new(&mut self.ws).poll_next(cx));
            if matches!(next, Some(Ok(_))) {
                self.active = true;
            }
            let incoming =
                match next {
                    Some(Ok(WsMessage::Text(t))) => {
                        Incoming::Message(self.serializer.decode(t.as_bytes()))
                    }
                    Some(Ok(WsMessage::Binary(b))) => Incoming::Message(self.serializer.decode(&b)),
                    Some(Ok(WsMessage::Close(frame))) => Incoming::Closed(frame.map(|f| {
                        format!("WebSocket closed by the router ({}) {}", f.code, f.reason)
                    })),
                    // Ping and pong: tungstenite answers pings itself; both count as activity.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Poll::Ready(Some(Err(transport_error(e)))),
                    None => return Poll::Ready(None),
                };
            return Poll::Ready(Some(Ok(incoming)));
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.ws)
            .poll_ready(cx)
            .map_err(transport_error)
    }

    fn start_send(&mut self, frame: Encoded) -> Result<(), TransportError> {
        Pin::new(&mut self.ws)
            .start_send(ws_message(frame))
            .map_err(transport_error)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(transport_error)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(transport_error)
    }

    fn max_message_len(&self) -> usize {
        usize::MAX
    }

    fn start_ping(&mut self) -> Result<(), TransportError> {
        Pin::new(&mut self.ws)
            .start_send(WsMessage::Ping(Default::default()))
            .map_err(transport_error)
    }

    fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::message::Hello;
    use wamp_proto::{Dict, Message, Uri};

    #[test]
    fn frames_match_serializer() {
        let m = Message::from(Hello {
            realm: Uri::new("realm1"),
            details: Dict::new(),
        });
        let frame = |s: Serializer| s.encode(&m).map(ws_message);
        assert!(matches!(frame(Serializer::Json), Ok(WsMessage::Text(_))));
        assert!(matches!(
            frame(Serializer::MsgPack),
            Ok(WsMessage::Binary(_))
        ));
    }

    #[test]
    fn io_errors_keep_their_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let t = transport_error(tungstenite::Error::Io(e));
        assert_eq!(t.io_kind(), Some(std::io::ErrorKind::ConnectionReset));
        let t = transport_error(tungstenite::Error::ConnectionClosed);
        assert_eq!(t.io_kind(), None);
        assert!(!t.message().is_empty());
    }
}
