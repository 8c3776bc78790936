//! TLS record deframer: a server flight (ServerHello, Certificate with a real 3-certificate chain
//! from the Zeek corpus, ServerHelloDone) fed as one segment, as 1-byte segments, and re-framed
//! into 512-byte records. `cargo bench -p analyzer --bench deframer`
#![forbid(unsafe_code)]

use analyzer::tls::deframer::{Deframer, Event};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// Handshake content type, record version TLS 1.2.
const HANDSHAKE: u8 = 22;
const VERSION: [u8; 2] = [3, 3];

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/x509")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn u24(n: usize) -> [u8; 3] {
    let b = (n as u32).to_be_bytes();
    [b[1], b[2], b[3]]
}

fn message(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![typ];
    m.extend_from_slice(&u24(body.len()));
    m.extend_from_slice(body);
    m
}

/// ServerHello + Certificate(chain) + ServerHelloDone, as handshake bytes (no record layer).
fn flight(chain: &[Vec<u8>]) -> Vec<u8> {
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[0x5a; 32]); // random
    sh.push(32);
    sh.extend_from_slice(&[0x11; 32]); // session id
    sh.extend_from_slice(&[0xc0, 0x2f, 0]); // cipher, compression
    let mut list = Vec::new();
    for c in chain {
        list.extend_from_slice(&u24(c.len()));
        list.extend_from_slice(c);
    }
    let mut cert = u24(list.len()).to_vec();
    cert.extend_from_slice(&list);
    let mut f = message(2, &sh);
    f.extend(message(11, &cert));
    f.extend(message(14, &[]));
    f
}

/// Handshake bytes cut into records of at most `max` payload bytes.
fn records(hs: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in hs.chunks(max) {
        out.push(HANDSHAKE);
        out.extend_from_slice(&VERSION);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Feeds `segments` into a fresh deframer; returns the handshake messages completed.
fn run<'a>(segments: &[&'a [u8]], out: &mut Vec<Event<'a>>) -> usize {
    out.clear();
    let mut d = Deframer::new(1 << 20);
    for s in segments {
        d.feed(s, out);
    }
    out.iter()
        .filter(|e| matches!(e, Event::Handshake { .. }))
        .count()
}

fn bench(c: &mut Criterion) {
    let chain: Vec<Vec<u8>> = (0..3)
        .map(|i| fixture(&format!("chrome-34-google.{i}.der")))
        .collect();
    let hs = flight(&chain);
    let whole = records(&hs, 16_384);
    let small = records(&hs, 512);
    let mut out = Vec::new();
    for wire in [&whole, &small] {
        assert_eq!(run(&[wire.as_slice()], &mut out), 3, "flight must deframe");
    }
    let bytes: Vec<&[u8]> = whole.chunks(1).collect();
    assert_eq!(run(&bytes, &mut out), 3);

    let mut g = c.benchmark_group("deframer");
    g.throughput(Throughput::Bytes(whole.len() as u64));
    g.bench_function("flight_one_segment", |b| {
        b.iter(|| run(&[black_box(whole.as_slice())], &mut out))
    });
    g.bench_function("flight_1_byte_segments", |b| {
        b.iter(|| run(black_box(&bytes), &mut out))
    });
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("flight_512_byte_records", |b| {
        b.iter(|| run(&[black_box(small.as_slice())], &mut out))
    });
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
