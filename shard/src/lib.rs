//! Packets to analyzer outputs: reads the inputs, runs the capture engine and the TLS analyzer, and
//! hands every [`Output`] (new certificate, finished handshake) to the caller in a deterministic
//! order. Everything downstream (chain building, findings, events, inventory) is the binary's
//! wiring of the `enrich`, `sinks` and `inventory` stages.
//!
//! With `workers > 1` (see [`parallel`]) packets are sharded by flow over several engines; the
//! outputs are put back in the one order of [`order`], so the result is the same as with one
//! worker (byte-identical events), except when a table limit is reached: each worker has
//! `max_flows / workers` flow slots, so LRU eviction (a full table) can pick different flows.
#![forbid(unsafe_code)]

mod instr;
mod order;
mod parallel;

use std::path::{Path, PathBuf};

use analyzer::flow::AnalyzerStats;
use analyzer::{Analyzer, AnalyzerConfig, Output};
use capture::{Engine, EngineConfig, Stats};

pub use instr::Instrumentation;
pub use order::SeenCerts;

use instr::Sampler;
use order::Emitter;

/// What to read and how.
#[derive(Debug, Clone)]
pub struct PacketOptions {
    pub inputs: Vec<PathBuf>,
    pub engine: EngineConfig,
    pub analyzer: AnalyzerConfig,
    /// Analysis workers (1 = everything on the calling thread).
    pub workers: usize,
}

/// Counters of the packet stage, for the end-of-run summary.
#[derive(Debug, Default)]
pub struct PacketSummary {
    pub capture: Stats,
    /// The analyzer's counters (protocols found, anomalies), summed over workers.
    pub analyzer: AnalyzerStats,
    pub files: u64,
    pub truncated_files: Vec<String>,
    pub instr: Instrumentation,
}

impl PacketSummary {
    /// Instrumentation lines for the end-of-run summary: counters, then p50/p90/p99/max of the
    /// sampled per-packet processing time and of the handshake latency (capture time).
    pub fn instrumentation_text(&self) -> String {
        self.instr.text(&self.capture)
    }
}

/// Reads every input, in order, as one continuous capture, and calls `on_output` for each output.
/// An error from `on_output` stops the run.
pub fn run(
    opts: &PacketOptions,
    on_output: &mut dyn FnMut(Output) -> Result<(), String>,
) -> Result<PacketSummary, String> {
    if opts.workers > 1 {
        parallel::run(opts, on_output)
    } else {
        serial(opts, on_output)
    }
}

/// The TLS key log of a pcapng Decryption Secrets Block, into the analyzer's key log (kept only
/// when the analyzer has one).
fn add_secrets(keylog: Option<&analyzer::tls::keylog::KeyLog>, text: &[u8]) {
    if let Some(k) = keylog {
        k.add_text(&String::from_utf8_lossy(text));
    }
}

/// Records how one input ended.
fn file_done(
    sum: &mut PacketSummary,
    path: &Path,
    res: Result<capture::source::SourceSummary, capture::source::SourceError>,
) -> Result<(), String> {
    match res {
        Ok(s) => {
            sum.files += 1;
            if s.truncated || s.error.is_some() {
                sum.truncated_files.push(format!(
                    "{}: {}",
                    path.display(),
                    s.error.as_deref().unwrap_or("truncated")
                ));
            }
            Ok(())
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// One engine on the calling thread. Each packet: clock tick (sweep outputs, canonical order),
/// then the packet itself; the same steps as a parallel worker, so both give the same order.
fn serial(
    opts: &PacketOptions,
    on_output: &mut dyn FnMut(Output) -> Result<(), String>,
) -> Result<PacketSummary, String> {
    let mut sum = PacketSummary::default();
    let mut engine = Engine::new(opts.engine.clone(), Analyzer::new(opts.analyzer.clone()));
    let mut em = Emitter::new(on_output);
    let mut sampler = Sampler::default();
    let mut sweep: Vec<Output> = Vec::new();
    let mut err: Option<String> = None;
    for path in &opts.inputs {
        // The reader thread decodes TCP frames ahead, so this thread only runs the flow engine.
        let keylog = opts.analyzer.keylog.clone();
        let mut secrets = |text: &[u8]| add_secrets(keylog.as_deref(), text);
        let res = capture::source::read_file_secrets(
            path,
            true,
            &mut |pkt, pre| {
                if err.is_some() {
                    return;
                }
                let t0 = sampler.start();
                if pkt.ts_ns > engine.now() {
                    engine.advance_clock(pkt.ts_ns);
                    sweep.append(&mut engine.app.out);
                }
                match pre {
                    Some(t) => engine.process_pre(pkt, t),
                    None => engine.process(pkt),
                }
                sampler.stop(t0);
                let r = if sweep.is_empty() {
                    Ok(())
                } else {
                    em.emit_sweep(&mut sweep)
                };
                let r = r.and_then(|()| {
                    if !engine.app.out.is_empty() {
                        for o in engine.app.out.drain(..) {
                            em.emit(o)?;
                        }
                    }
                    Ok(())
                });
                if let Err(e) = r {
                    err = Some(e);
                }
            },
            &mut secrets,
        );
        if let Some(e) = err.take() {
            return Err(e);
        }
        file_done(&mut sum, path, res)?;
    }
    let (mut app, stats) = engine.finish();
    em.emit_sweep(&mut app.out)?;
    sum.capture = stats;
    sum.analyzer = app.stats;
    em.instr.packet_ns.merge(&sampler.hist);
    sum.instr = em.instr;
    Ok(sum)
}

#[cfg(test)]
mod bench {
    use super::*;

    /// The packet stage alone (no event stage), `--workers 1` and `2` alternating, 3 runs each:
    /// `TRUSTMAP_BENCH_PCAP=/tmp/x.pcap cargo test --release -p shard
    /// packet_stage_throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: needs TRUSTMAP_BENCH_PCAP"]
    fn packet_stage_throughput() {
        let path = std::env::var_os("TRUSTMAP_BENCH_PCAP")
            .unwrap_or_else(|| panic!("set TRUSTMAP_BENCH_PCAP to the capture to measure"));
        let workers: Vec<usize> = std::env::var("TRUSTMAP_BENCH_WORKERS")
            .ok()
            .map(|s| s.split(',').filter_map(|w| w.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 2]);
        for round in 0..3 {
            for &n in &workers {
                let opts = PacketOptions {
                    inputs: vec![PathBuf::from(&path)],
                    engine: EngineConfig::default(),
                    analyzer: AnalyzerConfig::default(),
                    workers: n,
                };
                let mut outs = 0u64;
                let t = std::time::Instant::now();
                let s = run(&opts, &mut |_| {
                    outs += 1;
                    Ok(())
                });
                let secs = t.elapsed().as_secs_f64();
                let s = s.unwrap_or_default();
                eprintln!(
                    "round {round} workers {n}: {secs:.3} s, {} packets ({:.2} Mpps, {:.2} Gbit/s), {outs} outputs",
                    s.capture.packets,
                    s.capture.packets as f64 / secs / 1e6,
                    s.capture.bytes as f64 * 8.0 / secs / 1e9
                );
            }
        }
    }
}
