//! Offline pipeline: sources -> capture engine -> analyzer -> events.

use std::io::Write;
use std::path::PathBuf;

use analyzer::{AnalyzerConfig, Output};
use capture::{EngineConfig, Stats};

use crate::enrich::{EnrichStats, Enricher};
use crate::events;
use crate::inventory::{Inventory, Observation};
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

/// Analyzer outputs in flight between the packet stage and the enrichment stage.
const OUTPUTS_IN_FLIGHT: usize = 4096;
/// Items handed to a stage thread per channel message.
const BATCH: usize = 64;
/// Batches in flight per stage thread (bounded memory; the producer waits when the stage lags).
const BATCHES_IN_FLIGHT: usize = 64;

/// A consumer on a thread of its own, fed in batches over a bounded channel. Its error (or panic)
/// is returned by the next `push` after it stopped, or by `finish`.
struct BatchThread<T: Send + 'static> {
    name: &'static str,
    tx: Option<crossbeam_channel::Sender<Vec<T>>>,
    batch: Vec<T>,
    handle: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl<T: Send + 'static> BatchThread<T> {
    /// Moves `state` to a new thread called `name`, runs `consume` on every item, then `end`.
    fn spawn<S: Send + 'static>(
        name: &'static str,
        mut state: S,
        consume: fn(&mut S, T) -> Result<(), String>,
        end: fn(&mut S) -> Result<(), String>,
    ) -> Result<Self, String> {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<T>>(BATCHES_IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for batch in rx {
                    for item in batch {
                        consume(&mut state, item)?;
                    }
                }
                end(&mut state)
            })
            .map_err(|e| format!("{name} thread: {e}"))?;
        Ok(BatchThread {
            name,
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH),
            handle: Some(handle),
        })
    }

    /// Stops the thread and returns how it ended.
    fn join(&mut self) -> Result<(), String> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(format!("{} panicked", self.name)),
        }
    }

    fn push(&mut self, item: T) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err(format!("{} stopped", self.name));
        };
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            if tx.send(b).is_err() {
                return Err(self
                    .join()
                    .err()
                    .unwrap_or_else(|| format!("{} stopped", self.name)));
            }
        }
        Ok(())
    }

    /// Hands over what is left and waits for the thread to end.
    fn finish(&mut self) -> Result<(), String> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(std::mem::take(&mut self.batch));
        }
        self.join()
    }
}

/// Writes NDJSON events, one per line. Events are serialised straight from their typed views into
/// one reused line buffer and handed to the (buffered) output; without an output they are only
/// counted, and never serialised.
pub struct EventSink {
    out: Option<Box<dyn Write + Send>>,
    line: Vec<u8>,
    server_sides: events::ServerSideCache,
}

fn write_err(e: impl std::fmt::Display) -> String {
    format!("writing events: {e}")
}

/// Serialises `ev` into `line` (reused) and writes it as one NDJSON line.
fn write_line(
    w: &mut Box<dyn Write + Send>,
    line: &mut Vec<u8>,
    ev: &impl serde::Serialize,
) -> Result<(), String> {
    line.clear();
    serde_json::to_writer(&mut *line, ev).map_err(write_err)?;
    line.push(b'\n');
    w.write_all(line).map_err(write_err)
}

impl EventSink {
    pub fn new(out: Option<Box<dyn Write + Send>>) -> Self {
        EventSink {
            out,
            line: Vec::with_capacity(8192),
            server_sides: events::ServerSideCache::default(),
        }
    }

    pub fn emit(&mut self, ev: &impl serde::Serialize, sum: &mut RunSummary) -> Result<(), String> {
        sum.events += 1;
        match self.out.as_mut() {
            Some(w) => write_line(w, &mut self.line, ev),
            None => Ok(()),
        }
    }

    /// Writes the `trustmap.tls` event of `h`, with `tls.server` rendered once per presented chain.
    pub fn emit_tls(
        &mut self,
        h: &analyzer::Handshake,
        extra: &events::Enrichment,
        sum: &mut RunSummary,
    ) -> Result<(), String> {
        sum.events += 1;
        let Some(w) = self.out.as_mut() else {
            return Ok(());
        };
        let server = self.server_sides.get(h).map_err(write_err)?;
        write_line(w, &mut self.line, &events::TlsEvent { h, extra, server })
    }

    /// Flushes the output.
    pub fn finish(&mut self) -> Result<(), String> {
        match self.out.as_mut() {
            Some(w) => w.flush().map_err(write_err),
            None => Ok(()),
        }
    }
}

/// Records inventory observations on a thread of its own (SQLite work overlaps with analysis).
pub struct InventoryWriter(BatchThread<Observation>);

impl InventoryWriter {
    pub fn spawn(inv: Inventory) -> Result<Self, String> {
        fn ierr(e: crate::inventory::InventoryError) -> String {
            format!("inventory: {e}")
        }
        Ok(InventoryWriter(BatchThread::spawn(
            "inventory writer",
            inv,
            |inv, o: Observation| inv.record(&o).map_err(ierr),
            |inv| inv.flush().map_err(ierr),
        )?))
    }

    pub fn record(&mut self, o: Observation) -> Result<(), String> {
        self.0.push(o)
    }

    /// Records what is left, flushes and stops the thread.
    pub fn finish(&mut self) -> Result<(), String> {
        self.0.finish()
    }
}

/// The stages after the packet stage: enrichment, events, inventory.
pub struct Stages<'a> {
    pub enricher: &'a mut Enricher,
    pub sink: &'a mut EventSink,
    pub inventory: Option<&'a mut InventoryWriter>,
}

impl Stages<'_> {
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
                self.sink.emit(&ev, sum)?;
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
                self.sink.emit_tls(&h, &e.extra, sum)?;
                for finding in &e.findings {
                    let ev = events::FindingEvent {
                        h: &h,
                        finding,
                        instant: e.instant,
                    };
                    self.sink.emit(&ev, sum)?;
                }
                if let (Some(inv), Some(obs)) = (self.inventory.as_deref_mut(), e.observation) {
                    inv.record(obs)?;
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
        let ps = packets::run(&popts, &mut |o| {
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
    let events_done = stages.sink.finish();
    let inv_done = match stages.inventory.as_deref_mut() {
        Some(inv) => inv.finish(),
        None => Ok(()),
    };
    let ps = ps?;
    events_done?;
    inv_done?;
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
