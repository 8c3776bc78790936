//! CLI: `trustmap-benchgen --size 1G -o big.pcap` writes the capture and `big.pcap.manifest.json`.
#![forbid(unsafe_code)]

use clap::Parser;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use trustmap_benchgen::{generate, parse_size, Config};

/// Output buffer: large enough that the kernel sees few, big writes.
const WRITE_BUF: usize = 8 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "trustmap-benchgen",
    version,
    about = "Write a large, realistic TLS pcap (real rustls handshakes, real TCP framing) and a manifest of what it contains"
)]
struct Args {
    /// Output pcap path; the manifest goes to <OUT>.manifest.json.
    #[arg(short, long)]
    out: PathBuf,
    /// Target file size: 64M, 1G, 2GiB... (binary multiples).
    #[arg(long, default_value = "64M")]
    size: String,
    /// Seed: same seed and options give a byte-identical file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of packets that are TCP setup + TLS handshake.
    #[arg(long, default_value_t = 0.01)]
    handshake_share: f64,
    /// Distinct server chains (leaf certificates).
    #[arg(long, default_value_t = 200)]
    unique_chains: usize,
    /// Pre-made handshake transcripts (at least --unique-chains).
    #[arg(long, default_value_t = 256)]
    pool: usize,
    /// Share of connections using TLS 1.3 (chain encrypted).
    #[arg(long, default_value_t = 0.3)]
    tls13_share: f64,
    /// Share of connections over IPv6.
    #[arg(long, default_value_t = 0.2)]
    ipv6_share: f64,
    /// IP MTU (segment payload = MTU - IP - 32).
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// Pure ACK every N data segments (packet-size mix: 2 gives ~1 kB average frames).
    #[arg(long, default_value_t = 2)]
    ack_every: u32,
    /// Largest bulk TLS record plaintext (64..=16384).
    #[arg(long, default_value_t = 16384)]
    max_record: usize,
    /// Concurrent interleaved connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Nominal link rate for timestamps, Mbit/s.
    #[arg(long, default_value_t = 10_000)]
    rate_mbps: u64,
    /// Capture start time, Unix seconds (default 2026-03-01T00:00:00Z).
    #[arg(long, default_value_t = 1_772_323_200)]
    start_unix: u64,
    /// Threads for building the handshake pool (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() {
    let a = Args::parse();
    let size = match parse_size(&a.size) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trustmap-benchgen: {e}");
            std::process::exit(2);
        }
    };
    let mut cfg = Config {
        size,
        seed: a.seed,
        handshake_share: a.handshake_share,
        unique_chains: a.unique_chains,
        pool: a.pool,
        tls13_share: a.tls13_share,
        ipv6_share: a.ipv6_share,
        mtu: a.mtu,
        ack_every: a.ack_every,
        max_record: a.max_record,
        concurrency: a.concurrency,
        rate_mbps: a.rate_mbps,
        start_unix: a.start_unix,
        ..Config::default()
    };
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    if let Err(e) = run(&cfg, &a.out) {
        eprintln!("trustmap-benchgen: {e}");
        std::process::exit(1);
    }
}

/// Hands full buffers to a writer thread, so that packet building (user time) overlaps the
/// kernel's copy into the page cache (about half the total on a small VM).
struct ThreadedWriter {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// Buffers in flight between the generator and the writer thread.
const WRITE_QUEUE: usize = 4;

impl ThreadedWriter {
    fn new(f: File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE);
        let handle = std::thread::spawn(move || {
            let mut f = f;
            for b in rx {
                f.write_all(&b)?;
            }
            f.flush()
        });
        ThreadedWriter {
            buf: Vec::with_capacity(WRITE_BUF),
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(WRITE_BUF));
        match &self.tx {
            Some(tx) => tx
                .send(full)
                .map_err(|_| std::io::Error::other("writer thread stopped")),
            None => Err(std::io::Error::other("writer closed")),
        }
    }

    fn close(mut self) -> std::io::Result<()> {
        self.send()?;
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| std::io::Error::other("writer thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Write for ThreadedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_BUF {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        // Durability is the writer thread's job at close; flushing here would only
        // fragment buffers.
        Ok(())
    }
}

fn run(cfg: &Config, out: &PathBuf) -> Result<(), String> {
    let f = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let t0 = std::time::Instant::now();
    let (m, w) = generate(cfg, ThreadedWriter::new(f))?;
    w.close().map_err(|e| format!("{}: {e}", out.display()))?;
    let total = t0.elapsed().as_secs_f64();
    let mpath = PathBuf::from(format!("{}.manifest.json", out.display()));
    let json = serde_json::to_string_pretty(&m).map_err(|e| e.to_string())?;
    std::fs::write(&mpath, json + "\n").map_err(|e| format!("{}: {e}", mpath.display()))?;
    let mb = m.bytes as f64 / 1e6;
    eprintln!(
        "wrote {} ({:.1} MB, {} packets, {} connections: {} TLS1.2 + {} TLS1.3, {} chains in clear) \
         pool {:.2}s, packets {:.2}s, total {:.2}s = {:.0} MB/s; manifest {}",
        out.display(),
        mb,
        m.packets,
        m.connections,
        m.handshakes_tls12,
        m.handshakes_tls13,
        m.unique_chains_in_clear,
        m.pool_seconds,
        m.write_seconds,
        total,
        mb / total.max(1e-9),
        mpath.display()
    );
    Ok(())
}
