//! Side signals matched to CAs: an OCSP request's CertID names its issuer by the SHA-1 of the
//! issuer's Name and key (RFC 6960 §4.1.1); an AIA caIssuers or CRL URL is the one some
//! certificate carries for its issuer. Known CAs are the trust stores (with `--anchors` and the
//! distrust history) and every certificate seen in a chain in this run.

use std::collections::HashMap;
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

/// The known CAs, indexed for side signals.
#[derive(Debug, Default)]
pub struct SignalIndex {
    stores_loaded: bool,
    by_name_key: HashMap<([u8; 20], [u8; 20]), Arc<CertInfo>, ahash::RandomState>,
    by_name: HashMap<[u8; 20], Arc<CertInfo>, ahash::RandomState>,
    by_subject_der: HashMap<Vec<u8>, Arc<CertInfo>, ahash::RandomState>,
    /// URL -> (the issuer's subject text, its Name DER).
    by_url: HashMap<String, (String, Vec<u8>), ahash::RandomState>,
    pub resets: u64,
}

impl SignalIndex {
    /// Indexes one certificate seen in a chain: as a possible CA, and by the URLs it carries
    /// for its issuer.
    pub fn add_seen(&mut self, c: &Arc<CertInfo>) {
        if c.parse_error.is_some() {
            return;
        }
        if self.by_url.len() >= MAX_SIGNAL_INDEX || self.by_name_key.len() >= MAX_SIGNAL_INDEX {
            *self = SignalIndex {
                resets: self.resets + 1,
                ..SignalIndex::default()
            };
        }
        if c.is_ca || c.self_issued {
            self.add_ca(c);
        }
        for u in c.ca_issuers_urls.iter().chain(&c.crl_urls) {
            self.by_url
                .entry(normalize_url(u))
                .or_insert_with(|| (c.issuer.clone(), c.issuer_der.clone()));
        }
    }

    fn add_ca(&mut self, c: &Arc<CertInfo>) {
        if let Some((name, key)) = c.ocsp_name_key_sha1 {
            self.by_name_key
                .entry((name, key))
                .or_insert_with(|| c.clone());
            self.by_name.entry(name).or_insert_with(|| c.clone());
        }
        self.by_subject_der
            .entry(c.subject_der.clone())
            .or_insert_with(|| c.clone());
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
        let mut out = SignalEnrichment::default();
        match s.kind {
            SignalKind::Ocsp => {
                for id in &s.cert_ids {
                    match self.ocsp(id, &ca_ref) {
                        Some(m) => out.matches.push(m),
                        None => out.unmatched += 1,
                    }
                }
            }
            SignalKind::Aia | SignalKind::Crl => match self.by_url.get(&normalize_url(&s.url)) {
                Some((subject, der)) => out.matches.push(SignalMatch {
                    ca: self.by_subject_der.get(der).map(|c| ca_ref(c)),
                    subject: subject.clone(),
                    matched_by: MatchedBy::Url,
                    serial: None,
                }),
                None => out.unmatched += 1,
            },
        }
        out
    }

    fn ocsp(&self, id: &CertId, ca_ref: impl Fn(&CertInfo) -> CaRef) -> Option<SignalMatch> {
        if id.hash_algorithm != "sha1" {
            return None;
        }
        let name: [u8; 20] = id.issuer_name_hash.as_slice().try_into().ok()?;
        let key: [u8; 20] = id.issuer_key_hash.as_slice().try_into().ok()?;
        let (ca, by) = match self.by_name_key.get(&(name, key)) {
            Some(c) => (c, MatchedBy::NameAndKey),
            None => (self.by_name.get(&name)?, MatchedBy::Name),
        };
        Some(SignalMatch {
            ca: Some(ca_ref(ca)),
            subject: ca.subject.clone(),
            matched_by: by,
            serial: Some(hex::encode(&id.serial)),
        })
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
