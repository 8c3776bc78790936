//! The line-rate path (DESIGN.md §2): a packet of a flow already bypassed must cost one hash
//! lookup and a flag check. Measured through `Engine::process` (Ethernet + IPv4 + TCP decode,
//! lookup, recency touch, bypass counter) with 1, 10k and 1M bypassed flows in the table, and as
//! raw `FlowTable` lookups at 10k and 1M flows. Flows are visited in a shuffled order so that the
//! big tables really miss the caches. `cargo bench -p capture --bench flow_lookup`
#![forbid(unsafe_code)]

use capture::decode::linktype;
use capture::flow::{FlowKey, FlowTable, Keyed};
use capture::{App, Dir, EndReason, Engine, EngineConfig, FlowCtx, RawPacket, Verdict};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Table sizes measured.
const SIZES: [(usize, &str); 2] = [(10_000, "10k"), (1_000_000, "1M")];
/// Capture time of every packet: constant, so no flow ever times out during a run.
const TS: u64 = 1_000_000_000;
/// Ethernet + IPv4 + TCP headers and one payload byte.
const FRAME: usize = 14 + 20 + 20 + 1;
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Wants nothing: every flow is bypassed at its first payload byte.
struct BypassAll;

impl App for BypassAll {
    type FlowState = ();
    fn on_stream(&mut self, _: &FlowCtx, _: &mut (), _: Dir, _: u64, _: &[u8]) -> Verdict {
        Verdict::Bypass
    }
    fn on_datagram(&mut self, _: &FlowCtx, _: &mut (), _: Dir, _: u64, _: &[u8]) -> Verdict {
        Verdict::Bypass
    }
    fn on_flow_end(&mut self, _: &FlowCtx, _: (), _: u64, _: EndReason) {}
}

fn client(i: usize) -> Ipv4Addr {
    let i = i as u32;
    Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// One client -> server data segment (PSH|ACK, 1 byte) of flow `i`, Ethernet framed.
fn frame(i: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    out.extend_from_slice(&[0x45, 0, 0, 41, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    out.extend_from_slice(&client(i).octets());
    out.extend_from_slice(&SERVER.octets());
    out.extend_from_slice(&(40_000 + (i % 20_000) as u16).to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out.extend_from_slice(&1000u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, b'x']);
}

/// xorshift64*: a fixed, dependency-free shuffle.
fn shuffled(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let j = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn pkt(frames: &[u8], k: usize) -> RawPacket<'_> {
    let data = frames.get(k * FRAME..(k + 1) * FRAME).unwrap_or_default();
    RawPacket {
        ts_ns: TS,
        linktype: linktype::ETHERNET,
        data,
        orig_len: data.len() as u32,
    }
}

/// An engine holding `n` bypassed flows, and their frames in a shuffled visiting order.
fn bypassed_engine(n: usize) -> (Engine<BypassAll>, Vec<u8>) {
    let mut frames = Vec::with_capacity(n * FRAME);
    for i in shuffled(n) {
        frame(i, &mut frames);
    }
    let mut e = Engine::new(EngineConfig::default(), BypassAll);
    for k in 0..n {
        e.process(&pkt(&frames, k));
    }
    assert_eq!(e.flow_count(), n, "every flow tracked");
    let before = e.stats.bypassed_packets;
    e.process(&pkt(&frames, 0));
    assert_eq!(e.stats.bypassed_packets, before + 1, "the flow is bypassed");
    (e, frames)
}

fn bench_bypass(c: &mut Criterion) {
    let mut g = c.benchmark_group("bypass_packet");
    g.throughput(Throughput::Elements(1));
    let (mut e, frames) = bypassed_engine(1);
    g.bench_function("engine_process/1_flow", |b| {
        b.iter(|| e.process(black_box(&pkt(&frames, 0))))
    });
    drop(e);
    for (n, label) in SIZES {
        let (mut e, frames) = bypassed_engine(n);
        let mut k = 0;
        g.bench_function(
            BenchmarkId::new("engine_process", format!("{label}_flows")),
            |b| {
                b.iter(|| {
                    e.process(black_box(&pkt(&frames, k)));
                    k += 1;
                    if k == n {
                        k = 0;
                    }
                })
            },
        );
    }
    g.finish();
}

/// A table value that stores its key (the engine's entries rebuild theirs from the flow context).
struct Entry(FlowKey);

impl Keyed for Entry {
    fn flow_key(&self) -> FlowKey {
        self.0
    }
}

fn bench_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_table");
    g.throughput(Throughput::Elements(1));
    for (n, label) in SIZES {
        let mut t: FlowTable<Entry> = FlowTable::new(n);
        let keys: Vec<FlowKey> = shuffled(n)
            .into_iter()
            .map(|i| {
                FlowKey::new(
                    6,
                    IpAddr::V4(client(i)),
                    40_000 + (i % 20_000) as u16,
                    IpAddr::V4(SERVER),
                    443,
                )
                .0
            })
            .collect();
        for k in &keys {
            t.insert(*k, TS, Entry(*k));
        }
        assert_eq!(t.len(), n);
        let mut k = 0;
        g.bench_function(BenchmarkId::new("find", label), |b| {
            b.iter(|| {
                let slot = t.find(black_box(&keys[k]));
                k = if k + 1 == n { 0 } else { k + 1 };
                slot
            })
        });
        g.bench_function(BenchmarkId::new("find_touch", label), |b| {
            b.iter(|| {
                if let Some(s) = t.find(black_box(&keys[k])) {
                    t.touch(s, TS);
                }
                k = if k + 1 == n { 0 } else { k + 1 };
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_bypass, bench_table
}
criterion_main!(benches);
