//! Chain building: from the presented certificates (wire order) to the trust anchors, even when the
//! server does not send the root.
//!
//! Issuer candidates for a certificate are found by issuer DN == subject DN (exact DER), and
//! AKI == SKI when both are present, looked up first among the presented certificates, then the
//! known CAs and anchors of [`TrustStores`]. Each candidate's key is checked against the child's
//! signature with x509-parser's `verify` feature (ring); an algorithm ring cannot check (e.g.
//! ML-DSA, RSA-PSS with odd parameters) leaves the link `Unverified` rather than rejected, while a
//! signature that checks *false* discards the candidate. An ECDSA signature under an issuer key
//! that is not an EC key is false, not unsupported (no such key can have made it). The search is
//! a bounded depth-first enumeration ([`MAX_DEPTH`], [`MAX_CANDIDATES`], [`MAX_PATHS`]) so hostile
//! chains (hundreds of certificates with the same name) cost a fixed amount of work.
//!
//! When no path reaches a root, [`ChainResult::claimed`] holds the path the certificates *claim*:
//! the same search, but following an issuer named by DN and AKI whose signature check failed
//! (marked [`SigStatus::Invalid`]) when no other issuer is available. It is never trusted (not in
//! `paths`, `anchors` or the issues), but it lets a dependency map attribute a chain with a bad or
//! forged signature to the CA it names, e.g. for removal rules ([`ChainResult::reached_cas`]).
//!
//! All time checks use the instant given by the caller (capture time or `--as-of`), never the clock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::anchors::TrustStores;
use analyzer::cert::CertInfo;

/// Longest path (leaf included) explored. Real chains have 2-4 certificates.
pub const MAX_DEPTH: usize = 8;
/// Issuer candidates tried per certificate.
pub const MAX_CANDIDATES: usize = 8;
/// Complete or dead-end paths kept per chain.
pub const MAX_PATHS: usize = 16;
/// Presented certificates considered (TLS allows ~16 MB of them; real servers send < 10).
pub const MAX_PRESENTED: usize = 32;

/// Where a certificate on a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Index in the presented (wire-order) list.
    Presented(usize),
    /// From the trust stores (anchor or known CA), not sent by the peer.
    Store,
}

/// Outcome of checking one certificate's signature with its issuer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigStatus {
    Valid,
    Invalid,
    /// Algorithm not supported by the verifier, or a certificate did not parse.
    Unverified,
}

/// How a path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEnd {
    /// The top certificate is an anchor of at least one store.
    Anchor,
    /// The top certificate is self-issued but no store trusts it.
    UntrustedRoot,
    /// The top certificate is a known (non-anchor) CA whose issuer is not available either.
    KnownCa,
    /// The top certificate's issuer was not found anywhere.
    IssuerMissing,
    /// Stopped by [`MAX_DEPTH`].
    TooDeep,
}

/// One path, leaf first.
#[derive(Debug, Clone)]
pub struct ChainPath {
    pub certs: Vec<Arc<CertInfo>>,
    pub sources: Vec<Source>,
    /// `sigs[i]` is the check of `certs[i]`'s signature with `certs[i+1]`'s key (len = certs-1).
    pub sigs: Vec<SigStatus>,
    pub end: PathEnd,
}

impl ChainPath {
    pub fn top(&self) -> Option<&Arc<CertInfo>> {
        self.certs.last()
    }
}

/// A reached anchor, as reported in `trustmap.anchor(s)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRef {
    pub sha256: [u8; 32],
    pub subject: String,
    pub stores: Vec<String>,
}

/// Structural problems found while building (policy findings are derived in `findings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainIssue {
    /// No path reached a root (anchor or self-signed): an intermediate is missing. Also set when the
    /// preferred path needed an intermediate the server did not send (it came from the stores).
    Incomplete,
    /// The presented certificates are not in leaf-to-root order.
    Misordered,
    /// A presented certificate that is on no path (wire index). Paths through a failed signature
    /// ([`ChainResult::claimed`]) do not count.
    Unrelated(usize),
    /// Paths end at a root no store trusts (sha256 of that root).
    UnknownAnchor([u8; 32]),
    /// The leaf is self-issued and signed by its own key (or unverifiable).
    SelfSignedLeaf,
    /// A CA certificate on the preferred path (not the anchor) is outside its validity at the instant.
    ExpiredIntermediate([u8; 32]),
}

/// Everything chain building found for one presented chain.
#[derive(Debug, Clone, Default)]
pub struct ChainResult {
    /// The end-entity certificate (normally the first presented).
    pub leaf: Option<Arc<CertInfo>>,
    pub paths: Vec<ChainPath>,
    /// Index into `paths`.
    pub preferred: Option<usize>,
    /// Every distinct anchor reached (cross-signed alternatives), preferred first.
    pub anchors: Vec<AnchorRef>,
    pub issues: Vec<ChainIssue>,
    /// Only when the preferred path reaches no root (it ends with [`PathEnd::IssuerMissing`] or
    /// [`PathEnd::TooDeep`]): the best path that follows issuers whose signature check failed,
    /// each such link marked [`SigStatus::Invalid`]. Never a trust decision; see the module doc.
    pub claimed: Option<ChainPath>,
}

impl ChainResult {
    pub fn preferred_path(&self) -> Option<&ChainPath> {
        self.preferred.and_then(|i| self.paths.get(i))
    }

    /// The anchor of the preferred path.
    pub fn anchor(&self) -> Option<&AnchorRef> {
        self.preferred_path()
            .filter(|p| p.end == PathEnd::Anchor)
            .and_then(|_| self.anchors.first())
    }

    pub fn has(&self, issue: &ChainIssue) -> bool {
        self.issues.contains(issue)
    }

    /// The CA certificates this chain reaches above its leaf, for removal rules and dependency
    /// maps (together with the presented certificates): every certificate above the leaf on the
    /// preferred path (so intermediates and roots the server did not send, taken from the
    /// stores), on every other path that ends at an anchor (cross-signed alternatives a client
    /// may pick), and on the [`claimed`](Self::claimed) path. Not the store-supplied certificates
    /// of other paths: a known CA that cross-signs a current root (e.g. a distrusted root's
    /// cross-sign of DigiCert Global Root G2) opens a path to a root that no client builds
    /// while the current root is trusted. Order: preferred path, anchored paths, claimed path;
    /// no duplicates.
    pub fn reached_cas(&self) -> Vec<&Arc<CertInfo>> {
        let mut out: Vec<&Arc<CertInfo>> = Vec::new();
        let anchored = self.paths.iter().filter(|p| p.end == PathEnd::Anchor);
        let paths = self
            .preferred_path()
            .into_iter()
            .chain(anchored)
            .chain(self.claimed.iter());
        for p in paths {
            for c in p.certs.iter().skip(1) {
                if !out.iter().any(|o| o.sha256 == c.sha256) {
                    out.push(c);
                }
            }
        }
        out
    }
}

fn valid_at(c: &CertInfo, instant: i64) -> bool {
    c.not_before <= instant && instant <= c.not_after
}

/// Is `issuer` a plausible issuer of `child` by names and key identifiers?
pub fn name_and_key_id_match(child: &CertInfo, issuer: &CertInfo) -> bool {
    if child.issuer_der != issuer.subject_der {
        return false;
    }
    match (&child.aki, &issuer.ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// Checks `child`'s signature with `issuer`'s public key.
pub fn verify_sig(child: &CertInfo, issuer: &CertInfo) -> SigStatus {
    use x509_parser::prelude::*;
    let (Ok((_, c)), Ok((_, i))) = (
        X509Certificate::from_der(&child.der),
        X509Certificate::from_der(&issuer.der),
    ) else {
        return SigStatus::Unverified;
    };
    // x509-parser reports an ECDSA signature checked with a non-EC key as an unsupported
    // algorithm; no such key can have produced it, so the signature is false.
    if ecdsa_sig_without_ec_key(&c, &i) {
        return SigStatus::Invalid;
    }
    match c.verify_signature(Some(i.public_key())) {
        Ok(()) => SigStatus::Valid,
        Err(X509Error::SignatureVerificationError) => SigStatus::Invalid,
        Err(_) => SigStatus::Unverified,
    }
}

/// `ecdsa-with-*` (1.2.840.10045.4.*) on `child` while `issuer`'s key is not id-ecPublicKey.
fn ecdsa_sig_without_ec_key(
    child: &x509_parser::certificate::X509Certificate<'_>,
    issuer: &x509_parser::certificate::X509Certificate<'_>,
) -> bool {
    let sig = child.signature_algorithm.algorithm.to_id_string();
    let key = issuer.public_key().algorithm.algorithm.to_id_string();
    sig.starts_with("1.2.840.10045.4.") && key != "1.2.840.10045.2.1"
}

struct Builder<'a> {
    presented: &'a [Arc<CertInfo>],
    stores: &'a TrustStores,
    paths: Vec<ChainPath>,
    sig_cache: HashMap<([u8; 32], [u8; 32]), SigStatus>,
    steps: usize,
    /// Follow issuers whose signature check failed when a certificate has no other issuer
    /// (for [`ChainResult::claimed`]).
    follow_invalid: bool,
}

/// Bound on total candidate expansions per chain (defence in depth beyond depth x candidates).
pub const MAX_STEPS: usize = 256;

impl Builder<'_> {
    fn descend(
        &mut self,
        certs: &mut Vec<Arc<CertInfo>>,
        sources: &mut Vec<Source>,
        sigs: &mut Vec<SigStatus>,
        cand: Arc<CertInfo>,
        src: Source,
        s: SigStatus,
    ) {
        certs.push(cand);
        sources.push(src);
        sigs.push(s);
        self.walk(certs, sources, sigs);
        certs.pop();
        sources.pop();
        sigs.pop();
    }

    fn sig(&mut self, child: &CertInfo, issuer: &CertInfo) -> SigStatus {
        let k = (child.sha256, issuer.sha256);
        if let Some(s) = self.sig_cache.get(&k) {
            return *s;
        }
        let s = verify_sig(child, issuer);
        self.sig_cache.insert(k, s);
        s
    }

    fn candidates(&self, child: &CertInfo, path: &[Arc<CertInfo>]) -> Vec<(Arc<CertInfo>, Source)> {
        let mut out: Vec<(Arc<CertInfo>, Source)> = Vec::new();
        let seen = |out: &Vec<(Arc<CertInfo>, Source)>, c: &CertInfo| {
            path.iter().any(|p| p.sha256 == c.sha256)
                || out.iter().any(|(o, _)| o.sha256 == c.sha256)
        };
        for (i, p) in self.presented.iter().enumerate() {
            if p.parse_error.is_none() && name_and_key_id_match(child, p) && !seen(&out, p) {
                out.push((p.clone(), Source::Presented(i)));
            }
        }
        // Known CAs first, then anchors, as the brief orders them; within a group, store order.
        let mut known = Vec::new();
        let mut anchors = Vec::new();
        for e in self.stores.by_subject(&child.issuer_der) {
            if !name_and_key_id_match(child, &e.cert) || seen(&out, &e.cert) {
                continue;
            }
            if e.is_anchor() {
                anchors.push((e.cert.clone(), Source::Store));
            } else {
                known.push((e.cert.clone(), Source::Store));
            }
        }
        out.extend(known);
        out.extend(anchors);
        out.truncate(MAX_CANDIDATES);
        out
    }

    fn walk(
        &mut self,
        certs: &mut Vec<Arc<CertInfo>>,
        sources: &mut Vec<Source>,
        sigs: &mut Vec<SigStatus>,
    ) {
        if self.paths.len() >= MAX_PATHS {
            return;
        }
        let Some(top) = certs.last().cloned() else {
            return;
        };
        let entry = self.stores.get(&top.sha256);
        let end = if entry.is_some_and(|e| e.is_anchor()) {
            Some(PathEnd::Anchor)
        } else if top.self_issued {
            // An untrusted self-signed root is a terminal. (A store root with the same name and key
            // is still found: it is a candidate issuer of the certificate *below* this one.)
            let own = self.sig(&top, &top);
            if own != SigStatus::Invalid {
                Some(PathEnd::UntrustedRoot)
            } else {
                None
            }
        } else if certs.len() >= MAX_DEPTH {
            Some(PathEnd::TooDeep)
        } else {
            None
        };
        if let Some(end) = end {
            self.paths.push(ChainPath {
                certs: certs.clone(),
                sources: sources.clone(),
                sigs: sigs.clone(),
                end,
            });
            return;
        }
        let mut extended = false;
        let mut failed = Vec::new();
        for (cand, src) in self.candidates(&top, certs) {
            self.steps += 1;
            if self.steps > MAX_STEPS || self.paths.len() >= MAX_PATHS {
                break;
            }
            let s = self.sig(&top, &cand);
            if s == SigStatus::Invalid {
                failed.push((cand, src));
                continue;
            }
            extended = true;
            self.descend(certs, sources, sigs, cand, src, s);
        }
        if !extended && self.follow_invalid {
            for (cand, src) in failed {
                if self.steps > MAX_STEPS || self.paths.len() >= MAX_PATHS {
                    break;
                }
                extended = true;
                self.descend(certs, sources, sigs, cand, src, SigStatus::Invalid);
            }
        }
        if !extended {
            let end = if entry.is_some() {
                PathEnd::KnownCa
            } else {
                PathEnd::IssuerMissing
            };
            self.paths.push(ChainPath {
                certs: certs.clone(),
                sources: sources.clone(),
                sigs: sigs.clone(),
                end,
            });
        }
    }
}

/// Builds every path from the leaf of `presented` (wire order) to the stores, at `instant` (Unix s).
pub fn build(presented: &[Arc<CertInfo>], stores: &TrustStores, instant: i64) -> ChainResult {
    let presented = presented
        .get(..presented.len().min(MAX_PRESENTED))
        .unwrap_or(&[]);
    let mut res = ChainResult::default();
    // The leaf is the first certificate by protocol. If the first is a CA and a non-CA certificate
    // follows, the server sent them out of order: use the end-entity one.
    let mut leaf_idx = presented.iter().position(|c| c.parse_error.is_none());
    if let Some(first) = leaf_idx.and_then(|i| presented.get(i)) {
        if first.is_ca {
            if let Some(ee) = presented
                .iter()
                .position(|c| c.parse_error.is_none() && !c.is_ca)
            {
                leaf_idx = Some(ee);
            }
        }
    }
    let Some(leaf_idx) = leaf_idx else {
        return res;
    };
    let Some(leaf) = presented.get(leaf_idx).cloned() else {
        return res;
    };
    res.leaf = Some(leaf.clone());
    if leaf_idx != 0 {
        res.issues.push(ChainIssue::Misordered);
    }

    let mut b = Builder {
        presented,
        stores,
        paths: Vec::new(),
        sig_cache: HashMap::new(),
        steps: 0,
        follow_invalid: false,
    };
    b.walk(
        &mut vec![leaf.clone()],
        &mut vec![Source::Presented(leaf_idx)],
        &mut Vec::new(),
    );
    res.paths = std::mem::take(&mut b.paths);

    // Preferred: anchored > untrusted root > known CA > dead end; then all signatures verified,
    // then every certificate valid at the instant, then more stores, then fewer certificates sent
    // from the stores, then shorter.
    let rank = |p: &ChainPath| {
        let end_rank = match p.end {
            PathEnd::Anchor => 0,
            PathEnd::UntrustedRoot => 1,
            PathEnd::KnownCa => 2,
            PathEnd::IssuerMissing => 3,
            PathEnd::TooDeep => 4,
        };
        let unverified = p.sigs.iter().filter(|s| **s != SigStatus::Valid).count();
        let invalid_time = p.certs.iter().filter(|c| !valid_at(c, instant)).count();
        let stores = p
            .top()
            .and_then(|t| stores.get(&t.sha256))
            .map_or(0, |e| e.stores.len());
        // Store-supplied intermediates (not the top) mean the server sent an incomplete chain.
        let fetched = p
            .sources
            .iter()
            .take(p.sources.len().saturating_sub(1))
            .filter(|s| **s == Source::Store)
            .count();
        (
            end_rank,
            fetched,
            unverified,
            invalid_time,
            usize::MAX - stores,
            p.certs.len(),
        )
    };
    let mut order: Vec<usize> = (0..res.paths.len()).collect();
    order.sort_by_key(|&i| res.paths.get(i).map(rank));
    res.preferred = order.first().copied();

    for &i in &order {
        let Some(p) = res.paths.get(i) else { continue };
        if p.end != PathEnd::Anchor {
            continue;
        }
        let Some(top) = p.top() else { continue };
        if res.anchors.iter().any(|a| a.sha256 == top.sha256) {
            continue;
        }
        res.anchors.push(AnchorRef {
            sha256: top.sha256,
            subject: top.subject.clone(),
            stores: stores
                .get(&top.sha256)
                .map(|e| e.stores.clone())
                .unwrap_or_default(),
        });
    }

    let pref = res.preferred_path().cloned();
    if let Some(p) = &pref {
        // Incomplete: the best path does not end at a root, or needed a store-supplied intermediate.
        let fetched_mid = p
            .sources
            .iter()
            .take(p.sources.len().saturating_sub(1))
            .any(|s| *s == Source::Store);
        let dead_end = matches!(p.end, PathEnd::IssuerMissing | PathEnd::TooDeep);
        if dead_end || fetched_mid {
            res.issues.push(ChainIssue::Incomplete);
        }
        if matches!(p.end, PathEnd::UntrustedRoot | PathEnd::KnownCa) && res.anchors.is_empty() {
            if let Some(t) = p.top() {
                // A self-signed leaf alone is reported as self-signed, not as an unknown anchor.
                if p.certs.len() > 1 {
                    res.issues.push(ChainIssue::UnknownAnchor(t.sha256));
                }
            }
        }
        if p.certs.len() == 1 && p.end == PathEnd::UntrustedRoot && !leaf.is_ca {
            res.issues.push(ChainIssue::SelfSignedLeaf);
        } else if p.certs.len() == 1 && p.end == PathEnd::UntrustedRoot {
            // A lone self-signed CA certificate used as a server certificate is still self-signed.
            res.issues.push(ChainIssue::SelfSignedLeaf);
        }
        // Wire order: on every path, the presented certificates must appear in increasing wire
        // order (a path that uses a presented cross-sign sent before its subject is misordered too).
        let misordered = res.paths.iter().any(|path| {
            let idx: Vec<usize> = path
                .sources
                .iter()
                .filter_map(|s| match s {
                    Source::Presented(i) => Some(*i),
                    Source::Store => None,
                })
                .collect();
            idx.windows(2).any(|w| matches!(w, [a, b] if a >= b))
        });
        if misordered && !res.issues.contains(&ChainIssue::Misordered) {
            res.issues.push(ChainIssue::Misordered);
        }
        let last = p.certs.len().saturating_sub(1);
        for (k, c) in p.certs.iter().enumerate() {
            let is_anchor_top = k == last && p.end == PathEnd::Anchor;
            if k > 0 && !is_anchor_top && !valid_at(c, instant) {
                res.issues.push(ChainIssue::ExpiredIntermediate(c.sha256));
            }
        }
    }
    // Unrelated: presented certificates on no path at all.
    for (i, c) in presented.iter().enumerate() {
        let used = res
            .paths
            .iter()
            .any(|p| p.sources.contains(&Source::Presented(i)))
            || res
                .paths
                .iter()
                .any(|p| p.certs.iter().any(|pc| pc.sha256 == c.sha256));
        if !used {
            res.issues.push(ChainIssue::Unrelated(i));
        }
    }
    // No root reached: the path the certificates claim, through failed signatures (marked).
    let dead_end = res
        .preferred_path()
        .is_some_and(|p| matches!(p.end, PathEnd::IssuerMissing | PathEnd::TooDeep));
    if dead_end {
        let mut c = Builder {
            presented,
            stores,
            paths: Vec::new(),
            sig_cache: std::mem::take(&mut b.sig_cache),
            steps: 0,
            follow_invalid: true,
        };
        c.walk(
            &mut vec![leaf.clone()],
            &mut vec![Source::Presented(leaf_idx)],
            &mut Vec::new(),
        );
        res.claimed = c
            .paths
            .into_iter()
            .filter(|p| p.sigs.contains(&SigStatus::Invalid))
            .min_by_key(|p| rank(p));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzer::cert::{parse, sha256};

    fn cert(name: &str) -> Arc<CertInfo> {
        let p = format!(
            "{}/../analyzer/tests/data/x509/{name}.der",
            env!("CARGO_MANIFEST_DIR")
        );
        let der = std::fs::read(p).unwrap();
        Arc::new(parse(&der, sha256(&der)))
    }

    fn google() -> Vec<Arc<CertInfo>> {
        (0..3)
            .map(|i| cert(&format!("google-cert-repeat.{i}")))
            .collect()
    }

    /// Capture time of google-cert-repeat.pcap.
    const GOOGLE_T: i64 = 1624959854;

    fn store_cert(s: &TrustStores, subject_prefix: &str) -> Arc<CertInfo> {
        s.entries()
            .iter()
            .find(|e| e.cert.subject.starts_with(subject_prefix))
            .map(|e| e.cert.clone())
            .unwrap()
    }

    #[test]
    fn ecdsa_signature_under_a_non_ec_key_is_invalid() {
        let ecdsa_leaf = cert("ecdsa-cert.0");
        let ecdsa_ca = cert("ecdsa-cert.1");
        let rsa_ca = cert("google-cert-repeat.1");
        assert!(ecdsa_leaf.signature_algorithm.starts_with("ecdsa"));
        assert_eq!(rsa_ca.public_key_algorithm, "RSA");
        assert_eq!(verify_sig(&ecdsa_leaf, &ecdsa_ca), SigStatus::Valid);
        // x509-parser calls this "unsupported algorithm"; it used to leave the link Unverified,
        // so a forged ECDSA certificate naming an RSA CA was chained (and anchored) unchecked.
        assert_eq!(verify_sig(&ecdsa_leaf, &rsa_ca), SigStatus::Invalid);
        // A really unsupported algorithm stays Unverified.
        let mldsa = cert("ml-dsa-44-cert.0");
        assert_eq!(verify_sig(&mldsa, &mldsa), SigStatus::Unverified);
    }

    #[test]
    fn claimed_path_follows_a_failed_signature_marked_invalid() {
        let stores = TrustStores::builtin();
        let c = google();
        // A valid chain has no claimed path.
        let ok = build(&c, &stores, GOOGLE_T);
        assert!(ok.anchor().is_some());
        assert!(ok.claimed.is_none());
        // Forged leaf: the signature no longer verifies with GTS CA 1C3's key.
        let mut der = c[0].der.clone();
        let n = der.len();
        der[n - 5] ^= 0x55;
        let leaf = Arc::new(parse(&der, sha256(&der)));
        let forged = vec![leaf.clone(), c[1].clone(), c[2].clone()];
        let r = build(&forged, &stores, GOOGLE_T);
        // Trust view unchanged: a dead end, no anchor, incomplete, 1C3 unrelated.
        let p = r.preferred_path().unwrap();
        assert_eq!(p.end, PathEnd::IssuerMissing);
        assert_eq!(p.certs.len(), 1);
        assert!(r.anchor().is_none() && r.anchors.is_empty());
        assert!(r.has(&ChainIssue::Incomplete));
        assert!(r.has(&ChainIssue::Unrelated(1)));
        assert!(r
            .paths
            .iter()
            .all(|p| !p.sigs.contains(&SigStatus::Invalid)));
        // Claimed view: leaf -x- 1C3 - GTS Root R1 (from the stores), the bad link marked.
        let cl = r.claimed.as_ref().unwrap();
        assert_eq!(cl.sigs.first(), Some(&SigStatus::Invalid));
        assert!(cl.sigs.iter().skip(1).all(|s| *s == SigStatus::Valid));
        assert_eq!(cl.end, PathEnd::Anchor);
        assert_eq!(cl.certs[1].sha256, c[1].sha256);
        assert!(cl.top().unwrap().subject.starts_with("CN=GTS Root R1,"));
        let reached: Vec<_> = r.reached_cas().iter().map(|c| c.sha256).collect();
        assert!(reached.contains(&c[1].sha256));
        assert!(reached.contains(&cl.top().unwrap().sha256));
        // Without any issuer at all there is nothing to claim.
        let alone = build(std::slice::from_ref(&leaf), &TrustStores::empty(), GOOGLE_T);
        assert!(alone.claimed.is_none());
    }

    #[test]
    fn reached_cas_skips_known_ca_cross_sign_paths() {
        // GTS Root R1 is an anchor; GlobalSign Root CA (which cross-signed it, and the server
        // sends that cross-sign) is only a known CA here, like a distrusted root that cross-signed
        // a current one (VeriSign G5 -> DigiCert Global Root G2).
        let builtin = TrustStores::builtin();
        let r1 = store_cert(&builtin, "CN=GTS Root R1,");
        let gs = store_cert(&builtin, "CN=GlobalSign Root CA,");
        let mut stores = TrustStores::empty();
        assert!(stores.add_anchor(&r1.der, "test"));
        assert!(stores.add_known_ca(&gs.der, "removed-ca"));
        let c = google();
        let r = build(&c, &stores, GOOGLE_T);
        assert_eq!(r.anchor().unwrap().sha256, r1.sha256);
        // Chain building does find the path to the known CA ...
        assert!(r
            .paths
            .iter()
            .any(|p| p.end == PathEnd::UntrustedRoot && p.top().unwrap().sha256 == gs.sha256));
        // ... but no client builds it while R1 is trusted: not a CA this chain depends on.
        let reached: Vec<_> = r.reached_cas().iter().map(|c| c.sha256).collect();
        assert_eq!(reached, vec![c[1].sha256, r1.sha256]);
        // With R1 gone, the known CA is the end of the preferred path and is reached.
        let mut only_gs = TrustStores::empty();
        only_gs.add_known_ca(&gs.der, "removed-ca");
        let r = build(&c, &only_gs, GOOGLE_T);
        let reached: Vec<_> = r.reached_cas().iter().map(|c| c.sha256).collect();
        assert_eq!(reached, vec![c[1].sha256, c[2].sha256, gs.sha256]);
    }
}
