//! HTTP/1.1, sans-IO: request heads from clients, response framing for them,
//! and the reader for shim responses. No sockets here.

pub mod client;
pub mod request;
pub mod response;
