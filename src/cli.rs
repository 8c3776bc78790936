//! Command line (DESIGN.md §3 is the contract). Exit codes: 0 ok, 1 runtime error, 2 usage or rules error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::pipeline::{self, AnalyzeOptions, EventSink};

#[derive(Parser, Debug)]
#[command(
    name = "trustmap",
    version,
    about = "Passive TLS observer: which CAs each service really depends on"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Analyse pcap/pcapng files (gzip allowed; `-` reads stdin).
    Analyze(AnalyzeArgs),
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Capture files, read in order as one capture.
    #[arg(required = true)]
    pcaps: Vec<PathBuf>,
    /// Write NDJSON events here (`-` = stdout).
    #[arg(short = 'o', long = "events")]
    events: Option<PathBuf>,
    /// Bytes reassembled per TCP direction before a flow is bypassed.
    #[arg(long, default_value_t = 1 << 20)]
    depth: usize,
    /// Most flows tracked at once (least recently used evicted beyond).
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: usize,
    /// Idle timeout of a flow, in seconds of capture time.
    #[arg(long, default_value_t = 120)]
    idle_timeout: u64,
    /// Inventory database (SQLite; `:memory:` keeps nothing).
    #[arg(long, default_value = "trustmap.db")]
    db: String,
    /// Analysis workers; packets are sharded to them by symmetric flow hash.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Do not print the end-of-run summary.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.cmd {
        Cmd::Analyze(a) => analyze(a),
    }
}

fn open_events(p: &Option<PathBuf>) -> std::io::Result<Option<Box<dyn Write>>> {
    Ok(match p {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(std::io::BufWriter::new(std::io::stdout().lock())))
        }
        Some(p) => Some(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p)?,
        ))),
    })
}

fn analyze(a: AnalyzeArgs) -> ExitCode {
    let mut opts = AnalyzeOptions {
        inputs: a.pcaps,
        engine: capture::EngineConfig::default(),
        analyzer: analyzer::AnalyzerConfig::default(),
        workers: a.workers.max(1),
    };
    opts.engine.depth = a.depth;
    opts.engine.max_flows = a.max_flows.max(1);
    opts.engine.idle_timeout_ns = a.idle_timeout.saturating_mul(1_000_000_000);
    let out = match open_events(&a.events) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("trustmap: cannot open events output: {e}");
            return ExitCode::from(1);
        }
    };
    let mut sink = EventSink::new(out);
    match pipeline::analyze(&opts, &mut sink) {
        Ok(sum) => {
            if !a.quiet {
                eprint!("{}", pipeline::summary_text(&sum));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trustmap: {e}");
            ExitCode::from(1)
        }
    }
}
