//! Per-direction TCP reassembly up to the handshake depth.
