//! Rules: `[[removal]]` events, the built-in distrust history, segments and policy dates.
//!
//! `rules` is pure data plus evaluation over simple inputs: it does not depend on `analyzer`
//! (`enrich::RemovalFacts` turns `analyzer` types into [`CertFacts`] / [`AnchorFacts`]) and does
//! no I/O except reading rule files in [`RuleSet::load`].
//!
//! * [`time`]: RFC 3339 <-> Unix seconds and the one civil-date conversion, used for rule dates
//!   and event timestamps.
//! * [`digest`]: SHA-256 values as `[u8; 32]`, hex only at input and output.
//! * [`removal`]: the TOML rule model and reader (precise errors: file, rule id, field).
//! * [`distrust`]: the embedded distrust history (10 events, 125 certificates) and
//!   `--distrust-policy`.
//! * [`eval`]: `ca_removal.*` findings for one handshake; the transition plan.
//! * [`segment`]: CIDR/SNI segments, internal vs external, heuristic labels.
//! * [`policy`]: CA/B Forum lifetime schedule and Chrome root term limit.
#![forbid(unsafe_code)]

pub mod digest;
pub mod distrust;
pub mod error;
pub mod eval;
pub mod policy;
pub mod removal;
pub mod segment;
pub mod time;

pub use digest::Sha256;
pub use distrust::{
    distrust_certs, distrust_event_ids, distrust_events, DistrustEvent, DistrustPolicy,
};
pub use error::RulesError;
pub use eval::{
    earliest_sct_secs, transition_plan, AnchorFacts, CertFacts, HandshakeFacts, Milestone, Outcome,
    RemovalFinding, CODE_FAILURE, CODE_PENDING, CODE_RESIDUAL_USE, CODE_STALE_TRUST,
};
pub use policy::{
    chrome_root_term_end, chrome_root_term_limit_years, lifetime_exceeds_policy, max_lifetime_days,
};
pub use removal::{parse_rules_str, CaSelector, Program, Removal, RuleFile};
pub use segment::{AnchorKind, EndpointFacts, Heuristic, Locality, Segment};

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Most `*.toml` files read from one `--rules` directory.
pub const MAX_RULE_FILES_PER_DIR: usize = 1_000;

/// Every rule in force for one run: the built-in history filtered by the distrust policy, plus
/// user rules. Immutable after loading; evaluation takes `&self` and is thread-safe.
#[derive(Debug, Clone)]
pub struct RuleSet {
    policy: DistrustPolicy,
    removals: Vec<Removal>,
    segments: Vec<Segment>,
    index: eval::CaIndex,
}

impl RuleSet {
    /// The built-in distrust history under `policy`, no user rules.
    pub fn builtin(policy: DistrustPolicy) -> Result<Self, RulesError> {
        let mut removals = Vec::new();
        for ev in distrust_events()? {
            removals.extend(
                ev.removals
                    .into_iter()
                    .filter(|r| policy.applies(r.program)),
            );
        }
        let index = eval::CaIndex::build(&removals);
        Ok(RuleSet {
            policy,
            removals,
            segments: Vec::new(),
            index,
        })
    }

    /// Built-in history plus the rules in each path (a file, or a directory whose `*.toml` files
    /// are read in name order, not recursively). This is `--rules PATH`.
    pub fn load<P: AsRef<Path>>(policy: DistrustPolicy, paths: &[P]) -> Result<Self, RulesError> {
        let mut set = Self::builtin(policy)?;
        for p in paths {
            set.add_path(p.as_ref())?;
        }
        Ok(set)
    }

    /// Add a rules file or directory.
    pub fn add_path(&mut self, path: &Path) -> Result<(), RulesError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| RulesError::file(&name, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            let rd = std::fs::read_dir(path)
                .map_err(|e| RulesError::file(&name, format!("cannot list: {e}")))?;
            for ent in rd {
                let ent = ent.map_err(|e| RulesError::file(&name, format!("cannot list: {e}")))?;
                let p = ent.path();
                if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                    files.push(p);
                    if files.len() > MAX_RULE_FILES_PER_DIR {
                        return Err(RulesError::file(
                            &name,
                            format!("more than {MAX_RULE_FILES_PER_DIR} rule files"),
                        ));
                    }
                }
            }
            files.sort();
            for f in files {
                self.add_file(&f)?;
            }
            Ok(())
        } else {
            self.add_file(path)
        }
    }

    fn add_file(&mut self, path: &Path) -> Result<(), RulesError> {
        let name = path.display().to_string();
        let len = std::fs::metadata(path)
            .map_err(|e| RulesError::file(&name, format!("cannot read: {e}")))?
            .len();
        if len > removal::MAX_RULES_FILE_BYTES {
            return Err(RulesError::file(
                &name,
                format!("larger than {} bytes", removal::MAX_RULES_FILE_BYTES),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| RulesError::file(&name, format!("cannot read: {e}")))?;
        self.add_str(&text, &name)
    }

    /// Add rules from TOML text; `origin` names it in errors. User rule ids must be unique and
    /// must not reuse a built-in event id.
    pub fn add_str(&mut self, text: &str, origin: &str) -> Result<(), RulesError> {
        let f = parse_rules_str(text, origin)?;
        if f.event.is_some() || !f.certificates.is_empty() {
            return Err(RulesError::file(
                origin,
                "[event] and [[certificate]] are reserved for the built-in history",
            ));
        }
        let builtin = distrust_event_ids();
        let mut seen: HashMap<&str, &str> = self
            .removals
            .iter()
            .map(|r| (r.id.as_str(), r.origin.as_str()))
            .collect();
        for r in &f.removals {
            let clash = if builtin.contains(&r.id.as_str()) {
                Some(format!("builtin:{}", r.id))
            } else {
                seen.get(r.id.as_str()).map(|o| o.to_string())
            };
            if let Some(other) = clash {
                return Err(RulesError {
                    file: origin.to_string(),
                    rule: Some(format!("[[removal]] {:?}", r.id)),
                    field: Some("id".into()),
                    message: format!("duplicate rule id (also defined in {other})"),
                });
            }
            seen.insert(&r.id, origin);
        }
        self.removals.extend(
            f.removals
                .into_iter()
                .filter(|r| self.policy.applies(r.program)),
        );
        self.segments.extend(f.segments);
        self.index = eval::CaIndex::build(&self.removals);
        Ok(())
    }

    /// The distrust policy in force.
    pub fn policy(&self) -> DistrustPolicy {
        self.policy
    }

    /// Every removal entry in force (built-in entries repeat their event id).
    pub fn removals(&self) -> &[Removal] {
        &self.removals
    }

    /// The entries of one rule id.
    pub fn removal(&self, id: &str) -> Vec<&Removal> {
        self.removals.iter().filter(|r| r.id == id).collect()
    }

    /// Distinct rule ids, in load order.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in &self.removals {
            if !v.contains(&r.id.as_str()) {
                v.push(&r.id);
            }
        }
        v
    }

    /// Ids of the rules in force that name this CA (inventory `ca.removals`), exemptions not
    /// considered, in load order. An empty subject is ignored.
    pub fn removals_for_ca(
        &self,
        sha256: &Sha256,
        spki_sha256: Option<&Sha256>,
        subject: &str,
    ) -> Vec<&str> {
        let mut idx = Vec::new();
        self.index.lookup(sha256, spki_sha256, subject, &mut idx);
        idx.sort_unstable();
        idx.dedup();
        let mut ids: Vec<&str> = Vec::new();
        for i in idx {
            if let Some(r) = self.removals.get(i) {
                if !ids.contains(&r.id.as_str()) {
                    ids.push(&r.id);
                }
            }
        }
        ids
    }

    /// Segment rules.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The `ca_removal.*` findings for one handshake (see [`eval`] for the exact semantics).
    pub fn evaluate(&self, hs: &HandshakeFacts<'_>) -> Vec<RemovalFinding> {
        eval::evaluate(&self.removals, &self.index, hs)
    }

    /// Transition plan of a rule id: earliest announcement and earliest removal over its entries.
    pub fn transition_plan(&self, id: &str, now: i64) -> Option<Vec<Milestone>> {
        let entries = self.removal(id);
        let removed = entries.iter().map(|r| r.removed).min()?;
        let announced = entries.iter().filter_map(|r| r.announced).min();
        Some(transition_plan(announced, removed, now))
    }

    /// Segment names of an endpoint.
    pub fn segments_for(&self, ip: IpAddr, server_name: Option<&str>) -> Vec<&str> {
        segment::segments_for(&self.segments, ip, server_name)
    }

    /// Internal or external, with its basis.
    pub fn locality(&self, ip: IpAddr, server_name: Option<&str>) -> Locality {
        segment::locality(&self.segments, ip, server_name)
    }

    /// Heuristic labels (each `kind` starts with `heuristic.`).
    pub fn heuristics(&self, facts: &EndpointFacts<'_>) -> Vec<Heuristic> {
        segment::heuristics(&self.segments, facts)
    }
}
