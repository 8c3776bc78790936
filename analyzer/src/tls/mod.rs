//! TLS over byte streams: the record deframer and the handshake message parsers.
pub mod deframer;
pub mod handshake;
pub mod reader;
