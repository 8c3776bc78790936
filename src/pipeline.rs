//! Offline pipeline: sources -> capture engine -> analyzer -> events.

use std::io::Write;
use std::path::PathBuf;

use analyzer::{AnalyzerConfig, Output};
use capture::{EngineConfig, Stats};

use crate::enrich::{EnrichStats, Enricher};
use crate::events;
use crate::inventory::Inventory;
use crate::packets::{self, PacketOptions};

/// What `trustmap analyze` was asked to do.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    pub inputs: Vec<PathBuf>,
    pub engine: EngineConfig,
    pub analyzer: AnalyzerConfig,
    pub workers: usize,
}

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
    pub instrumentation: String,
    pub enrich: EnrichStats,
}

/// Writes NDJSON events, one per line, and counts what it wrote.
pub struct EventSink {
    out: Option<Box<dyn Write>>,
    line: Vec<u8>,
}

impl EventSink {
    pub fn new(out: Option<Box<dyn Write>>) -> Self {
        EventSink {
            out,
            line: Vec::with_capacity(4096),
        }
    }

    pub fn emit(&mut self, v: &serde_json::Value, sum: &mut RunSummary) -> std::io::Result<()> {
        sum.events += 1;
        if let Some(w) = self.out.as_mut() {
            self.line.clear();
            serde_json::to_writer(&mut self.line, v)?;
            self.line.push(b'\n');
            w.write_all(&self.line)?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.out.as_mut() {
            w.flush()?;
        }
        Ok(())
    }
}

/// The stages after the packet stage: enrichment, events, inventory.
pub struct Stages<'a> {
    pub enricher: &'a mut Enricher,
    pub sink: &'a mut EventSink,
    pub inventory: Option<&'a mut Inventory>,
}

impl Stages<'_> {
    /// Turns one analyzer output into events and an inventory observation.
    pub fn handle(&mut self, o: Output, sum: &mut RunSummary) -> Result<(), String> {
        let werr = |e: std::io::Error| format!("writing events: {e}");
        match o {
            Output::NewCert(ci, ts) => {
                sum.unique_certs += 1;
                if ci.parse_error.is_some() {
                    sum.cert_parse_errors += 1;
                }
                self.sink
                    .emit(&events::x509_event(&ci, ts), sum)
                    .map_err(werr)?;
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
                self.sink
                    .emit(&events::tls_event(&h, &e.extra), sum)
                    .map_err(werr)?;
                for f in &e.findings {
                    self.sink.emit(f, sum).map_err(werr)?;
                }
                if let (Some(inv), Some(obs)) = (self.inventory.as_deref_mut(), e.observation) {
                    inv.record(&obs).map_err(|e| format!("inventory: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Runs the offline pipeline over every input, in order, as one continuous capture.
pub fn analyze(opts: &AnalyzeOptions, stages: &mut Stages<'_>) -> Result<RunSummary, String> {
    let mut sum = RunSummary::default();
    let popts = PacketOptions {
        inputs: opts.inputs.clone(),
        engine: opts.engine.clone(),
        analyzer: opts.analyzer.clone(),
        workers: opts.workers,
    };
    let ps = packets::run(&popts, &mut |o| stages.handle(o, &mut sum))?;
    stages
        .sink
        .flush()
        .map_err(|e| format!("writing events: {e}"))?;
    if let Some(inv) = stages.inventory.as_deref_mut() {
        inv.flush().map_err(|e| format!("inventory: {e}"))?;
    }
    sum.enrich = stages.enricher.stats.clone();
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
        "  reassembly: out-of-order segs {}, retransmitted bytes {}, overlap conflicts {}, gaps {}, buffer-cap drops {}, depth reached {}, mid-stream pickups {}",
        c.tcp_out_of_order_segments,
        c.tcp_retransmitted_bytes,
        c.tcp_overlap_conflicts,
        c.tcp_gaps,
        c.tcp_buffer_cap_drops,
        c.tcp_depth_reached,
        c.tcp_midstream_pickups
    );
    let _ = writeln!(
        t,
        "  ip fragments {}, reassembled {}",
        c.ip_fragments, c.ip_reassembled
    );
    if c.decode_problems.is_empty() {
        let _ = writeln!(t, "  decode problems: none");
    } else {
        let parts: Vec<String> = c
            .decode_problems
            .iter()
            .map(|(k, v)| format!("{k:?} {v}"))
            .collect();
        let _ = writeln!(t, "  decode problems: {}", parts.join(", "));
    }
    let e = &s.enrich;
    let _ = writeln!(
        t,
        "  chains built {} (cache hits {}), anchored {}, findings {} (suppressed repeats {})",
        e.chains_built, e.chain_cache_hits, e.anchored, e.findings, e.findings_suppressed
    );
    t.push_str(&s.instrumentation);
    for f in &s.truncated_files {
        let _ = writeln!(t, "  input ended early: {f}");
    }
    t
}
