//! Secrets that arrive after their handshake (a live capture following a proxy's key log): the
//! encrypted flight is kept for a while and opened once the key log has the secrets. On the real
//! OpenSSL capture `pcaps/cases/tls13-keylog.pcap`, the key log lines are added only after the
//! first connection's ServerHello went by; every connection with secrets still comes out with its
//! chain, and a key log that never gets them changes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use analyzer::tls::keylog::KeyLog;
use analyzer::{Analyzer, AnalyzerConfig, ChainSource, Output};
use capture::{Engine, EngineConfig};

fn case(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pcaps/cases")
        .join(name);
    assert!(p.exists(), "missing test input {}", p.display());
    p
}

/// Chain sources per client port, with the key log text added after `late_after` packets.
fn run(late_after: usize, add: bool) -> Vec<(u16, Option<ChainSource>, usize)> {
    let keylog = Arc::new(KeyLog::new());
    keylog.set_follows(true);
    let text = std::fs::read_to_string(case("tls13-keylog.keys")).expect("keys");
    let cfg = AnalyzerConfig {
        keylog: Some(keylog.clone()),
        ..AnalyzerConfig::default()
    };
    let mut e = Engine::new(EngineConfig::default(), Analyzer::new(cfg));
    let mut n = 0;
    capture::source::read_file(&case("tls13-keylog.pcap"), &mut |p| {
        n += 1;
        if add && n == late_after {
            keylog.add_text(&text);
        }
        e.process(p);
    })
    .expect("capture");
    let (app, _) = e.finish();
    let mut v: Vec<(u16, Option<ChainSource>, usize)> = app
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Handshake(h) => Some((
                h.client.1,
                h.chain_source,
                h.server_chain.as_ref().map_or(0, Vec::len),
            )),
            _ => None,
        })
        .collect();
    v.sort_unstable_by_key(|x| x.0);
    v
}

#[test]
fn secrets_written_after_the_handshake_still_open_it() {
    // Packet 8 is past the first connection's ServerHello and encrypted flight.
    let got = run(8, true);
    assert_eq!(got.len(), 7);
    for (port, source, chain) in &got {
        if *port == 40034 {
            assert_eq!((*source, *chain), (None, 0), "no secrets for this one");
        } else {
            assert_eq!(
                (*source, *chain),
                (Some(ChainSource::Keylog), 2),
                "client port {port}"
            );
        }
    }
    // The first connection's secrets really came late: without them, its chain stays hidden.
    let never = run(8, false);
    assert!(
        never.iter().all(|(_, s, c)| s.is_none() && *c == 0),
        "{never:?}"
    );
}
