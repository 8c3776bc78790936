//! Helpers shared by the integration tests (each test file includes this with `mod common;`).

#[allow(unused_imports)] // not every test file that includes this module compares outputs
pub use testkit::assert_same;

/// The SHA-256s of a chain in an event (`tls.server.chain` or `tls.client.chain`), in wire
/// order; empty when there is none.
#[allow(dead_code)] // not every test file that includes this module reads chains
pub fn chain_hashes(chain: &serde_json::Value) -> Vec<String> {
    chain
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["sha256"].as_str().unwrap_or("").to_string())
        .collect()
}
