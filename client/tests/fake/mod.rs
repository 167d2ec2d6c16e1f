//! A scripted fake router for the client's tests: one WebSocket peer speaking JSON, frame by
//! frame.
#![allow(dead_code, clippy::unwrap_used, clippy::result_large_err)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use wamp_proto::{Encoded, Message, Serializer};

pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) struct Peer {
    pub(crate) ws: WebSocketStream<TcpStream>,
}

impl Peer {
    pub(crate) async fn recv(&mut self) -> Message {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("peer timed out")
                .expect("socket closed")
                .expect("socket error");
            if let WsMessage::Text(t) = frame {
                return Serializer::Json
                    .decode(t.as_bytes())
                    .expect("client sent garbage");
            }
        }
    }

    pub(crate) async fn send(&mut self, m: impl Into<Message>) {
        let Encoded::Text(t) = Serializer::Json.encode(&m.into()).unwrap() else {
            unreachable!()
        };
        self.ws.send(WsMessage::text(t)).await.unwrap();
    }
}

pub(crate) async fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", l.local_addr().unwrap());
    (l, url)
}

/// Accepts one WebSocket, selecting `protocol` (or none).
pub(crate) async fn accept(l: &TcpListener, protocol: Option<&'static str>) -> Peer {
    let (tcp, _) = l.accept().await.unwrap();
    let cb = move |_req: &Request, mut resp: Response| {
        if let Some(p) = protocol {
            resp.headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, p.parse().unwrap());
        }
        Ok(resp)
    };
    Peer {
        ws: tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap(),
    }
}
