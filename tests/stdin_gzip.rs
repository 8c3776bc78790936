//! `trustmap analyze -` (a pcap on stdin) and gzip-compressed captures (by file and on stdin, one
//! member or several concatenated) give exactly the same events as the plain files.
//!
//! The gzip files are made with the `gzip` command (an Essential package on Debian/Ubuntu): the
//! test fails, rather than skips, when it is missing. Stdin is also fed in small pieces with pauses,
//! so the reader sees short reads through the file header and the first records.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::assert_same;

fn pcap(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Captures with many handshakes, 1-byte segments, a 340 kB Certificate, mTLS, VXLAN.
const INPUTS: &[&str] = &[
    "pcaps/cases/estate.pcap",
    "pcaps/cases/tcp-1byte.pcap",
    "pcaps/zeek/tls-fragmented-handshake.pcap",
    "pcaps/cases/mtls.pcap",
    "pcaps/cases/vxlan.pcap",
];

fn check(what: &str, out: &Output) -> Vec<u8> {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{what}: {:?}\n{err}",
        out.status
    );
    out.stdout.clone()
}

fn analyze(args: &[&Path]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:"])
        .args(args)
        .output()
        .expect("run trustmap");
    check(&format!("analyze {args:?}"), &out)
}

/// `analyze -` with `data` written to stdin. With `trickle`, the first 3 bytes go alone, then a
/// pause long enough for trustmap to start and block on stdin, then 7-byte pieces with pauses
/// through the file header and the first records, so its reads come back short.
fn analyze_stdin(data: &[u8], trickle: bool) -> Vec<u8> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trustmap");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    // Write errors (trustmap gave up early) are ignored here: its exit status and stderr say why.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut rest: &[u8] = &data;
        if trickle {
            stdin.write_all(&rest[..3])?;
            stdin.flush()?;
            std::thread::sleep(Duration::from_millis(250));
            rest = &rest[3..];
            let head = rest.len().min(4 << 10);
            for (i, piece) in rest[..head].chunks(7).enumerate() {
                stdin.write_all(piece)?;
                stdin.flush()?;
                if i < 12 || i % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(8));
                }
            }
            rest = &rest[head..];
        }
        stdin.write_all(rest)
    });
    let out = child.wait_with_output().expect("wait trustmap");
    let _ = writer.join().expect("stdin writer");
    check(&format!("analyze - (trickle {trickle})"), &out)
}

fn gzip(src: &Path, dst: &Path) {
    let out = Command::new("gzip")
        .args(["-c", "-6", "-n"])
        .arg(src)
        .output()
        .expect("the `gzip` command is needed by this test (Debian: package gzip)");
    assert!(out.status.success(), "gzip {}", src.display());
    assert_eq!(out.stdout[..2], [0x1f, 0x8b], "gzip output");
    std::fs::write(dst, &out.stdout).expect("write gz");
}

/// The events of a run, checked to be NDJSON with handshakes in them (so that two empty outputs
/// cannot compare equal).
fn tls_events(what: &str, out: &[u8]) -> usize {
    let text = std::str::from_utf8(out).expect("UTF-8");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}")))
        .filter(|v| v["event"]["dataset"] == "trustmap.tls")
        .count()
}

#[test]
fn stdin_and_gzip_give_the_same_events_as_the_file() {
    let dir = testkit::TempDir::new("stdin-gzip-same");
    for rel in INPUTS {
        let plain = pcap(rel);
        let want = analyze(&[&plain]);
        assert!(tls_events(rel, &want) > 0, "{rel}: no trustmap.tls events");
        let raw = std::fs::read(&plain).expect("read capture");
        let gz = dir.join(format!(
            "{}.gz",
            plain.file_name().unwrap().to_string_lossy()
        ));
        gzip(&plain, &gz);
        let gz_bytes = std::fs::read(&gz).expect("read gz");

        assert_same(
            &format!("{rel} on stdin"),
            &analyze_stdin(&raw, false),
            &want,
        );
        assert_same(
            &format!("{rel} on stdin, short reads"),
            &analyze_stdin(&raw, true),
            &want,
        );
        assert_same(&format!("{rel}.gz"), &analyze(&[&gz]), &want);
        assert_same(
            &format!("{rel}.gz on stdin"),
            &analyze_stdin(&gz_bytes, false),
            &want,
        );
        assert_same(
            &format!("{rel}.gz on stdin, short reads"),
            &analyze_stdin(&gz_bytes, true),
            &want,
        );
    }

    // Several inputs: a mix of gzip and plain files, and stdin among them, in one run.
    let a = pcap(INPUTS[3]);
    let b = pcap(INPUTS[4]);
    let want = analyze(&[&a, &b]);
    let agz = dir.join("a.pcap.gz");
    gzip(&a, &agz);
    assert_same("a.gz b", &analyze(&[&agz, &b]), &want);
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:"])
        .arg(&agz)
        .arg("-")
        .stdin(std::fs::File::open(&b).expect("open b"))
        .output()
        .expect("run trustmap");
    assert_same("a.gz -(b)", &check("a.gz -", &out), &want);

    // A multi-member gzip (gzip a > x; gzip b >> x) is one stream: its members concatenated.
    // Concatenating two pcaps gives one pcap header then a second header in the middle, which is
    // not a capture; so split one capture's bytes into two members instead.
    let raw = std::fs::read(pcap(INPUTS[1])).expect("read");
    let (h1, h2) = (dir.join("part1"), dir.join("part2"));
    let mid = raw.len() / 2;
    std::fs::write(&h1, &raw[..mid]).expect("write");
    std::fs::write(&h2, &raw[mid..]).expect("write");
    let (g1, g2) = (dir.join("part1.gz"), dir.join("part2.gz"));
    gzip(&h1, &g1);
    gzip(&h2, &g2);
    let mut multi = std::fs::read(&g1).expect("read");
    multi.extend(std::fs::read(&g2).expect("read"));
    let mgz = dir.join("multi.pcap.gz");
    std::fs::write(&mgz, &multi).expect("write");
    assert_same(
        "two gzip members",
        &analyze(&[&mgz]),
        &analyze(&[&pcap(INPUTS[1])]),
    );
}

/// A damaged gzip stream after a valid start ends that input early (exit 0, events before the
/// damage), and stdin that is not a capture is a clean runtime error (exit 1).
#[test]
fn truncated_gzip_and_garbage_stdin() {
    let dir = testkit::TempDir::new("stdin-gzip-trunc");
    let plain = pcap(INPUTS[0]);
    let gz = dir.join("estate.pcap.gz");
    gzip(&plain, &gz);
    let bytes = std::fs::read(&gz).expect("read");
    let cut = dir.join("cut.pcap.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:"])
        .arg(&cut)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
    let n = tls_events("cut gz", &out.stdout);
    let all = tls_events("estate", &analyze(&[&plain]));
    assert!(n > 0 && n < all, "cut gzip: {n} of {all} handshakes");

    let mut child = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "garbage on stdin: {err}");
    assert!(
        err.starts_with("trustmap: -: not a pcap/pcapng file") && err.lines().count() == 1,
        "garbage on stdin: {err:?}"
    );
    assert!(out.stdout.is_empty());
}
