//! Command line (DESIGN.md §3 is the contract). Exit codes: 0 ok, 1 runtime error, 2 usage or rules error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use enrich::{EnrichConfig, Enricher};
use inventory::Inventory;
use shard::PacketOptions;
use sinks::{report, EventSink};

use crate::pipeline;

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
    /// The CA dependency map: which services depend on each CA, and which clients use them.
    Inventory(InventoryArgs),
    /// Removal rules: progress of one removal.
    Removal {
        #[command(subcommand)]
        cmd: RemovalCmd,
    },
    /// Live capture from an interface (span/mirror port) through libpcap.
    Capture(CaptureArgs),
    /// Reports for people: HTML or Graphviz DOT of the inventory.
    Report(ReportArgs),
    /// Opt-in active check: connect to inventory endpoints inside --allow and record the chain
    /// each presents (by default only endpoints whose chain is unknown).
    Probe(ProbeArgs),
}

/// `trustmap probe`.
#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// Inventory database: where the targets come from and the results go.
    #[arg(long, default_value = "trustmap.db")]
    db: String,
    /// Networks the probe may connect to (CIDR); mandatory, repeatable. Nothing outside is ever
    /// contacted.
    #[arg(long = "allow", required = true)]
    allow: Vec<String>,
    /// Connections per second at most.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds for the connection and the handshake, each.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Probe every endpoint of the inventory, not only those without a known chain.
    #[arg(long)]
    all: bool,
    /// Write NDJSON events here (`-` = stdout).
    #[arg(short = 'o', long = "events")]
    events: Option<PathBuf>,
    /// Extra trust anchors (as for `analyze`); repeatable.
    #[arg(long = "anchors")]
    anchors: Vec<String>,
    #[command(flatten)]
    rules: RulesArgs,
    /// Do not print the summary.
    #[arg(short, long)]
    quiet: bool,
}

/// Rules and trust options shared by every command that evaluates removals.
#[derive(clap::Args, Debug, Clone)]
struct RulesArgs {
    /// TOML rules file or directory (removals, segments, policy); repeatable. The built-in distrust
    /// history is always loaded.
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// Which root program's distrust behaviour applies: chrome, mozilla or strict (earliest and
    /// widest).
    #[arg(long, default_value = "chrome")]
    distrust_policy: String,
    /// Evaluate time-dependent rules and findings at this RFC 3339 instant instead of capture time.
    #[arg(long)]
    as_of: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct InventoryArgs {
    #[command(subcommand)]
    cmd: Option<InventoryCmd>,
    /// Inventory database.
    #[arg(long, default_value = "trustmap.db")]
    db: String,
    /// Only CAs whose SHA-256 (prefix) or subject (substring, case-insensitive) matches.
    #[arg(long)]
    ca: Option<String>,
    /// table, json or csv.
    #[arg(long, default_value = "table")]
    format: String,
    /// The post-quantum migration map instead: per endpoint its key exchange and certificate
    /// algorithms, per client what it offers, and whether each is ready (table or json).
    #[arg(long)]
    algorithms: bool,
}

#[derive(Subcommand, Debug)]
enum InventoryCmd {
    /// Merge the inventories of several sensors into one database.
    Merge {
        /// Input databases.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output database (created, or merged into when it exists).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum RemovalCmd {
    /// Dependencies left, residual uses and failures, burndown by day, transition plan.
    Status {
        /// Rule id (a `[[removal]]` id, or a built-in distrust event id such as `entrust-2024`).
        id: String,
        #[arg(long, default_value = "trustmap.db")]
        db: String,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        rules: RulesArgs,
    },
    /// List the removal rules in force (user rules and the built-in distrust history).
    List {
        #[command(flatten)]
        rules: RulesArgs,
    },
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    #[arg(long, default_value = "trustmap.db")]
    db: String,
    /// Write an HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Write a Graphviz DOT graph (CA -> endpoint -> client) here.
    #[arg(long)]
    dot: Option<PathBuf>,
    #[command(flatten)]
    rules: RulesArgs,
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Capture files, read in order as one capture.
    #[arg(required = true)]
    pcaps: Vec<PathBuf>,
    /// Analysis workers; packets are sharded to them by symmetric flow hash.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    common: CommonArgs,
}

/// Options shared by `analyze` and `capture`: outputs, trust, rules, tracking limits.
#[derive(clap::Args, Debug)]
struct CommonArgs {
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
    /// Extra trust anchors: a PEM file or directory, as `PATH` or `STORE=PATH` (the store name
    /// defaults to the file or directory name); repeatable.
    #[arg(long = "anchors")]
    anchors: Vec<String>,
    /// TLS key log (NSS format: SSLKEYLOGFILE, OpenSSL -keylogfile, ...); repeatable. TLS 1.3
    /// handshake flights whose secrets are there are decrypted (never application data), and
    /// their chains are reported with `trustmap.chain_source: "keylog"`.
    #[arg(long = "keylog")]
    keylogs: Vec<PathBuf>,
    #[command(flatten)]
    rules: RulesArgs,
    /// `cert.expiring` fires when the leaf expires within this many days.
    #[arg(long, default_value_t = 30)]
    expiring_days: i64,
    /// Emit a repeated finding (same code, rule, server, certificate, CA; client for client-side
    /// codes) at most once per this many seconds of capture time; 0 emits every occurrence.
    #[arg(long, default_value_t = 86_400)]
    suppress: i64,
    /// Write each unique certificate once as `DIR/<sha256>.pem` (atomically), like Suricata's
    /// tls-store.
    #[arg(long = "store-certs", value_name = "DIR")]
    store_certs: Option<PathBuf>,
    /// Do not print the end-of-run summary.
    #[arg(short, long)]
    quiet: bool,
}

/// `trustmap capture`: live capture (needs the `live` cargo feature and CAP_NET_RAW).
#[derive(clap::Args, Debug)]
struct CaptureArgs {
    /// Interface to capture on (a span/mirror port).
    #[arg(short = 'i', long = "interface")]
    iface: String,
    /// BPF filter (tcpdump syntax), applied in the kernel.
    #[arg(short = 'f', long = "filter")]
    bpf: Option<String>,
    /// Capture workers, each with its own handle in one PACKET_FANOUT hash group.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Bytes kept per packet.
    #[arg(long, default_value_t = 65_535)]
    snaplen: i32,
    /// Kernel ring per worker, MiB.
    #[arg(long, default_value_t = 64)]
    buffer_mib: i32,
    /// libpcap immediate mode (lower latency, more CPU).
    #[arg(long)]
    immediate: bool,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// Drop privileges to this user once the handles are open.
    #[arg(long)]
    user: Option<String>,
    /// Seconds between `trustmap.stats` events (0: only the final one).
    #[arg(long, default_value_t = 10)]
    stats_interval: u64,
    #[command(flatten)]
    common: CommonArgs,
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
        Cmd::Capture(a) => finish(capture_inner(a)),
        Cmd::Inventory(a) => inventory_cmd(a),
        Cmd::Removal { cmd } => removal_cmd(cmd),
        Cmd::Report(a) => report_cmd(a),
        Cmd::Probe(a) => finish(probe_inner(a)),
    }
}

fn probe_inner(a: ProbeArgs) -> Result<(), Fail> {
    let mut allow = Vec::new();
    for c in &a.allow {
        allow.push(
            c.parse::<rules::segment::Cidr>()
                .map_err(|e| usage(format!("--allow {c:?}: {e}")))?,
        );
    }
    if !a.rate.is_finite() || a.rate <= 0.0 {
        return Err(usage("--rate must be above 0"));
    }
    let (rules, as_of) = a.rules.load()?;
    let stores = load_stores(&a.anchors)?;
    let enricher = Enricher::new(
        stores,
        rules,
        EnrichConfig {
            as_of,
            ..EnrichConfig::default()
        },
    );
    let out =
        open_events(&a.events).map_err(|e| runtime(format!("cannot open events output: {e}")))?;
    crate::probe_cmd::run(crate::probe_cmd::ProbeSetup {
        cfg: probe::ProbeConfig {
            allow,
            rate_per_sec: a.rate,
            timeout: std::time::Duration::from_secs(a.timeout.max(1)),
        },
        all: a.all,
        db: a.db,
        enricher,
        sink: EventSink::new(out),
        quiet: a.quiet,
    })
    .map_err(runtime)
}

fn open_events(p: &Option<PathBuf>) -> std::io::Result<Option<Box<dyn Write + Send>>> {
    Ok(match p {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        ))),
        Some(p) => Some(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p)?,
        ))),
    })
}

/// A failed command: its message and exit code.
struct Fail(u8, String);

fn usage(m: impl Into<String>) -> Fail {
    Fail(2, m.into())
}

fn runtime(m: impl Into<String>) -> Fail {
    Fail(1, m.into())
}

fn finish(r: Result<(), Fail>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, m)) => {
            eprintln!("trustmap: {m}");
            ExitCode::from(code)
        }
    }
}

impl RulesArgs {
    fn load(&self) -> Result<(rules::RuleSet, Option<i64>), Fail> {
        let policy: rules::DistrustPolicy = self.distrust_policy.parse().map_err(usage)?;
        let set = rules::RuleSet::load(policy, &self.rules).map_err(|e| usage(e.to_string()))?;
        let as_of = match &self.as_of {
            None => None,
            Some(t) => Some(
                rules::time::parse_rfc3339(t).map_err(|e| usage(format!("--as-of {t:?}: {e}")))?,
            ),
        };
        Ok((set, as_of))
    }
}

fn load_stores(specs: &[String]) -> Result<trust::anchors::TrustStores, Fail> {
    let mut stores = enrich::default_stores();
    for spec in specs {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains('/') => (n.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(spec);
                let n = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "user".into());
                (n, p)
            }
        };
        let n = stores
            .add_anchors_path(&path, &name)
            .map_err(|e| usage(format!("--anchors {}: {e}", path.display())))?;
        if n == 0 {
            return Err(usage(format!(
                "--anchors {}: no certificate found",
                path.display()
            )));
        }
    }
    Ok(stores)
}

fn analyze(a: AnalyzeArgs) -> ExitCode {
    finish(analyze_inner(a))
}

/// What both `analyze` and `capture` set up before packets flow.
struct Prepared {
    engine: capture::EngineConfig,
    analyzer: analyzer::AnalyzerConfig,
    enricher: Enricher,
    sink: EventSink,
    inventory: inventory::InventoryWriter,
    certs: Option<sinks::certstore::CertStore>,
}

fn prepare(c: &CommonArgs) -> Result<Prepared, Fail> {
    let (rules, as_of) = c.rules.load()?;
    let stores = load_stores(&c.anchors)?;
    let engine = capture::EngineConfig {
        depth: c.depth,
        max_flows: c.max_flows.max(1),
        idle_timeout_ns: c.idle_timeout.saturating_mul(1_000_000_000),
        ..capture::EngineConfig::default()
    };
    let mut ecfg = EnrichConfig {
        as_of,
        suppress_secs: c.suppress.max(0),
        ..EnrichConfig::default()
    };
    ecfg.policy.expiring_within_secs = c.expiring_days.saturating_mul(rules::time::SECS_PER_DAY);
    let enricher = Enricher::new(stores, rules, ecfg);
    let inv = Inventory::open(&c.db).map_err(|e| runtime(format!("inventory {}: {e}", c.db)))?;
    let inventory = inventory::InventoryWriter::spawn(inv).map_err(runtime)?;
    let out =
        open_events(&c.events).map_err(|e| runtime(format!("cannot open events output: {e}")))?;
    // Always a key log: pcapng Decryption Secrets Blocks add to it while the capture is read.
    let keylog = analyzer::tls::keylog::KeyLog::new();
    for path in &c.keylogs {
        keylog
            .add_file(path)
            .map_err(|e| usage(format!("--keylog {}: {e}", path.display())))?;
    }
    let analyzer = analyzer::AnalyzerConfig {
        keylog: Some(std::sync::Arc::new(keylog)),
        ..analyzer::AnalyzerConfig::default()
    };
    let certs = c
        .store_certs
        .as_deref()
        .map(sinks::certstore::CertStore::open)
        .transpose()
        .map_err(|e| runtime(format!("--store-certs: {e}")))?;
    Ok(Prepared {
        engine,
        analyzer,
        enricher,
        sink: EventSink::new(out),
        inventory,
        certs,
    })
}

fn analyze_inner(a: AnalyzeArgs) -> Result<(), Fail> {
    let mut p = prepare(&a.common)?;
    let opts = PacketOptions {
        inputs: a.pcaps,
        engine: p.engine.clone(),
        analyzer: p.analyzer.clone(),
        workers: a.workers.max(1),
    };
    let mut stages = pipeline::Stages {
        enricher: &mut p.enricher,
        sink: &mut p.sink,
        inventory: Some(&mut p.inventory),
        certs: p.certs.as_mut(),
    };
    let sum = pipeline::analyze(&opts, &mut stages).map_err(runtime)?;
    if !a.common.quiet {
        eprint!("{}", pipeline::summary_text(&sum));
    }
    Ok(())
}

#[cfg(feature = "live")]
fn capture_inner(a: CaptureArgs) -> Result<(), Fail> {
    let p = prepare(&a.common)?;
    let mut live = capture::live::LiveConfig::new(a.iface.clone());
    live.bpf = a.bpf;
    live.workers = a.workers.max(1);
    live.snaplen = a.snaplen;
    live.buffer_size = a.buffer_mib.saturating_mul(1 << 20);
    live.immediate = a.immediate;
    live.promisc = !a.no_promisc;
    live.user = a.user;
    live.stats_interval = std::time::Duration::from_secs(a.stats_interval);
    crate::live_cmd::run(crate::live_cmd::CaptureSetup {
        live,
        engine: p.engine,
        analyzer: p.analyzer,
        enricher: p.enricher,
        sink: p.sink,
        inventory: p.inventory,
        certs: p.certs,
        quiet: a.common.quiet,
        keylog_files: a.common.keylogs.clone(),
    })
    .map_err(runtime)
}

#[cfg(not(feature = "live"))]
fn capture_inner(a: CaptureArgs) -> Result<(), Fail> {
    let _ = a;
    Err(usage(
        "this trustmap was built without live capture: cargo build --release --features live (needs libpcap-dev)",
    ))
}

fn open_existing(db: &str) -> Result<Inventory, Fail> {
    if db != ":memory:" && !std::path::Path::new(db).exists() {
        return Err(usage(format!(
            "no inventory at {db} (run `trustmap analyze` first)"
        )));
    }
    Inventory::open(db).map_err(|e| runtime(format!("inventory {db}: {e}")))
}

fn print(s: &str) -> Result<(), Fail> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())
        .and_then(|_| o.flush())
        .map_err(|e| runtime(format!("writing output: {e}")))
}

fn inventory_cmd(a: InventoryArgs) -> ExitCode {
    finish(inventory_inner(a))
}

fn inventory_inner(a: InventoryArgs) -> Result<(), Fail> {
    if let Some(InventoryCmd::Merge { inputs, output }) = a.cmd {
        for i in &inputs {
            if !i.exists() {
                return Err(usage(format!("no inventory at {}", i.display())));
            }
        }
        let m = Inventory::merge(&inputs, &output).map_err(|e| runtime(e.to_string()))?;
        eprintln!(
            "trustmap: merged {} inventories ({} sensor sources) into {}",
            m.inputs,
            m.sources.len(),
            output.display()
        );
        return Ok(());
    }
    let inv = open_existing(&a.db)?;
    if a.algorithms {
        let m = inv.algorithms().map_err(|e| runtime(e.to_string()))?;
        let text = match a.format.as_str() {
            "json" => inventory::algorithms::render_algorithms_json(&m),
            "table" => inventory::algorithms::render_algorithms_table(&m),
            f => {
                return Err(usage(format!(
                    "unknown --format {f:?} for --algorithms (table or json)"
                )))
            }
        };
        println!("{text}");
        return Ok(());
    }
    let entries = inv
        .query(a.ca.as_deref())
        .map_err(|e| runtime(e.to_string()))?;
    let text = match a.format.as_str() {
        "json" => inventory::render_json(&entries),
        "table" => inventory::render_table(&entries),
        "csv" => inventory::render_csv(&entries),
        f => {
            return Err(usage(format!(
                "unknown --format {f:?} (table, json or csv)"
            )))
        }
    };
    print(&text)
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn removal_cmd(cmd: RemovalCmd) -> ExitCode {
    finish(match cmd {
        RemovalCmd::Status {
            id,
            db,
            format,
            rules,
        } => removal_status(&id, &db, &format, &rules),
        RemovalCmd::List { rules } => removal_list(&rules),
    })
}

fn removal_status(id: &str, db: &str, format: &str, ra: &RulesArgs) -> Result<(), Fail> {
    if format != "json" && format != "table" {
        return Err(usage(format!(
            "unknown --format {format:?} (table or json)"
        )));
    }
    let (rules, as_of) = ra.load()?;
    let inv = open_existing(db)?;
    let info = inv
        .removal_info(rules.removals(), id)
        .map_err(|e| runtime(e.to_string()))?
        .ok_or_else(|| {
            usage(format!(
                "no removal rule {id:?} under --distrust-policy {} (see `trustmap removal list`)",
                rules.policy()
            ))
        })?;
    let st = inv
        .removal_status(&info, as_of.unwrap_or_else(wall_clock))
        .map_err(|e| runtime(e.to_string()))?;
    print(&if format == "json" {
        inventory::render_removal_json(&st)
    } else {
        inventory::render_removal_table(&st)
    })
}

fn removal_list(ra: &RulesArgs) -> Result<(), Fail> {
    let (rules, _) = ra.load()?;
    let mut t = String::new();
    for id in rules.rule_ids() {
        let entries = rules.removal(id);
        let removed = entries.iter().map(|r| r.removed).min().unwrap_or(0);
        let name = entries.first().map(|r| r.name.as_str()).unwrap_or("");
        t.push_str(&format!(
            "{id}\t{}\t{name}\n",
            rules::time::rfc3339_s(removed)
        ));
    }
    print(&t)
}

fn report_cmd(a: ReportArgs) -> ExitCode {
    finish(report_inner(a))
}

fn report_inner(a: ReportArgs) -> Result<(), Fail> {
    if a.html.is_none() && a.dot.is_none() {
        return Err(usage("report needs --html PATH and/or --dot PATH"));
    }
    let (rules, as_of) = a.rules.load()?;
    let inv = open_existing(&a.db)?;
    let instant = as_of.unwrap_or_else(wall_clock);
    if let Some(p) = &a.html {
        // Every removal with at least one CA seen in this inventory.
        let mut infos = Vec::new();
        for id in rules.rule_ids() {
            if let Some(info) = inv
                .removal_info(rules.removals(), id)
                .map_err(|e| runtime(e.to_string()))?
            {
                let st = inv
                    .removal_status(&info, instant)
                    .map_err(|e| runtime(e.to_string()))?;
                if st.dependencies.endpoints_left > 0
                    || st.dependencies.endpoints_migrated > 0
                    || st.residual.handshakes > 0
                {
                    infos.push(info);
                }
            }
        }
        report::write_html(&inv, &infos, instant, p)
            .map_err(|e| runtime(format!("{}: {e}", p.display())))?;
    }
    if let Some(p) = &a.dot {
        report::write_dot(&inv, p).map_err(|e| runtime(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}
