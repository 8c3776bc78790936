//! Offline pipeline: sources -> capture engine -> analyzer -> events.

use analyzer::flow::AnalyzerStats;
use analyzer::Output;
use capture::Stats;

use enrich::{EnrichStats, Enricher};
use inventory::{InventoryWriter, RecordStats};
use shard::PacketOptions;
use sinks::{events, EventSink};

/// Counters for the end-of-run summary.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub capture: Stats,
    pub files: u64,
    pub truncated_files: Vec<String>,
    pub handshakes: u64,
    pub chains: u64,
    pub client_chains: u64,
    pub tls13: u64,
    pub unique_certs: u64,
    pub cert_parse_errors: u64,
    pub events: u64,
    /// OCSP requests, CA certificate and CRL fetches read.
    pub side_signals: u64,
    pub instrumentation: String,
    /// The analyzer's counters: protocols found and anomalies.
    pub analyzer: AnalyzerStats,
    pub enrich: EnrichStats,
    /// The inventory writer's counters (absent with no inventory).
    pub inventory: Option<RecordStats>,
    /// `--store-certs`: (written, already there, errors).
    pub cert_store: Option<(u64, u64, u64)>,
}

/// Analyzer outputs in flight between the packet stage and the enrichment stage.
const OUTPUTS_IN_FLIGHT: usize = 4096;
/// The stages after the packet stage: enrichment, events, inventory.
pub struct Stages<'a> {
    pub enricher: &'a mut Enricher,
    pub sink: &'a mut EventSink,
    pub inventory: Option<&'a mut InventoryWriter>,
    /// `--store-certs DIR`: each unique certificate as `DIR/<sha256>.pem`.
    pub certs: Option<&'a mut sinks::certstore::CertStore>,
}

impl Stages<'_> {
    /// Flushes the event output and stops the inventory writer (both, even when one fails),
    /// and puts their counters and the enrichment's into `sum`.
    pub fn finish(&mut self, sum: &mut RunSummary) -> Result<(), String> {
        let events = self.sink.finish();
        let inventory = self.inventory.as_deref_mut().map(InventoryWriter::finish);
        sum.enrich = self.enricher.stats.clone();
        sum.events = self.sink.events();
        sum.cert_store = self
            .certs
            .as_deref()
            .map(|c| (c.written, c.present, c.errors));
        events?;
        sum.inventory = inventory.transpose()?;
        Ok(())
    }

    /// Turns one analyzer output into events and an inventory observation.
    pub fn handle(&mut self, o: Output, sum: &mut RunSummary) -> Result<(), String> {
        match o {
            Output::NewCert(ci, ts) => {
                sum.unique_certs += 1;
                if ci.parse_error.is_some() {
                    sum.cert_parse_errors += 1;
                }
                let ev = events::X509Event {
                    cert: &ci,
                    ts_ns: ts,
                };
                self.sink.emit(&ev)?;
                if let Some(store) = self.certs.as_deref_mut() {
                    store.store(&ci.sha256, &ci.der);
                }
            }
            Output::Handshake(h) => {
                sum.handshakes += 1;
                if h.server_chain.is_some() {
                    sum.chains += 1;
                }
                if h.client_chain.is_some() {
                    sum.client_chains += 1;
                }
                if !h.chain_visible {
                    sum.tls13 += 1;
                }
                let e = self.enricher.handshake(&h);
                self.sink.emit_tls(&h, &e.extra)?;
                for finding in &e.findings {
                    let ev = events::FindingEvent {
                        h: &h,
                        finding,
                        instant: e.instant,
                    };
                    self.sink.emit(&ev)?;
                }
                if let (Some(inv), Some(obs)) = (self.inventory.as_deref_mut(), e.observation) {
                    inv.record(obs)?;
                }
            }
            Output::SideSignal(sig) => {
                sum.side_signals += 1;
                let e = self.enricher.side_signal(&sig);
                self.sink
                    .emit(&events::SideSignalEvent { s: &sig, e: &e })?;
                let cas: Vec<enrich::CaRef> = e.matches.into_iter().filter_map(|m| m.ca).collect();
                if let (Some(inv), false) = (self.inventory.as_deref_mut(), cas.is_empty()) {
                    inv.record_signal(enrich::SignalObservation {
                        ts_ns: sig.ts_ns,
                        client_ip: sig.client.0,
                        evidence: sig.kind.evidence(),
                        cas,
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Runs the offline pipeline over every input, in order, as one continuous capture.
pub fn analyze(opts: &PacketOptions, stages: &mut Stages<'_>) -> Result<RunSummary, String> {
    let mut sum = RunSummary::default();
    // The packet stage runs here; enrichment and event building run on a thread of their own,
    // in output order (one FIFO channel), so handshake-heavy traffic uses two cores.
    let (tx, rx) = crossbeam_channel::bounded::<Output>(OUTPUTS_IN_FLIGHT);
    let (ps, handled) = std::thread::scope(|scope| {
        let sum = &mut sum;
        let st = &mut *stages;
        let stage = std::thread::Builder::new()
            .name("enrichment".into())
            .spawn_scoped(scope, move || -> Result<(), String> {
                for o in rx {
                    st.handle(o, sum)?;
                }
                Ok(())
            });
        let ps = shard::run(opts, &mut |o| {
            tx.send(o)
                .map_err(|_| "enrichment stage stopped".to_string())
        });
        drop(tx);
        let handled = match stage {
            Ok(t) => t
                .join()
                .unwrap_or_else(|_| Err("enrichment stage panicked".into())),
            Err(e) => Err(format!("enrichment thread: {e}")),
        };
        (ps, handled)
    });
    // The stage's own error explains a packet-stage "stopped" error: report it first.
    let ps = match (ps, handled) {
        (_, Err(e)) => Err(e),
        (ps, Ok(())) => ps,
    };
    // Finish the event output and the inventory even when the packet stage failed, so what was
    // seen is kept.
    let done = stages.finish(&mut sum);
    let ps = ps?;
    done?;
    sum.analyzer = ps.analyzer.clone();
    sum.instrumentation = ps.instrumentation_text();
    sum.capture = ps.capture;
    sum.files = ps.files;
    sum.truncated_files = ps.truncated_files;
    Ok(sum)
}

/// The short human summary printed at the end of a run.
pub fn summary_text(s: &RunSummary) -> String {
    let c = &s.capture;
    let mut t = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        t,
        "trustmap: {} file(s), {} packets, {} bytes",
        s.files, c.packets, c.bytes
    );
    let _ = writeln!(
        t,
        "  flows {} (closed {}, idle {}, evicted {}, reused {}), bypassed packets {}",
        c.flows_created,
        c.flows_closed,
        c.flows_idle_timeout,
        c.flows_evicted_lru,
        c.flows_reused,
        c.bypassed_packets
    );
    let _ = writeln!(
        t,
        "  handshakes {} (tls1.3/hidden chain {}), server chains {}, client chains {}, unique certs {} ({} unparsable)",
        s.handshakes, s.tls13, s.chains, s.client_chains, s.unique_certs, s.cert_parse_errors
    );
    let _ = writeln!(
        t,
        "  reassembly: out-of-order segs {}, retransmitted bytes {}, overlap conflicts {}, gaps {}, out-of-window segs {}, buffer-cap drops {}, depth reached {}, mid-stream pickups {}, ISN changes before data {}, resyncs {}",
        c.tcp_out_of_order_segments,
        c.tcp_retransmitted_bytes,
        c.tcp_overlap_conflicts,
        c.tcp_gaps,
        c.tcp_out_of_window,
        c.tcp_buffer_cap_drops,
        c.tcp_depth_reached,
        c.tcp_midstream_pickups,
        c.tcp_isn_changes,
        c.tcp_resyncs
    );
    let _ = writeln!(
        t,
        "  ip fragments {}, reassembled {}, overlap conflicts {}; other packets {} (ARP, ICMP, ...)",
        c.ip_fragments, c.ip_reassembled, c.ip_fragment_overlaps, c.other_packets
    );
    let a = &s.analyzer;
    let _ = writeln!(
        t,
        "  protocols: tls flows {} (starttls {}, sslv2 {}, mid-stream {}), quic {}, dtls flows {}, stun datagrams {}, openvpn {} (tls-crypt, unreadable: {}), not tls {}",
        a.tls_flows, a.starttls_flows, a.sslv2_flows, a.midstream, a.quic_flows, a.dtls_flows, a.stun_datagrams, a.openvpn_flows, a.openvpn_tls_crypt, a.not_tls
    );
    let udp: Vec<String> = a
        .top_unread_udp_ports(5)
        .into_iter()
        .map(|(p, n)| format!("{p}: {n}"))
        .collect();
    if !udp.is_empty() {
        let _ = writeln!(
            t,
            "  UDP flows not read, by port (top 5): {}",
            udp.join(", ")
        );
    }
    if a.keylog_found + a.keylog_missing > 0 {
        let _ = writeln!(
            t,
            "  key log: TLS 1.3 handshakes with secrets {}, without {}, records decrypted {}",
            a.keylog_found, a.keylog_missing, a.records_decrypted
        );
    }
    if s.side_signals > 0 {
        let _ = writeln!(
            t,
            "  side signals (OCSP, CA certificate and CRL fetches): {}, CAs matched {}, unmatched {}",
            s.side_signals, s.enrich.side_signals_matched, s.enrich.side_signals_unmatched
        );
    }
    let anomalies: Vec<String> = a
        .anomalies
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    let _ = writeln!(
        t,
        "  protocol anomalies: {}",
        if anomalies.is_empty() {
            "none".to_string()
        } else {
            anomalies.join(", ")
        }
    );
    if let Some((w, p, e)) = s.cert_store {
        let _ = writeln!(
            t,
            "  certificate store: {w} written, {p} already there, {e} could not be written"
        );
    }
    if c.decode_problems.is_empty() {
        let _ = writeln!(t, "  decode problems: none");
    } else {
        let parts: Vec<String> = c
            .decode_problems
            .iter()
            .map(|(k, v)| format!("{} {v}", k.name()))
            .collect();
        let _ = writeln!(t, "  decode problems: {}", parts.join(", "));
        // What is missing, by value: an EtherType, IP protocol or PPP protocol not decoded.
        let top: Vec<String> = c
            .top_problem_values(5)
            .into_iter()
            .filter_map(|(p, n)| Some(format!("{}: {n}", p.with_value()?)))
            .collect();
        if !top.is_empty() {
            let _ = writeln!(t, "  not decoded, by value (top 5): {}", top.join(", "));
        }
    }
    let e = &s.enrich;
    let _ = writeln!(
        t,
        "  chains built {} (cache hits {}), anchored {}, findings {} (suppressed repeats {})",
        e.chains_built, e.chain_cache_hits, e.anchored, e.findings, e.findings_suppressed
    );
    if let Some(i) = &s.inventory {
        let _ = writeln!(
            t,
            "  inventory: observations {}, flushes {}, chainless attributed to an earlier chain {}, unattributed {}, truncated {}",
            i.observations, i.flushes, i.inferred, i.unattributed, i.truncated
        );
    }
    t.push_str(&s.instrumentation);
    for f in &s.truncated_files {
        let _ = writeln!(t, "  input ended early: {f}");
    }
    t
}
