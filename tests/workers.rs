//! `trustmap analyze --workers N` gives byte-identical events for every N.
//!
//! Runs the built binary over the Zeek corpus and the generated cases (all in one run, where the
//! clock jumps back and forth between files, and per file), and over the cases rewritten with
//! every IPv4 packet split into IP fragments (some sent last fragment first), which must also give
//! the same events as the unfragmented capture.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::assert_same;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn pcaps(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    v
}

/// NDJSON events of one run, and its summary (stderr without `-q`).
fn run(workers: usize, files: &[PathBuf], quiet: bool) -> (Vec<u8>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustmap"));
    cmd.arg("analyze");
    if quiet {
        cmd.arg("-q");
    }
    cmd.args(["-o", "-", "--db", ":memory:", "--workers"])
        .arg(workers.to_string())
        .args(files);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "workers {workers}: {err}");
    (out.stdout, err)
}

fn check_all_n(what: &str, files: &[PathBuf]) -> Vec<u8> {
    let (base, _) = run(1, files, true);
    assert!(!base.is_empty(), "{what}: no events");
    for n in 2..=4 {
        let (got, _) = run(n, files, true);
        assert_same(&format!("{what}, --workers {n}"), &got, &base);
    }
    base
}

/// Summary lines that do not depend on the number of workers.
fn same_counters(summary: &str) -> Vec<&str> {
    let v: Vec<&str> = summary
        .lines()
        .filter(|l| !l.starts_with("  packet stage:") && !l.starts_with("  per-packet time"))
        .collect();
    assert!(
        v.iter().any(|l| l.contains("handshake latency")),
        "{summary}"
    );
    v
}

#[test]
fn whole_corpus_in_one_run_is_identical_for_1_to_4_workers() {
    let mut files = pcaps("pcaps/zeek");
    files.extend(pcaps("pcaps/cases"));
    assert!(files.len() > 100);
    check_all_n("all pcaps", &files);
    // The summary's counters (capture, reassembly, chains, handshake latency) are the same too:
    // only the worker count, the cross-worker duplicates and the wall-clock timings differ.
    let (_, one) = run(1, &files, false);
    let (_, three) = run(3, &files, false);
    assert_eq!(same_counters(&three), same_counters(&one));
    // The analyzer's counters reach the summary, summed over workers: the corpus holds 2 SSLv2
    // flows, 10 DTLS flows, and 4 protocol anomalies of 3 kinds.
    for want in [
        "sslv2 2,",
        "dtls flows 10,",
        "protocol anomalies: bad_record_header 2, message_too_large 1, malformed_message 1",
    ] {
        assert!(three.contains(want), "{want:?} missing:\n{three}");
    }
    // The order of the inputs changes the clock's history: reversed, still identical.
    files.reverse();
    check_all_n("all pcaps reversed", &files);
}

#[test]
fn single_files_are_identical_for_1_to_4_workers() {
    for f in [
        "pcaps/cases/port-reuse.pcap",
        "pcaps/cases/reorder-dup.pcap",
        "pcaps/cases/vxlan.pcap",
        "pcaps/cases/estate.pcap",
        "pcaps/zeek/google-duplicate.pcap",
        "pcaps/zeek/dtls1_2.pcap",
        "pcaps/zeek/pppoe-over-qinq.pcap",
    ] {
        check_all_n(f, &[Path::new(ROOT).join(f)]);
    }
}

// --- IP fragmentation -----------------------------------------------------------------------

/// Bytes of IP payload per fragment (a multiple of 8).
const FRAG: usize = 48;

/// Rewrites a little-endian classic pcap of Ethernet frames: every untagged IPv4 frame with more
/// than `FRAG` bytes of IP payload becomes fragments of `FRAG` bytes (every other frame sends
/// them last first). Returns the number of frames split.
fn fragment_pcap(src: &Path, dst: &Path) -> usize {
    let d = std::fs::read(src).unwrap();
    assert_eq!(&d[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "{}", src.display());
    assert_eq!(u32::from_le_bytes(d[20..24].try_into().unwrap()), 1);
    let mut out = d[..24].to_vec();
    let mut at = 24;
    let mut split = 0;
    let mut id = 0x4000u16;
    while at + 16 <= d.len() {
        let hdr = &d[at..at + 16];
        let incl = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        let frame = &d[at + 16..at + 16 + incl];
        at += 16 + incl;
        let record = |out: &mut Vec<u8>, f: &[u8]| {
            out.extend_from_slice(&hdr[..8]);
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        };
        let ip = &frame[14.min(frame.len())..];
        let is_v4 = frame.len() > 34 && frame[12..14] == [0x08, 0x00] && ip[0] >> 4 == 4;
        let ihl = if is_v4 {
            usize::from(ip[0] & 0x0f) * 4
        } else {
            0
        };
        let total = if is_v4 {
            usize::from(u16::from_be_bytes([ip[2], ip[3]]))
        } else {
            0
        };
        let unfragmented = is_v4 && ip[6] & 0x3f == 0 && ip[7] == 0;
        if !unfragmented || ihl < 20 || total > ip.len() || total <= ihl + FRAG {
            record(&mut out, frame);
            continue;
        }
        let payload = &ip[ihl..total];
        let mut frags = Vec::new();
        for (i, chunk) in payload.chunks(FRAG).enumerate() {
            let off = (i * FRAG / 8) as u16;
            let more = (i + 1) * FRAG < payload.len();
            let mut f = frame[..14].to_vec();
            let mut h = ip[..ihl].to_vec();
            h[2..4].copy_from_slice(&((ihl + chunk.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            h[6..8].copy_from_slice(&(off | if more { 0x2000 } else { 0 }).to_be_bytes());
            f.extend_from_slice(&h);
            f.extend_from_slice(chunk);
            frags.push(f);
        }
        if split % 2 == 1 {
            frags.reverse();
        }
        for f in &frags {
            record(&mut out, f);
        }
        id = id.wrapping_add(1);
        split += 1;
    }
    std::fs::write(dst, out).unwrap();
    split
}

#[test]
fn fragmented_captures_are_identical_for_1_to_4_workers_and_to_the_original() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("workers-fragmented");
    std::fs::create_dir_all(&dir).unwrap();
    let mut orig = Vec::new();
    let mut frag = Vec::new();
    let mut split = 0;
    for f in pcaps("pcaps/cases") {
        let name = f.file_name().unwrap().to_owned();
        let to = dir.join(&name);
        split += fragment_pcap(&f, &to);
        orig.push(f);
        frag.push(to);
    }
    assert!(split > 100, "only {split} frames split");
    let base = check_all_n("fragmented cases", &frag);
    let (want, _) = run(1, &orig, true);
    assert_same("fragmented vs original", &base, &want);
    // The fragments were reassembled (by the reader with several workers).
    let (_, summary) = run(2, &frag, false);
    let (_, one) = run(1, &frag, false);
    assert_eq!(same_counters(&summary), same_counters(&one));
    let line = summary
        .lines()
        .find(|l| l.contains("ip fragments"))
        .unwrap_or_default();
    assert!(
        !line.contains("reassembled 0") && !line.contains("ip fragments 0"),
        "{summary}"
    );
    assert!(summary.contains("decode problems: none"), "{summary}");
}
