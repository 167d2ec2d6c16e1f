//! Transports: how bytes reach a session.

pub(crate) mod connection;
pub(crate) mod frames;
mod request;
pub(crate) mod websocket;
