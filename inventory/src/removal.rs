//! `trustmap removal status ID`: how far one CA removal has come (DESIGN.md §1 steps 2, 4 and 6).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rusqlite::{params, Connection};
use serde::Serialize;

use super::query::{
    ip_order, load_ca_endpoints, load_cas, load_clients, load_endpoints, signal_clients_of, t, Key,
    SignalClient,
};
use super::{Counts, Result};
use rules::time::rfc3339_s;

use rules::time::SECS_PER_DAY as DAY_S;

/// What the inventory needs to know about one removal rule (mapped from `rules::Removal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalInfo {
    pub id: String,
    pub name: String,
    /// CAs removed, by certificate SHA-256. CAs whose recorded `removals` name `id` are added, so
    /// selectors by subject or SPKI resolved at capture time count too.
    pub ca_sha256s: Vec<String>,
    /// Unix seconds.
    pub announced: Option<i64>,
    /// Unix seconds.
    pub removed: i64,
}

/// A removed CA as shown in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedCa {
    pub sha256: String,
    pub subject: String,
}

/// An endpoint that still has to migrate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepEndpoint {
    pub ip: String,
    pub port: u16,
    pub server_names: Vec<String>,
    pub last_seen: String,
    pub handshakes: u64,
}

/// Dependencies left in one segment (an endpoint in several segments appears in each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentDeps {
    /// Segment name, `"(none)"` for endpoints in no segment.
    pub segment: String,
    pub endpoints: Vec<DepEndpoint>,
    pub clients: Vec<String>,
}

/// Endpoints whose latest visible chain still goes through a removed CA, and their clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependencies {
    pub endpoints_left: usize,
    pub clients_left: usize,
    /// Endpoints that used a removed CA once and whose latest chain no longer does.
    pub endpoints_migrated: usize,
    /// No dependency left (DESIGN.md §1 step 4).
    pub complete: bool,
    pub by_segment: Vec<SegmentDeps>,
    /// Clients whose OCSP requests or CA certificate / CRL fetches named a removed CA: they
    /// validate certificates under it, whatever their TLS showed (TLS 1.3 included). Listed, not
    /// counted in `complete` (a request says nothing of which endpoint it was for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub side_signal_clients: Vec<SignalClient>,
}

/// Use of a removed CA per endpoint or client after `removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResidualUse {
    pub ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub handshakes: u64,
    pub accepted: u64,
    pub failures: u64,
}

/// Handshakes through a removed CA after `removed` (step 6). Day granularity: every capture day
/// that overlaps the time after `removed` counts, so the removal day itself counts whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Residual {
    pub since: String,
    pub granularity: &'static str,
    pub handshakes: u64,
    /// Completed: the client still trusts the removed CA (`stale_trust`).
    pub accepted: u64,
    /// Rejected by the client (`failure`): the removal broke these.
    pub failures: u64,
    pub unknown: u64,
    pub resumed: u64,
    pub endpoints: Vec<ResidualUse>,
    pub clients: Vec<ResidualUse>,
}

/// Distinct endpoints (and clients) using a removed CA on one capture day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BurndownDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub endpoints: usize,
    pub clients: usize,
    pub handshakes: u64,
}

/// One step of the transition plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStep {
    /// `announcement`, `T-90`, `T-60`, `T-30`, `T-14`, `removal`.
    pub step: String,
    pub at: String,
    /// `past` (at or before the status instant) or `upcoming`.
    pub status: &'static str,
    #[serde(skip)]
    pub at_s: i64,
}

/// Progress of one removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalStatus {
    pub id: String,
    pub name: String,
    pub as_of: String,
    /// `planned` (before announcement), `transition`, or `removed`.
    pub phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced: Option<String>,
    pub removed: String,
    /// Whole days from the status instant to `removed` (negative once removed).
    pub days_to_removal: i64,
    pub cas: Vec<RemovedCa>,
    pub dependencies: Dependencies,
    pub residual: Residual,
    pub burndown: Vec<BurndownDay>,
    pub plan: Vec<PlanStep>,
}

fn day_str(day: i64) -> String {
    let s = rfc3339_s(day.saturating_mul(DAY_S));
    s.get(..10).unwrap_or(&s).to_string()
}

/// The transition plan ([`rules::transition_plan`], the one copy of the rule), as status rows.
pub fn plan(announced: Option<i64>, removed: i64, instant: i64) -> Vec<PlanStep> {
    rules::transition_plan(announced, removed, instant)
        .into_iter()
        .map(|m| PlanStep {
            step: m.label.to_string(),
            at: rfc3339_s(m.at),
            status: if m.past { "past" } else { "upcoming" },
            at_s: m.at,
        })
        .collect()
}

fn componentwise_max(a: &mut Counts, b: &Counts) {
    a.accepted = a.accepted.max(b.accepted);
    a.rejected = a.rejected.max(b.rejected);
    a.unknown = a.unknown.max(b.unknown);
    a.resumed = a.resumed.max(b.resumed);
}

pub(super) fn removal_status(
    conn: &Connection,
    rule: &RemovalInfo,
    instant: i64,
) -> Result<RemovalStatus> {
    let all_cas = load_cas(conn)?;
    let mut set: BTreeSet<String> = rule
        .ca_sha256s
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for c in &all_cas {
        if c.removals.iter().any(|r| r == &rule.id) {
            set.insert(c.sha256.clone());
        }
    }
    let cas: Vec<RemovedCa> = set
        .iter()
        .map(|s| RemovedCa {
            sha256: s.clone(),
            subject: all_cas
                .iter()
                .find(|c| &c.sha256 == s)
                .map(|c| c.subject.clone())
                .unwrap_or_default(),
        })
        .collect();

    // Dependencies: endpoints whose latest chain still passes through a removed CA.
    let eps = load_endpoints(conn)?;
    let ca_eps = load_ca_endpoints(conn)?;
    let clients = load_clients(conn)?;
    let mut used: BTreeMap<Key, u64> = BTreeMap::new();
    for ((ca, key), f) in &ca_eps {
        if set.contains(ca) {
            let e = used.entry(key.clone()).or_default();
            *e = (*e).max(f.handshakes);
        }
    }
    let mut left: Vec<(&Key, u64)> = Vec::new();
    let mut migrated = 0usize;
    for (key, hs) in &used {
        let still = eps
            .get(key)
            .is_none_or(|e| e.chain.iter().any(|c| set.contains(c)));
        if still {
            left.push((key, *hs));
        } else {
            migrated += 1;
        }
    }
    let mut segs: BTreeMap<String, (Vec<DepEndpoint>, BTreeSet<String>)> = BTreeMap::new();
    let mut all_clients: HashSet<String> = HashSet::new();
    for (key, hs) in &left {
        let ep = eps.get(*key);
        let mut cl: BTreeSet<String> = BTreeSet::new();
        for ca in &set {
            if let Some(m) = clients.get(&(ca.clone(), (*key).clone())) {
                cl.extend(m.keys().cloned());
            }
        }
        all_clients.extend(cl.iter().cloned());
        let dep = DepEndpoint {
            ip: key.0.clone(),
            port: key.1,
            server_names: ep
                .map(|e| e.names.iter().cloned().collect())
                .unwrap_or_default(),
            last_seen: ep.map(|e| t(e.last)).unwrap_or_default(),
            handshakes: *hs,
        };
        let names: Vec<String> = match ep {
            Some(e) if !e.segments.is_empty() => e.segments.iter().cloned().collect(),
            _ => vec!["(none)".to_string()],
        };
        for s in names {
            let slot = segs.entry(s).or_default();
            slot.0.push(dep.clone());
            slot.1.extend(cl.iter().cloned());
        }
    }
    let by_segment = segs
        .into_iter()
        .map(|(segment, (mut endpoints, clients))| {
            endpoints.sort_by_key(|a| (ip_order(&a.ip), a.port));
            let mut clients: Vec<String> = clients.into_iter().collect();
            clients.sort_by_key(|c| ip_order(c));
            SegmentDeps {
                segment,
                endpoints,
                clients,
            }
        })
        .collect();

    // Per-day counts: summed over sources per CA, then the max over the removed CAs, so a handshake
    // through a removed intermediate *and* its removed root counts once.
    let mut per_ca: HashMap<(String, String, u16, String, i64), Counts> = HashMap::new();
    {
        let mut st = conn.prepare_cached(
            "SELECT ip, port, client, day, accepted, rejected, unknown, resumed FROM ca_day WHERE ca=?1",
        )?;
        for ca in &set {
            let mut rows = st.query(params![ca])?;
            while let Some(r) = rows.next()? {
                let k = (ca.clone(), r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let c = Counts {
                    accepted: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    rejected: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    unknown: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                    resumed: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                };
                per_ca.entry(k).or_default().sum(&c);
            }
        }
    }
    let mut daily: BTreeMap<(i64, String, u16, String), Counts> = BTreeMap::new();
    for ((_, ip, port, client, day), c) in per_ca {
        componentwise_max(daily.entry((day, ip, port, client)).or_default(), &c);
    }
    // Per day: distinct endpoints, distinct clients, handshakes.
    type Burn = (BTreeSet<(String, u16)>, BTreeSet<String>, u64);
    let mut burn: BTreeMap<i64, Burn> = BTreeMap::new();
    let mut residual = Residual {
        since: rfc3339_s(rule.removed),
        granularity: "day",
        handshakes: 0,
        accepted: 0,
        failures: 0,
        unknown: 0,
        resumed: 0,
        endpoints: Vec::new(),
        clients: Vec::new(),
    };
    let mut r_ep: BTreeMap<(String, u16), Counts> = BTreeMap::new();
    let mut r_cl: BTreeMap<String, Counts> = BTreeMap::new();
    for ((day, ip, port, client), c) in &daily {
        let b = burn.entry(*day).or_default();
        b.0.insert((ip.clone(), *port));
        b.1.insert(client.clone());
        b.2 += c.total();
        if day.saturating_add(1).saturating_mul(DAY_S) > rule.removed {
            residual.handshakes += c.total();
            residual.accepted += c.accepted;
            residual.failures += c.rejected;
            residual.unknown += c.unknown;
            residual.resumed += c.resumed;
            r_ep.entry((ip.clone(), *port)).or_default().sum(c);
            r_cl.entry(client.clone()).or_default().sum(c);
        }
    }
    residual.endpoints = r_ep
        .into_iter()
        .map(|((ip, port), c)| ResidualUse {
            ip,
            port: Some(port),
            handshakes: c.total(),
            accepted: c.accepted,
            failures: c.rejected,
        })
        .collect();
    residual
        .endpoints
        .sort_by_key(|a| (ip_order(&a.ip), a.port));
    residual.clients = r_cl
        .into_iter()
        .map(|(ip, c)| ResidualUse {
            ip,
            port: None,
            handshakes: c.total(),
            accepted: c.accepted,
            failures: c.rejected,
        })
        .collect();
    residual.clients.sort_by_key(|a| ip_order(&a.ip));
    let burndown = burn
        .into_iter()
        .map(|(day, (e, c, h))| BurndownDay {
            day: day_str(day),
            endpoints: e.len(),
            clients: c.len(),
            handshakes: h,
        })
        .collect();

    let phase = if instant >= rule.removed {
        "removed"
    } else if rule.announced.is_none_or(|a| instant >= a) {
        "transition"
    } else {
        "planned"
    };
    Ok(RemovalStatus {
        id: rule.id.clone(),
        name: rule.name.clone(),
        as_of: rfc3339_s(instant),
        phase,
        announced: rule.announced.map(rfc3339_s),
        removed: rfc3339_s(rule.removed),
        days_to_removal: (rule.removed.saturating_sub(instant)).div_euclid(DAY_S),
        cas,
        dependencies: Dependencies {
            endpoints_left: left.len(),
            clients_left: all_clients.len(),
            endpoints_migrated: migrated,
            complete: left.is_empty(),
            by_segment,
            side_signal_clients: signal_clients_of(conn, &set)?,
        },
        residual,
        burndown,
        plan: plan(rule.announced, rule.removed, instant),
    })
}
