//! Per-handshake cost of the packet stage on real bytes: full TLS 1.2 handshakes (genuine rustls
//! transcripts from `trustmap-benchgen`, framed as real TCP) read once into memory, then fed
//! through a fresh capture [`Engine`] running the [`Analyzer`] each iteration (decode, flow table,
//! reassembly, record deframer, hello parsing, JA3/JA4, certificate cache). No chain building,
//! findings, events or inventory: this isolates the "certificate cache" path from them.
//!
//! - `repeated`: 200 distinct server chains; the certificate cache is warm (carried from one
//!   iteration to the next), as in a long capture where chains repeat.
//! - `unique`: every leaf certificate distinct, cold cache each iteration (each leaf parsed once;
//!   the few issuing CAs are shared, as in any PKI).
//!
//! `cargo bench -p analyzer --bench handshake`; criterion's `thrpt` is handshakes/s, and one
//! summary line per case gives handshakes/s of the best of a few plain passes.
#![forbid(unsafe_code)]

use analyzer::{Analyzer, AnalyzerConfig, CertCache, Output};
use capture::{Engine, EngineConfig, RawPacket};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One captured frame, owned.
struct Frame {
    ts_ns: u64,
    linktype: u32,
    data: Vec<u8>,
    orig_len: u32,
}

/// A generated capture of TLS 1.2 full handshakes only (no bulk data beyond the generator's
/// minimum), read into memory.
fn capture(unique_chains: usize, size: u64) -> Vec<Frame> {
    let cfg = trustmap_benchgen::Config {
        size,
        seed: 7,
        handshake_share: 1.0,
        unique_chains,
        pool: unique_chains.max(256),
        tls13_share: 0.0,
        ipv6_share: 0.2,
        ..trustmap_benchgen::Config::default()
    };
    let (_, bytes) = trustmap_benchgen::generate(&cfg, Vec::new()).expect("generate a capture");
    let mut frames = Vec::new();
    capture::source::read_from(std::io::Cursor::new(bytes), &mut |p: &RawPacket<'_>| {
        frames.push(Frame {
            ts_ns: p.ts_ns,
            linktype: p.linktype,
            data: p.data.to_vec(),
            orig_len: p.orig_len,
        })
    })
    .expect("read the generated capture");
    frames
}

/// Runs every frame through `engine`; returns the handshakes the analyzer emitted.
fn run(mut engine: Engine<Analyzer>, frames: &[Frame]) -> (u64, CertCache) {
    let mut handshakes = 0u64;
    let mut count = |out: &mut Vec<Output>| {
        for o in out.drain(..) {
            if let Output::Handshake(h) = o {
                handshakes += 1;
                black_box(h);
            }
        }
    };
    for f in frames {
        engine.process(&RawPacket {
            ts_ns: f.ts_ns,
            linktype: f.linktype,
            data: &f.data,
            orig_len: f.orig_len,
        });
        count(&mut engine.app.out);
    }
    let (mut app, _) = engine.finish();
    count(&mut app.out);
    (handshakes, std::mem::take(&mut app.certs))
}

fn engine(certs: CertCache) -> Engine<Analyzer> {
    let mut a = Analyzer::new(AnalyzerConfig::default());
    a.certs = certs;
    Engine::new(EngineConfig::default(), a)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    for (name, chains, size, warm) in [
        ("repeated", 200usize, 24u64 << 20, true),
        ("unique", 3000, 24 << 20, false),
    ] {
        let frames = capture(chains, size);
        let (n, warmed) = run(engine(CertCache::new()), &frames);
        assert!(n > 1000, "{name}: only {n} handshakes");
        let leaves = warmed.len();
        let mut cache = if warm { warmed } else { CertCache::new() };
        // A few plain passes first: handshakes/s of the best one.
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let e = engine(std::mem::take(&mut cache));
            let t = Instant::now();
            let (_, c) = run(e, &frames);
            best = best.min(t.elapsed());
            cache = if warm { c } else { CertCache::new() };
        }
        eprintln!(
            "handshake/{name}: {n} TLS 1.2 full handshakes, {} frames, {leaves} distinct certificates, \
             best pass {:.1} ms = {:.0} handshakes/s ({:.2} µs each)",
            frames.len(),
            best.as_secs_f64() * 1e3,
            n as f64 / best.as_secs_f64(),
            best.as_secs_f64() * 1e6 / n as f64
        );
        g.throughput(Throughput::Elements(n));
        let cache = RefCell::new(cache);
        g.bench_function(name, |b| {
            b.iter_batched(
                || engine(cache.take()),
                |e| {
                    let (h, c) = run(e, &frames);
                    if warm {
                        cache.replace(c);
                    }
                    h
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
