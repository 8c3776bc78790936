//! Hostile captures through the whole binary: every pcap of pcaps/zeek and pcaps/cases truncated at
//! several offsets (inside the file header, inside a record header, inside a record, one byte
//! short), and with random bytes flipped at several rates (anywhere in the file, or only inside
//! packet data so the damage reaches the decoders and the TLS analyzer).
//!
//! What `trustmap analyze` must do with each mutant (DESIGN.md §3, capture::source):
//! - never panic (no "panicked" on stderr), never hang (killed after [`TIMEOUT`] = failure);
//! - write only valid NDJSON on stdout (one JSON object with `event.dataset` per line);
//! - a file whose 24-byte pcap header is intact is read to its end or to the first corrupt
//!   record: exit 0;
//! - a file shorter than its header stops the run: exit 1 and exactly one stderr line
//!   `trustmap: <path>: <reason>` (empty input / not a pcap/pcapng file / read error); a flipped
//!   header may do the same (bad magic) or be read (a flipped snaplen or link type is harmless).
//!
//! Mutants are batched, several files per invocation (the CLI reads them as one capture). Because a
//! bad header aborts the run, the runner then checks the message names that file and starts again
//! after it. A failing batch is re-run file by file to name the culprit; the mutants stay on disk.
//! Deterministic: a fixed-seed xorshift, no dependency.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A run that takes longer than this is a hang.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Mutants per invocation.
const BATCH: usize = 40;
/// Legacy pcap file header length.
const PCAP_HEADER: usize = 24;
/// Legacy pcap record header length.
const RECORD_HEADER: usize = 16;
/// Flip rates (per byte).
const RATES: &[f64] = &[1e-4, 1e-3, 1e-2, 5e-2];
/// Mutants per file, rate and region.
const SEEDS_PER_RATE: u64 = 2;

use testkit::Rng;

/// What the binary may do with a mutant's file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// Unchanged: the file must be read (never aborts the run).
    Intact,
    /// Shorter than 24 bytes: the run must stop here with exit 1.
    Truncated,
    /// Some header byte flipped: either.
    Flipped,
}

#[derive(Debug, Clone)]
struct Mutant {
    path: PathBuf,
    header: Header,
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for d in ["pcaps/zeek", "pcaps/cases"] {
        for e in std::fs::read_dir(root.join(d)).expect("pcap folder") {
            let p = e.expect("dir entry").path();
            if p.extension().is_some_and(|x| x == "pcap") {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(v.len() >= 110, "corpus incomplete: {} captures", v.len());
    v
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One capture and its layout: the file header (classic header, or pcapng Section Header Block)
/// that must be intact for the file to be accepted, and every record as (offset, header length,
/// packet data length).
struct Capture {
    name: String,
    bytes: Vec<u8>,
    header: usize,
    records: Vec<(usize, usize, usize)>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// A classic little-endian pcap from the corpus (all of them are).
fn load(p: &Path) -> Capture {
    let bytes = std::fs::read(p).expect("read capture");
    assert!(
        matches!(
            bytes.get(..4),
            Some([0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1])
        ),
        "{}: not a little-endian pcap",
        p.display()
    );
    let mut records = Vec::new();
    let mut off = PCAP_HEADER;
    while off + RECORD_HEADER <= bytes.len() {
        let caplen = le32(&bytes, off + 8) as usize;
        records.push((
            off,
            RECORD_HEADER,
            caplen.min(bytes.len() - off - RECORD_HEADER),
        ));
        off += RECORD_HEADER + caplen;
    }
    assert!(!records.is_empty(), "{}: no records", p.display());
    Capture {
        name: format!("{}.pcap", stem(p)),
        bytes,
        header: PCAP_HEADER,
        records,
    }
}

/// The same packets as pcapng: Section Header Block, one Interface Description Block with
/// nanosecond resolution (`if_tsresol` = 9), one Enhanced Packet Block per packet.
fn to_pcapng(c: &Capture) -> Capture {
    let b = &c.bytes;
    let nanos = b[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let mut o = Vec::with_capacity(b.len() + 16 * c.records.len() + 64);
    // SHB: type, length, byte-order magic, version 1.0, section length unknown, length.
    o.extend(0x0a0d_0d0au32.to_le_bytes());
    o.extend(28u32.to_le_bytes());
    o.extend(0x1a2b_3c4du32.to_le_bytes());
    o.extend(1u16.to_le_bytes());
    o.extend(0u16.to_le_bytes());
    o.extend((-1i64).to_le_bytes());
    o.extend(28u32.to_le_bytes());
    let header = o.len();
    let mut records = Vec::new();
    // IDB: link type, snaplen, if_tsresol = 9, end of options.
    records.push((o.len(), 32, 0));
    o.extend(1u32.to_le_bytes());
    o.extend(32u32.to_le_bytes());
    o.extend((le32(b, 20) as u16).to_le_bytes());
    o.extend(0u16.to_le_bytes());
    o.extend(le32(b, 16).to_le_bytes());
    o.extend([9, 0, 1, 0, 9, 0, 0, 0]);
    o.extend([0, 0, 0, 0]);
    o.extend(32u32.to_le_bytes());
    for &(off, _, len) in &c.records {
        let frac = u64::from(le32(b, off + 4));
        let ts = u64::from(le32(b, off)) * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        let pad = (4 - len % 4) % 4;
        let total = (32 + len + pad) as u32;
        records.push((o.len(), 28, len));
        o.extend(6u32.to_le_bytes());
        o.extend(total.to_le_bytes());
        o.extend(0u32.to_le_bytes());
        o.extend(((ts >> 32) as u32).to_le_bytes());
        o.extend((ts as u32).to_le_bytes());
        o.extend((len as u32).to_le_bytes());
        o.extend(le32(b, off + 12).to_le_bytes());
        o.extend(&b[off + RECORD_HEADER..off + RECORD_HEADER + len]);
        o.extend(std::iter::repeat_n(0u8, pad));
        o.extend(total.to_le_bytes());
    }
    Capture {
        name: c.name.replace(".pcap", ".pcapng"),
        bytes: o,
        header,
        records,
    }
}

/// Every capture of the corpus, classic and converted to pcapng.
fn captures() -> Vec<Capture> {
    let mut v = Vec::new();
    for p in corpus() {
        let c = load(&p);
        let ng = to_pcapng(&c);
        v.push(c);
        v.push(ng);
    }
    v
}

/// Outcome of one invocation.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    hung: bool,
    secs: f64,
}

fn run(files: &[&Mutant], workers: usize) -> Run {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:", "--workers"])
        .arg(workers.to_string())
        .args(files.iter().map(|m| &m.path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trustmap");
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let mut hung = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            hung = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.and_then(|s| s.code()),
        stdout: out_t.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
        hung,
        secs: t0.elapsed().as_secs_f64(),
    }
}

/// Stdout is NDJSON: every line one JSON object with a string `event.dataset`. Returns the number
/// of `trustmap.tls` events.
fn check_ndjson(out: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("stdout is not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("stdout does not end with a newline".into());
    }
    let mut tls = 0;
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("stdout line {}: {e}: {line:.200}", i + 1))?;
        match v["event"]["dataset"].as_str() {
            Some("trustmap.tls") => tls += 1,
            Some(_) => {}
            None => {
                return Err(format!(
                    "stdout line {}: no event.dataset: {line:.200}",
                    i + 1
                ))
            }
        }
    }
    Ok(tls)
}

/// Runs `files` (one capture), restarting after each file that stops the run. Returns the problems
/// found and the number of `trustmap.tls` events.
fn run_all(files: &[&Mutant], workers: usize, stats: &mut Stats) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut tls = 0;
    let mut rest: &[&Mutant] = files;
    while !rest.is_empty() {
        let r = run(rest, workers);
        stats.invocations += 1;
        stats.slowest = stats.slowest.max(r.secs);
        let names = || {
            rest.iter()
                .map(|m| m.path.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if r.hung {
            problems.push(format!(
                "hang (killed after {TIMEOUT:?}), --workers {workers}: {}",
                names()
            ));
            break;
        }
        if r.stderr.contains("panicked") {
            problems.push(format!(
                "panic, --workers {workers}: {}\n{}",
                names(),
                r.stderr
            ));
            break;
        }
        match check_ndjson(&r.stdout) {
            Ok(n) => tls += n,
            Err(e) => {
                problems.push(format!("bad NDJSON, --workers {workers}: {e}: {}", names()));
                break;
            }
        }
        match r.code {
            Some(0) => {
                if let Some(m) = rest.iter().find(|m| m.header == Header::Truncated) {
                    problems.push(format!(
                        "exit 0 although {} has no complete file header (run: {})",
                        m.path.display(),
                        names()
                    ));
                }
                if !r.stderr.trim().is_empty() {
                    problems.push(format!(
                        "exit 0 with -q but stderr {:?}: {}",
                        r.stderr,
                        names()
                    ));
                }
                break;
            }
            Some(1) => {
                // Exactly one line: "trustmap: <path>: <reason>", <path> one of ours.
                let line = r.stderr.trim_end_matches('\n');
                let hit = rest.iter().position(|m| {
                    line.strip_prefix("trustmap: ")
                        .and_then(|l| l.strip_prefix(m.path.to_string_lossy().as_ref()))
                        .and_then(|l| l.strip_prefix(": "))
                        .is_some_and(|reason| {
                            ["empty input", "not a pcap/pcapng file", "read error"]
                                .iter()
                                .any(|p| reason.starts_with(p))
                        })
                });
                let Some(i) = hit.filter(|_| !line.contains('\n')) else {
                    problems.push(format!(
                        "exit 1 with unexpected stderr {:?}: {}",
                        r.stderr,
                        names()
                    ));
                    break;
                };
                if rest[i].header == Header::Intact {
                    problems.push(format!(
                        "exit 1 on {} whose file header is intact: {line}",
                        rest[i].path.display()
                    ));
                }
                if let Some(m) = rest[..i].iter().find(|m| m.header == Header::Truncated) {
                    problems.push(format!(
                        "{} (no file header) was read without error before {line}",
                        m.path.display()
                    ));
                }
                stats.header_rejects += 1;
                rest = &rest[i + 1..];
            }
            other => {
                problems.push(format!(
                    "exit status {other:?}, --workers {workers}: {}\n{}",
                    names(),
                    r.stderr
                ));
                break;
            }
        }
    }
    (problems, tls)
}

#[derive(Debug, Default)]
struct Stats {
    mutants: usize,
    invocations: usize,
    header_rejects: usize,
    tls_events: usize,
    slowest: f64,
}

/// Runs every mutant in batches (alternating 1 and 2 workers). A failing batch is re-run file by
/// file to name the culprit.
fn run_mutants(what: &str, batches: &[Vec<Mutant>]) -> Stats {
    let t0 = Instant::now();
    let mut stats = Stats {
        mutants: batches.iter().map(Vec::len).sum(),
        ..Stats::default()
    };
    let mut problems = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let workers = 1 + b % 2;
        let refs: Vec<&Mutant> = batch.iter().collect();
        let (p, tls) = run_all(&refs, workers, &mut stats);
        stats.tls_events += tls;
        if p.is_empty() {
            continue;
        }
        let mut alone = Vec::new();
        for m in batch {
            alone.extend(run_all(&[m], workers, &mut stats).0);
        }
        if alone.is_empty() {
            problems.push(format!("only in a batch: {}", p.join("\n")));
        }
        problems.extend(alone);
    }
    eprintln!(
        "{what}: {} mutants, {} invocations, {} header rejects, {} trustmap.tls events, slowest run {:.2}s, total {:.1}s",
        stats.mutants,
        stats.invocations,
        stats.header_rejects,
        stats.tls_events,
        stats.slowest,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s) (mutants kept):\n{}",
        problems.len(),
        problems.join("\n")
    );
    stats
}

/// Batches with at most one mutant of each capture: the CLI reads a batch as one capture, so a
/// second mutant of the same capture would replay the same flows (retransmissions of a flow the
/// engine has already finished) and reach the analyzer far less. Round `r` holds the `r`-th
/// mutant of every capture, shuffled, cut into batches of [`BATCH`].
fn batches(per_file: Vec<Vec<Mutant>>, rng: &mut Rng) -> Vec<Vec<Mutant>> {
    let rounds = per_file.iter().map(Vec::len).max().unwrap_or(0);
    let mut per_file: Vec<std::vec::IntoIter<Mutant>> =
        per_file.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    for _ in 0..rounds {
        let mut round: Vec<Mutant> = per_file.iter_mut().filter_map(Iterator::next).collect();
        for i in (1..round.len()).rev() {
            let j = rng.index(i + 1);
            round.swap(i, j);
        }
        while !round.is_empty() {
            let rest = round.split_off(round.len().min(BATCH));
            out.push(std::mem::replace(&mut round, rest));
        }
    }
    out
}

/// Each capture (classic and pcapng) cut inside the file header (one capture in five), right after
/// it, inside the first record header, inside record headers and records at 1/6 .. 5/6 of the
/// file, inside its largest record (a certificate flight, usually), and one byte short of its end;
/// and each capture gzip-compressed, cut inside the compressed stream.
#[test]
fn truncated_captures() {
    let dir = testkit::TempDir::new("robustness-truncate");
    let mut per_file = Vec::new();
    for (fi, c) in captures().iter().enumerate() {
        let (b, recs) = (&c.bytes, &c.records);
        let mut cuts = vec![c.header, c.header + 8, b.len() - 1];
        if fi % 10 < 2 {
            cuts.extend([0, 1, 4, 12, c.header - 1]);
        }
        for k in 1..6 {
            let (off, hl, len) = recs[k * recs.len() / 6];
            cuts.push(off + 7);
            cuts.push(off + hl + len / 2);
        }
        let (off, hl, len) = *recs.iter().max_by_key(|r| r.2).expect("a record");
        cuts.push(off + hl + len / 2);
        cuts.sort_unstable();
        cuts.dedup();
        let mut mutants = Vec::new();
        for cut in cuts.into_iter().filter(|c| *c < b.len()) {
            let path = dir.join(format!("cut{cut}.{}", c.name));
            std::fs::write(&path, &b[..cut]).expect("write mutant");
            let header = if cut < c.header {
                Header::Truncated
            } else {
                Header::Intact
            };
            mutants.push(Mutant { path, header });
        }
        per_file.push(mutants);
    }
    // gzip-compressed classic captures (the `gzip` command, an Essential Debian package) cut
    // inside the gzip header (every tenth), inside the deflate stream and in the trailer.
    for (fi, p) in corpus().iter().enumerate() {
        let out = Command::new("gzip")
            .args(["-c", "-n"])
            .arg(p)
            .output()
            .expect("the `gzip` command is needed by this test (Debian: package gzip)");
        assert!(out.status.success(), "gzip {}", p.display());
        let gz = out.stdout;
        let mut cuts = vec![gz.len() / 3, 2 * gz.len() / 3, gz.len() - 4];
        if fi % 10 == 0 {
            cuts.push(5);
        }
        let mut mutants = Vec::new();
        for cut in cuts {
            let path = dir.join(format!("cut{cut}.{}.gz", stem(p)));
            std::fs::write(&path, &gz[..cut]).expect("write mutant");
            // Below the 10-byte gzip header nothing decompresses; a short deflate prefix may not
            // hold the 24-byte capture header yet.
            let header = match cut {
                0..10 => Header::Truncated,
                10..200 => Header::Flipped,
                _ => Header::Intact,
            };
            mutants.push(Mutant { path, header });
        }
        per_file.push(mutants);
    }
    let s = run_mutants(
        "truncated",
        &batches(per_file, &mut Rng::new(0x7472_756e_6361_7465)),
    );
    assert!(
        s.header_rejects >= 100,
        "header cuts rejected: {}",
        s.header_rejects
    );
    assert!(
        s.tls_events > 1000,
        "truncated captures still give handshakes: {}",
        s.tls_events
    );
}

/// Each capture (classic and pcapng) with bytes XORed with a random non-zero value at several
/// rates: anywhere in the file (headers included), and only inside packet data.
#[test]
fn byte_flipped_captures() {
    let dir = testkit::TempDir::new("robustness-flip");
    let mut rng = Rng::new(0x5eed_7275_7374_6d61);
    let mut per_file = Vec::new();
    for c in captures() {
        let b = &c.bytes;
        let data: Vec<(usize, usize)> = c
            .records
            .iter()
            .map(|&(off, hl, len)| (off + hl, off + hl + len))
            .filter(|(s, e)| s < e)
            .collect();
        let data_len: usize = data.iter().map(|(s, e)| e - s).sum();
        let mut mutants = Vec::new();
        for (ri, rate) in RATES.iter().enumerate() {
            for seed in 0..SEEDS_PER_RATE {
                for in_packets in [false, true] {
                    let mut m = b.clone();
                    let region = if in_packets { data_len } else { b.len() };
                    let n = ((region as f64 * rate).round() as usize).max(1);
                    let mut header = Header::Intact;
                    for _ in 0..n {
                        let pos = if in_packets {
                            let mut k = rng.index(data_len);
                            let mut at = 0;
                            for (s, e) in &data {
                                if k < e - s {
                                    at = s + k;
                                    break;
                                }
                                k -= e - s;
                            }
                            at
                        } else {
                            rng.index(b.len())
                        };
                        m[pos] ^= 1 + rng.index(255) as u8;
                        if pos < c.header {
                            header = Header::Flipped;
                        }
                    }
                    let path = dir.join(format!(
                        "flip{ri}-{seed}-{}.{}",
                        if in_packets { "data" } else { "any" },
                        c.name
                    ));
                    std::fs::write(&path, &m).expect("write mutant");
                    mutants.push(Mutant { path, header });
                }
            }
        }
        per_file.push(mutants);
    }
    let b = batches(per_file, &mut rng);
    let s = run_mutants("byte-flipped", &b);
    assert!(
        s.tls_events > 1000,
        "flipped captures still give handshakes: {}",
        s.tls_events
    );
}
