//! Writing one flush: each table's aggregated rows, upserted in primary-key order inside the
//! caller's transaction (rows appended in key order keep SQLite from splitting B-tree pages all
//! over; keys are sorted on integers where the text order allows it).

use rusqlite::{params, Transaction};

use super::*;

/// `endpoint` rows and their capped set tables (names, segments, client-auth CA names). `fresh`
/// is the set of endpoints known absent from the database (their set rows need no count).
pub(super) fn endpoints(
    tx: &Transaction<'_>,
    src: &str,
    ids: &CaIds,
    fresh: &Option<FastSet<EpKey>>,
    rows: &FastMap<EpKey, EpAgg>,
) -> Result<()> {
    let mut st_ep = tx.prepare_cached(
        "INSERT INTO endpoint(source, ip, port, first_seen, last_seen, handshakes, last_visible,
           last_chain_seen, last_chain, evidence, algo_seen, kx_group, leaf_key, leaf_sig)
         VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)
         ON CONFLICT(source, ip, port) DO UPDATE SET
           evidence=evidence | excluded.evidence,
           kx_group=CASE WHEN excluded.algo_seen>=ifnull(algo_seen, excluded.algo_seen)
                    THEN excluded.kx_group ELSE kx_group END,
           leaf_key=CASE WHEN excluded.algo_seen>=ifnull(algo_seen, excluded.algo_seen)
                    THEN excluded.leaf_key ELSE leaf_key END,
           leaf_sig=CASE WHEN excluded.algo_seen>=ifnull(algo_seen, excluded.algo_seen)
                    THEN excluded.leaf_sig ELSE leaf_sig END,
           algo_seen=max(ifnull(algo_seen, excluded.algo_seen), ifnull(excluded.algo_seen, algo_seen)),
           first_seen=min(first_seen, excluded.first_seen),
           last_visible=CASE WHEN excluded.last_seen>=last_seen THEN excluded.last_visible
                        ELSE last_visible END,
           last_seen=max(last_seen, excluded.last_seen),
           handshakes=handshakes+excluded.handshakes,
           last_chain=CASE WHEN excluded.last_chain_seen IS NOT NULL AND (last_chain_seen IS NULL
                      OR excluded.last_chain_seen>=last_chain_seen) THEN excluded.last_chain
                      ELSE last_chain END,
           last_chain_seen=CASE WHEN excluded.last_chain_seen IS NOT NULL AND (last_chain_seen IS NULL
                      OR excluded.last_chain_seen>=last_chain_seen) THEN excluded.last_chain_seen
                      ELSE last_chain_seen END",
    )?;
    // Set tables hold at most a cap of rows per endpoint, whatever the source: count what
    // is there once per endpoint, then insert while there is room (an existing row is
    // ignored and takes no room).
    let mut st_name = tx.prepare_cached("INSERT OR IGNORE INTO endpoint_name VALUES(?1,?2,?3)")?;
    let mut st_seg =
        tx.prepare_cached("INSERT OR IGNORE INTO endpoint_segment VALUES(?1,?2,?3)")?;
    let mut st_auth = tx.prepare_cached("INSERT OR IGNORE INTO client_auth VALUES(?1,?2,?3,?4)")?;
    let mut n_sets = tx.prepare_cached(
        "SELECT (SELECT count(*) FROM endpoint_name WHERE ip=?1 AND port=?2),
                (SELECT count(*) FROM endpoint_segment WHERE ip=?1 AND port=?2),
                (SELECT count(*) FROM client_auth WHERE ip=?1 AND port=?2)",
    )?;
    // Rows go in in primary-key order, so SQLite appends to its B-trees instead of
    // splitting pages all over them (keys are text: sort by the text).
    // An endpoint absent from the database has no set rows to count.
    let eps: Vec<(IpText, u16, &EpAgg, bool)> = rows
        .iter()
        .map(|(k, e)| {
            let absent = fresh.as_ref().is_some_and(|f| !f.contains(k));
            (IpText::new(&k.0), k.1, e, absent)
        })
        .collect();
    // Sorted by reference: moving the wide rows themselves was most of the sorting.
    let mut eps: Vec<&(IpText, u16, &EpAgg, bool)> = eps.iter().collect();
    eps.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (ip, port, e, absent) in eps {
        let (cs, cj) = match &e.chain {
            Some((t, c)) => {
                let shas: Vec<&str> = c.iter().map(|id| ids.sha(*id)).collect();
                let json = serde_json::to_string(&shas).unwrap_or_else(|_| "[]".into());
                (Some(*t), Some(json))
            }
            None => (None, None),
        };
        st_ep.execute(params![
            src,
            ip,
            port,
            e.first,
            e.last,
            e.handshakes as i64,
            e.last_visible,
            cs,
            cj,
            e.evidence,
            e.algo.as_ref().map(|a| a.0),
            e.algo.as_ref().and_then(|a| a.1),
            e.algo.as_ref().and_then(|a| a.2.as_deref()),
            e.algo.as_ref().and_then(|a| a.3.as_deref())
        ])?;
        let (ip, port) = (ip.text.as_str(), *port);
        if e.names.is_empty() && e.segments.is_empty() && e.auth_names.is_empty() {
            continue;
        }
        let (n_name, n_seg, n_auth): (i64, i64, i64) = if *absent {
            (0, 0, 0)
        } else {
            n_sets.query_row(params![ip, port], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        };
        let names = &e.names;
        add_capped(n_name, MAX_NAMES_PER_ENDPOINT, names, |n| {
            st_name.execute(params![ip, port, n])
        })?;
        let segs = &e.segments;
        add_capped(n_seg, MAX_SEGMENTS_PER_ENDPOINT, segs, |s| {
            st_seg.execute(params![ip, port, s])
        })?;
        let auth = &e.auth_names;
        add_capped(n_auth, MAX_AUTH_NAMES_PER_ENDPOINT, auth, |n| {
            st_auth.execute(params![ip, port, n, normalize_dn(n)])
        })?;
    }
    Ok(())
}

/// `ca` rows.
pub(super) fn cas(tx: &Transaction<'_>, ids: &CaIds, agg: &FastMap<CaId, CaAgg>) -> Result<()> {
    for (id, c) in agg {
        upsert_ca(tx, ids.sha(*id), c)?;
    }
    Ok(())
}

/// `ca_endpoint` rows.
pub(super) fn ca_endpoints(
    tx: &Transaction<'_>,
    src: &str,
    ids: &CaIds,
    ranks: &[u32],
    agg: &FastMap<CaEpKey, CaEpAgg>,
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO ca_endpoint VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)
         ON CONFLICT(source, ca, ip, port) DO UPDATE SET
           first_seen=min(first_seen, excluded.first_seen),
           last_seen=max(last_seen, excluded.last_seen),
           handshakes=handshakes+excluded.handshakes,
           resumed=resumed+excluded.resumed, inferred=inferred+excluded.inferred",
    )?;
    let rows: Vec<(u32, &str, IpText, u16, &CaEpAgg)> = agg
        .iter()
        .map(|((ca, ip, port), e)| {
            let r = CaIds::rank(ranks, *ca);
            (r, ids.sha(*ca), IpText::new(ip), *port, e)
        })
        .collect();
    let mut rows: Vec<&_> = rows.iter().collect();
    rows.sort_unstable_by(|a, b| (a.0, &a.2, a.3).cmp(&(b.0, &b.2, b.3)));
    for (_, ca, ip, port, e) in rows {
        st.execute(params![
            src,
            ca,
            ip,
            port,
            e.first,
            e.last,
            e.handshakes as i64,
            e.resumed as i64,
            e.inferred as i64
        ])?;
    }
    Ok(())
}

/// `ca_client` rows.
pub(super) fn ca_clients(
    tx: &Transaction<'_>,
    src: &str,
    ids: &CaIds,
    ranks: &[u32],
    agg: &FastMap<ClKey, ClAgg>,
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO ca_client VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)
         ON CONFLICT(source, ca, ip, port, client) DO UPDATE SET
           first_seen=min(first_seen, excluded.first_seen),
           last_outcome=CASE WHEN excluded.last_seen>=last_seen THEN excluded.last_outcome
                        ELSE last_outcome END,
           last_seen=max(last_seen, excluded.last_seen),
           accepted=accepted+excluded.accepted, rejected=rejected+excluded.rejected,
           unknown=unknown+excluded.unknown, resumed=resumed+excluded.resumed",
    )?;
    let rows: Vec<(u32, &str, IpText, u16, IpText, &ClAgg)> = agg
        .iter()
        .map(|((ca, ip, port, client), c)| {
            let r = CaIds::rank(ranks, *ca);
            (
                r,
                ids.sha(*ca),
                IpText::new(ip),
                *port,
                IpText::new(client),
                c,
            )
        })
        .collect();
    let mut rows: Vec<&_> = rows.iter().collect();
    rows.sort_unstable_by(|a, b| (a.0, &a.2, a.3, &a.4).cmp(&(b.0, &b.2, b.3, &b.4)));
    for (_, ca, ip, port, client, c) in rows {
        st.execute(params![
            src,
            ca,
            ip,
            port,
            client,
            c.first,
            c.last,
            c.last_outcome.unwrap_or(Outcome::Unknown).as_str(),
            c.counts.accepted as i64,
            c.counts.rejected as i64,
            c.counts.unknown as i64,
            c.counts.resumed as i64
        ])?;
    }
    Ok(())
}

/// `ca_day` rows (per-day outcome counts for removal status and burndowns).
pub(super) fn ca_days(
    tx: &Transaction<'_>,
    src: &str,
    ids: &CaIds,
    ranks: &[u32],
    agg: &FastMap<DayKey, Counts>,
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO ca_day VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)
         ON CONFLICT(source, ca, ip, port, client, day) DO UPDATE SET
           accepted=accepted+excluded.accepted, rejected=rejected+excluded.rejected,
           unknown=unknown+excluded.unknown, resumed=resumed+excluded.resumed",
    )?;
    let rows: Vec<(u32, &str, IpText, u16, IpText, i64, &Counts)> = agg
        .iter()
        .map(|((ca, ip, port, client, day), c)| {
            (
                CaIds::rank(ranks, *ca),
                ids.sha(*ca),
                IpText::new(ip),
                *port,
                IpText::new(client),
                *day,
                c,
            )
        })
        .collect();
    let mut rows: Vec<&_> = rows.iter().collect();
    rows.sort_unstable_by(|a, b| (a.0, &a.2, a.3, &a.4, a.5).cmp(&(b.0, &b.2, b.3, &b.4, b.5)));
    for (_, ca, ip, port, client, day, c) in rows {
        st.execute(params![
            src,
            ca,
            ip,
            port,
            client,
            day,
            c.accepted as i64,
            c.rejected as i64,
            c.unknown as i64,
            c.resumed as i64
        ])?;
    }
    Ok(())
}

/// `client_algo` rows (per client: handshakes and how many offered post-quantum groups and
/// signature schemes).
pub(super) fn client_algos(
    tx: &Transaction<'_>,
    src: &str,
    agg: &FastMap<IpAddr, ClientAlgoAgg>,
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO client_algo VALUES(?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT(source, ip) DO UPDATE SET
           first_seen=min(first_seen, excluded.first_seen),
           last_seen=max(last_seen, excluded.last_seen),
           handshakes=handshakes+excluded.handshakes,
           pq_group=pq_group+excluded.pq_group, pq_sig=pq_sig+excluded.pq_sig",
    )?;
    let mut rows: Vec<(IpText, &ClientAlgoAgg)> =
        agg.iter().map(|(ip, c)| (IpText::new(ip), c)).collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (ip, c) in rows {
        st.execute(params![
            src,
            ip,
            c.first,
            c.last,
            c.handshakes as i64,
            c.pq_group as i64,
            c.pq_sig as i64
        ])?;
    }
    Ok(())
}

/// `ca_signal` rows (per CA, client and evidence: the side signals' requests).
pub(super) fn ca_signals(
    tx: &Transaction<'_>,
    src: &str,
    ids: &CaIds,
    agg: &FastMap<SignalKey, SignalAgg>,
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO ca_signal VALUES(?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT(source, ca, client, evidence) DO UPDATE SET
           first_seen=min(first_seen, excluded.first_seen),
           last_seen=max(last_seen, excluded.last_seen),
           requests=requests+excluded.requests",
    )?;
    let mut rows: Vec<(&str, IpText, &str, &SignalAgg)> = agg
        .iter()
        .map(|((ca, client, ev), a)| (ids.sha(*ca), IpText::new(client), *ev, a))
        .collect();
    rows.sort_unstable_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    for (ca, client, ev, a) in rows {
        st.execute(params![
            src,
            ca,
            client,
            ev,
            a.first,
            a.last,
            a.requests as i64
        ])?;
    }
    Ok(())
}

/// The servers' verdicts on client chains (mTLS), by server endpoint, client CA and verdict.
pub(super) fn auth_outcomes(
    tx: &Transaction<'_>,
    src: &str,
    ids: &CaIds,
    agg: &FastMap<super::AuthKey, SignalAgg>,
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO client_auth_outcome VALUES(?1,?2,?3,?4,?5,?6,?7,?8)
         ON CONFLICT(source, ip, port, ca, evidence) DO UPDATE SET
           first_seen=min(first_seen, excluded.first_seen),
           last_seen=max(last_seen, excluded.last_seen),
           handshakes=handshakes+excluded.handshakes",
    )?;
    let mut rows: Vec<(IpText, u16, &str, &str, &SignalAgg)> = agg
        .iter()
        .map(|(((ip, port), ca, ev), a)| (IpText::new(ip), *port, ids.sha(*ca), *ev, a))
        .collect();
    rows.sort_unstable_by(|a, b| (&a.0, a.1, a.2, a.3).cmp(&(&b.0, b.1, b.2, b.3)));
    for (ip, port, ca, ev, a) in rows {
        st.execute(params![
            src,
            ip,
            port,
            ca,
            ev,
            a.first,
            a.last,
            a.requests as i64
        ])?;
    }
    Ok(())
}
