//! trustmap-benchgen: writes large, realistic TLS captures for trustmap's line-rate benchmarks.
//!
//! How: a pool of genuine rustls handshakes (TLS 1.2 and 1.3, bench PKI with `unique_chains`
//! server chains) is made once, then replayed on many TCP connections with their own addresses,
//! ports and ISNs, framed as real TCP (3-way handshake, MSS-sized segments, delayed ACKs, FIN).
//! Bulk application data is random bytes framed as TLS application_data records: it is
//! ciphertext anyway, and that keeps generation at memcpy speed.
//! A manifest states what a correct analyzer must find (e.g. every server Certificate message).
#![forbid(unsafe_code)]

pub mod pcap;
pub mod pki;
/// The seeded generator, shared with the tests (`testkit::Rng`).
pub use testkit::rng;
pub mod tls;
mod traffic;

pub use traffic::generate;

use serde::Serialize;

/// Generator settings (see the CLI for defaults and meaning).
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Target file size in bytes (the file stops at the first connection boundary past it).
    pub size: u64,
    /// Seed: same seed + same settings = byte-identical output.
    pub seed: u64,
    /// Share of packets that belong to connection setup + TLS handshake.
    pub handshake_share: f64,
    /// Number of distinct server chains (leaf certificates).
    pub unique_chains: usize,
    /// Number of pre-made handshake transcripts (raised to `unique_chains` if smaller).
    pub pool: usize,
    /// Share of connections using TLS 1.3.
    pub tls13_share: f64,
    /// Share of connections over IPv6.
    pub ipv6_share: f64,
    /// IP MTU: payload per segment is MTU − IP − TCP(32) headers.
    pub mtu: usize,
    /// Receiver sends a pure ACK every N full segments (2 = Linux delayed ACK).
    pub ack_every: u32,
    /// Largest TLS record plaintext for bulk data (≤ 16384).
    pub max_record: usize,
    /// Concurrent connections interleaved in the file.
    pub concurrency: usize,
    /// Nominal link rate used for packet timestamps (Mbit/s).
    pub rate_mbps: u64,
    /// Capture start, Unix seconds.
    pub start_unix: u64,
    /// Threads used to build the transcript pool.
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            size: 64 << 20,
            seed: 1,
            handshake_share: 0.01,
            unique_chains: 200,
            pool: 256,
            tls13_share: 0.3,
            ipv6_share: 0.2,
            mtu: 1500,
            ack_every: 2,
            max_record: 16_384,
            concurrency: 64,
            rate_mbps: 10_000,
            start_unix: 1_772_323_200, // 2026-03-01T00:00:00Z
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// One distinct chain that appeared in clear (TLS 1.2) at least once.
#[derive(Clone, Debug, Serialize)]
pub struct ChainSeen {
    /// SHA-256 of the leaf certificate (lowercase hex).
    pub leaf_sha256: String,
    /// SHA-256 of each certificate, wire order.
    pub sha256: Vec<String>,
    /// SNI.
    pub server_name: String,
    /// TLS 1.2 connections that sent this chain.
    pub connections: u64,
}

/// What the file contains; what a correct analyzer must report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Manifest {
    /// Generator name and version.
    pub generator: String,
    /// Settings used.
    pub config: Option<Config>,
    /// TCP connections (each: full TCP setup, one full TLS handshake, data, FIN teardown).
    pub connections: u64,
    /// Connections over IPv4.
    pub ipv4_connections: u64,
    /// Connections over IPv6.
    pub ipv6_connections: u64,
    /// TLS 1.2 handshakes (full, chain in clear).
    pub handshakes_tls12: u64,
    /// TLS 1.3 handshakes (chain encrypted).
    pub handshakes_tls13: u64,
    /// Server Certificate handshake messages visible in clear (= TLS 1.2 handshakes).
    pub server_certificate_messages: u64,
    /// Certificates carried by those messages (sum of chain lengths).
    pub certificates_in_clear: u64,
    /// Distinct chains visible in clear.
    pub unique_chains_in_clear: u64,
    /// Distinct certificates visible in clear (leaves + issuing CAs + roots sent).
    pub unique_certificates_in_clear: u64,
    /// Distinct chains used overall (including TLS 1.3).
    pub unique_chains_total: u64,
    /// Frames in the file.
    pub packets: u64,
    /// Frames of TCP setup + TLS handshake flights.
    pub handshake_packets: u64,
    /// File size.
    pub bytes: u64,
    /// Sum of frame lengths.
    pub frame_bytes: u64,
    /// Sum of TCP payload bytes.
    pub tcp_payload_bytes: u64,
    /// First packet timestamp (Unix ns).
    pub first_ts_ns: u64,
    /// Last packet timestamp (Unix ns).
    pub last_ts_ns: u64,
    /// Negotiated cipher suites and how many connections used each.
    pub cipher_suites: std::collections::BTreeMap<String, u64>,
    /// Chains visible in clear.
    pub chains: Vec<ChainSeen>,
    /// Wall-clock seconds spent building the transcript pool.
    pub pool_seconds: f64,
    /// Wall-clock seconds spent writing packets.
    pub write_seconds: f64,
}

/// Parses `512M`, `1G`, `1.5GiB`, `100k`, `123` (binary multiples: k=2^10, M=2^20, G=2^30).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("B"))
        .unwrap_or(t);
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad size: {s}"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad size: {s}"));
    }
    Ok((v * mul as f64) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(super::parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(super::parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(super::parse_size("100").unwrap(), 100);
        assert!(super::parse_size("x").is_err());
    }
}
