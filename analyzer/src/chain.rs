//! Chain building: from the presented certificates (wire order) to the trust anchors, even when the
//! server does not send the root.
//!
//! Issuer candidates for a certificate are found by issuer DN == subject DN (exact DER), and
//! AKI == SKI when both are present, looked up first among the presented certificates, then the
//! known CAs and anchors of [`TrustStores`]. Each candidate's key is checked against the child's
//! signature with x509-parser's `verify` feature (ring); an algorithm ring cannot check (e.g.
//! ML-DSA, RSA-PSS with odd parameters) leaves the link `Unverified` rather than rejected, while a
//! signature that checks *false* discards the candidate. The search is a bounded depth-first
//! enumeration ([`MAX_DEPTH`], [`MAX_CANDIDATES`], [`MAX_PATHS`]) so hostile chains (hundreds of
//! certificates with the same name) cost a fixed amount of work.
//!
//! All time checks use the instant given by the caller (capture time or `--as-of`), never the clock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::anchors::TrustStores;
use crate::cert::CertInfo;

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
    /// A presented certificate that is on no path (wire index).
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
    match c.verify_signature(Some(i.public_key())) {
        Ok(()) => SigStatus::Valid,
        Err(X509Error::SignatureVerificationError) => SigStatus::Invalid,
        Err(_) => SigStatus::Unverified,
    }
}

struct Builder<'a> {
    presented: &'a [Arc<CertInfo>],
    stores: &'a TrustStores,
    paths: Vec<ChainPath>,
    sig_cache: HashMap<([u8; 32], [u8; 32]), SigStatus>,
    steps: usize,
}

/// Bound on total candidate expansions per chain (defence in depth beyond depth x candidates).
pub const MAX_STEPS: usize = 256;

impl Builder<'_> {
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
        for (cand, src) in self.candidates(&top, certs) {
            self.steps += 1;
            if self.steps > MAX_STEPS || self.paths.len() >= MAX_PATHS {
                break;
            }
            let s = self.sig(&top, &cand);
            if s == SigStatus::Invalid {
                continue;
            }
            extended = true;
            certs.push(cand);
            sources.push(src);
            sigs.push(s);
            self.walk(certs, sources, sigs);
            certs.pop();
            sources.pop();
            sigs.pop();
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
    res
}
