//! Removal evaluation: one handshake summary in, `ca_removal.*` findings out (DESIGN.md §4).
//!
//! Pure functions over simple facts, so the analyzer's X.509 types never leak into `rules` and
//! the verdicts can be tested without packets.
//!
//! Decisions (documented here because the contract leaves them open):
//! * A chain is *affected* by an entry when any certificate of the chain or any anchor reached
//!   matches one of the entry's `cas`, and none matches its `exempt` list.
//! * Grandfathering looks at the leaf (`chain[0]`). With several cut-offs on one entry the leaf
//!   is grandfathered only if every cut-off grandfathers it (Chrome: all constraints of a set
//!   must hold). A leaf whose notBefore is unknown is not grandfathered.
//! * `sct_after` and a leaf with **no** embedded SCT: not grandfathered. Chrome's SCTNotAfter
//!   requires at least one SCT not after the cut-off, so a leaf without one is distrusted; and a
//!   publicly-trusted leaf without SCTs would not pass Chrome's CT policy anyway. The message
//!   says "no embedded SCT" so an operator can check for SCTs delivered by TLS extension/OCSP.
//! * After `removed`, an affected, non-grandfathered chain gives `residual_use`, plus
//!   `stale_trust` when the handshake was accepted, or `failure` when the client rejected it
//!   (fatal alert 42/43/44/45/46/48/49, evidence `alert`; close without alert, evidence
//!   `close`). Other alerts (e.g. 40, 70) are not read as a certificate verdict.
//! * Between `announced` and `removed`: `pending`, whatever the grandfathering (a grandfathered
//!   leaf still has to move to another CA at its next renewal). No `announced`, no window.
//! * One rule id may have several entries (programs, stages). Per id, residual findings win over
//!   `pending`, and the entry with the earliest `removed` date is reported.

use crate::removal::{normalize_dn, CaSelector, Program, Removal};
use crate::time::format_rfc3339;
use serde::Serialize;

use crate::digest::Sha256;
use std::collections::HashMap;

/// Finding code: use after the removal instant.
pub const CODE_RESIDUAL_USE: &str = "ca_removal.residual_use";
/// Finding code: the residual handshake completed; the client still trusts the removed CA.
pub const CODE_STALE_TRUST: &str = "ca_removal.stale_trust";
/// Finding code: the client rejected the chain; the removal broke this connection.
pub const CODE_FAILURE: &str = "ca_removal.failure";
/// Finding code: a dependency inside the transition window.
pub const CODE_PENDING: &str = "ca_removal.pending";

/// ECS `event.severity` of each code (higher is worse).
pub const SEVERITY_PENDING: u8 = 2;
/// See [`SEVERITY_PENDING`].
pub const SEVERITY_RESIDUAL_USE: u8 = 3;
/// A client trusting a removed CA is a security exposure.
pub const SEVERITY_STALE_TRUST: u8 = 4;
/// A broken connection is an outage.
pub const SEVERITY_FAILURE: u8 = 4;

/// Fatal alerts that a client sends when it rejects the server's certificate chain.
pub const CERT_REJECTION_ALERTS: [u8; 7] = [42, 43, 44, 45, 46, 48, 49];

/// Simple facts about one certificate of a chain.
#[derive(Debug, Clone, Copy)]
pub struct CertFacts<'a> {
    /// SHA-256 of the DER.
    pub sha256: &'a Sha256,
    /// SHA-256 of the SPKI (`None` if unknown: the certificate did not parse).
    pub spki_sha256: Option<&'a Sha256>,
    /// Subject DN as trustmap prints it.
    pub subject: &'a str,
    /// notBefore, Unix seconds.
    pub not_before: Option<i64>,
    /// Earliest embedded SCT timestamp, Unix seconds rounded up (see [`earliest_sct_secs`]).
    pub earliest_sct: Option<i64>,
    /// basicConstraints CA.
    pub is_ca: bool,
}

/// An anchor the chain reached (the root may not have been sent).
#[derive(Debug, Clone, Copy)]
pub struct AnchorFacts<'a> {
    /// SHA-256 of the anchor certificate.
    pub sha256: &'a Sha256,
    /// SHA-256 of its SPKI (`None` if unknown).
    pub spki_sha256: Option<&'a Sha256>,
    /// Subject DN.
    pub subject: &'a str,
}

/// What the client did with the chain (TLS <= 1.2, where it is visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Key exchange/CCS/Finished with no fatal alert, or application data both ways.
    Accepted,
    /// The client sent this fatal alert after the server's Certificate.
    RejectedAlert(u8),
    /// The client closed (FIN/RST) right after the Certificate, with no alert.
    RejectedClose,
    /// Not known (flow cut, capture ended, ...).
    Unknown,
}

/// One handshake, reduced to what removal rules need.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeFacts<'a> {
    /// Instant to evaluate at: the capture time, or `--as-of`. Unix seconds.
    pub at: i64,
    /// Server chain in wire order; `chain[0]` is the leaf.
    pub chain: &'a [CertFacts<'a>],
    /// Anchors reached by chain building.
    pub anchors: &'a [AnchorFacts<'a>],
    /// Observed outcome.
    pub outcome: Outcome,
}

/// A `ca_removal.*` finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalFinding {
    /// One of the `CODE_*` constants.
    pub code: &'static str,
    /// Rule id (event id for the built-in history).
    pub rule_id: String,
    /// SHA-256 of the removed CA certificate as seen (chain certificate or anchor).
    #[serde(serialize_with = "crate::digest::ser::hex_opt")]
    pub ca_sha256: Option<Sha256>,
    /// Its subject.
    pub ca_subject: Option<String>,
    /// SHA-256 of the leaf.
    #[serde(serialize_with = "crate::digest::ser::hex_opt")]
    pub cert_sha256: Option<Sha256>,
    /// `alert` or `close` for failures, `accepted` for stale trust.
    pub evidence: Option<&'static str>,
    /// The alert code behind a failure.
    pub alert: Option<u8>,
    /// Human explanation with the dates and cut-offs involved.
    pub message: String,
    /// ECS severity.
    pub severity: u8,
    /// Root program of the built-in entry that decided (None for user rules).
    pub program: Option<Program>,
    /// The deciding entry's removal instant, Unix seconds.
    pub removed: i64,
}

/// Index from CA keys to removal entries, so a handshake costs a few hash lookups.
#[derive(Debug, Default, Clone)]
pub(crate) struct CaIndex {
    by_sha: HashMap<Sha256, Vec<usize>>,
    by_spki: HashMap<Sha256, Vec<usize>>,
    /// Keyed by [`normalize_dn`]; empty unless a rule selects by subject.
    by_subject: HashMap<String, Vec<usize>>,
}

fn push_unique<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<usize>>, k: K, i: usize) {
    let v = map.entry(k).or_default();
    if v.last() != Some(&i) {
        v.push(i);
    }
}

fn probe(map: &HashMap<Sha256, Vec<usize>>, key: Option<&Sha256>, out: &mut Vec<usize>) {
    if let Some(v) = key.and_then(|k| map.get(k)) {
        out.extend_from_slice(v);
    }
}

impl CaIndex {
    pub(crate) fn build(removals: &[Removal]) -> Self {
        let mut ix = CaIndex::default();
        for (i, r) in removals.iter().enumerate() {
            for sel in &r.cas {
                if let Some(h) = sel.sha256 {
                    push_unique(&mut ix.by_sha, h, i);
                }
                if let Some(h) = sel.spki_sha256 {
                    push_unique(&mut ix.by_spki, h, i);
                }
                if let Some(s) = &sel.subject {
                    push_unique(&mut ix.by_subject, normalize_dn(s), i);
                }
            }
        }
        ix
    }

    pub(crate) fn lookup(
        &self,
        sha: &Sha256,
        spki: Option<&Sha256>,
        subject: &str,
        out: &mut Vec<usize>,
    ) {
        probe(&self.by_sha, Some(sha), out);
        probe(&self.by_spki, spki, out);
        if !self.by_subject.is_empty() && !subject.is_empty() {
            if let Some(v) = self.by_subject.get(&normalize_dn(subject)) {
                out.extend_from_slice(v);
            }
        }
    }
}

/// Earliest embedded SCT in Unix seconds from the analyzer's millisecond timestamps, rounded
/// **up**, so `earliest_sct <= cut-off` holds exactly when Chrome's millisecond comparison
/// `sct_ms <= cut_off * 1000` does.
pub fn earliest_sct_secs(timestamps_ms: &[u64]) -> Option<i64> {
    let min = *timestamps_ms.iter().min()?;
    i64::try_from(min.div_ceil(1000)).ok()
}

fn sel_matches(sel: &CaSelector, sha: &Sha256, spki: Option<&Sha256>, subject: &str) -> bool {
    sel.sha256.as_ref() == Some(sha)
        || sel.spki_sha256.is_some() && sel.spki_sha256.as_ref() == spki
        || sel
            .subject
            .as_deref()
            .is_some_and(|s| !subject.is_empty() && normalize_dn(s) == normalize_dn(subject))
}

/// The first chain certificate or anchor matching any selector: (sha256, subject).
fn first_match<'a>(sels: &[CaSelector], hs: &HandshakeFacts<'a>) -> Option<(&'a Sha256, &'a str)> {
    for c in hs.chain {
        if sels
            .iter()
            .any(|s| sel_matches(s, c.sha256, c.spki_sha256, c.subject))
        {
            return Some((c.sha256, c.subject));
        }
    }
    for a in hs.anchors {
        if sels
            .iter()
            .any(|s| sel_matches(s, a.sha256, a.spki_sha256, a.subject))
        {
            return Some((a.sha256, a.subject));
        }
    }
    None
}

/// Why the leaf is (not) grandfathered: Ok(()) = grandfathered, Err(reason) = affected.
fn grandfathering(r: &Removal, leaf: &CertFacts<'_>) -> Result<(), String> {
    if !has_cutoff(r) {
        return Err("no grandfathering: every chain through the CA is affected".into());
    }
    let nb = leaf.not_before;
    if let Some(cut) = r.issued_after {
        match nb {
            Some(t) if t <= cut => {}
            Some(t) => {
                return Err(format!(
                    "leaf notBefore {} is after the cut-off {}",
                    format_rfc3339(t),
                    format_rfc3339(cut)
                ))
            }
            None => return Err("leaf notBefore unknown".into()),
        }
    }
    if let Some(cut) = r.issued_before {
        match nb {
            Some(t) if t >= cut => {}
            Some(t) => {
                return Err(format!(
                    "leaf notBefore {} is before the cut-off {}",
                    format_rfc3339(t),
                    format_rfc3339(cut)
                ))
            }
            None => return Err("leaf notBefore unknown".into()),
        }
    }
    if let Some(cut) = r.sct_after {
        match leaf.earliest_sct {
            Some(t) if t <= cut => {}
            Some(t) => {
                return Err(format!(
                    "earliest embedded SCT {} is after the cut-off {}",
                    format_rfc3339(t),
                    format_rfc3339(cut)
                ))
            }
            None => {
                return Err(format!(
                    "leaf has no embedded SCT; an SCT not after {} is required",
                    format_rfc3339(cut)
                ))
            }
        }
    }
    Ok(())
}

fn has_cutoff(r: &Removal) -> bool {
    r.issued_after.is_some() || r.issued_before.is_some() || r.sct_after.is_some()
}

enum State {
    Residual(String),
    Pending,
}

struct Hit<'a> {
    entry: &'a Removal,
    state: State,
    ca: (&'a Sha256, &'a str),
}

/// Evaluate `removals` (already filtered by policy) against one handshake.
pub(crate) fn evaluate(
    removals: &[Removal],
    index: &CaIndex,
    hs: &HandshakeFacts<'_>,
) -> Vec<RemovalFinding> {
    let Some(leaf) = hs.chain.first() else {
        return Vec::new();
    };
    let mut cand = Vec::new();
    for c in hs.chain {
        index.lookup(c.sha256, c.spki_sha256, c.subject, &mut cand);
    }
    for a in hs.anchors {
        index.lookup(a.sha256, a.spki_sha256, a.subject, &mut cand);
    }
    if cand.is_empty() {
        return Vec::new();
    }
    cand.sort_unstable();
    cand.dedup();
    // best hit per rule id, in first-seen rule order
    let mut order: Vec<&str> = Vec::new();
    let mut best: HashMap<&str, Hit<'_>> = HashMap::new();
    for i in cand {
        let Some(r) = removals.get(i) else { continue };
        let Some(ca) = first_match(&r.cas, hs) else {
            continue;
        };
        if first_match(&r.exempt, hs).is_some() {
            continue;
        }
        let state = if hs.at >= r.removed {
            match grandfathering(r, leaf) {
                Ok(()) => continue,
                Err(why) => State::Residual(why),
            }
        } else if r.announced.is_some_and(|a| hs.at >= a) {
            State::Pending
        } else {
            continue;
        };
        let rank = |h: &Hit<'_>| (matches!(h.state, State::Pending), h.entry.removed);
        let hit = Hit {
            entry: r,
            state,
            ca,
        };
        match best.get(r.id.as_str()) {
            Some(old) if rank(old) <= rank(&hit) => {}
            Some(_) => {
                best.insert(r.id.as_str(), hit);
            }
            None => {
                order.push(r.id.as_str());
                best.insert(r.id.as_str(), hit);
            }
        }
    }
    let mut out = Vec::new();
    for id in order {
        let Some(h) = best.remove(id) else { continue };
        let r = h.entry;
        let prog = r.program.map(|p| format!(" [{p}]")).unwrap_or_default();
        let ca_hex;
        let ca_label = if h.ca.1.is_empty() {
            ca_hex = crate::digest::to_hex(h.ca.0);
            ca_hex.as_str()
        } else {
            h.ca.1
        };
        let base =
            |code: &'static str, severity: u8, evidence, alert, message: String| RemovalFinding {
                code,
                rule_id: r.id.clone(),
                ca_sha256: Some(*h.ca.0),
                ca_subject: Some(h.ca.1.to_string()).filter(|s| !s.is_empty()),
                cert_sha256: Some(*leaf.sha256),
                evidence,
                alert,
                message,
                severity,
                program: r.program,
                removed: r.removed,
            };
        match &h.state {
            State::Pending => {
                let mut msg = format!(
                    "chain depends on {ca_label}, which rule {}{prog} removes at {}",
                    r.id,
                    format_rfc3339(r.removed)
                );
                if has_cutoff(r) {
                    msg.push_str(
                        "; the current leaf may be grandfathered, its renewal must use another CA",
                    );
                }
                out.push(base(CODE_PENDING, SEVERITY_PENDING, None, None, msg));
            }
            State::Residual(why) => {
                let msg = format!(
                    "chain passes through or anchors at {ca_label}, removed by rule {}{prog} at {}: {why}",
                    r.id,
                    format_rfc3339(r.removed)
                );
                out.push(base(
                    CODE_RESIDUAL_USE,
                    SEVERITY_RESIDUAL_USE,
                    None,
                    None,
                    msg.clone(),
                ));
                match hs.outcome {
                    Outcome::Accepted => out.push(base(
                        CODE_STALE_TRUST,
                        SEVERITY_STALE_TRUST,
                        Some("accepted"),
                        None,
                        format!("the client completed the handshake and still trusts a removed CA; {msg}"),
                    )),
                    Outcome::RejectedAlert(code) if CERT_REJECTION_ALERTS.contains(&code) => out.push(base(
                        CODE_FAILURE,
                        SEVERITY_FAILURE,
                        Some("alert"),
                        Some(code),
                        format!("the client rejected the chain with fatal alert {code}; {msg}"),
                    )),
                    Outcome::RejectedClose => out.push(base(
                        CODE_FAILURE,
                        SEVERITY_FAILURE,
                        Some("close"),
                        None,
                        format!("the client closed the connection right after the chain without an alert; {msg}"),
                    )),
                    Outcome::RejectedAlert(_) | Outcome::Unknown => {}
                }
            }
        }
    }
    out
}

/// Which reminder of a transition plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Milestone {
    /// `announcement`, `T-90`, `T-60`, `T-30`, `T-14` or `removal`.
    pub label: &'static str,
    /// Unix seconds.
    pub at: i64,
    /// Whether `at` is at or before the reference instant.
    pub past: bool,
}

/// Reminder offsets before removal, in days (DESIGN.md §1: T-90, T-60, T-30, T-14).
pub const REMINDER_DAYS: [(&str, i64); 4] =
    [("T-90", 90), ("T-60", 60), ("T-30", 30), ("T-14", 14)];

/// The transition plan of a removal: the announcement (if any), the T-90/60/30/14 reminders and
/// the removal itself, each marked past or upcoming relative to `now`. Reminders that would fall
/// before the announcement are left out: nobody can be reminded of an unannounced change. The
/// steps are in time order (an announcement after the removal date comes after it).
pub fn transition_plan(announced: Option<i64>, removed: i64, now: i64) -> Vec<Milestone> {
    let mut v = Vec::with_capacity(6);
    if let Some(a) = announced {
        v.push(Milestone {
            label: "announcement",
            at: a,
            past: a <= now,
        });
    }
    for (label, days) in REMINDER_DAYS {
        let at = removed.saturating_sub(days * crate::time::SECS_PER_DAY);
        if announced.is_some_and(|a| at < a) {
            continue;
        }
        v.push(Milestone {
            label,
            at,
            past: at <= now,
        });
    }
    v.push(Milestone {
        label: "removal",
        at: removed,
        past: removed <= now,
    });
    v.sort_by_key(|m| m.at);
    v
}

impl Removal {
    /// [`transition_plan`] of this entry.
    pub fn transition_plan(&self, now: i64) -> Vec<Milestone> {
        transition_plan(self.announced, self.removed, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sct_millis_round_up() {
        assert_eq!(earliest_sct_secs(&[]), None);
        assert_eq!(
            earliest_sct_secs(&[1_731_369_599_000, 1_731_369_700_000]),
            Some(1_731_369_599)
        );
        assert_eq!(earliest_sct_secs(&[1_731_369_599_001]), Some(1_731_369_600));
        assert_eq!(earliest_sct_secs(&[u64::MAX]), Some(18_446_744_073_709_552));
    }
}
