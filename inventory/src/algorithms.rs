//! `trustmap inventory --algorithms`: the post-quantum migration map. Per endpoint, the
//! key-exchange group it negotiated last and its leaf's key and signature algorithms; the clients
//! that offer post-quantum key exchange (ML-KEM hybrids) or signatures (ML-DSA), and how many
//! others do not. A
//! readiness word sums each up: `ready` (post-quantum key exchange and certificate), `kx_only`
//! (key exchange only: the usual first step), `cert_only`, `not_ready`, or `unknown` (nothing
//! seen yet).

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::query::t;
use super::Result;

/// One endpoint's algorithms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointAlgorithms {
    pub ip: String,
    pub port: u16,
    /// The key-exchange group last negotiated (`tls.curve` names).
    pub group: Option<String>,
    pub pq_key_exchange: bool,
    pub leaf_key: Option<String>,
    pub leaf_signature: Option<String>,
    pub pq_certificate: bool,
    pub status: &'static str,
    pub last_seen: Option<String>,
}

/// One client's offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientAlgorithms {
    pub ip: String,
    pub handshakes: u64,
    /// Handshakes whose ClientHello offered a post-quantum group / signature scheme.
    pub pq_key_exchange_offered: u64,
    pub pq_signatures_offered: u64,
    pub status: &'static str,
    pub first_seen: String,
    pub last_seen: String,
}

/// The map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlgorithmMap {
    pub endpoints: Vec<EndpointAlgorithms>,
    /// The clients that offered post-quantum key exchange or signatures.
    pub clients: Vec<ClientAlgorithms>,
    /// Clients seen against a visible chain that never offered anything post-quantum
    /// (`not_ready`; not listed one by one).
    pub other_clients: u64,
}

fn status(kx: bool, sig: bool, known: bool) -> &'static str {
    match (known, kx, sig) {
        (false, ..) => "unknown",
        (true, true, true) => "ready",
        (true, true, false) => "kx_only",
        (true, false, true) => "cert_only",
        (true, false, false) => "not_ready",
    }
}

/// An endpoint's latest algorithms: (seen, group, leaf key, leaf signature).
type Latest = (i64, Option<u16>, Option<String>, Option<String>);

pub(super) fn load(conn: &Connection) -> Result<AlgorithmMap> {
    // Per endpoint, the latest algorithms over every source.
    let mut eps: BTreeMap<(String, u16), Latest> = BTreeMap::new();
    let mut st = conn.prepare(
        "SELECT ip, port, algo_seen, kx_group, leaf_key, leaf_sig FROM endpoint
         WHERE algo_seen IS NOT NULL",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let key = (r.get::<_, String>(0)?, r.get::<_, u16>(1)?);
        let seen: i64 = r.get(2)?;
        let group: Option<i64> = r.get(3)?;
        let group = group.and_then(|g| u16::try_from(g).ok());
        let v = (seen, group, r.get(4)?, r.get(5)?);
        match eps.get(&key) {
            Some(old) if old.0 > seen => {}
            _ => {
                eps.insert(key, v);
            }
        }
    }
    let mut map = AlgorithmMap::default();
    for ((ip, port), (seen, group, key, sig)) in eps {
        let kx = group.is_some_and(analyzer::names::group_is_post_quantum);
        let cert = key
            .as_deref()
            .is_some_and(analyzer::names::cert_alg_is_post_quantum);
        let known = group.is_some() || key.is_some();
        map.endpoints.push(EndpointAlgorithms {
            ip,
            port,
            group: group.map(|g| analyzer::names::group_name(g).into_owned()),
            pq_key_exchange: kx,
            leaf_key: key,
            leaf_signature: sig,
            pq_certificate: cert,
            status: status(kx, cert, known),
            last_seen: Some(t(seen)),
        });
    }
    let mut st = conn.prepare(
        "SELECT ip, sum(handshakes), sum(pq_group), sum(pq_sig), min(first_seen), max(last_seen)
         FROM client_algo GROUP BY ip ORDER BY ip",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let n =
            |i| -> rusqlite::Result<u64> { Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0)) };
        let (hs, kx, sig) = (n(1)?, n(2)?, n(3)?);
        map.clients.push(ClientAlgorithms {
            ip: r.get(0)?,
            handshakes: hs,
            pq_key_exchange_offered: kx,
            pq_signatures_offered: sig,
            status: status(kx > 0, sig > 0, hs > 0),
            first_seen: t(r.get(4)?),
            last_seen: t(r.get(5)?),
        });
    }
    map.other_clients = conn
        .query_row(
            "SELECT count(DISTINCT client) FROM ca_client
         WHERE client NOT IN (SELECT ip FROM client_algo)",
            [],
            |r| r.get::<_, i64>(0),
        )?
        .try_into()
        .unwrap_or(0);
    Ok(map)
}

/// The map as JSON.
pub fn render_algorithms_json(m: &AlgorithmMap) -> String {
    serde_json::to_string_pretty(m).unwrap_or_else(|_| "{}".into())
}

/// The map as two tables for people.
pub fn render_algorithms_table(m: &AlgorithmMap) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:<22} {:<12} {:<24} POST-QUANTUM",
        "ENDPOINT", "KEY EXCHANGE", "LEAF KEY", "LEAF SIGNATURE"
    );
    for e in &m.endpoints {
        let _ = writeln!(
            out,
            "{:<40} {:<22} {:<12} {:<24} {}",
            super::clean(&format!("{}:{}", e.ip, e.port)),
            super::clean(e.group.as_deref().unwrap_or("-")),
            super::clean(e.leaf_key.as_deref().unwrap_or("-")),
            super::clean(e.leaf_signature.as_deref().unwrap_or("-")),
            e.status
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<40} {:>10} {:>14} {:>14} POST-QUANTUM",
        "CLIENT", "HANDSHAKES", "PQ KX OFFERED", "PQ SIG OFFERED"
    );
    for c in &m.clients {
        let _ = writeln!(
            out,
            "{:<40} {:>10} {:>14} {:>14} {}",
            super::clean(&c.ip),
            c.handshakes,
            c.pq_key_exchange_offered,
            c.pq_signatures_offered,
            c.status
        );
    }
    let _ = writeln!(
        out,
        "{} other client(s) offered nothing post-quantum (not_ready)",
        m.other_clients
    );
    out
}
