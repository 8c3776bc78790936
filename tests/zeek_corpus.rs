//! Runs the trustmap binary over every capture of the Zeek corpus (pcaps/zeek) and compares the
//! certificate messages it reports with the ones tshark found (pcaps/zeek/expected/*.tshark.jsonl).
//!
//! A match is the same client/server endpoints, the same direction and the same ordered SHA-256
//! list. Recall and precision must both be >= 99%. Captures where tshark is known to be wrong are
//! listed in `TSHARK_MISSES` with the evidence in pcaps/README.md; a chain we report there counts
//! in our favour only if it is exactly the documented one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// (capture stem, direction, documented SHA-256 list) that tshark does not report but the bytes
/// carry (see pcaps/zeek/SOURCE.md, "tshark limitations", and pcaps/README.md).
const TSHARK_MISSES: &[(&str, &str, &[&str])] = &[(
    "tls-fragmented-handshake",
    "server->client",
    &["af4a46e989dc24078ee2a205490856e059e7f2f9d2114cec4d4c44974add9d34"],
)];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Msg {
    sender: String,
    receiver: String,
    direction: &'static str,
    chain: Vec<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/zeek")
}

fn ep(v: &Value) -> String {
    format!(
        "{}:{}",
        v["ip"].as_str().unwrap_or("?"),
        v["port"].as_u64().unwrap_or(0)
    )
}

fn chain_of(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|c| c["sha256"].as_str().unwrap_or("").to_string())
            .collect()
    })
}

/// Certificate messages trustmap reported for one capture.
fn trustmap_messages(pcap: &Path) -> Vec<Msg> {
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["analyze", "-q", "-o", "-", "--db", ":memory:"])
        .arg(pcap)
        .output()
        .expect("run trustmap");
    assert!(
        out.status.success(),
        "trustmap failed on {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut msgs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("valid JSON line");
        // Events are written from typed views, not `Value`s: their keys must still come out in
        // sorted order, byte for byte what a `Value` round trip gives.
        assert_eq!(
            serde_json::to_string(&v).expect("serialise"),
            line,
            "{}: keys out of order",
            pcap.display()
        );
        if v["event"]["dataset"] != "trustmap.tls" {
            continue;
        }
        let client = ep(&v["source"]);
        let server = ep(&v["destination"]);
        if let Some(chain) = chain_of(&v["tls"]["server"]["chain"]) {
            msgs.push(Msg {
                sender: server.clone(),
                receiver: client.clone(),
                direction: "server->client",
                chain,
            });
        }
        if let Some(chain) = chain_of(&v["tls"]["client"]["chain"]) {
            msgs.push(Msg {
                sender: client,
                receiver: server,
                direction: "client->server",
                chain,
            });
        }
    }
    msgs
}

fn expected_messages(jsonl: &Path) -> Vec<Msg> {
    let text = std::fs::read_to_string(jsonl).expect("read expected");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("expected JSON");
            let direction = match v["direction"].as_str() {
                Some("server->client") => "server->client",
                Some("client->server") => "client->server",
                _ => "unknown",
            };
            Msg {
                sender: format!("{}:{}", v["src"].as_str().unwrap_or("?"), v["sport"]),
                receiver: format!("{}:{}", v["dst"].as_str().unwrap_or("?"), v["dport"]),
                direction,
                chain: v["sha256"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|h| h.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

#[test]
fn zeek_corpus_matches_tshark() {
    let dir = corpus_dir();
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pcaps/zeek exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    pcaps.sort();
    assert!(
        pcaps.len() >= 90,
        "corpus incomplete: {} captures",
        pcaps.len()
    );

    let (mut expected_total, mut matched, mut reported_total, mut explained) =
        (0usize, 0usize, 0usize, 0usize);
    let mut report = String::new();
    for pcap in &pcaps {
        let stem = pcap
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let expected =
            expected_messages(&dir.join("expected").join(format!("{stem}.tshark.jsonl")));
        let got = trustmap_messages(pcap);
        expected_total += expected.len();
        reported_total += got.len();
        // Multiset matching: each reported message can satisfy one expected message.
        let mut pool: HashMap<&Msg, usize> = HashMap::new();
        for g in &got {
            *pool.entry(g).or_insert(0) += 1;
        }
        for e in &expected {
            match pool.get_mut(e) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    matched += 1;
                }
                _ => report.push_str(&format!("MISS  {stem}: {e:?}\n")),
            }
        }
        for (g, n) in pool {
            for _ in 0..n {
                let documented = TSHARK_MISSES.iter().any(|(s, d, chain)| {
                    *s == stem
                        && *d == g.direction
                        && chain
                            .iter()
                            .map(|c| c.to_string())
                            .eq(g.chain.iter().cloned())
                });
                if documented {
                    explained += 1;
                } else {
                    report.push_str(&format!("EXTRA {stem}: {g:?}\n"));
                }
            }
        }
    }
    let recall = matched as f64 / expected_total as f64;
    let precision = matched as f64 / (reported_total - explained).max(1) as f64;
    eprintln!(
        "zeek corpus: {} captures, expected {expected_total}, reported {reported_total} ({explained} documented tshark misses), matched {matched}; recall {:.4}, precision {:.4}\n{report}",
        pcaps.len(),
        recall,
        precision
    );
    assert_eq!(
        expected_total, 87,
        "the oracle lists 87 certificate messages"
    );
    assert!(recall >= 0.99, "recall {recall:.4} < 0.99\n{report}");
    assert!(
        precision >= 0.99,
        "precision {precision:.4} < 0.99\n{report}"
    );
    assert_eq!(
        explained,
        TSHARK_MISSES.len(),
        "every documented tshark miss must be found by trustmap"
    );
}
