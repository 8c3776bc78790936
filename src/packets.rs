//! Packets to analyzer outputs: reads the inputs, runs the capture engine and the TLS analyzer, and
//! hands every [`Output`] (new certificate, finished handshake) to the caller in a deterministic
//! order. Everything downstream (chain building, findings, events, inventory) lives in `pipeline`.

use std::path::PathBuf;

use analyzer::{Analyzer, AnalyzerConfig, Output};
use capture::{Engine, EngineConfig, Stats};

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
    pub files: u64,
    pub truncated_files: Vec<String>,
}

/// Reads every input, in order, as one continuous capture, and calls `on_output` for each output.
/// An error from `on_output` stops the run.
pub fn run(
    opts: &PacketOptions,
    on_output: &mut dyn FnMut(Output) -> Result<(), String>,
) -> Result<PacketSummary, String> {
    let mut sum = PacketSummary::default();
    let mut engine = Engine::new(opts.engine.clone(), Analyzer::new(opts.analyzer.clone()));
    let mut err: Option<String> = None;
    for path in &opts.inputs {
        let res = capture::source::read_file(path, &mut |pkt| {
            if err.is_some() {
                return;
            }
            engine.process(pkt);
            for o in engine.app.out.drain(..) {
                if let Err(e) = on_output(o) {
                    err = Some(e);
                    break;
                }
            }
        });
        if let Some(e) = err.take() {
            return Err(e);
        }
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
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    let (mut app, stats) = engine.finish();
    for o in app.out.drain(..) {
        on_output(o)?;
    }
    sum.capture = stats;
    Ok(sum)
}
