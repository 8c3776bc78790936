//! `trustmap probe`: the opt-in active check (wiring only; the probe itself is the `probe`
//! crate). Targets come from the inventory: by default the endpoints with no known chain, with
//! `--all` every endpoint. Each chain a server presents goes through the same enrichment as a
//! captured one, with `chain_source: "probe"`: events, findings and the inventory (evidence
//! `probe`).

use std::collections::BTreeSet;
use std::sync::Arc;

use analyzer::{CertCache, CertRef, Handshake};
use enrich::Enricher;
use inventory::{Inventory, InventoryWriter};
use probe::{ProbeConfig, ProbeResult, Target};
use sinks::{events, EventSink};

/// What a probe run needs.
pub struct ProbeSetup {
    pub cfg: ProbeConfig,
    pub all: bool,
    pub db: String,
    pub enricher: Enricher,
    pub sink: EventSink,
    pub quiet: bool,
}

/// The endpoints to probe, from the inventory (sorted, each once).
fn targets(inv: &Inventory, all: bool) -> Result<Vec<Target>, String> {
    let ierr = |e: inventory::InventoryError| format!("inventory: {e}");
    let mut eps = inv.opaque_endpoints().map_err(ierr)?;
    if all {
        for ca in inv.query(None).map_err(ierr)? {
            eps.extend(ca.endpoints);
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for ep in eps {
        let Ok(ip) = ep.ip.parse() else { continue };
        let sni = ep.server_names.first().cloned();
        if seen.insert((ep.ip.clone(), ep.port, sni.clone())) {
            out.push(Target {
                ip,
                port: ep.port,
                sni,
            });
        }
    }
    Ok(out)
}

pub fn run(mut s: ProbeSetup) -> Result<(), String> {
    let inv = Inventory::open(&s.db).map_err(|e| format!("inventory {}: {e}", s.db))?;
    let targets = targets(&inv, s.all)?;
    let mut writer = InventoryWriter::spawn(inv)?;
    let mut certs = CertCache::new();
    let mut err = None;
    let cfg = s.cfg.clone();
    let stats = probe::probe_all(&cfg, &targets, &mut |r: ProbeResult| {
        if err.is_some() {
            return;
        }
        let res = record(&mut s, &mut certs, &mut writer, r);
        if let Err(e) = res {
            err = Some(e);
        }
    });
    let done = writer.finish();
    s.sink.finish()?;
    if let Some(e) = err {
        return Err(e);
    }
    done?;
    if !s.quiet {
        eprintln!(
            "trustmap probe: {} targets, {} probed, {} chains, {} failed, {} outside --allow (not contacted)",
            targets.len(),
            stats.probed,
            stats.chains,
            stats.failed,
            stats.refused
        );
    }
    Ok(())
}

/// One probe's chain through enrichment, events and the inventory.
fn record(
    s: &mut ProbeSetup,
    certs: &mut CertCache,
    writer: &mut InventoryWriter,
    r: ProbeResult,
) -> Result<(), String> {
    let t = &r.target;
    let p = match r.presented {
        Ok(p) => p,
        Err(e) => {
            if !s.quiet {
                eprintln!("trustmap probe: {}:{}: {e}", t.ip, t.port);
            }
            return Ok(());
        }
    };
    let mut chain = Vec::with_capacity(p.chain.len());
    for der in &p.chain {
        let (info, new) = certs.get_or_parse(der);
        if new {
            s.sink.emit(&events::X509Event {
                cert: &info,
                ts_ns: r.ts_ns,
            })?;
        }
        chain.push(CertRef {
            sha256: info.sha256,
            info: Arc::clone(&info),
        });
    }
    let local = p.local.map(|a| (a.ip(), a.port())).unwrap_or((t.ip, 0));
    let h = Handshake::probed(
        r.ts_ns,
        local,
        (t.ip, t.port),
        t.sni.clone(),
        p.version,
        p.cipher,
        chain,
        p.completed,
    );
    let e = s.enricher.handshake(&h);
    s.sink.emit_tls(&h, &e.extra)?;
    for finding in &e.findings {
        s.sink.emit(&events::FindingEvent {
            h: &h,
            finding,
            instant: e.instant,
        })?;
    }
    if let Some(obs) = e.observation {
        writer.record(obs)?;
    }
    Ok(())
}
