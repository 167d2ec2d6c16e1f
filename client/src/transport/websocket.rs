//! The WebSocket transport (`ws://`), on tokio-tungstenite.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Sink, Stream};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wamp_proto::{Encoded, Serializer};

use super::{Incoming, Transport};
use crate::error::{ConnectError, TransportError};

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A joined WebSocket and the serializer its subprotocol selected.
pub(crate) struct WebSocket {
    ws: WsStream,
    serializer: Serializer,
}

/// Opens the WebSocket at `url`, offering `offered` as subprotocols in this order.
pub(crate) async fn connect(
    url: &str,
    offered: &[Serializer],
) -> Result<(WebSocket, Serializer), ConnectError> {
    let names: Vec<&'static str> = offered.iter().map(|s| s.subprotocol()).collect();
    let invalid_url = |reason: String| ConnectError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| invalid_url(e.to_string()))?;
    if request.uri().scheme_str() != Some("ws") {
        return Err(invalid_url("the scheme must be ws://".into()));
    }
    let protocols =
        HeaderValue::from_str(&names.join(", ")).map_err(|e| invalid_url(e.to_string()))?;
    request
        .headers_mut()
        .insert(header::SEC_WEBSOCKET_PROTOCOL, protocols);

    let (ws, response) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(_))) => {
            return Err(ConnectError::NoSerializer { offered: names })
        }
        Err(tungstenite::Error::Url(e)) => return Err(invalid_url(e.to_string())),
        Err(tungstenite::Error::Io(e)) => return Err(ConnectError::Transport(e.into())),
        Err(e) => return Err(ConnectError::WebSocket(transport_error(e))),
    };
    let serializer = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Serializer::from_subprotocol(v.trim()))
        .filter(|s| offered.contains(s))
        .ok_or(ConnectError::NoSerializer { offered: names })?;
    Ok((WebSocket { ws, serializer }, serializer))
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

impl Transport for WebSocket {
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Incoming, TransportError>>> {
        loop {
            let incoming =
                match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                    Some(Ok(WsMessage::Text(t))) => {
                        Incoming::Message(self.serializer.decode(t.as_bytes()))
                    }
                    Some(Ok(WsMessage::Binary(b))) => Incoming::Message(self.serializer.decode(&b)),
                    Some(Ok(WsMessage::Close(frame))) => Incoming::Closed(frame.map(|f| {
                        format!("WebSocket closed by the router ({}) {}", f.code, f.reason)
                    })),
                    // Ping and pong: tungstenite answers pings itself.
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
