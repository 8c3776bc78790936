//! Side signals matched to CAs: an OCSP request's CertID names its issuer by the SHA-1 (or
//! SHA-256) of the issuer's Name and key (RFC 6960 §4.1.1); an AIA caIssuers or CRL URL is the one some
//! certificate carries for its issuer. Known CAs are the trust stores (with `--anchors` and the
//! distrust history) and every certificate seen in a chain in this run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use analyzer::sidesignal::{CertId, SideSignal, SignalKind};
use analyzer::CertInfo;
use trust::anchors::TrustStores;

use crate::CaRef;

/// Entries of each index before it is emptied (and counted).
pub const MAX_SIGNAL_INDEX: usize = 200_000;

/// How a side signal was tied to its CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The CertID's issuer name and key hashes both matched the CA certificate.
    NameAndKey,
    /// Only the issuer name hash matched a known CA (key rolled, or another CA of that name).
    Name,
    /// The URL is one a seen certificate carries (AIA caIssuers or CRL distribution point).
    Url,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::NameAndKey => "issuer_name_and_key_hash",
            MatchedBy::Name => "issuer_name_hash",
            MatchedBy::Url => "url",
        }
    }
}

/// The CA one side signal names.
#[derive(Debug, Clone)]
pub struct SignalMatch {
    /// The CA certificate, when one is known (stores, `--anchors`, seen chains), with its
    /// stores and the removals that target it.
    pub ca: Option<CaRef>,
    /// The CA's subject (known also when only a certificate it issued carried the URL).
    pub subject: String,
    pub matched_by: MatchedBy,
    /// For OCSP: the serial number asked about (lowercase hex).
    pub serial: Option<String>,
}

/// What a side signal named: the CAs matched, and the CertIDs that matched none.
#[derive(Debug, Default, Clone)]
pub struct SignalEnrichment {
    pub matches: Vec<SignalMatch>,
    pub unmatched: usize,
}

/// The known CAs, indexed for side signals. Certificates seen in chains are only queued (and
/// their URLs noted): their OCSP hashes are computed when a side signal first needs them.
#[derive(Debug, Default)]
pub struct SignalIndex {
    stores_loaded: bool,
    /// CA certificates seen in chains, not yet hashed (each once: `queued`).
    pending: Vec<Arc<CertInfo>>,
    queued: HashSet<[u8; 32], ahash::RandomState>,
    /// Issuer name hash + key hash (SHA-1: 40 bytes, SHA-256: 64 bytes, so never confused). A
    /// CA's certificates that share name and key (cross-signs, re-issues) are all kept (up to
    /// [`MAX_SAME_CA`]): a request names the CA, not one of its certificates.
    by_name_key: HashMap<Vec<u8>, Vec<Arc<CertInfo>>, ahash::RandomState>,
    /// Issuer name hash (20 or 32 bytes).
    by_name: HashMap<Vec<u8>, Vec<Arc<CertInfo>>, ahash::RandomState>,
    by_subject_der: HashMap<Vec<u8>, Vec<Arc<CertInfo>>, ahash::RandomState>,
    /// URL -> (the issuer's subject text, its Name DER).
    by_url: HashMap<String, (String, Vec<u8>), ahash::RandomState>,
    pub resets: u64,
}

impl SignalIndex {
    /// Notes one certificate seen in a chain: as a possible CA, and by the URLs it carries for
    /// its issuer.
    pub fn add_seen(&mut self, c: &Arc<CertInfo>) {
        if c.parse_error.is_some() {
            return;
        }
        if self.by_url.len() >= MAX_SIGNAL_INDEX || self.queued.len() >= MAX_SIGNAL_INDEX {
            *self = SignalIndex {
                resets: self.resets + 1,
                ..SignalIndex::default()
            };
        }
        if (c.is_ca || c.self_issued) && self.queued.insert(c.sha256) {
            self.pending.push(c.clone());
        }
        for u in c.ca_issuers_urls.iter().chain(&c.crl_urls) {
            self.by_url
                .entry(normalize_url(u))
                .or_insert_with(|| (c.issuer.clone(), c.issuer_der.clone()));
        }
    }

    fn add_ca(&mut self, c: &Arc<CertInfo>) {
        if let Some(h) = analyzer::cert::ocsp_hashes(&c.der) {
            for (name, key) in [
                (&h.name_sha1[..], &h.key_sha1[..]),
                (&h.name_sha256[..], &h.key_sha256[..]),
            ] {
                add_capped(self.by_name_key.entry([name, key].concat()).or_default(), c);
                add_capped(self.by_name.entry(name.to_vec()).or_default(), c);
            }
        }
        add_capped(
            self.by_subject_der
                .entry(c.subject_der.clone())
                .or_default(),
            c,
        );
    }

    /// Matches one side signal (the stores are indexed on first use).
    pub fn lookup(
        &mut self,
        stores: &TrustStores,
        s: &SideSignal,
        ca_ref: impl Fn(&CertInfo) -> CaRef,
    ) -> SignalEnrichment {
        if !self.stores_loaded {
            self.stores_loaded = true;
            for e in stores.entries() {
                self.add_ca(&e.cert);
            }
        }
        for c in std::mem::take(&mut self.pending) {
            self.add_ca(&c);
        }
        let mut out = SignalEnrichment::default();
        match s.kind {
            SignalKind::Ocsp => {
                for id in &s.cert_ids {
                    let found = self.ocsp(id, &ca_ref);
                    if found.is_empty() {
                        out.unmatched += 1;
                    }
                    out.matches.extend(found);
                }
            }
            SignalKind::Aia | SignalKind::Crl => match self.by_url.get(&normalize_url(&s.url)) {
                Some((subject, der)) => {
                    let known = self.by_subject_der.get(der).map_or(&[][..], Vec::as_slice);
                    let m = |ca| SignalMatch {
                        ca,
                        subject: subject.clone(),
                        matched_by: MatchedBy::Url,
                        serial: None,
                    };
                    if known.is_empty() {
                        out.matches.push(m(None));
                    }
                    out.matches.extend(known.iter().map(|c| m(Some(ca_ref(c)))));
                }
                None => out.unmatched += 1,
            },
        }
        out
    }

    /// The CA certificates one CertID names (none when unmatched).
    fn ocsp(&self, id: &CertId, ca_ref: impl Fn(&CertInfo) -> CaRef) -> Vec<SignalMatch> {
        let len = match id.hash_algorithm {
            "sha1" => 20,
            "sha256" => 32,
            _ => return Vec::new(),
        };
        let (name, key) = (&id.issuer_name_hash, &id.issuer_key_hash);
        if name.len() != len || key.len() != len {
            return Vec::new();
        }
        let (cas, by) = match self.by_name_key.get(&[&name[..], &key[..]].concat()) {
            Some(c) => (c, MatchedBy::NameAndKey),
            None => match self.by_name.get(name) {
                Some(c) => (c, MatchedBy::Name),
                None => return Vec::new(),
            },
        };
        cas.iter()
            .map(|ca| SignalMatch {
                ca: Some(ca_ref(ca)),
                subject: ca.subject.clone(),
                matched_by: by,
                serial: Some(hex::encode(&id.serial)),
            })
            .collect()
    }
}

/// Certificates kept per index key.
pub const MAX_SAME_CA: usize = 4;

/// Adds `c` to `v` unless it is there or `v` is full; kept in SHA-256 order, so the
/// outcome does not depend on the order certificates were seen.
fn add_capped(v: &mut Vec<Arc<CertInfo>>, c: &Arc<CertInfo>) {
    if v.len() < MAX_SAME_CA && !v.iter().any(|x| x.sha256 == c.sha256) {
        v.push(c.clone());
        v.sort_by_key(|x| x.sha256);
    }
}

/// URLs compared without scheme case, host case or a default port.
fn normalize_url(u: &str) -> String {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("HTTP://"))
        .unwrap_or(u);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = host
        .strip_suffix(":80")
        .unwrap_or(host)
        .to_ascii_lowercase();
    format!("{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The side-signals capture's issuing CA (pcaps/cases/side-pki).
    fn issuing_ca() -> Arc<CertInfo> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pcaps/cases/side-pki/int.pem"
        );
        let pem = std::fs::read(path).expect("pcaps/cases/side-pki/int.pem");
        let der = trust::anchors::pem_ders(&pem).remove(0);
        Arc::new(analyzer::cert::parse(&der, analyzer::cert::sha256(&der)))
    }

    fn ocsp(alg: &'static str, name: &[u8], key: &[u8]) -> SideSignal {
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        SideSignal {
            ts_ns: 0,
            client: (ip, 40000),
            server: (ip, 80),
            kind: SignalKind::Ocsp,
            method: "POST",
            url: "http://192.0.2.1/".into(),
            cert_ids: vec![CertId {
                hash_algorithm: alg,
                issuer_name_hash: name.to_vec(),
                issuer_key_hash: key.to_vec(),
                serial: vec![0x20, 0x02],
            }],
        }
    }

    #[test]
    fn ocsp_cert_ids_in_sha1_and_sha256_name_the_issuer() {
        let ca = issuing_ca();
        let h = analyzer::cert::ocsp_hashes(&ca.der).expect("hashes");
        let mut index = SignalIndex::default();
        index.add_seen(&ca);
        let stores = TrustStores::empty();
        let ca_ref = |c: &CertInfo| CaRef {
            sha256: c.sha256,
            subject: c.subject.clone(),
            role: crate::Role::Intermediate,
            stores: Vec::new(),
            removals: Vec::new(),
        };
        let mut look = |s: &SideSignal| {
            let e = index.lookup(&stores, s, ca_ref);
            (e.matches.first().map(|m| m.matched_by), e.unmatched)
        };
        let by = Some(MatchedBy::NameAndKey);
        assert_eq!(look(&ocsp("sha1", &h.name_sha1, &h.key_sha1)), (by, 0));
        assert_eq!(
            look(&ocsp("sha256", &h.name_sha256, &h.key_sha256)),
            (by, 0)
        );
        // Another key under the same name (a re-keyed CA): the name alone.
        let name_only = Some(MatchedBy::Name);
        assert_eq!(look(&ocsp("sha1", &h.name_sha1, &[0; 20])), (name_only, 0));
        // Hashes of the wrong length for the algorithm, or an algorithm not indexed.
        assert_eq!(look(&ocsp("sha256", &h.name_sha1, &h.key_sha1)), (None, 1));
        assert_eq!(look(&ocsp("sha384", &[0; 48], &[0; 48])), (None, 1));
    }

    #[test]
    fn urls_compare_without_case_or_default_port() {
        assert_eq!(
            normalize_url("http://CRL.Example:80/a/B.crl"),
            normalize_url("http://crl.example/a/B.crl")
        );
        assert_ne!(
            normalize_url("http://crl.example/a/b.crl"),
            normalize_url("http://crl.example/a/B.crl")
        );
    }
}
