//! trustmap: passive TLS observer. CLI and pipeline wiring.
#![forbid(unsafe_code)]
fn main() {}
