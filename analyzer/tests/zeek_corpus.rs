//! Runs capture::Engine + Analyzer over every capture of the Zeek TLS corpus and compares the
//! certificate messages found with tshark's (expected/<stem>.tshark.jsonl): same endpoints, same
//! direction, same ordered SHA-256 list. Recall and precision must both be >= 0.99. Sessions
//! (SNI, version, cipher) are compared with expected/<stem>.tshark.sessions.jsonl.

use analyzer::{Analyzer, AnalyzerConfig, Handshake, Output};
use capture::{Engine, EngineConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The repository's copy of the corpus (captures and tshark's `expected/`).
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/zeek");

/// Captures in the corpus: a test that reads fewer did not run on the corpus.
const MIN_CAPTURES: usize = 90;

/// The corpus directory; a missing corpus is a failure, not a skip.
fn corpus() -> PathBuf {
    let dir = PathBuf::from(CORPUS);
    assert!(
        dir.join("expected").is_dir(),
        "zeek corpus missing: {} (with expected/) must be present",
        dir.display()
    );
    dir
}

/// Certificate messages tshark misses but the bytes carry (SOURCE.md, "tshark limitations").
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

fn ep(ip: std::net::IpAddr, port: u16) -> String {
    format!("{ip}:{port}")
}

fn run(pcap: &Path) -> Vec<Handshake> {
    let mut engine = Engine::new(
        EngineConfig::default(),
        Analyzer::new(AnalyzerConfig::default()),
    );
    let mut hs = Vec::new();
    capture::source::read_file(pcap, &mut |p| {
        engine.process(p);
        for o in engine.app_mut().out.drain(..) {
            if let Output::Handshake(h) = o {
                hs.push(*h);
            }
        }
    })
    .unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
    let (mut app, _) = engine.finish();
    for o in app.out.drain(..) {
        if let Output::Handshake(h) = o {
            hs.push(*h);
        }
    }
    hs
}

fn hex(c: &[analyzer::CertRef]) -> Vec<String> {
    c.iter().map(|c| to_hex(&c.sha256)).collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn messages(hs: &[Handshake]) -> Vec<Msg> {
    let mut v = Vec::new();
    for h in hs {
        let c = ep(h.client.0, h.client.1);
        let s = ep(h.server.0, h.server.1);
        if let Some(ch) = &h.server_chain {
            v.push(Msg {
                sender: s.clone(),
                receiver: c.clone(),
                direction: "server->client",
                chain: hex(ch),
            });
        }
        if let Some(ch) = &h.client_chain {
            v.push(Msg {
                sender: c.clone(),
                receiver: s.clone(),
                direction: "client->server",
                chain: hex(ch),
            });
        }
    }
    v
}

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn expected(p: &Path) -> Vec<Msg> {
    jsonl(p)
        .iter()
        .map(|v| {
            let ip = |k: &str| {
                let s = v[k].as_str().unwrap_or("?");
                // normalise IPv6 text through IpAddr
                s.parse::<std::net::IpAddr>()
                    .map(|a| a.to_string())
                    .unwrap_or(s.to_string())
            };
            Msg {
                sender: format!("{}:{}", ip("src"), v["sport"]),
                receiver: format!("{}:{}", ip("dst"), v["dport"]),
                direction: if v["direction"] == "client->server" {
                    "client->server"
                } else {
                    "server->client"
                },
                chain: v["sha256"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap_or("").into()).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The corpus captures, sorted; fails when fewer than [`MIN_CAPTURES`] are there.
fn pcaps(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    assert!(
        v.len() >= MIN_CAPTURES,
        "{}: {} captures, expected at least {MIN_CAPTURES}",
        dir.display(),
        v.len()
    );
    v
}

fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSL 2.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        0xfeff => "DTLS 1.0".into(),
        0xfefd => "DTLS 1.2".into(),
        0xfefc => "DTLS 1.3".into(),
        v => format!("0x{v:04x}"),
    }
}

#[test]
fn zeek_corpus_certificate_messages() {
    let dir = corpus();
    let (mut exp_total, mut matched, mut got_total, mut explained) = (0, 0, 0, 0);
    let mut report = String::new();
    let (mut sess_total, mut sess_ok) = (0, 0);
    for pcap in pcaps(&dir) {
        let stem = pcap
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let hs = run(&pcap);
        let got = messages(&hs);
        let exp = expected(&dir.join("expected").join(format!("{stem}.tshark.jsonl")));
        exp_total += exp.len();
        got_total += got.len();
        let mut pool: HashMap<&Msg, usize> = HashMap::new();
        for g in &got {
            *pool.entry(g).or_default() += 1;
        }
        for e in &exp {
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
                let doc = TSHARK_MISSES.iter().any(|(s, d, c)| {
                    *s == stem
                        && *d == g.direction
                        && c.iter().map(|x| x.to_string()).eq(g.chain.iter().cloned())
                });
                if doc {
                    explained += 1;
                } else {
                    report.push_str(&format!("EXTRA {stem}: {g:?}\n"));
                }
            }
        }
        // Sessions: every tshark session with a ServerHello must be reported with the same
        // endpoints, SNI, version and cipher.
        for s in jsonl(
            &dir.join("expected")
                .join(format!("{stem}.tshark.sessions.jsonl")),
        ) {
            if s["server_hello_frame"].is_null() && s["sni"].is_null() {
                continue;
            }
            sess_total += 1;
            let norm = |k: &str| {
                let t = s[k].as_str().unwrap_or("?");
                t.parse::<std::net::IpAddr>()
                    .map(|a| a.to_string())
                    .unwrap_or(t.into())
            };
            let client = format!("{}:{}", norm("client"), s["cport"]);
            let server = format!("{}:{}", norm("server"), s["sport"]);
            let found = hs.iter().find(|h| {
                ep(h.client.0, h.client.1) == client && ep(h.server.0, h.server.1) == server
            });
            let ok = found.is_some_and(|h| {
                let sni_ok = h.server_name.as_deref() == s["sni"].as_str();
                let ver_ok = s["version_code"]
                    .as_str()
                    .is_none_or(|c| Some(c.to_string()) == h.version.map(|v| format!("0x{v:04x}")));
                let cipher_ok = s["cipher"]
                    .as_str()
                    .is_none_or(|c| h.cipher.and_then(tls_cipher_name).is_none_or(|n| n == c));
                sni_ok && ver_ok && cipher_ok
            });
            if ok {
                sess_ok += 1;
            } else {
                report.push_str(&format!(
                    "SESSION {stem}: expected {} got {:?}\n",
                    s,
                    found.map(|h| (
                        &h.server_name,
                        h.version.map(version_name),
                        h.cipher,
                        h.starttls
                    ))
                ));
            }
        }
    }
    let recall = matched as f64 / exp_total as f64;
    let precision = matched as f64 / (got_total - explained).max(1) as f64;
    eprintln!(
        "expected {exp_total}, reported {got_total} ({explained} documented tshark misses), matched {matched}; recall {recall:.4} precision {precision:.4}; sessions {sess_ok}/{sess_total}\n{report}"
    );
    assert_eq!(exp_total, 87);
    assert!(recall >= 0.99, "recall {recall}");
    assert!(precision >= 0.99, "precision {precision}");
    assert_eq!(explained, TSHARK_MISSES.len());
    assert!(
        sess_ok as f64 >= 0.97 * sess_total as f64,
        "sessions {sess_ok}/{sess_total}"
    );
}

fn tls_cipher_name(id: u16) -> Option<&'static str> {
    tls_parser::TlsCipherSuite::from_id(id).map(|c| c.name)
}

/// Prints one line per handshake (for eyeballing with --ignored --nocapture).
#[test]
#[ignore]
fn dump_handshakes() {
    let dir = corpus();
    for pcap in pcaps(&dir) {
        let stem = pcap
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        for h in run(&pcap) {
            println!(
                "{stem}\t{}:{}->{}:{}\t{:?}\tst={:?}\tv={:?}\tsni={:?}\tsrv={:?}\tcli={:?}\talert={:?}\test={}\tres={}\tvis={}\t{:?}\tcas={:?}\talpn={:?}",
                h.client.0, h.client.1, h.server.0, h.server.1, h.protocol, h.starttls,
                h.version.map(version_name), h.server_name,
                h.server_chain.as_ref().map(|c| c.len()), h.client_chain.as_ref().map(|c| c.len()),
                h.alert.map(|a| (a.from, a.level, a.code, a.after_server_cert)), h.established, h.resumed,
                h.chain_visible, h.outcome, h.cert_request_cas.as_ref().map(|c| c.len()), h.alpn
            );
        }
    }
}

/// Reads `stem \t ip \t port \t value [\t value2]` rows into (stem, "ip:port") -> rows.
fn tsv(name: &str) -> HashMap<(String, String), Vec<Vec<String>>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let mut m: HashMap<(String, String), Vec<Vec<String>>> = HashMap::new();
    for line in std::fs::read_to_string(path).expect("tsv").lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            continue;
        }
        let ip = f[1]
            .parse::<std::net::IpAddr>()
            .map(|a| a.to_string())
            .unwrap_or(f[1].into());
        m.entry((f[0].to_string(), format!("{ip}:{}", f[2])))
            .or_default()
            .push(f[3..].iter().map(|s| s.to_string()).collect());
    }
    m
}

/// The first ClientHello of each connection: JA3 (string and MD5) against tshark 4.0's `tls.handshake.ja3_full`/`ja3`, and JA4 against
/// tests/data/ja4_from_tshark.py (an independent implementation over tshark's dissection).
#[test]
fn fingerprints_match_independent_computation() {
    let dir = corpus();
    let ja3 = tsv("ja3_tshark.tsv");
    let ja4 = tsv("ja4_tshark.tsv");
    let (mut n3, mut ok3, mut n4, mut ok4) = (0, 0, 0, 0);
    let mut report = String::new();
    for pcap in pcaps(&dir) {
        let stem = pcap
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        for h in run(&pcap) {
            let key = (stem.clone(), ep(h.client.0, h.client.1));
            if h.protocol != analyzer::Protocol::Tls {
                continue;
            }
            if let (Some(rows), Some(s), Some(m)) = (ja3.get(&key), &h.ja3_string, &h.ja3) {
                n3 += 1;
                if rows
                    .iter()
                    .any(|r| r.first() == Some(s) && r.get(1) == Some(m))
                {
                    ok3 += 1;
                } else {
                    report.push_str(&format!("JA3 {key:?}: ours {s} {m}, tshark {rows:?}\n"));
                }
            }
            if let (Some(rows), Some(f)) = (ja4.get(&key), &h.ja4) {
                n4 += 1;
                if rows.first().is_some_and(|r| r.first() == Some(f)) {
                    ok4 += 1;
                } else {
                    report.push_str(&format!("JA4 {key:?}: ours {f}, independent {rows:?}\n"));
                }
            }
        }
    }
    eprintln!("ja3 {ok3}/{n3}, ja4 {ok4}/{n4}\n{report}");
    assert!(
        n3 >= 80 && n4 >= 80,
        "too few fingerprints compared: {n3} {n4}"
    );
    assert_eq!(ok3, n3, "{report}");
    assert_eq!(ok4, n4, "{report}");
}

/// Per-capture facts that the certificate lists do not show: STARTTLS labels, roles, outcomes,
/// alerts, TLS 1.3 visibility, SSLv2/DTLS, CertificateRequest names.
#[test]
fn corpus_handshake_semantics() {
    use analyzer::{Outcome, Protocol, Side};
    let dir = corpus();
    let one = |stem: &str| -> Vec<Handshake> { run(&dir.join(format!("{stem}.pcap"))) };
    let first = |stem: &str| -> Handshake {
        one(stem)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{stem}: no handshake"))
    };

    for (stem, label) in [
        ("smtp-starttls", "smtp"),
        ("imap-starttls", "imap"),
        ("pop3-starttls", "pop3"),
        ("ftp-auth-tls", "ftp"),
        ("ldap-starttls", "ldap"),
        ("xmpp-starttls", "xmpp"),
        ("xmpp-dialback-starttls", "xmpp"),
        ("postgresql-psql-aws-ssl-require", "postgresql"),
        ("mysql-encrypted", "mysql"),
        ("irc-starttls", "irc"),
        ("rdp-to-ssl", "rdp"),
        ("socks-with-ssl", "socks"),
    ] {
        assert_eq!(first(stem).starttls, Some(label), "{stem}");
    }
    assert_eq!(first("tls1.2").starttls, None);
    assert_eq!(first("ssl-and-ssh-using-sslh").starttls, None);

    // Accepted full handshake.
    let h = first("tls1.2");
    assert!(h.established && h.chain_visible && !h.resumed);
    assert_eq!(h.outcome, Outcome::Accepted);
    assert_eq!(h.version, Some(0x0303));
    assert!(h.ja3.is_some() && h.ja4.as_deref().is_some_and(|j| j.starts_with("t12")));

    // The client closed right after the 339 KB Certificate (no alert, no CCS).
    let h = first("tls-fragmented-handshake");
    assert_eq!(h.server_chain.as_ref().map(|c| c.len()), Some(1));
    assert_eq!(h.outcome, Outcome::RejectedClose);

    // Heartbleed: the client sent a heartbeat after the chain, then closed: not a rejection.
    assert_eq!(first("heartbleed").outcome, Outcome::Unknown);

    // Empty client Certificate, CertificateRequest names, fatal alert from the server.
    let h = first("certificate-request-failed");
    assert_eq!(h.client_chain.as_ref().map(|c| c.len()), Some(0));
    assert_eq!(h.cert_request_cas.as_ref().map(|c| c.len()), Some(1));
    let a = h.alert.expect("alert");
    assert_eq!((a.from, a.level, a.code), (Side::Server, 2, 40));
    assert_eq!(h.outcome, Outcome::Accepted, "the client sent its CCS");

    // A ClientHello answered by a fatal alert.
    let h = first("tls-1.2-handshake-failure");
    assert_eq!(h.alert.map(|a| (a.from, a.code)), Some((Side::Server, 40)));
    assert!(h.server_chain.is_none() && !h.established);

    // TLS 1.3 (also with HelloRetryRequest): no chain, SNI still there.
    for stem in [
        "tls13_wolfssl",
        "hrr",
        "chrome-1250-tls-x25519-kyber",
        "tls13-ech",
    ] {
        let h = first(stem);
        assert!(!h.chain_visible && h.server_chain.is_none(), "{stem}");
        assert_eq!(h.version, Some(0x0304), "{stem}");
        assert_eq!(h.outcome, Outcome::Unknown, "{stem}");
    }
    assert_eq!(
        first("chrome-1250-tls-x25519-kyber").server_name.as_deref(),
        Some("lh3.google.com")
    );

    // SSLv2: the SERVER-HELLO certificate is the server chain.
    let h = first("ssl-v2");
    assert_eq!(h.protocol, Protocol::Sslv2);
    assert_eq!(h.version, Some(0x0002));
    assert_eq!(h.server_chain.as_ref().map(|c| c.len()), Some(1));

    // DTLS: fragmented Certificate after HelloVerifyRequest; STUN-multiplexed WebRTC where the
    // UDP responder is the DTLS client.
    let h = first("dtls1_2");
    assert_eq!((h.protocol, h.version), (Protocol::Dtls, Some(0xfefd)));
    assert_eq!(h.server_chain.as_ref().map(|c| c.len()), Some(1));
    assert!(h.ja4.as_deref().is_some_and(|j| j.starts_with("dd2")));
    let h = first("webrtc-stun");
    assert_eq!(h.client_chain.as_ref().map(|c| c.len()), Some(1));
    assert_eq!(ep(h.client.0, h.client.1), "74.201.205.9:43044");
    assert_eq!(ep(h.server.0, h.server.1), "192.168.6.82:51462");
    assert!(!first("dtls13-wolfssl").chain_visible);

    // Several handshakes, one per connection.
    assert_eq!(one("google-cert-repeat").len(), 8);
    // A protocol error after the chain keeps the chain.
    assert_eq!(
        first("tls1.2-late-protocol-error")
            .server_chain
            .map(|c| c.len()),
        Some(3)
    );
}
