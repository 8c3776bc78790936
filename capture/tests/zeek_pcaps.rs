//! Every Zeek trace through `read_file` + `Engine` with a recording App.
mod common;
use capture::source::read_file;
use capture::{Dir, Engine, EngineConfig, Stats};
use common::{Rec, Recorder};
use std::path::Path;
use testkit::corpus::{zeek_file, zeek_pcaps, ZEEK};

fn run(path: &Path) -> (Recorder, Stats, capture::source::SourceSummary) {
    let mut engine = Engine::new(EngineConfig::default(), Recorder::default());
    let sum = read_file(path, &mut |p| engine.process(p))
        .unwrap_or_else(|e| panic!("{}: not readable: {e}", path.display()));
    let (app, stats) = engine.finish();
    (app, stats, sum)
}

fn fnv(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[test]
fn survey_all_zeek_pcaps() {
    let files = zeek_pcaps();
    assert!(
        files.len() >= 90,
        "expected the Zeek corpus, found {}",
        files.len()
    );
    for p in files {
        let (app, stats, sum) = run(&p);
        assert!(sum.error.is_none(), "{p:?}: {:?}", sum.error);
        assert!(sum.packets > 0, "{p:?}: no packets");
        assert_eq!(stats.packets, sum.packets);
        assert_eq!(stats.flows_created as usize, app.done.len(), "{p:?}");
        if std::env::var_os("SURVEY").is_some() {
            eprintln!(
                "{:50} pkts {:5} flows {:3} tcp {:3} problems {:?} other {} pickups {} gaps {} ooo {} frag {}/{}",
                p.file_name().unwrap().to_string_lossy(),
                sum.packets,
                app.done.len(),
                app.tcp().count(),
                stats.decode_problems,
                stats.other_packets,
                stats.tcp_midstream_pickups,
                stats.tcp_gaps,
                stats.tcp_out_of_order_segments,
                stats.ip_reassembled,
                stats.ip_fragments,
            );
            for r in app.tcp() {
                let c = r.ctx.as_ref().unwrap();
                eprintln!(
                    "   {:?}:{} -> {:?}:{} orig {} {:016x} resp {} {:016x} gaps {:?} closes {:?} {:?}",
                    c.orig.0, c.orig.1, c.resp.0, c.resp.1,
                    r.streams[0].len(), fnv(&r.streams[0]),
                    r.streams[1].len(), fnv(&r.streams[1]),
                    r.gaps, r.closes, r.reason
                );
            }
        }
    }
}

fn starts_tls(r: &Rec, d: Dir) -> bool {
    r.streams[d.index()].starts_with(&[0x16, 0x03])
}

fn only_tcp(app: &Recorder) -> Vec<&Rec> {
    app.tcp().collect()
}

/// [`run`] on a trace that must decode without a single problem.
fn run_clean(name: &str) -> (Recorder, capture::source::SourceSummary) {
    let (app, stats, sum) = run(&zeek_file(name));
    assert!(
        stats.decode_problems.is_empty(),
        "{name}: {:?}",
        stats.decode_problems
    );
    (app, sum)
}

/// Length and FNV-1a hash of one direction's stream.
fn stream(r: &Rec, d: Dir) -> (usize, u64) {
    let s = &r.streams[d.index()];
    (s.len(), fnv(s))
}

/// Reference lengths and FNV-1a hashes come from
/// `tshark -r F -q -z follow,tcp,raw,0` (tshark 4.0.17).
#[test]
fn tls_fragmented_handshake_in_order() {
    let (app, sum) = run_clean("tls-fragmented-handshake.pcap");
    assert_eq!(sum.packets, 416);
    let flows = only_tcp(&app);
    assert_eq!(flows.len(), 1);
    let r = flows[0];
    assert!(r.ctx.as_ref().unwrap().syn_seen);
    assert_eq!(stream(r, Dir::Orig), (186, 0x8c19_df4b_ace5_95e9));
    assert_eq!(stream(r, Dir::Resp), (340_179, 0xda42_589a_a733_ed0e));
    assert_eq!(&r.streams[1][..6], &[0x16, 0x03, 0x03, 0x00, 0x59, 0x02]);
    assert!(r.gaps.is_empty());
    assert_eq!(r.closes.len(), 2);
}

#[test]
fn geneve_tunnel_decodes() {
    let (app, _) = run_clean("tunnels-geneve-47101.pcap");
    let flows = only_tcp(&app);
    assert_eq!(flows.len(), 1);
    let r = flows[0];
    let c = r.ctx.as_ref().unwrap();
    assert_eq!(c.resp.1, 443);
    assert_eq!(c.orig.0.to_string(), "192.168.0.107");
    assert!(starts_tls(r, Dir::Orig) && starts_tls(r, Dir::Resp));
    assert_eq!(stream(r, Dir::Orig), (781, 0x02ef_4acb_119e_3f36));
    assert_eq!(stream(r, Dir::Resp), (23_111, 0x30c6_ecca_24e9_45c9));
}

#[test]
fn pppoe_over_qinq_decodes() {
    let (app, _) = run_clean("pppoe-over-qinq.pcap");
    let flows = only_tcp(&app);
    let r = flows
        .iter()
        .find(|r| r.ctx.as_ref().unwrap().syn_seen)
        .expect("the SYN flow");
    assert!(starts_tls(r, Dir::Orig) && starts_tls(r, Dir::Resp));
    assert_eq!(stream(r, Dir::Orig), (11_352, 0x235c_65c9_66c4_228c));
    // tshark's 4984 bytes end with a 31-byte alert retransmitted 235 s later (beyond the idle
    // timeout, so it lands in a new flow). Two frames carry an IPv4 total length of 46 where
    // PPPoE says 40: their 6 padding bytes must not become stream bytes.
    assert_eq!(stream(r, Dir::Resp), (4953, 0x0696_6b0c_64f8_34ea));
    assert_eq!(r.reason, Some(capture::EndReason::IdleTimeout));
}

#[test]
fn late_retransmissions_after_close_stay_in_the_flow() {
    // The server retransmits data+FIN for 9 s after both sides closed.
    let (app, _, _) = run(&zeek_file("xmpp-dialback-starttls.pcap"));
    assert_eq!(app.done.len(), 1);
    assert_eq!(app.done[0].closes.len(), 2);
}

/// Every TCP TLS session of the tshark oracle (`expected/*.sessions.jsonl`) is found as a flow
/// whose server-side stream holds a ServerHello record and whose client side is not empty.
#[test]
fn every_oracle_tcp_session_is_delivered() {
    let mut checked = 0;
    for p in zeek_pcaps() {
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        let exp = Path::new(ZEEK).join(format!("expected/{stem}.tshark.sessions.jsonl"));
        // Every trace has its oracle: a missing one fails, it is not skipped.
        let text = std::fs::read_to_string(&exp)
            .unwrap_or_else(|e| panic!("{stem}: missing oracle {}: {e}", exp.display()));
        let (app, _, _) = run(&p);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            // SSLv2 has no TLS record layer.
            if v["transport"] != "tcp"
                || v["server_hello_frame"].is_null()
                || v["protocol"] == "SSLv2"
            {
                continue;
            }
            let server = (
                v["server"].as_str().unwrap().to_string(),
                v["sport"].as_u64().unwrap() as u16,
            );
            let client = (
                v["client"].as_str().unwrap().to_string(),
                v["cport"].as_u64().unwrap() as u16,
            );
            let found = app.tcp().find_map(|r| {
                let c = r.ctx.as_ref().unwrap();
                let o = (c.orig.0.to_string(), c.orig.1);
                let s = (c.resp.0.to_string(), c.resp.1);
                if o == client && s == server {
                    Some((r, 1usize))
                } else if o == server && s == client {
                    Some((r, 0usize))
                } else {
                    None
                }
            });
            let (r, sdir) =
                found.unwrap_or_else(|| panic!("{stem}: no flow for {client:?} -> {server:?}"));
            let srv = &r.streams[sdir];
            let has_sh = srv
                .windows(6)
                .any(|w| w[0] == 0x16 && w[1] == 0x03 && w[5] == 0x02);
            assert!(
                has_sh,
                "{stem}: no ServerHello in the server stream ({} bytes)",
                srv.len()
            );
            assert!(
                !r.streams[1 - sdir].is_empty(),
                "{stem}: empty client stream"
            );
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} sessions checked");
}

/// The reader thread's pre-decode ([`capture::decode::PreTcp`], `Engine::process_pre`) gives the
/// same flows, bytes, gaps, closes and counters as decoding on the engine's thread, on every trace,
/// with flows never bypassed and with flows bypassed early (the bypass fast path).
#[test]
fn predecoded_frames_give_the_same_results() {
    let mut pre_used = 0u64;
    let mut bypassed = 0u64;
    for bypass_after in [None, Some(300)] {
        let app = || Recorder {
            bypass_after,
            ..Recorder::default()
        };
        for p in zeek_pcaps() {
            let mut engine = Engine::new(EngineConfig::default(), app());
            let want_sum = read_file(&p, &mut |pkt| engine.process(pkt)).expect("readable pcap");
            let (want, want_stats) = engine.finish();
            let mut engine = Engine::new(EngineConfig::default(), app());
            let sum = capture::source::read_file_pre(&p, true, &mut |pkt, pre| match pre {
                Some(t) => {
                    pre_used += 1;
                    engine.process_pre(pkt, t)
                }
                None => engine.process(pkt),
            })
            .expect("readable pcap");
            let (app, stats) = engine.finish();
            bypassed += stats.bypassed_packets;
            assert_eq!(sum.packets, want_sum.packets, "{p:?}");
            assert_eq!(format!("{stats:?}"), format!("{want_stats:?}"), "{p:?}");
            assert_eq!(app.done.len(), want.done.len(), "{p:?}");
            for (a, b) in app.done.iter().zip(&want.done) {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{p:?}");
            }
        }
    }
    // The classic pcap traces hold 4,169 TCP frames: the pre-decoded path really ran, and so did
    // the bypass fast path.
    assert!(pre_used > 2 * 3_000, "{pre_used}");
    assert!(bypassed > 1_000, "{bypassed}");
}
