//! Hostile input: random bytes, and real captures with flipped bits, through every parser and the
//! whole Analyzer. Passing means no panic and bounded work (each case finishes).

use analyzer::tls::deframer::Deframer;
use analyzer::tls::handshake;
use analyzer::{dtls, sslv2, Analyzer, AnalyzerConfig};
use capture::{App, CloseKind, Dir, EndReason, FlowCtx, Transport};
use std::net::{IpAddr, Ipv4Addr};

use testkit::Rng;

fn ctx(t: Transport) -> FlowCtx {
    FlowCtx {
        id: 1,
        transport: t,
        orig: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
        resp: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 443),
        syn_seen: true,
        first_ts_ns: 0,
    }
}

/// A plausible TLS prefix so random tails reach deep states.
fn tls_seed(r: &mut Rng) -> Vec<u8> {
    let mut v = vec![
        0x16,
        3,
        3,
        0x40,
        0x00,
        1 + (r.index(2) as u8),
        0,
        0x3f,
        0xfc,
        3,
        3,
    ];
    v.extend({
        let n = r.index(600);
        r.bytes(n)
    });
    v
}

#[test]
fn random_bytes_never_panic() {
    let mut r = Rng::new(0x9e37_79b9_7f4a_7c15);
    let cfg = AnalyzerConfig {
        max_handshake_message: 1 << 16,
        max_plaintext_scan: 4096,
        ..AnalyzerConfig::default()
    };
    for i in 0..3000 {
        let mut a = Analyzer::new(cfg.clone());
        let c = ctx(if i % 4 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        });
        let mut st = Default::default();
        for _ in 0..r.index(20) + 1 {
            let dir = if r.index(2) == 0 {
                Dir::Orig
            } else {
                Dir::Resp
            };
            let data = match r.index(4) {
                0 => {
                    let n = r.index(2000);
                    r.bytes(n)
                }
                1 => tls_seed(&mut r),
                2 => {
                    let mut v = vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 40, 1];
                    v.extend({
                        let n = r.index(200);
                        r.bytes(n)
                    });
                    v
                }
                _ => {
                    let mut v = vec![
                        0x80 | r.index(4) as u8,
                        r.next_u64() as u8,
                        1 + 3 * (r.index(2) as u8),
                    ];
                    v.extend({
                        let n = r.index(300);
                        r.bytes(n)
                    });
                    v
                }
            };
            if c.transport == Transport::Udp {
                a.on_datagram(&c, &mut st, dir, 1, &data);
            } else {
                for chunk in data.chunks(r.index(64) + 1) {
                    a.on_stream(&c, &mut st, dir, 1, chunk);
                }
                if r.index(10) == 0 {
                    a.on_close(&c, &mut st, dir, 2, CloseKind::Fin);
                }
            }
        }
        a.on_flow_end(&c, st, 3, EndReason::EndOfInput);
        // Direct parsers.
        let b = {
            let n = r.index(500);
            r.bytes(n)
        };
        let _ = handshake::parse_client_hello(&b, i % 2 == 0);
        let _ = handshake::parse_server_hello(&b);
        let _ = handshake::parse_certificate(&b);
        let _ = handshake::parse_certificate_request(&b, 0x0303);
        let _ = sslv2::parse_client_hello(&b);
        let _ = sslv2::parse_server_hello(&b);
        let mut d = Deframer::new(1 << 16);
        let mut ev = Vec::new();
        d.feed(&b, &mut ev);
        let mut dd = dtls::DtlsDir::default();
        let _ = dd.feed(&b, 1 << 16);
    }
}

/// Each Zeek capture with random bytes flipped in every packet past the outer headers.
#[test]
fn bit_flipped_corpus_never_panics() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/zeek"));
    let rd = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("zeek corpus missing: {}: {e}", dir.display()));
    let mut files: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 90,
        "{}: {} captures, expected at least 90",
        dir.display(),
        files.len()
    );
    let mut r = Rng::new(42);
    let (mut total, mut packets) = (0usize, 0usize);
    for f in &files {
        let mut pkts: Vec<(u64, u32, Vec<u8>, u32)> = Vec::new();
        capture::source::read_file(f, &mut |p| {
            pkts.push((p.ts_ns, p.linktype, p.data.to_vec(), p.orig_len))
        })
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!pkts.is_empty(), "{}: no packets", f.display());
        packets += pkts.len();
        for round in 0..3 {
            let mut engine = capture::Engine::new(
                capture::EngineConfig::default(),
                Analyzer::new(AnalyzerConfig::default()),
            );
            for (ts, lt, data, ol) in &pkts {
                let mut d = data.clone();
                if d.len() > 60 {
                    for _ in 0..(1 + round) {
                        let i = 54 + r.index(d.len() - 54);
                        d[i] ^= 1 << r.index(8);
                    }
                }
                engine.process(&capture::RawPacket {
                    ts_ns: *ts,
                    linktype: *lt,
                    data: &d,
                    orig_len: *ol,
                });
                engine.app_mut().out.clear();
            }
            let (a, _) = engine.finish();
            total += a.stats.handshakes as usize;
        }
    }
    eprintln!(
        "{} captures, {packets} packets x 3 rounds, {total} handshakes",
        files.len()
    );
    assert!(
        total > 50,
        "flipped corpus still yields handshakes: {total}"
    );
}
