//! X.509: each unique certificate is parsed once (cache keyed by SHA-256) into a [`CertInfo`].

use std::collections::HashMap;
use std::sync::Arc;

/// The parsed fields trustmap keeps for one certificate (DESIGN.md §4, `trustmap.x509`).
/// Names are rendered RFC 4514 style, most specific RDN first ("CN=..., O=..., C=...").
#[derive(Debug, Clone, Default)]
pub struct CertInfo {
    pub sha256: [u8; 32],
    /// DER bytes (kept for chain building and signature checks).
    pub der: Vec<u8>,
    /// Set when x509-parser rejected the certificate; the other fields are then mostly empty.
    pub parse_error: Option<String>,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    /// DER of the subject and issuer Name (for exact matching against CertificateRequest CAs).
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names, IPs, emails, URIs from subjectAltName, as text.
    pub alternative_names: Vec<String>,
    /// "RSA", "EC", "Ed25519", "DSA", or the OID.
    pub public_key_algorithm: String,
    pub public_key_size: Option<u32>,
    pub public_key_curve: Option<String>,
    /// e.g. "sha256WithRSAEncryption", or the OID.
    pub signature_algorithm: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    pub spki_sha256: String,
    /// Lowercase hex.
    pub ski: Option<String>,
    pub aki: Option<String>,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    /// Extended key usage OIDs/names ("serverAuth", "clientAuth", ...).
    pub eku: Vec<String>,
    /// Embedded SCT timestamps (Unix milliseconds), in extension order.
    pub sct_timestamps: Vec<u64>,
    pub self_issued: bool,
}

/// Parses each distinct certificate once. One per worker, or shared behind a lock (read-mostly).
#[derive(Debug, Default)]
pub struct CertCache {
    map: HashMap<[u8; 32], Arc<CertInfo>>,
    pub hits: u64,
    pub misses: u64,
}

impl CertCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the parsed certificate and whether it was new to this cache.
    pub fn get_or_parse(&mut self, der: &[u8]) -> (Arc<CertInfo>, bool) {
        let sha = sha256(der);
        if let Some(c) = self.map.get(&sha) {
            self.hits += 1;
            return (c.clone(), false);
        }
        self.misses += 1;
        let info = Arc::new(parse(der, sha));
        self.map.insert(sha, info.clone());
        (info, true)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    out
}

/// Parses one DER certificate. Never fails: a bad certificate keeps its fingerprint and the error.
pub fn parse(der: &[u8], sha256: [u8; 32]) -> CertInfo {
    CertInfo {
        sha256,
        der: der.to_vec(),
        parse_error: Some("not implemented".into()),
        ..Default::default()
    }
}
