//! Base-layer decode (Ethernet, VLAN, IPv4/IPv6, TCP/UDP) on real frames, side by side:
//! trustmap's `PreTcp` (the engine's fast path), its general `decode_link`, and `etherparse`'s
//! `SlicedPacket` reading the same fields (addresses, ports, sequence number, payload length).
//! This decides whether `etherparse` replaces the hand-written base layers (issue 9).
//! The frames are every frame of the repository's real captures (pcaps/cases/*.pcap, Ethernet
//! link type). `cargo bench -p capture --bench decode`
#![forbid(unsafe_code)]

use capture::decode::{decode_link, linktype, Decoded, PreTcp};
use capture::RawPacket;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// Every frame of the classic-pcap Ethernet captures under pcaps/cases.
fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in testkit::corpus::case_pcaps() {
        let b = std::fs::read(&p).expect("capture");
        let le = |o: usize| {
            b.get(o..o + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        if le(0) != Some(0xa1b2_c3d4) || le(20) != Some(linktype::ETHERNET) {
            continue;
        }
        let mut off = 24;
        while let Some(incl) = le(off + 8) {
            let start = off + 16;
            let Some(f) = b.get(start..start + incl as usize) else {
                break;
            };
            out.push(f.to_vec());
            off = start + incl as usize;
        }
    }
    assert!(out.len() > 1000, "{} frames", out.len());
    out
}

fn pkt(f: &[u8]) -> RawPacket<'_> {
    RawPacket {
        ts_ns: 0,
        linktype: linktype::ETHERNET,
        data: f,
        orig_len: f.len() as u32,
    }
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("base_layers");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("trustmap_pretcp", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for f in &frames {
                if let Some(p) = PreTcp::decode(&pkt(f)) {
                    n = n.wrapping_add(u64::from(p.seq) ^ u64::from(p.payload_len));
                }
            }
            black_box(n)
        })
    });
    g.bench_function("trustmap_decode_link", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for f in &frames {
                match decode_link(linktype::ETHERNET, f) {
                    Ok(Decoded::Tcp(t)) => {
                        n = n.wrapping_add(u64::from(t.seq) ^ t.payload.len() as u64)
                    }
                    Ok(Decoded::Udp(u)) => n = n.wrapping_add(u.payload.len() as u64),
                    _ => {}
                }
            }
            black_box(n)
        })
    });
    g.bench_function("etherparse_sliced", |b| {
        use etherparse::{NetSlice, SlicedPacket, TransportSlice};
        b.iter(|| {
            let mut n = 0u64;
            for f in &frames {
                let Ok(s) = SlicedPacket::from_ethernet(f) else {
                    continue;
                };
                let addr = match &s.net {
                    Some(NetSlice::Ipv4(v4)) => u64::from(u32::from(v4.header().source_addr())),
                    Some(NetSlice::Ipv6(v6)) => v6.header().source_addr().octets()[15].into(),
                    _ => 0,
                };
                match &s.transport {
                    Some(TransportSlice::Tcp(t)) => {
                        n = n.wrapping_add(
                            addr ^ u64::from(t.sequence_number()) ^ t.payload().len() as u64,
                        )
                    }
                    Some(TransportSlice::Udp(u)) => {
                        n = n.wrapping_add(addr ^ u.payload().len() as u64)
                    }
                    _ => {}
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
