//! `trustmap capture`: live span-port capture through libpcap (cargo feature `live`).
//!
//! The capture workers (one per fanout handle, see `capture::live`) each own their flows and an
//! Analyzer; their outputs travel over one bounded channel to the stage thread, which owns the
//! enrichment, the event writer and the inventory, exactly as in `analyze`. When the stage thread
//! lags, workers wait on the channel and the kernel ring absorbs the burst (drops are counted and
//! reported, never hidden). Every `--stats-interval` a `trustmap.stats` event reports packets,
//! kernel and interface drops, flows and engine counters.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use analyzer::flow::AnalyzerStats;
use analyzer::{Analyzer, AnalyzerConfig, Output};
use capture::live::{LiveConfig, LiveReport};
use capture::EngineConfig;
use serde_json::{json, Value};

use enrich::Enricher;
use sinks::EventSink;

use inventory::InventoryWriter;

use crate::pipeline::{self, RunSummary, Stages};

/// Outputs in flight between the capture workers and the stage thread.
const CHANNEL: usize = 16_384;

enum Msg {
    Output(Output),
    Stats(Value),
}

/// Everything `trustmap capture` needs, prepared (and files opened) before capture starts, so
/// a privilege drop cannot make them unreachable.
pub struct CaptureSetup {
    pub live: LiveConfig,
    pub engine: EngineConfig,
    pub analyzer: AnalyzerConfig,
    pub enricher: Enricher,
    pub sink: EventSink,
    pub inventory: InventoryWriter,
    /// `--store-certs DIR`.
    pub certs: Option<sinks::certstore::CertStore>,
    pub quiet: bool,
    /// `--keylog` files, followed as they grow while the capture runs.
    pub keylog_files: Vec<std::path::PathBuf>,
}

/// How often the followed key log files are read for appended lines.
const KEYLOG_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Follows the key log files on a thread of its own until `stop`.
fn follow_keylogs(
    setup_files: &[std::path::PathBuf],
    keylog: Option<Arc<analyzer::tls::keylog::KeyLog>>,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let keylog = keylog?;
    if setup_files.is_empty() {
        return None;
    }
    // Handshakes whose secrets are not there yet keep their flight for a while.
    keylog.set_follows(true);
    let mut follower = analyzer::tls::keylog::KeyLogFollower::new(setup_files);
    std::thread::Builder::new()
        .name("keylog follower".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                follower.poll(&keylog);
                std::thread::sleep(KEYLOG_POLL);
            }
        })
        .ok()
}

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The `trustmap.stats` event of one report, with the analyzer counters summed over workers.
pub fn stats_event(r: &LiveReport, iface: &str, analyzer: &AnalyzerStats) -> Value {
    let e = r.engine();
    let decode_problems: serde_json::Map<String, Value> = e
        .decode_problems
        .iter()
        .map(|(k, n)| (k.name().to_string(), json!(n)))
        .collect();
    let by_value: serde_json::Map<String, Value> = e
        .top_problem_values(5)
        .into_iter()
        .filter_map(|(p, n)| Some((p.with_value()?, json!(n))))
        .collect();
    let anomalies: serde_json::Map<String, Value> = analyzer
        .anomalies
        .iter()
        .map(|(k, n)| (k.name().to_string(), json!(n)))
        .collect();
    let workers: Vec<Value> = r
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            json!({"worker": i, "received": w.received, "kernel_dropped": w.kernel_dropped,
                   "flows": w.flows, "packets": w.engine.packets, "bytes": w.engine.bytes})
        })
        .collect();
    json!({
        "@timestamp": rules::time::rfc3339_ns(wall_ns()),
        "event": {"dataset": "trustmap.stats", "kind": "metric"},
        "observer": {"ingress": {"interface": {"name": iface}}},
        "trustmap": {"stats": {
            "final": r.is_final,
            "elapsed_s": r.elapsed.as_secs_f64(),
            "received": r.received(),
            "kernel_dropped": r.kernel_dropped(),
            "if_dropped": r.if_dropped(),
            "packets": e.packets,
            "bytes": e.bytes,
            "bypassed_packets": e.bypassed_packets,
            "flows_created": e.flows_created,
            "flows_evicted": e.flows_evicted_lru,
            "flows_idle_timeout": e.flows_idle_timeout,
            "flows": r.workers.iter().map(|w| w.flows).sum::<usize>(),
            "decode_problems": e.problems_total(),
            "decode_problems_by_kind": decode_problems,
            "decode_problems_top_values": by_value,
            "tcp_out_of_window": e.tcp_out_of_window,
            "tcp_resyncs": e.tcp_resyncs,
            "tcp_gaps": e.tcp_gaps,
            "other_packets": e.other_packets,
            "ip_fragment_overlaps": e.ip_fragment_overlaps,
            "handshakes": analyzer.handshakes,
            "anomalies": anomalies,
            "workers": workers,
        }}
    })
}

/// Runs the capture until SIGINT/SIGTERM; returns the exit code's error text on failure.
pub fn run(setup: CaptureSetup) -> Result<(), String> {
    let CaptureSetup {
        live,
        engine,
        analyzer,
        mut enricher,
        mut sink,
        mut inventory,
        mut certs,
        quiet,
        keylog_files,
    } = setup;
    let follow_stop = Arc::new(AtomicBool::new(false));
    let follower = follow_keylogs(&keylog_files, analyzer.keylog.clone(), follow_stop.clone());
    let (tx, rx) = crossbeam_channel::bounded::<Msg>(CHANNEL);
    let stage = std::thread::Builder::new()
        .name("trustmap-stages".into())
        .spawn(move || -> Result<RunSummary, String> {
            let mut sum = RunSummary::default();
            let mut stages = Stages {
                enricher: &mut enricher,
                sink: &mut sink,
                inventory: Some(&mut inventory),
                certs: certs.as_mut(),
            };
            let mut err = None;
            // Each worker parses certificates with its own cache: report each one once.
            let mut seen = shard::SeenCerts::default();
            for m in rx {
                if err.is_some() {
                    continue; // keep draining so workers never block on a dead stage
                }
                let r = match m {
                    Msg::Output(Output::NewCert(ci, _)) if !seen.first_sighting(&ci.sha256) => {
                        Ok(())
                    }
                    Msg::Output(o) => stages.handle(o, &mut sum),
                    Msg::Stats(v) => stages.sink.emit(&v),
                };
                if let Err(e) = r {
                    err = Some(e);
                }
            }
            let done = stages.finish(&mut sum);
            if let Some(e) = err {
                return Err(e);
            }
            done?;
            Ok(sum)
        })
        .map_err(|e| format!("stage thread: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    // Each worker's analyzer counters, refreshed after every batch, for the stats events.
    let worker_stats = Arc::new(Mutex::new(vec![
        AnalyzerStats::default();
        live.workers.max(1)
    ]));
    let read_stats = worker_stats.clone();
    let out_tx = tx.clone();
    let iface = live.iface.clone();
    let mut last: Option<LiveReport> = None;
    let res = capture::live::run(
        &live,
        engine,
        |_worker| Analyzer::new(analyzer.clone()),
        move |worker, eng| {
            if let Some(slot) = worker_stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(worker)
            {
                slot.clone_from(&eng.app.stats);
            }
            for o in eng.app.out.drain(..) {
                if out_tx.send(Msg::Output(o)).is_err() {
                    break;
                }
            }
        },
        |r| {
            let mut a = AnalyzerStats::default();
            for w in read_stats.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                a.merge(w);
            }
            let _ = tx.send(Msg::Stats(stats_event(r, &iface, &a)));
            if !quiet && !r.is_final {
                eprintln!(
                    "trustmap: {:.0}s received {} kernel drops {} if drops {} flows {}",
                    r.elapsed.as_secs_f64(),
                    r.received(),
                    r.kernel_dropped(),
                    r.if_dropped(),
                    r.workers.iter().map(|w| w.flows).sum::<usize>()
                );
            }
            last = Some(r.clone());
        },
        stop,
    );
    drop(tx);
    follow_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(f) = follower {
        let _ = f.join();
    }
    let stage_res = stage
        .join()
        .map_err(|_| "stage thread panicked".to_string())?;
    let live_res = res.map_err(|e| e.to_string());
    let mut sum = stage_res?;
    if let Some(r) = &last {
        sum.capture = r.engine();
        if !quiet {
            eprint!("{}", pipeline::summary_text(&sum));
            eprintln!(
                "  live: received {}, kernel drops {}, interface drops {}, {:.1} s",
                r.received(),
                r.kernel_dropped(),
                r.if_dropped(),
                r.elapsed.as_secs_f64()
            );
        }
    }
    live_res.map(|_| ())
}
