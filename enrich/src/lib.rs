//! Downstream of the analyzer, one handshake at a time: chain building to anchors (cached per
//! presented chain), policy findings, `ca_removal.*` findings from the rules and the built-in
//! distrust history, segments and heuristics, and the inventory observation.
//!
//! Time: every time-dependent check uses the handshake's capture time, or `--as-of` when given.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use analyzer::{CertInfo, Handshake, Outcome};
use rules::segment::AnchorKind;
use rules::{AnchorFacts, CertFacts, EndpointFacts, HandshakeFacts, RemovalFinding, RuleSet};
use trust::anchors::{TrustStores, STORE_CHROME, STORE_MOZILLA};
use trust::chain::{self, ChainIssue, ChainResult};
use trust::findings::{self, PolicyConfig};

use rules::time::secs_of;

pub mod model;

pub mod signals;
pub use model::{Algorithms, CaRef, Enrichment, Finding, Observation, Role, SignalObservation};
pub use signals::{MatchedBy, SignalEnrichment, SignalMatch};

/// Distinct presented chains whose building result is kept.
pub const MAX_CHAIN_CACHE: usize = 100_000;
/// Finding identifiers remembered for suppression.
pub const MAX_SUPPRESS_KEYS: usize = 1_000_000;

/// Tunables of the enrichment stage.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    /// Evaluate time-dependent checks at this instant (Unix s) instead of the capture time.
    pub as_of: Option<i64>,
    pub policy: PolicyConfig,
    /// A finding with the same identifier (code, rule, server, certificate, CA, and the client for
    /// client-side codes) is emitted at most once per this many seconds of capture time.
    /// 0 emits every occurrence.
    pub suppress_secs: i64,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            as_of: None,
            policy: PolicyConfig::default(),
            suppress_secs: 86_400,
        }
    }
}

/// Counters of the enrichment stage.
#[derive(Debug, Default, Clone)]
pub struct EnrichStats {
    pub chains_built: u64,
    pub chain_cache_hits: u64,
    pub chain_cache_resets: u64,
    pub anchored: u64,
    pub findings: u64,
    pub findings_suppressed: u64,
    pub suppress_resets: u64,
    /// Removal findings on hidden handshakes, inferred from the endpoint's earlier chain.
    pub findings_inferred: u64,
    pub last_chain_resets: u64,
    /// Side signals' CAs matched, and CertIDs/URLs that matched no known CA.
    pub side_signals_matched: u64,
    pub side_signals_unmatched: u64,
}

/// What enrichment adds to one handshake.
#[derive(Debug, Default)]
pub struct Enriched {
    pub extra: Enrichment,
    /// `trustmap.finding` events.
    pub findings: Vec<Finding>,
    pub observation: Option<Observation>,
    /// The instant the findings were evaluated at (capture time, or `--as-of`).
    pub instant: i64,
}

/// One certificate as the removal rules read it (hex and texts made once per cached chain).
struct OwnedFacts {
    sha: [u8; 32],
    spki: Option<[u8; 32]>,
    subject: String,
    not_before: Option<i64>,
    sct: Option<i64>,
    is_ca: bool,
}

impl OwnedFacts {
    fn of(c: &CertInfo) -> Self {
        OwnedFacts {
            sha: c.sha256,
            spki: c.spki_sha256,
            subject: c.subject.clone(),
            not_before: c.parse_error.is_none().then_some(c.not_before),
            sct: rules::earliest_sct_secs(&c.sct_timestamps),
            is_ca: c.is_ca,
        }
    }
}

/// A chain as the removal rules read it: what [`RuleSet::evaluate`] needs, owned, so it is made
/// once per cached chain. The one place that turns a built chain into rule facts (the distrust
/// history tests use it too).
pub struct RemovalFacts {
    /// The presented certificates: the leaf first, then the rest in wire order.
    chain: Vec<OwnedFacts>,
    /// The CAs the chain depends on that were not presented.
    anchors: Vec<OwnedFacts>,
}

impl RemovalFacts {
    /// The facts of chain `r`, built from the `presented` certificates.
    pub fn of(r: &ChainResult, presented: &[Arc<CertInfo>]) -> Self {
        // The leaf first (grandfathering reads chain[0]; servers may send out of order), then the
        // rest in wire order.
        let leaf = r.leaf.as_ref().map(|l| l.sha256);
        let chain = r
            .leaf
            .iter()
            .chain(presented.iter().filter(|c| Some(c.sha256) != leaf))
            .map(|c| OwnedFacts::of(c))
            .collect();
        // The CAs the chain depends on (preferred path, anchored paths, a claimed path), not
        // known-CA cross-sign detours that no client would take, and not already in the chain.
        let anchors = r
            .reached_cas()
            .into_iter()
            .filter(|c| Some(c.sha256) != leaf && !presented.iter().any(|p| p.sha256 == c.sha256))
            .map(|c| OwnedFacts::of(c))
            .collect();
        RemovalFacts { chain, anchors }
    }

    /// The removal findings of `rules` for a handshake at `at` with `outcome`.
    pub fn evaluate(
        &self,
        rules: &RuleSet,
        at: i64,
        outcome: rules::Outcome,
    ) -> Vec<RemovalFinding> {
        let chain: Vec<CertFacts<'_>> = self
            .chain
            .iter()
            .map(|o| CertFacts {
                sha256: &o.sha,
                spki_sha256: o.spki.as_ref(),
                subject: &o.subject,
                not_before: o.not_before,
                earliest_sct: o.sct,
                is_ca: o.is_ca,
            })
            .collect();
        let anchors: Vec<AnchorFacts<'_>> = self
            .anchors
            .iter()
            .map(|o| AnchorFacts {
                sha256: &o.sha,
                spki_sha256: o.spki.as_ref(),
                subject: &o.subject,
            })
            .collect();
        rules.evaluate(&HandshakeFacts {
            at,
            chain: &chain,
            anchors: &anchors,
            outcome,
        })
    }
}

/// A built chain and what every handshake presenting it needs from it, derived once per
/// cached chain instead of once per handshake.
pub struct BuiltChain {
    pub result: Arc<ChainResult>,
    /// [`Enricher::dependency_cas`] of the result.
    deps: Vec<CaRef>,
    /// What the removal rules read of the chain.
    facts: RemovalFacts,
    /// SHA-256 of the first presented certificate.
    first: Option<[u8; 32]>,
}

struct CachedChain {
    result: Arc<BuiltChain>,
    /// The result holds for instants in `[from, until)`: no certificate involved changes
    /// validity inside that window.
    from: i64,
    until: i64,
}

/// Chain building, findings and inventory facts. One per pipeline (it is not on the packet path).
pub struct Enricher {
    stores: TrustStores,
    rules: RuleSet,
    cfg: EnrichConfig,
    // Keyed (randomly seeded) ahash: a few lookups per handshake, SipHash was 7% of this stage.
    chains: HashMap<Vec<[u8; 32]>, CachedChain, ahash::RandomState>,
    suppress: HashMap<u64, i64, ahash::RandomState>,
    suppress_hasher: ahash::RandomState,
    /// The last chain each endpoint (server address, port, SNI) presented in this run, for the
    /// removal findings of its hidden (TLS 1.3, no key) handshakes, labelled `inferred`.
    last_chains: HashMap<EndpointKey, Arc<BuiltChain>, ahash::RandomState>,
    /// Known CAs and the URLs certificates carry for their issuers, for side signals.
    signals: signals::SignalIndex,
    pub stats: EnrichStats,
}

/// An endpoint as inference matches it: the same server address, port and SNI.
type EndpointKey = (IpAddr, u16, Option<String>);

/// Endpoints whose last chain is remembered (emptied, and counted, when full).
pub const MAX_LAST_CHAINS: usize = 100_000;

/// A CA certificate as findings, events and the inventory name it: its stores and the
/// removals that target it.
fn ca_ref(stores: &TrustStores, rules: &RuleSet, c: &CertInfo) -> CaRef {
    let stores = stores
        .get(&c.sha256)
        .map(|e| e.stores.clone())
        .unwrap_or_default();
    let removals = rules
        .removals_for_ca(&c.sha256, c.spki_sha256.as_ref(), &c.subject)
        .into_iter()
        .map(str::to_string)
        .collect();
    CaRef {
        sha256: c.sha256,
        subject: c.subject.clone(),
        role: if c.self_issued {
            Role::Root
        } else {
            Role::Intermediate
        },
        stores,
        removals,
    }
}

/// The trust stores trustmap builds chains against: the embedded Mozilla/NSS and Chrome stores,
/// plus every certificate of the built-in distrust history as a known CA tagged with its event
/// id, so a chain that stops at an intermediate still reaches a root the stores no longer carry.
pub fn default_stores() -> TrustStores {
    let mut stores = TrustStores::builtin();
    for (event_id, _role, pem) in rules::distrust_certs() {
        stores.add_known_ca_pem(pem.as_bytes(), event_id);
    }
    stores
}

/// Validity boundaries of every certificate involved in `r`, around `instant`.
fn stable_window(r: &ChainResult, presented: &[Arc<CertInfo>], instant: i64) -> (i64, i64) {
    let (mut from, mut until) = (i64::MIN, i64::MAX);
    let mut edge = |t: i64| {
        if t <= instant {
            from = from.max(t);
        } else {
            until = until.min(t);
        }
    };
    let certs = presented
        .iter()
        .chain(r.paths.iter().flat_map(|p| p.certs.iter()));
    for c in certs {
        edge(c.not_before);
        edge(c.not_after.saturating_add(1));
    }
    (from, until)
}

fn map_outcome(o: &Outcome) -> (rules::Outcome, model::Outcome) {
    match o {
        Outcome::Accepted => (rules::Outcome::Accepted, model::Outcome::Accepted),
        Outcome::RejectedAlert { code } => (
            rules::Outcome::RejectedAlert(*code),
            model::Outcome::Rejected(Some(*code)),
        ),
        Outcome::RejectedClose => (
            rules::Outcome::RejectedClose,
            model::Outcome::Rejected(None),
        ),
        Outcome::Unknown => (rules::Outcome::Unknown, model::Outcome::Unknown),
    }
}

impl Enricher {
    pub fn new(stores: TrustStores, rules: RuleSet, cfg: EnrichConfig) -> Self {
        Enricher {
            stores,
            rules,
            cfg,
            chains: HashMap::default(),
            suppress: HashMap::default(),
            suppress_hasher: ahash::RandomState::new(),
            last_chains: HashMap::default(),
            signals: signals::SignalIndex::default(),
            stats: EnrichStats::default(),
        }
    }

    /// Chain building for one presented chain at `instant`, cached while no validity boundary of
    /// an involved certificate is crossed.
    fn build(&mut self, presented: &[Arc<CertInfo>], instant: i64) -> Arc<BuiltChain> {
        let key: Vec<[u8; 32]> = presented.iter().map(|c| c.sha256).collect();
        if let Some(c) = self.chains.get(&key) {
            if c.from <= instant && instant < c.until {
                self.stats.chain_cache_hits += 1;
                return c.result.clone();
            }
        }
        self.stats.chains_built += 1;
        for c in presented {
            self.signals.add_seen(c);
        }
        let r = chain::build(presented, &self.stores, instant);
        let (from, until) = stable_window(&r, presented, instant);
        let result = Arc::new(self.derive(Arc::new(r), presented));
        if self.chains.len() >= MAX_CHAIN_CACHE {
            self.chains.clear();
            self.stats.chain_cache_resets += 1;
        }
        self.chains.insert(
            key,
            CachedChain {
                result: result.clone(),
                from,
                until,
            },
        );
        result
    }

    /// Should a finding with this identifier be emitted at `ts` (capture seconds)?
    /// [`Self::admit`] for a removal finding: identified by its code, rule, certificate and CA
    /// within `scope` (server and, for client-side codes, the client; or another label).
    /// Suppressed repeats are counted.
    fn admit_removal(&mut self, f: &RemovalFinding, scope: impl Hash, ts: i64) -> bool {
        let ident = (
            f.code,
            f.rule_id.as_str(),
            f.cert_sha256,
            f.ca_sha256,
            scope,
        );
        let admitted = self.admit(&ident, ts);
        if !admitted {
            self.stats.findings_suppressed += 1;
        }
        admitted
    }

    fn admit(&mut self, ident: &impl Hash, ts: i64) -> bool {
        if self.cfg.suppress_secs <= 0 {
            return true;
        }
        let k = self.suppress_hasher.hash_one(ident);
        if let Some(&last) = self.suppress.get(&k) {
            if ts >= last && ts - last < self.cfg.suppress_secs {
                return false;
            }
        }
        if self.suppress.len() >= MAX_SUPPRESS_KEYS {
            let window = self.cfg.suppress_secs;
            self.suppress.retain(|_, last| ts - *last < window);
            if self.suppress.len() >= MAX_SUPPRESS_KEYS {
                self.suppress.clear();
            }
            self.stats.suppress_resets += 1;
        }
        self.suppress.insert(k, ts);
        true
    }

    fn anchor_kind(&self, r: &ChainResult) -> AnchorKind {
        if r.issues.contains(&ChainIssue::SelfSignedLeaf) {
            AnchorKind::SelfSigned
        } else if let Some(a) = r.anchor() {
            if a.stores
                .iter()
                .any(|s| s == STORE_MOZILLA || s == STORE_CHROME)
            {
                AnchorKind::Public
            } else {
                AnchorKind::Private
            }
        } else if r
            .issues
            .iter()
            .any(|i| matches!(i, ChainIssue::UnknownAnchor(_)))
        {
            AnchorKind::Private
        } else {
            AnchorKind::Unknown
        }
    }

    /// What handshakes presenting this chain need from its result (see [`BuiltChain`]).
    fn derive(&self, r: Arc<ChainResult>, presented: &[Arc<CertInfo>]) -> BuiltChain {
        BuiltChain {
            deps: self.dependency_cas(&r),
            facts: RemovalFacts::of(&r, presented),
            first: presented.first().map(|l| l.sha256),
            result: r,
        }
    }

    /// The CA certificates a handshake depends on: above the leaf on the preferred path, on every
    /// path that reached an anchor (cross-signed alternatives), or on the claimed path.
    fn dependency_cas(&self, r: &ChainResult) -> Vec<CaRef> {
        let mut out: Vec<CaRef> = Vec::new();
        let add = |c: &CertInfo, out: &mut Vec<CaRef>| {
            if !out.iter().any(|x| x.sha256 == c.sha256) {
                out.push(ca_ref(&self.stores, &self.rules, c));
            }
        };
        // A self-signed leaf is its own anchor: clients that accept it depend on it.
        if let Some(leaf) = r.leaf.as_deref() {
            if r.issues.contains(&ChainIssue::SelfSignedLeaf) {
                add(leaf, &mut out);
            }
        }
        for c in r.reached_cas() {
            add(c, &mut out);
        }
        out
    }

    /// The CAs an OCSP request, CA certificate or CRL fetch names.
    pub fn side_signal(&mut self, s: &analyzer::sidesignal::SideSignal) -> SignalEnrichment {
        let (stores, rules) = (&self.stores, &self.rules);
        let e = self.signals.lookup(stores, s, |c| ca_ref(stores, rules, c));
        self.stats.side_signals_matched += e.matches.len() as u64;
        self.stats.side_signals_unmatched += e.unmatched as u64;
        e
    }

    /// Enriches one finished handshake.
    pub fn handshake(&mut self, h: &Handshake) -> Enriched {
        let ts = secs_of(h.ts_ns);
        let instant = self.cfg.as_of.unwrap_or(ts);
        let mut out = Enriched {
            instant,
            ..Enriched::default()
        };
        let sni = h.server_name.as_deref();
        let (rules_outcome, inv_outcome) = map_outcome(&h.outcome);
        let server_ip = h.server.0;

        let presented: Vec<Arc<CertInfo>> = h
            .server_chain
            .as_ref()
            .map(|c| c.iter().map(|r| r.info.clone()).collect())
            .unwrap_or_default();
        let built_chain = (!presented.is_empty()).then(|| self.build(&presented, instant));
        let built = built_chain.as_ref().map(|b| b.result.clone());

        // Segments, locality, heuristics.
        let mut segments: Vec<String> = self
            .rules
            .segments_for(server_ip, sni)
            .into_iter()
            .map(str::to_string)
            .collect();
        let loc = self.rules.locality(server_ip, sni);
        let version = h.version.map(|v| analyzer::names::version_name(v).0);
        let leaf = presented.first().filter(|l| l.parse_error.is_none());
        let facts = EndpointFacts {
            ip: Some(server_ip),
            server_name: sni,
            tls_version: version.as_deref(),
            anchor: built.as_deref().map(|r| self.anchor_kind(r)),
            leaf_validity: leaf.map(|l| (l.not_before, l.not_after)),
            leaf_sig_sha1: leaf.is_some_and(|l| findings::weak_sig(&l.signature_algorithm)),
            leaf_key: leaf.and_then(|l| {
                l.public_key_size
                    .map(|s| (l.public_key_algorithm.as_str(), s))
            }),
        };
        let lower_alg;
        let facts = match facts.leaf_key {
            Some((alg, bits)) => {
                lower_alg = alg.to_ascii_lowercase();
                EndpointFacts {
                    leaf_key: Some((lower_alg.as_str(), bits)),
                    ..facts
                }
            }
            None => facts,
        };
        let heuristics = self.rules.heuristics(&facts);
        out.extra.segments = segments.clone();
        segments.push(if loc.internal { "internal" } else { "external" }.to_string());
        segments.extend(heuristics.iter().map(|hz| hz.kind.to_string()));
        out.extra.locality = Some(loc);
        out.extra.heuristics = heuristics;

        let mut cas = Vec::new();
        if let Some(r) = built.as_deref() {
            if r.anchor().is_some() {
                self.stats.anchored += 1;
            }
            out.extra.server = built.clone();

            // Policy findings.
            let policy = findings::evaluate(r, &presented, sni, instant, &self.cfg.policy);
            for f in policy {
                let ca = f.ca.as_ref().map(|c| (c.sha256, c.subject.clone()));
                let ident = (
                    f.code,
                    "",
                    h.server,
                    f.cert_sha256,
                    ca.as_ref().map(|c| c.0),
                    None::<IpAddr>,
                );
                if !self.admit(&ident, ts) {
                    self.stats.findings_suppressed += 1;
                    continue;
                }
                out.findings.push(Finding {
                    severity: f.severity,
                    code: f.code,
                    message: f.message,
                    ca: ca.map(|(sha, subject)| (sha, Some(subject))),
                    cert_sha256: Some(f.cert_sha256),
                    ..Finding::default()
                });
            }

            // Removal findings (user rules and the built-in distrust history).
            let b = built_chain.as_deref();
            let removal = b.map_or_else(Vec::new, |b| {
                self.removal_findings(b, instant, rules_outcome)
            });
            for f in removal {
                let client_side =
                    f.code == rules::CODE_STALE_TRUST || f.code == rules::CODE_FAILURE;
                if !self.admit_removal(&f, (h.server, client_side.then_some(h.client.0)), ts) {
                    continue;
                }
                out.findings.push(removal_finding(f));
            }
            cas = b.map(|b| b.deps.clone()).unwrap_or_default();
            if let Some(b) = built_chain.as_ref() {
                if self.last_chains.len() >= MAX_LAST_CHAINS {
                    self.last_chains.clear();
                    self.stats.last_chain_resets += 1;
                }
                let key = (server_ip, h.server.1, h.server_name.clone());
                self.last_chains.insert(key, b.clone());
            }
        } else if !h.chain_visible && !h.resumed {
            // A hidden chain (TLS 1.3 without keys): the endpoint's earlier chain, if any, stands
            // in, and every removal finding says it was inferred, one severity level lower.
            let key = (server_ip, h.server.1, h.server_name.clone());
            if let Some(b) = self.last_chains.get(&key).cloned() {
                for f in self.removal_findings(&b, instant, rules::Outcome::Unknown) {
                    if !self.admit_removal(&f, (h.server, "inferred"), ts) {
                        continue;
                    }
                    self.stats.findings_inferred += 1;
                    let message = format!(
                        "inferred from the chain this endpoint presented earlier (its handshake \
                         here is encrypted): {}",
                        f.message
                    );
                    let severity = f.severity.saturating_sub(1).max(1);
                    out.findings.push(Finding {
                        evidence: Some("inferred"),
                        severity,
                        message,
                        ..removal_finding(f)
                    });
                }
            }
        }

        // An mTLS client certificate through a removed CA is a residual use (or pending) too;
        // the server's acceptance is not read, so no stale_trust/failure on this side.
        let client_presented: Vec<Arc<CertInfo>> = h
            .client_chain
            .as_ref()
            .map(|c| c.iter().map(|r| r.info.clone()).collect())
            .unwrap_or_default();
        let mut client_auth_outcome = None;
        if !client_presented.is_empty() {
            let b = self.build(&client_presented, instant);
            out.extra.client = Some(b.result.clone());
            client_auth_outcome = h
                .client_cert_verdict
                .zip(b.deps.last().cloned().map(Box::new));
            let removal = self.removal_findings(&b, instant, rules::Outcome::Unknown);
            for f in removal {
                if !self.admit_removal(&f, (h.client.0, "client-cert"), ts) {
                    continue;
                }
                let message = format!("client certificate: {}", f.message);
                out.findings.push(Finding {
                    side: Some("client"),
                    message,
                    ..removal_finding(f)
                });
            }
        }
        self.stats.findings += out.findings.len() as u64;

        let client_auth_ca_names = h
            .cert_request_cas
            .as_ref()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|d| analyzer::cert::der_name_to_string(d))
                    .collect()
            })
            .unwrap_or_default();
        out.observation = Some(Observation {
            ts_ns: h.ts_ns,
            client_ip: h.client.0,
            server_ip,
            server_port: h.server.1,
            server_name: h.server_name.clone(),
            segments,
            chain_visible: h.chain_visible && h.server_chain.is_some(),
            evidence: match h.chain_source {
                Some(analyzer::ChainSource::Handshake) => Some("observed"),
                Some(analyzer::ChainSource::Keylog) => Some("keylog"),
                Some(analyzer::ChainSource::Probe) => Some("probe"),
                None => None,
            },
            resumed: h.resumed,
            outcome: inv_outcome,
            cas,
            leaf_sha256: built_chain.as_ref().and_then(|b| b.first),
            client_auth_ca_names,
            client_auth_outcome,
            algorithms: model::Algorithms {
                group: h.group,
                leaf_key: leaf.map(|l| l.public_key_algorithm.clone()),
                leaf_sig: leaf.map(|l| l.signature_algorithm.clone()),
                client_seen: h.ja4.is_some(),
                client_pq_group: h
                    .offered_groups
                    .iter()
                    .any(|g| analyzer::names::group_is_post_quantum(*g)),
                client_pq_sig: h
                    .offered_sig_schemes
                    .iter()
                    .any(|g| analyzer::names::sig_scheme_is_post_quantum(*g)),
            },
        });
        out
    }

    fn removal_findings(
        &self,
        b: &BuiltChain,
        instant: i64,
        outcome: rules::Outcome,
    ) -> Vec<RemovalFinding> {
        b.facts.evaluate(&self.rules, instant, outcome)
    }
}

fn removal_finding(f: RemovalFinding) -> Finding {
    Finding {
        severity: f.severity,
        code: f.code,
        message: f.message,
        rule: Some(f.rule_id),
        removed: Some(f.removed),
        ca: f.ca_sha256.map(|sha| (sha, f.ca_subject)),
        cert_sha256: f.cert_sha256,
        evidence: f.evidence,
        alert: f.alert,
        program: f.program.map(|p| p.as_str()),
        side: None,
    }
}
