//! Checks the generator's output with independent parsers (pcap-parser, etherparse,
//! tls-parser, and tshark when installed): TCP framing is exact, and the server Certificate
//! messages in the file are exactly the ones the manifest promises.

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use trustmap_benchgen::{generate, Config, Manifest};

fn small_config(seed: u64) -> Config {
    Config {
        size: 3 << 20,
        seed,
        handshake_share: 0.05,
        unique_chains: 12,
        pool: 24,
        tls13_share: 0.4,
        ipv6_share: 0.3,
        concurrency: 8,
        threads: 2,
        ..Config::default()
    }
}

fn gen(cfg: &Config) -> (Manifest, Vec<u8>) {
    generate(cfg, Vec::new()).expect("generate")
}

type Key = ([u8; 16], u16, [u8; 16], u16);

#[derive(Default)]
struct Dir {
    next: Option<u32>,
    stream: Vec<u8>,
    fin: bool,
}

/// Walks whole TLS records; returns (content_type, body) pairs or panics on bad framing.
fn records(stream: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < stream.len() {
        let h = stream.get(i..i + 5).expect("truncated record header");
        assert!((20..=23).contains(&h[0]), "bad content type {}", h[0]);
        assert!(h[1] == 3 && (h[2] == 1 || h[2] == 3), "bad version");
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        assert!(len <= 16384 + 256, "record too long: {len}");
        let body = stream
            .get(i + 5..i + 5 + len)
            .expect("stream ends inside a record");
        out.push((h[0], body));
        i += 5 + len;
    }
    out
}

#[test]
fn tcp_framing_is_exact_and_certificates_match_manifest() {
    let (m, data) = gen(&small_config(42));
    assert!(m.connections >= 4, "too few connections: {}", m.connections);
    assert!(m.handshakes_tls12 > 0 && m.handshakes_tls13 > 0);
    assert!(m.ipv4_connections > 0 && m.ipv6_connections > 0);
    assert_eq!(m.bytes, data.len() as u64);

    let (_, cap) = pcap_parser::pcap::parse_pcap(&data).expect("pcap parses");
    assert_eq!(cap.blocks.len() as u64, m.packets);
    let mut flows: HashMap<Key, Dir> = HashMap::new();
    let mut syns = 0u64;
    let mut last_ts = 0u64;
    for b in &cap.blocks {
        let ts = u64::from(b.ts_sec) * 1_000_000 + u64::from(b.ts_usec);
        assert!(ts >= last_ts, "timestamps go backwards");
        last_ts = ts;
        assert_eq!(b.caplen, b.origlen);
        let p = PacketHeaders::from_ethernet_slice(b.data).expect("frame parses");
        let payload = p.payload.slice();
        let Some(TransportHeader::Tcp(tcp)) = p.transport else {
            panic!("non-TCP frame")
        };
        let (src, dst) = match &p.net {
            Some(NetHeaders::Ipv4(ip, _)) => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "ipv4 csum");
                assert_eq!(
                    tcp.checksum,
                    tcp.calc_checksum_ipv4(ip, payload).unwrap(),
                    "tcp csum v4"
                );
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s[..4].copy_from_slice(&ip.source);
                d[..4].copy_from_slice(&ip.destination);
                (s, d)
            }
            Some(NetHeaders::Ipv6(ip, _)) => {
                assert_eq!(
                    tcp.checksum,
                    tcp.calc_checksum_ipv6(ip, payload).unwrap(),
                    "tcp csum v6"
                );
                (ip.source, ip.destination)
            }
            _ => panic!("no IP"),
        };
        let key = (src, tcp.source_port, dst, tcp.destination_port);
        let rev = (dst, tcp.destination_port, src, tcp.source_port);
        if tcp.syn {
            assert!(payload.is_empty());
            if !tcp.ack {
                syns += 1;
                assert!(!flows.contains_key(&key), "SYN on a known flow");
            } else {
                let peer_next = flows
                    .get(&rev)
                    .and_then(|d| d.next)
                    .expect("SYN-ACK after SYN");
                assert_eq!(tcp.acknowledgment_number, peer_next, "SYN-ACK ack");
            }
            let d = flows.entry(key).or_default();
            d.next = Some(tcp.sequence_number.wrapping_add(1));
            continue;
        }
        let peer_next = flows.get(&rev).and_then(|d| d.next).expect("peer seen");
        let d = flows.get_mut(&key).expect("flow opened by SYN");
        assert!(!d.fin || (payload.is_empty() && !tcp.fin), "data after FIN");
        assert_eq!(Some(tcp.sequence_number), d.next, "sequence gap or overlap");
        assert!(tcp.ack, "every non-SYN segment carries ACK");
        assert_eq!(
            tcp.acknowledgment_number, peer_next,
            "ack = peer's next seq"
        );
        assert!(payload.len() <= 1460, "segment larger than MSS");
        d.stream.extend_from_slice(payload);
        let adv = payload.len() as u32 + u32::from(tcp.fin);
        d.next = Some(tcp.sequence_number.wrapping_add(adv));
        d.fin |= tcp.fin;
    }
    assert_eq!(syns, m.connections);
    assert_eq!(flows.len() as u64, 2 * m.connections);

    // TLS: every stream is whole records; count plaintext server Certificate messages.
    let mut cert_msgs = 0u64;
    let mut certs_total = 0u64;
    let mut leaves: HashMap<String, u64> = HashMap::new();
    let mut unique_certs = HashSet::new();
    for (key, d) in &flows {
        assert!(d.fin, "every direction is closed with FIN");
        let recs = records(&d.stream);
        let is_server = key.1 == 443 || key.1 == 8443 || key.1 == 993 || key.1 == 5061;
        if !is_server {
            continue;
        }
        for (ct, body) in recs.iter().take_while(|(ct, _)| *ct != 20) {
            if *ct != 22 {
                continue;
            }
            let mut raw = vec![22, 3, 3];
            raw.extend_from_slice(&(body.len() as u16).to_be_bytes());
            raw.extend_from_slice(body);
            let (_, pt) = tls_parser::parse_tls_plaintext(&raw).expect("handshake record parses");
            for msg in pt.msg {
                if let tls_parser::TlsMessage::Handshake(
                    tls_parser::TlsMessageHandshake::Certificate(c),
                ) = msg
                {
                    cert_msgs += 1;
                    certs_total += c.cert_chain.len() as u64;
                    let hs: Vec<String> = c
                        .cert_chain
                        .iter()
                        .map(|rc| hex::encode(Sha256::digest(rc.data)))
                        .collect();
                    *leaves.entry(hs[0].clone()).or_default() += 1;
                    unique_certs.extend(hs);
                }
            }
        }
    }
    assert_eq!(cert_msgs, m.server_certificate_messages);
    assert_eq!(cert_msgs, m.handshakes_tls12);
    assert_eq!(certs_total, m.certificates_in_clear);
    assert_eq!(unique_certs.len() as u64, m.unique_certificates_in_clear);
    assert_eq!(leaves.len() as u64, m.unique_chains_in_clear);
    for c in &m.chains {
        assert_eq!(
            leaves.get(&c.leaf_sha256),
            Some(&c.connections),
            "{}",
            c.server_name
        );
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = Config {
        size: 1 << 20,
        ..small_config(7)
    };
    let (m1, a) = gen(&cfg);
    let (m2, b) = gen(&cfg);
    assert_eq!(m1.packets, m2.packets);
    assert!(a == b, "same seed must give identical files");
    let (_, c) = gen(&Config { seed: 8, ..cfg });
    assert!(a != c, "another seed must differ");
}

#[test]
fn size_target_is_met_without_large_overshoot() {
    let cfg = Config {
        size: 8 << 20,
        ..small_config(3)
    };
    let (m, data) = gen(&cfg);
    let size = data.len() as u64;
    assert!(size >= cfg.size, "file {size} below target");
    assert!(
        size < cfg.size + cfg.size / 2,
        "file {size} overshoots target"
    );
    let hs = m.handshake_packets as f64 / m.packets as f64;
    assert!((0.02..0.12).contains(&hs), "handshake share {hs}");
}

/// tshark agrees on Certificate messages and sees no TCP/checksum anomaly. tshark is part of the
/// test toolchain (`.ci/run` installs it): without it this test fails rather than pass unchecked.
#[test]
fn tshark_agrees() {
    let v = std::process::Command::new("tshark").arg("-v").output();
    assert!(
        v.is_ok_and(|o| o.status.success()),
        "tshark is needed (apt-get install tshark)"
    );
    let (m, data) = gen(&small_config(5));
    let dir = testkit::TempDir::new("benchgen-tshark");
    let path = dir.join("t.pcap");
    std::fs::write(&path, &data).unwrap();
    let count = |filter: &str, extra: &[&str]| -> u64 {
        let out = std::process::Command::new("tshark")
            .args(extra)
            .arg("-r")
            .arg(&path)
            .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
            .output()
            .expect("tshark runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count() as u64
    };
    assert_eq!(
        count("tls.handshake.type == 11", &[]),
        m.server_certificate_messages
    );
    assert_eq!(count("tls.handshake.type == 1", &[]), m.connections);
    let bad = count(
        "tcp.analysis.retransmission || tcp.analysis.lost_segment || tcp.analysis.out_of_order \
         || tcp.analysis.ack_lost_segment || tcp.checksum.status == 0 || ip.checksum.status == 0 \
         || _ws.malformed || _ws.expert.severity >= 6291456",
        &[
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ],
    );
    assert_eq!(bad, 0, "tshark found anomalies");
}
