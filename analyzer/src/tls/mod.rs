//! TLS over byte streams: the record deframer, the handshake message parsers, key logs and the
//! TLS 1.3 handshake-flight decryption.
pub mod decrypt;
pub mod deframer;
pub mod handshake;
pub mod keylog;
pub mod reader;
