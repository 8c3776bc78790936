//! X.509 parsing of real certificates (the Zeek corpus certificates in `tests/data/x509`): the
//! cost of a certificate seen for the first time (`cert::parse`), and of one seen again
//! (`CertCache::get_or_parse` hit: SHA-256 of the DER + one map lookup).
//! `cargo bench -p analyzer --bench x509`
#![forbid(unsafe_code)]

use analyzer::cert::{self, CertCache};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// Every DER fixture, sorted by name.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/x509");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "der"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    v.sort();
    v
}

fn bench(c: &mut Criterion) {
    let certs = fixtures();
    assert!(certs.len() >= 20, "x509 fixtures missing");
    let mut g = c.benchmark_group("x509");
    g.throughput(Throughput::Elements(certs.len() as u64));
    g.bench_function(format!("parse_all_{}_certs", certs.len()), |b| {
        b.iter(|| {
            for (_, der) in &certs {
                black_box(cert::parse(black_box(der), [0; 32]));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    // A few representative kinds: RSA leaf, RSA CA, ECDSA, with SCTs, ML-DSA (unknown algorithm).
    for name in [
        "chrome-34-google.0",
        "chrome-34-google.1",
        "ecdsa-cert.0",
        "certificate-with-sct.0",
        "ml-dsa-44-cert.0",
    ] {
        let Some((_, der)) = certs.iter().find(|(n, _)| n == name) else {
            continue;
        };
        g.bench_with_input(BenchmarkId::new("parse", name), der, |b, der| {
            b.iter(|| cert::parse(black_box(der), [0; 32]))
        });
    }
    let mut cache = CertCache::new();
    for (_, der) in &certs {
        cache.get_or_parse(der);
    }
    if let Some((_, der)) = certs.iter().find(|(n, _)| n == "chrome-34-google.0") {
        g.bench_function("cache_hit", |b| {
            b.iter(|| cache.get_or_parse(black_box(der)).1)
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
