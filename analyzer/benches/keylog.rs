//! TLS 1.3 handshake decryption against chain parsing, on the real OpenSSL handshakes of
//! `pcaps/cases/tls13-keylog.pcap` (7 handshakes, 6 with secrets in `tls13-keylog.keys`):
//! the whole capture through the capture engine and the analyzer with the key log and without
//! it (the difference is the decryption of 6 flights: key derivation, AEAD opens, the 1.3
//! Certificate parsers), and the parse of the chain those handshakes present (2 certificates,
//! what a first sighting costs). `cargo bench -p analyzer --bench keylog`
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use analyzer::tls::keylog::KeyLog;
use analyzer::{cert, Analyzer, AnalyzerConfig};
use capture::{Engine, EngineConfig};
use criterion::{criterion_group, criterion_main, Criterion};

fn case(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pcaps/cases")
        .join(name)
}

/// Every packet of the capture, read once.
fn packets() -> Vec<(u64, u32, Vec<u8>)> {
    let mut v = Vec::new();
    capture::source::read_file(&case("tls13-keylog.pcap"), &mut |p| {
        v.push((p.ts_ns, p.linktype, p.data.to_vec()))
    })
    .expect("tls13-keylog.pcap");
    v
}

/// The capture through the engine and an analyzer with `cfg`: its outputs.
fn analyze(pkts: &[(u64, u32, Vec<u8>)], cfg: &AnalyzerConfig) -> Vec<analyzer::Output> {
    let mut e = Engine::new(EngineConfig::default(), Analyzer::new(cfg.clone()));
    for (ts, lt, d) in pkts {
        e.process(&capture::RawPacket {
            ts_ns: *ts,
            linktype: *lt,
            data: d,
            orig_len: d.len() as u32,
        });
    }
    e.finish().0.out
}

fn run(pkts: &[(u64, u32, Vec<u8>)], cfg: &AnalyzerConfig) -> usize {
    analyze(pkts, cfg).len()
}

fn bench(c: &mut Criterion) {
    let pkts = packets();
    let keylog = KeyLog::new();
    keylog
        .add_file(&case("tls13-keylog.keys"))
        .expect("tls13-keylog.keys");
    let with = AnalyzerConfig {
        keylog: Some(Arc::new(keylog)),
        ..AnalyzerConfig::default()
    };
    let without = AnalyzerConfig::default();
    // The server chain (leaf + intermediate) of these handshakes, as DER.
    let chain: Vec<Vec<u8>> = analyze(&pkts, &with)
        .iter()
        .find_map(|o| match o {
            analyzer::Output::Handshake(h) => h.server_chain.clone(),
            _ => None,
        })
        .expect("a decrypted chain")
        .iter()
        .map(|c| c.info.der.clone())
        .collect();
    assert_eq!(chain.len(), 2);
    let mut g = c.benchmark_group("keylog");
    g.bench_function("capture_7_handshakes_with_keylog", |b| {
        b.iter(|| black_box(run(&pkts, &with)))
    });
    g.bench_function("capture_7_handshakes_without_keylog", |b| {
        b.iter(|| black_box(run(&pkts, &without)))
    });
    g.bench_function("parse_the_2_certificate_chain", |b| {
        b.iter(|| {
            for der in &chain {
                black_box(cert::parse(black_box(der), [0; 32]));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
