//! Reading the inventory back: the DESIGN.md §6 shape, summed over sources.
//!
//! Rows are folded in Rust rather than with SQL aggregates because "last outcome" and "last
//! visible" must come from the row with the latest time, next to min/max/sum of other columns.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use rusqlite::Connection;
use serde::Serialize;

use super::{
    json_set, normalize_dn, Counts, Result, MAX_NAMES_PER_ENDPOINT, MAX_SEGMENTS_PER_ENDPOINT,
};
use rules::time::rfc3339_ns;

/// `"ca"` of a §6 element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaInfo {
    pub sha256: String,
    pub subject: String,
    /// `"root"` or `"intermediate"`.
    pub role: String,
    pub stores: Vec<String>,
    pub removals: Vec<String>,
}

/// `{"ip","port","evidence"}`: an mTLS server and how its trust in a client CA is known:
/// `"ca_names"` (its CertificateRequest names the CA), `"accepted"` (it completed handshakes with
/// client chains built to the CA), `"rejected"` (it refused them with a fatal alert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointRef {
    pub ip: String,
    pub port: u16,
    pub evidence: &'static str,
}

/// One client of an endpoint under one CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientEntry {
    pub ip: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Outcome of the client's latest handshake: accepted | rejected | unknown.
    pub outcome: String,
    /// Per-outcome counts (CSV and table; not part of the §6 JSON).
    #[serde(skip)]
    pub counts: Counts,
}

/// One endpoint depending on one CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointEntry {
    pub ip: String,
    pub port: u16,
    pub server_names: Vec<String>,
    pub segments: Vec<String>,
    /// How the endpoint's chains were known: `observed` (in the clear), `keylog`, `inferred`
    /// (chainless handshakes attributed to an earlier chain), `probe`.
    pub evidence: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub handshakes: u64,
    /// Whether the endpoint's latest handshake showed its chain (false for TLS 1.3 or resumption).
    pub chain_visible: bool,
    /// When `chain_visible` is false: the last time a chain was seen (the CA link comes from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_visible_chain_seen: Option<String>,
    /// Resumed handshakes counted against the last visible chain (only when non-zero).
    #[serde(skip_serializing_if = "is_zero")]
    pub resumed: u64,
    pub clients: Vec<ClientEntry>,
    #[serde(skip)]
    pub first_ns: i64,
    #[serde(skip)]
    pub last_ns: i64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A client that named a CA through side signals (OCSP requests, CA certificate or CRL
/// fetches): it validates certificates under that CA, whatever its TLS showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalClient {
    pub ip: String,
    /// `"ocsp"` or `"aia"`.
    pub evidence: String,
    pub requests: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// One element of the §6 array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaEntry {
    pub ca: CaInfo,
    pub endpoints: Vec<EndpointEntry>,
    /// The mTLS servers whose trust in this CA is known, one element per server and evidence
    /// (DESIGN.md §6): `ca_names` and `accepted` say it trusts the CA, `rejected` that it
    /// refused a client chain built to it.
    pub client_auth_trusted_by: Vec<EndpointRef>,
    /// Clients whose side signals name this CA (only when there are some).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub side_signal_clients: Vec<SignalClient>,
}

/// The columns of a [`SignalClient`], summed over what the query groups.
const SIGNAL_COLUMNS: &str =
    "client, evidence, sum(requests), min(first_seen), max(last_seen) FROM ca_signal";

/// A [`SignalClient`] from [`SIGNAL_COLUMNS`] starting at column `at`.
fn signal_client(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SignalClient> {
    Ok(SignalClient {
        ip: r.get(at)?,
        evidence: r.get(at + 1)?,
        requests: u64::try_from(r.get::<_, i64>(at + 2)?).unwrap_or(0),
        first_seen: t(r.get(at + 3)?),
        last_seen: t(r.get(at + 4)?),
    })
}

fn sort_signal_clients(v: &mut [SignalClient]) {
    v.sort_by(|a, b| (ip_order(&a.ip), &a.evidence).cmp(&(ip_order(&b.ip), &b.evidence)));
}

/// `ca_signal` rows summed over sources, by CA.
fn load_signal_clients(conn: &Connection) -> Result<HashMap<String, Vec<SignalClient>>> {
    let mut st = conn.prepare(&format!(
        "SELECT ca, {SIGNAL_COLUMNS} GROUP BY ca, client, evidence"
    ))?;
    let mut rows = st.query([])?;
    let mut out: HashMap<String, Vec<SignalClient>> = HashMap::new();
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?).or_default().push(signal_client(r, 1)?);
    }
    for v in out.values_mut() {
        sort_signal_clients(v);
    }
    Ok(out)
}

/// `ca_signal` rows summed over sources and over the CAs in `cas`, one per (client, evidence).
pub(super) fn signal_clients_of(
    conn: &Connection,
    cas: &BTreeSet<String>,
) -> Result<Vec<SignalClient>> {
    let marks = vec!["?"; cas.len()].join(",");
    let mut st = conn.prepare(&format!(
        "SELECT {SIGNAL_COLUMNS} WHERE ca IN ({marks}) GROUP BY client, evidence"
    ))?;
    let mut rows = st.query(rusqlite::params_from_iter(cas))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(signal_client(r, 0)?);
    }
    sort_signal_clients(&mut out);
    Ok(out)
}

pub(super) type Key = (String, u16);

/// One endpoint summed over sources.
#[derive(Debug, Default, Clone)]
pub(super) struct EpFold {
    pub first: i64,
    pub last: i64,
    pub handshakes: u64,
    pub last_visible: bool,
    pub chain_seen: Option<i64>,
    pub chain: Vec<String>,
    pub names: BTreeSet<String>,
    pub segments: BTreeSet<String>,
    /// [`super::Evidence`] bits, over every source.
    pub evidence: u8,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CaEpFold {
    pub first: i64,
    pub last: i64,
    pub handshakes: u64,
    pub resumed: u64,
}

#[derive(Debug, Default, Clone)]
pub(super) struct ClFold {
    pub first: i64,
    pub last: i64,
    pub outcome: String,
    pub counts: Counts,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn load_endpoints(conn: &Connection) -> Result<HashMap<Key, EpFold>> {
    let mut out: HashMap<Key, EpFold> = HashMap::new();
    let mut st = conn.prepare(
        "SELECT ip, port, first_seen, last_seen, handshakes, last_visible, last_chain_seen, last_chain,
           evidence FROM endpoint",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let key: Key = (r.get(0)?, r.get(1)?);
        let first: i64 = r.get(2)?;
        let last: i64 = r.get(3)?;
        let hs: i64 = r.get(4)?;
        let vis: bool = r.get(5)?;
        let cs: Option<i64> = r.get(6)?;
        let chain: Option<String> = r.get(7)?;
        let evidence: u8 = r
            .get::<_, i64>(8)
            .map(|v| u8::try_from(v & 0xff).unwrap_or(0))?;
        let e = out.entry(key).or_insert_with(|| EpFold {
            first,
            last,
            last_visible: vis,
            ..EpFold::default()
        });
        e.first = e.first.min(first);
        if last >= e.last {
            e.last = last;
            e.last_visible = vis;
        }
        e.handshakes += u(hs);
        e.evidence |= evidence;
        if let (Some(t), Some(c)) = (cs, chain) {
            if e.chain_seen.is_none_or(|old| t >= old) {
                e.chain_seen = Some(t);
                e.chain = serde_json::from_str(&c).unwrap_or_default();
            }
        }
    }
    for (table, col) in [("endpoint_name", "name"), ("endpoint_segment", "segment")] {
        let mut st = conn.prepare(&format!("SELECT ip, port, {col} FROM {table}"))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let key: Key = (r.get(0)?, r.get(1)?);
            let v: String = r.get(2)?;
            let e = out.entry(key).or_default();
            // Merges of many sensors can exceed the per-endpoint caps; the output keeps to them.
            if table == "endpoint_name" {
                if e.names.len() < MAX_NAMES_PER_ENDPOINT {
                    e.names.insert(v);
                }
            } else if e.segments.len() < MAX_SEGMENTS_PER_ENDPOINT {
                e.segments.insert(v);
            }
        }
    }
    Ok(out)
}

pub(super) fn load_ca_endpoints(conn: &Connection) -> Result<HashMap<(String, Key), CaEpFold>> {
    let mut out: HashMap<(String, Key), CaEpFold> = HashMap::new();
    let mut st = conn.prepare(
        "SELECT ca, ip, port, first_seen, last_seen, handshakes, resumed FROM ca_endpoint",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let k = (r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?));
        let first: i64 = r.get(3)?;
        let last: i64 = r.get(4)?;
        let e = out.entry(k).or_insert(CaEpFold {
            first,
            last,
            ..CaEpFold::default()
        });
        e.first = e.first.min(first);
        e.last = e.last.max(last);
        e.handshakes += u(r.get(5)?);
        e.resumed += u(r.get(6)?);
    }
    Ok(out)
}

pub(super) fn load_clients(
    conn: &Connection,
) -> Result<HashMap<(String, Key), HashMap<String, ClFold>>> {
    let mut out: HashMap<(String, Key), HashMap<String, ClFold>> = HashMap::new();
    let mut st = conn.prepare(
        "SELECT ca, ip, port, client, first_seen, last_seen, last_outcome, accepted, rejected,
         unknown, resumed FROM ca_client",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let k = (r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?));
        let client: String = r.get(3)?;
        let first: i64 = r.get(4)?;
        let last: i64 = r.get(5)?;
        let outcome: String = r.get(6)?;
        let c = Counts {
            accepted: u(r.get(7)?),
            rejected: u(r.get(8)?),
            unknown: u(r.get(9)?),
            resumed: u(r.get(10)?),
        };
        let e = out
            .entry(k)
            .or_default()
            .entry(client)
            .or_insert_with(|| ClFold {
                first,
                last,
                outcome: outcome.clone(),
                ..ClFold::default()
            });
        e.first = e.first.min(first);
        if last >= e.last {
            e.last = last;
            e.outcome = outcome;
        }
        e.counts.sum(&c);
    }
    Ok(out)
}

/// Sort key of a textual IP: numeric order, unparsable text last.
pub(super) fn ip_order(ip: &str) -> (u8, IpAddr, String) {
    match ip.parse::<IpAddr>() {
        Ok(a) => (0, a, String::new()),
        Err(_) => (1, IpAddr::from([0, 0, 0, 0]), ip.to_string()),
    }
}

pub(super) fn t(ns: i64) -> String {
    rfc3339_ns(u(ns))
}

/// Whether `--ca` selects this CA: a SHA-256 prefix, or a case-insensitive substring of the subject.
pub fn ca_matches(filter: &str, sha256: &str, subject: &str) -> bool {
    let f = filter.trim().to_lowercase();
    if f.is_empty() {
        return true;
    }
    let hex = f.strip_prefix("sha256:").unwrap_or(&f);
    (hex.chars().all(|c| c.is_ascii_hexdigit()) && sha256.starts_with(hex))
        || subject.to_lowercase().contains(&f)
}

pub(super) fn load_cas(conn: &Connection) -> Result<Vec<CaInfo>> {
    let mut st = conn.prepare("SELECT sha256, subject, role, stores, removals FROM ca")?;
    let rows = st.query_map([], |r| {
        Ok(CaInfo {
            sha256: r.get(0)?,
            subject: r.get(1)?,
            role: r.get(2)?,
            stores: json_set(&r.get::<_, String>(3)?).into_iter().collect(),
            removals: json_set(&r.get::<_, String>(4)?).into_iter().collect(),
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn endpoint_entry(key: &Key, ep: Option<&EpFold>) -> EndpointEntry {
    let (chain_visible, seen) = match ep {
        Some(e) => (e.last_visible, e.chain_seen),
        None => (false, None),
    };
    EndpointEntry {
        ip: key.0.clone(),
        port: key.1,
        server_names: ep
            .map(|e| e.names.iter().cloned().collect())
            .unwrap_or_default(),
        segments: ep
            .map(|e| e.segments.iter().cloned().collect())
            .unwrap_or_default(),
        evidence: super::Evidence::names(ep.map_or(0, |e| e.evidence)),
        first_seen: String::new(),
        last_seen: String::new(),
        handshakes: 0,
        chain_visible,
        last_visible_chain_seen: if chain_visible { None } else { seen.map(t) },
        resumed: 0,
        clients: Vec::new(),
        first_ns: 0,
        last_ns: 0,
    }
}

pub(super) fn query(conn: &Connection, filter: Option<&str>) -> Result<Vec<CaEntry>> {
    let mut cas = load_cas(conn)?;
    if let Some(f) = filter {
        cas.retain(|c| ca_matches(f, &c.sha256, &c.subject));
    }
    cas.sort_by(|a, b| (&a.subject, &a.sha256).cmp(&(&b.subject, &b.sha256)));
    let eps = load_endpoints(conn)?;
    let ca_eps = load_ca_endpoints(conn)?;
    let mut clients = load_clients(conn)?;
    let mut signal_clients = load_signal_clients(conn)?;
    let mut by_ca: HashMap<&str, Vec<(&Key, &CaEpFold)>> = HashMap::new();
    for ((ca, key), f) in &ca_eps {
        by_ca.entry(ca.as_str()).or_default().push((key, f));
    }
    let mut auth: HashMap<String, BTreeSet<(String, u16)>> = HashMap::new();
    {
        let mut st = conn.prepare("SELECT ip, port, norm FROM client_auth")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            auth.entry(r.get(2)?)
                .or_default()
                .insert((r.get(0)?, r.get(1)?));
        }
    }
    // The servers' verdicts on client chains, by client CA.
    let mut verdicts: HashMap<String, Vec<EndpointRef>> = HashMap::new();
    {
        let mut st = conn.prepare(
            "SELECT DISTINCT ca, ip, port, evidence FROM client_auth_outcome ORDER BY ca, ip, port",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let ev: String = r.get(3)?;
            let evidence = if ev == "accepted" {
                "accepted"
            } else {
                "rejected"
            };
            verdicts.entry(r.get(0)?).or_default().push(EndpointRef {
                ip: r.get(1)?,
                port: r.get(2)?,
                evidence,
            });
        }
    }
    let mut out = Vec::with_capacity(cas.len());
    for ca in cas {
        let mut endpoints = Vec::new();
        for (key, f) in by_ca.get(ca.sha256.as_str()).into_iter().flatten() {
            let mut e = endpoint_entry(key, eps.get(*key));
            e.first_seen = t(f.first);
            e.last_seen = t(f.last);
            e.first_ns = f.first;
            e.last_ns = f.last;
            e.handshakes = f.handshakes;
            e.resumed = f.resumed;
            if let Some(cl) = clients.remove(&(ca.sha256.clone(), (*key).clone())) {
                let mut v: Vec<ClientEntry> = cl
                    .into_iter()
                    .map(|(ip, c)| ClientEntry {
                        ip,
                        first_seen: t(c.first),
                        last_seen: t(c.last),
                        outcome: c.outcome,
                        counts: c.counts,
                    })
                    .collect();
                v.sort_by_key(|a| ip_order(&a.ip));
                e.clients = v;
            }
            endpoints.push(e);
        }
        endpoints.sort_by_key(|a| (ip_order(&a.ip), a.port));
        let mut trusted: Vec<EndpointRef> = auth
            .get(&normalize_dn(&ca.subject))
            .into_iter()
            .flatten()
            .map(|(ip, port)| EndpointRef {
                ip: ip.clone(),
                port: *port,
                evidence: "ca_names",
            })
            .collect();
        trusted.extend(verdicts.remove(&ca.sha256).unwrap_or_default());
        trusted.sort_by_key(|a| (ip_order(&a.ip), a.port, a.evidence));
        let side_signal_clients = signal_clients.remove(&ca.sha256).unwrap_or_default();
        out.push(CaEntry {
            ca,
            endpoints,
            client_auth_trusted_by: trusted,
            side_signal_clients,
        });
    }
    Ok(out)
}

pub(super) fn opaque_endpoints(conn: &Connection) -> Result<Vec<EndpointEntry>> {
    let eps = load_endpoints(conn)?;
    let mut out: Vec<EndpointEntry> = eps
        .iter()
        .filter(|(_, e)| e.chain_seen.is_none() && e.handshakes > 0)
        .map(|(k, e)| {
            let mut x = endpoint_entry(k, Some(e));
            x.first_seen = t(e.first);
            x.last_seen = t(e.last);
            x.first_ns = e.first;
            x.last_ns = e.last;
            x.handshakes = e.handshakes;
            x
        })
        .collect();
    out.sort_by_key(|a| (ip_order(&a.ip), a.port));
    Ok(out)
}
