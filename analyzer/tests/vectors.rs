//! Real bytes from the Zeek corpus, extracted with tshark into tests/data (see README there), fed
//! straight into the Analyzer: these run without the corpus or the capture crate's decoding.
//! `*.stream`: one TCP segment per line, `O`/`R` (originator/responder) + hex, in capture order.
//! `*.datagrams`: one UDP payload per line, same format.

use analyzer::{Analyzer, AnalyzerConfig, Handshake, Output, Protocol, Side};
use capture::{App, CloseKind, Dir, EndReason, FlowCtx, Transport};
use std::net::{IpAddr, Ipv4Addr};

fn lines(name: &str) -> Vec<(Dir, Vec<u8>)> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(p)
        .expect("vector file")
        .lines()
        .filter_map(|l| {
            let (d, h) = l.split_once(' ')?;
            let dir = if d == "O" { Dir::Orig } else { Dir::Resp };
            Some((dir, hex::decode(h.trim()).expect("hex")))
        })
        .collect()
}

fn ctx(t: Transport) -> FlowCtx {
    FlowCtx {
        id: 7,
        transport: t,
        orig: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000),
        resp: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 443),
        syn_seen: true,
        first_ts_ns: 1,
    }
}

/// Replays segments, each split into `split`-byte pieces (0 = whole), then ends the flow.
fn replay_tcp(name: &str, split: usize) -> (Vec<Handshake>, usize) {
    let c = ctx(Transport::Tcp);
    let mut a = Analyzer::new(AnalyzerConfig::default());
    let mut st = Default::default();
    for (i, (dir, data)) in lines(name).into_iter().enumerate() {
        let ts = 1000 + i as u64;
        if split == 0 {
            a.on_stream(&c, &mut st, dir, ts, &data);
        } else {
            for piece in data.chunks(split) {
                a.on_stream(&c, &mut st, dir, ts, piece);
            }
        }
    }
    a.on_close(&c, &mut st, Dir::Orig, 5000, CloseKind::Fin);
    a.on_flow_end(&c, st, 6000, EndReason::Closed);
    collect(a)
}

fn replay_udp(datagrams: Vec<(Dir, Vec<u8>)>) -> (Vec<Handshake>, usize) {
    let c = ctx(Transport::Udp);
    let mut a = Analyzer::new(AnalyzerConfig::default());
    let mut st = Default::default();
    for (i, (dir, data)) in datagrams.into_iter().enumerate() {
        a.on_datagram(&c, &mut st, dir, 1000 + i as u64, &data);
    }
    a.on_flow_end(&c, st, 6000, EndReason::IdleTimeout);
    collect(a)
}

fn collect(mut a: Analyzer) -> (Vec<Handshake>, usize) {
    let mut hs = Vec::new();
    let mut new_certs = 0;
    for o in a.out.drain(..) {
        match o {
            Output::Handshake(h) => hs.push(*h),
            Output::NewCert(..) => new_certs += 1,
            Output::SideSignal(s) => panic!("no HTTP in these vectors: {s:?}"),
        }
    }
    (hs, new_certs)
}

fn prefixes(c: &Option<Vec<analyzer::CertRef>>) -> Option<Vec<String>> {
    c.as_ref().map(|v| {
        v.iter()
            .map(|c| hex::encode(c.sha256).get(..16).unwrap_or("").to_string())
            .collect()
    })
}

#[test]
fn sslv2_server_hello_certificate() {
    for split in [1, 2, 5] {
        let (hs, _) = replay_tcp("ssl-v2.stream", split);
        assert_eq!(
            prefixes(&hs[0].server_chain).map(|v| v.len()),
            Some(1),
            "split {split}"
        );
    }
    let (hs, n) = replay_tcp("ssl-v2.stream", 0);
    assert_eq!(hs.len(), 1);
    let h = &hs[0];
    assert_eq!(h.protocol, Protocol::Sslv2);
    assert_eq!(h.client.1, 50000, "the CLIENT-HELLO sender is the client");
    assert_eq!(
        prefixes(&h.server_chain),
        Some(vec!["8ce7a4de80166f61".to_string()])
    );
    assert_eq!(n, 1);
}

#[test]
fn imap_starttls_any_segmentation() {
    for split in [0, 1, 3, 100] {
        let (hs, _) = replay_tcp("imap-starttls.stream", split);
        assert_eq!(hs.len(), 1, "split {split}");
        let h = &hs[0];
        assert_eq!(h.starttls, Some("imap"));
        assert_eq!(
            prefixes(&h.server_chain),
            Some(vec![
                "e0129ac9d82beb2a".to_string(),
                "3c80fe6e6a70e12f".into(),
                "b6191a50d0c3977f".into()
            ]),
            "split {split}"
        );
        assert!(h.established);
        // Line 5 (0-based) is the ClientHello; lines 0-4 are IMAP plaintext.
        assert_eq!(
            h.start_ts_ns, 1005,
            "first handshake message, not first plaintext"
        );
    }
}

#[test]
fn empty_client_certificate_and_server_alert() {
    for split in [1, 7, 1000] {
        let (hs, _) = replay_tcp("certificate-request-failed.stream", split);
        assert_eq!(
            prefixes(&hs[0].server_chain).map(|v| v.len()),
            Some(2),
            "split {split}"
        );
        assert_eq!(prefixes(&hs[0].client_chain), Some(vec![]), "split {split}");
    }
    let (hs, _) = replay_tcp("certificate-request-failed.stream", 0);
    let h = &hs[0];
    assert_eq!(prefixes(&h.client_chain), Some(vec![]));
    assert_eq!(
        prefixes(&h.server_chain),
        Some(vec![
            "0a171ee771a26530".to_string(),
            "c628dd5aae1f216d".into()
        ])
    );
    let a = h.alert.expect("alert");
    assert_eq!((a.from, a.level, a.code), (Side::Server, 2, 40));
    assert!(!a.after_server_cert || a.from == Side::Server);
}

#[test]
fn corrupted_certificate_length_gives_empty_chain() {
    let (hs, _) = replay_tcp("tls1.2-protocol-violation.stream", 0);
    assert_eq!(hs.len(), 1);
    assert_eq!(prefixes(&hs[0].server_chain), Some(vec![]));
    assert!(!hs[0].established);
}

#[test]
fn dtls_fragments_reordered_and_duplicated() {
    let dg = lines("dtls1_2.datagrams");
    let (hs, _) = replay_udp(dg.clone());
    assert_eq!(hs.len(), 1);
    assert_eq!(
        prefixes(&hs[0].server_chain),
        Some(vec!["6f5446a5b23f4e73".to_string()])
    );
    assert_eq!(hs[0].version, Some(0xfefd));
    assert!(hs[0].established);
    // Reverse every run of same-direction datagrams and send each twice.
    let mut mangled = Vec::new();
    let mut run: Vec<(Dir, Vec<u8>)> = Vec::new();
    for d in dg {
        if run.last().is_some_and(|l| l.0 != d.0) {
            for x in run.drain(..).rev() {
                mangled.push(x.clone());
                mangled.push(x);
            }
        }
        run.push(d);
    }
    mangled.extend(run.into_iter().rev());
    let (hs2, _) = replay_udp(mangled);
    assert_eq!(hs2.len(), 1);
    assert_eq!(
        prefixes(&hs2[0].server_chain),
        prefixes(&hs[0].server_chain)
    );
}

#[test]
fn dtls_with_stun_both_chains() {
    let (hs, n) = replay_udp(lines("webrtc-stun.datagrams"));
    assert_eq!(hs.len(), 1);
    let h = &hs[0];
    assert_eq!(
        prefixes(&h.server_chain),
        Some(vec!["968126882d68eb80".to_string()])
    );
    assert_eq!(
        prefixes(&h.client_chain),
        Some(vec!["d0f7ee6396c98da4".to_string()])
    );
    // The UDP originator is the DTLS server here.
    assert_eq!(h.server.1, 50000);
    assert_eq!(n, 2);
}

/// Without the ClientHello, the roles come from the ServerHello and Certificate direction; the
/// Certificate alone (capture started after the hellos) is still recognised.
#[test]
fn roles_without_client_hello() {
    let c = ctx(Transport::Tcp);
    let server: Vec<Vec<u8>> = lines("certificate-request-failed.stream")
        .into_iter()
        .filter(|(d, _)| *d == Dir::Resp)
        .map(|(_, b)| b)
        .collect();
    // Responder-only bytes: its ServerHello makes the originator the client.
    let mut a = Analyzer::new(AnalyzerConfig::default());
    let mut st = Default::default();
    for b in &server {
        a.on_stream(&c, &mut st, Dir::Resp, 1, b);
    }
    a.on_flow_end(&c, st, 2, EndReason::EndOfInput);
    let (hs, _) = collect(a);
    assert_eq!(hs[0].client, c.orig);
    assert_eq!(prefixes(&hs[0].server_chain).map(|v| v.len()), Some(2));
    assert!(hs[0].ja3.is_none());

    // Same bytes seen from the other side of the flow, starting at the Certificate record.
    let first = &server[0];
    let sh_len = 5 + u16::from_be_bytes([first[3], first[4]]) as usize;
    let mut a = Analyzer::new(AnalyzerConfig::default());
    let mut st = Default::default();
    a.on_stream(&c, &mut st, Dir::Orig, 1, &first[sh_len..]);
    for b in &server[1..] {
        a.on_stream(&c, &mut st, Dir::Orig, 1, b);
    }
    a.on_flow_end(&c, st, 2, EndReason::EndOfInput);
    let (hs, _) = collect(a);
    assert_eq!(hs[0].client, c.resp, "the Certificate sender is the server");
    assert_eq!(prefixes(&hs[0].server_chain).map(|v| v.len()), Some(2));
}
