//! TLS 1.3 chains from key logs, through the binary, on real OpenSSL handshakes
//! (`pcaps/cases/tls13-keylog.pcap` with the clients' `tls13-keylog.keys`, made by
//! `pcaps/gen/cases.py tls13-keylog`): the three suites, mTLS, a HelloRetryRequest and an
//! encrypted unknown_ca alert. Every Certificate message must match what tshark decrypted with
//! the same key log (`pcaps/cases/expected-tshark/tls13-keylog.tshark.jsonl`, from
//! `pcaps/tools/tshark_oracle.py --keylog`), and without the key log nothing may be reported.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::chain_hashes;

fn case(name: &str) -> PathBuf {
    testkit::corpus::file(&format!("pcaps/cases/{name}"))
}

/// The NDJSON of `trustmap analyze` over `input` with `extra` options.
fn analyze_raw(extra: &[OsString], input: &Path) -> Vec<u8> {
    testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["analyze", "-q", "-o", "-", "--db", ":memory:"])
            .args(extra)
            .arg(input),
    )
}

/// Every event of `trustmap analyze` over the case file `input` with `extra` options.
fn analyze(extra: &[OsString], input: &str) -> Vec<Value> {
    String::from_utf8_lossy(&analyze_raw(extra, &case(input)))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
        .collect()
}

/// `--keylog` with the case's key log, or nothing.
fn keylog_arg(on: bool, keys: &str) -> Vec<OsString> {
    if on {
        vec!["--keylog".into(), case(keys).into()]
    } else {
        Vec::new()
    }
}

fn dataset<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"]["dataset"] == name)
        .collect()
}

fn tls_events(keylog: bool) -> Vec<Value> {
    let all = analyze(
        &keylog_arg(keylog, "tls13-keylog.keys"),
        "tls13-keylog.pcap",
    );
    dataset(&all, "trustmap.tls").into_iter().cloned().collect()
}

#[test]
fn decrypted_chains_match_tshark_with_the_same_key_log() {
    let events = tls_events(true);
    assert_eq!(events.len(), 7);
    // (client port, "server"|"client") -> chain, from trustmap.
    let mut got: BTreeMap<(u64, &str), Vec<String>> = BTreeMap::new();
    for e in &events {
        let port = e["source"]["port"].as_u64().unwrap_or(0);
        for side in ["server", "client"] {
            let c = &e["tls"][side]["chain"];
            if c.is_array() {
                got.insert((port, side), chain_hashes(c));
            }
        }
    }
    let oracle = std::fs::read_to_string(case("expected-tshark/tls13-keylog.tshark.jsonl"))
        .expect("tshark oracle");
    let mut messages = 0;
    for line in oracle.lines() {
        let m: Value = serde_json::from_str(line).expect("oracle JSON");
        let (side, port) = if m["direction"] == "server->client" {
            ("server", m["dport"].as_u64())
        } else {
            ("client", m["sport"].as_u64())
        };
        let want: Vec<String> = chain_hashes(&Value::Array(
            m["sha256"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|h| serde_json::json!({ "sha256": h }))
                .collect(),
        ));
        assert_eq!(
            got.get(&(port.unwrap_or(0), side)),
            Some(&want),
            "{side} chain of client port {port:?}"
        );
        messages += 1;
    }
    // Six handshakes have secrets: six server chains and the mTLS client chain.
    assert_eq!(messages, 7);
    assert_eq!(got.len(), 7, "no chain tshark did not see: {got:?}");
    for e in &events {
        let port = e["source"]["port"].as_u64();
        let tm = &e["trustmap"];
        if port == Some(40034) {
            assert_eq!(tm["chain_visible"], false, "no secrets for this one");
            assert_eq!(tm["chain_source"], Value::Null);
        } else {
            assert_eq!(tm["chain_visible"], true, "{port:?}");
            assert_eq!(tm["chain_source"], "keylog", "{port:?}");
        }
    }
}

#[test]
fn without_the_key_log_every_chain_stays_hidden() {
    let events = tls_events(false);
    assert_eq!(events.len(), 7);
    for e in &events {
        let tm = &e["trustmap"];
        assert_eq!(tm["chain_visible"], false);
        assert_eq!(tm["chain_source"], Value::Null);
        assert!(e["tls"]["server"]
            .get("chain")
            .is_none_or(|c| chain_hashes(c).is_empty()));
        assert_eq!(e["tls"]["version"], "1.3");
        assert_eq!(tm["outcome"]["result"], "unknown");
    }
}

/// Hostile bytes on the decryption path: copies of the capture with bytes flipped inside packet
/// data (ciphertext, tags, record headers, handshake messages) go through the binary with the key
/// log: no panic, exit 0, NDJSON out, and records that no longer open are counted, not fatal.
#[test]
fn flipped_ciphertext_never_panics() {
    for (capture, keys) in [
        ("tls13-keylog.pcap", "tls13-keylog.keys"),
        ("quic-keylog.pcap", "quic-keylog.keys"),
    ] {
        flip(capture, keys);
    }
}

fn flip(capture: &str, keys: &str) {
    let pcap = std::fs::read(case(capture)).expect("capture");
    let dir = testkit::TempDir::new(&format!("keylog-flips-{capture}"));
    let mut rng = testkit::Rng::new(0x6b65_796c_6f67);
    for seed in 0..24 {
        let mut m = pcap.clone();
        // Skip the 24-byte file header; flip a few bytes anywhere after it.
        for _ in 0..(1 + seed % 6) {
            let at = 24 + rng.index(m.len() - 24);
            if let Some(b) = m.get_mut(at) {
                *b ^= 1 << rng.index(8);
            }
        }
        let path = dir.join(format!("m{seed}.pcap"));
        std::fs::write(&path, &m).expect("write mutant");
        let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["analyze", "-q", "-o", "-", "--db", ":memory:", "--keylog"])
            .arg(case(keys))
            .arg(&path)
            .output()
            .expect("run trustmap");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("panicked"),
            "{capture} mutant {seed}: {err}"
        );
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            serde_json::from_str::<Value>(l).expect("NDJSON");
        }
    }
}

/// A removal of the test root: with the key log, every decrypted TLS 1.3 handshake under it is a
/// residual use known from the key log (`trustmap.chain_source: "keylog"` on the finding), the
/// accepting clients still trust it and the refusing one failed; without the key log the chains
/// are unknown and nothing is raised.
#[test]
fn removal_findings_on_decrypted_chains_say_so() {
    const ROOT: &str = "6e4a39c95ab0b1ac76dc417955f51d44e080fe7193c0ec94f77d7be12e0eaa3e";
    let dir = testkit::TempDir::new("keylog-removal");
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[removal]]\nid = \"test-root-retirement\"\nname = \"Retire the test root\"\n\
             ca = {{ sha256 = \"{ROOT}\" }}\nremoved = \"2020-01-01T00:00:00Z\"\n"
        ),
    )
    .expect("rules");
    let run = |keylog: bool| -> Vec<Value> {
        let mut args: Vec<OsString> = vec!["--suppress".into(), "0".into(), "--rules".into()];
        args.push(rules.clone().into());
        args.push("--anchors".into());
        args.push(case("pki/root.pem").into());
        args.extend(keylog_arg(keylog, "tls13-keylog.keys"));
        analyze(&args, "tls13-keylog.pcap")
            .into_iter()
            .filter(|e| {
                e["event"]["dataset"] == "trustmap.finding"
                    && e["trustmap"]["finding"]["rule"] == "test-root-retirement"
            })
            .collect()
    };
    let with = run(true);
    // The one handshake without secrets (port 40034) is inferred from the chain the same endpoint
    // presented in the decrypted handshakes before it: labelled, one severity level lower.
    let (inferred, with): (Vec<&Value>, Vec<&Value>) = with
        .iter()
        .partition(|f| f["trustmap"]["finding"]["evidence"] == "inferred");
    assert_eq!(inferred.len(), 1, "{inferred:?}");
    let inf = inferred[0];
    assert_eq!(inf["source"]["port"], 40034);
    assert_eq!(
        inf["trustmap"]["finding"]["code"],
        "ca_removal.residual_use"
    );
    assert_eq!(inf["event"]["severity"], 2);
    assert!(inf["trustmap"].get("chain_source").is_none(), "{inf}");
    let mut by_code: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for f in with {
        assert_eq!(f["trustmap"]["chain_source"], "keylog", "{f}");
        assert_eq!(
            f["event"]["severity"].as_u64().map(|s| s >= 3),
            Some(true),
            "{f}"
        );
        let code = f["trustmap"]["finding"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let port = f["source"]["port"].as_u64().unwrap_or(0);
        by_code.entry(code).or_default().push(port);
    }
    for v in by_code.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    // Six handshakes with secrets: server chains under the root; the mTLS client's chain is under
    // it too (a client-side residual use on the same port).
    assert_eq!(
        by_code.get("ca_removal.residual_use"),
        Some(&vec![40030, 40031, 40032, 40033, 40035, 40036])
    );
    assert_eq!(
        by_code.get("ca_removal.stale_trust"),
        Some(&vec![40030, 40031, 40032, 40035, 40036])
    );
    assert_eq!(by_code.get("ca_removal.failure"), Some(&vec![40033]));
    assert!(run(false).is_empty(), "no chain known, no removal finding");
}

/// The same capture as pcapng with its key log inside (a Decryption Secrets Block, written by
/// `editcap --inject-secrets`): without `--keylog`, the events are byte for byte those of the
/// pcap with `--keylog`, with one worker and with two.
#[test]
fn pcapng_decryption_secrets_block_is_a_key_log() {
    let run = |args: &[&str], input: &str| -> Vec<u8> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        analyze_raw(&args, &case(input))
    };
    let keys = case("tls13-keylog.keys");
    let keys = keys.to_str().expect("utf-8 path");
    let want = run(&["--keylog", keys], "tls13-keylog.pcap");
    assert!(String::from_utf8_lossy(&want).contains("\"chain_source\":\"keylog\""));
    for workers in ["1", "2"] {
        let got = run(&["--workers", workers], "tls13-keylog.pcapng");
        testkit::assert_same(&format!("pcapng DSB, {workers} worker(s)"), &got, &want);
    }
}

/// The signature schemes a client offers (`tls.client.signature_algorithms`), named as IANA
/// does, in the ClientHello's order: Chrome's, as tshark reads them
/// (`tshark -T fields -e tls.handshake.sig_hash_alg`: 0x0403,0x0804,0x0401,0x0503,0x0805,0x0501,
/// 0x0806,0x0601).
#[test]
fn client_signature_schemes_are_named() {
    let zeek = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/zeek");
    let out = analyze_raw(&[], &zeek.join("chrome-1250-tls-x25519-kyber.pcap"));
    let tls: Vec<Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
        .filter(|e| e["event"]["dataset"] == "trustmap.tls")
        .collect();
    assert_eq!(tls.len(), 1);
    assert_eq!(
        tls[0]["tls"]["client"]["signature_algorithms"],
        serde_json::json!([
            "ecdsa_secp256r1_sha256",
            "rsa_pss_rsae_sha256",
            "rsa_pkcs1_sha256",
            "ecdsa_secp384r1_sha384",
            "rsa_pss_rsae_sha384",
            "rsa_pkcs1_sha384",
            "rsa_pss_rsae_sha512",
            "rsa_pkcs1_sha512"
        ])
    );
}

/// The negotiated key-exchange group (ECS `tls.curve`) is read without keys: from the TLS 1.3
/// ServerHello's key_share (also after a HelloRetryRequest), from a TLS 1.2 ServerKeyExchange,
/// and a post-quantum hybrid is named (tshark reads the same groups from these captures).
#[test]
fn key_exchange_group_without_keys() {
    let curves = |pcap: PathBuf| -> Vec<String> {
        String::from_utf8_lossy(&analyze_raw(&[], &pcap))
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
            .filter(|e| e["event"]["dataset"] == "trustmap.tls")
            .map(|e| e["tls"]["curve"].as_str().unwrap_or("-").to_string())
            .collect()
    };
    assert_eq!(curves(case("tls13-keylog.pcap")), vec!["x25519"; 7]);
    let zeek = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/zeek");
    assert_eq!(
        curves(zeek.join("chrome-1250-tls-x25519-kyber.pcap")),
        vec!["X25519Kyber768Draft00"]
    );
    assert_eq!(curves(zeek.join("ecdhe.pcap")), vec!["secp256r1"]);
}

/// QUIC from a real stack (aioquic, `pcaps/gen/quic.py`): the Initial packets give SNI, ALPN,
/// version and JA4 (`q`) without keys; with the key log, the Handshake packets give the server's
/// chain: QUIC v1 with a ClientHello over two Initial packets, QUIC v2, mTLS (the client's chain
/// from the client's Handshake packets), and a connection that a Retry restarted. Every chain is the one the generator's server sent
/// (`quic-keylog.expected.json`), and matches tshark's where tshark decrypts (tshark 4.0 does not
/// follow the Retry). Without the key log no chain is reported.
#[test]
fn quic_initial_without_keys_and_handshake_with_the_key_log() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(case("quic-keylog.expected.json")).expect("expected.json"),
    )
    .expect("JSON");
    let run = |keylog: bool| -> Vec<Value> {
        let all = analyze(&keylog_arg(keylog, "quic-keylog.keys"), "quic-keylog.pcap");
        dataset(&all, "trustmap.tls").into_iter().cloned().collect()
    };
    let want = doc["handshakes"].as_array().expect("handshakes");
    for keylog in [true, false] {
        let events = run(keylog);
        assert_eq!(events.len(), want.len(), "keylog {keylog}");
        for h in want {
            let port = h["client"]["port"].as_u64();
            let e = events
                .iter()
                .find(|e| e["source"]["port"].as_u64() == port)
                .unwrap_or_else(|| panic!("no event for client port {port:?}"));
            assert_eq!(e["network"]["transport"], "udp");
            assert_eq!(e["network"]["protocol"], "quic");
            assert_eq!(e["tls"]["client"]["server_name"], h["sni"]);
            assert_eq!(e["tls"]["version"], "1.3");
            assert_eq!(e["tls"]["client"]["alpn"][0], "hq-interop");
            let ja4 = e["tls"]["client"]["ja4"].as_str().unwrap_or("");
            assert!(ja4.starts_with("q13d") && ja4.contains("hp_"), "{ja4}");
            let visible = keylog && h["chain_visible"] == true;
            assert_eq!(
                e["trustmap"]["chain_visible"], visible,
                "{port:?} keylog {keylog}"
            );
            let chain = chain_hashes(&e["tls"]["server"]["chain"]);
            if visible {
                assert_eq!(e["trustmap"]["chain_source"], "keylog");
                let want_chain: Vec<String> = h["server_chain"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .collect();
                assert_eq!(chain, want_chain, "{port:?}");
                assert_eq!(e["trustmap"]["outcome"]["result"], "accepted");
            } else {
                assert!(chain.is_empty(), "{port:?}");
            }
            // mTLS: the client's chain, from its own Handshake packets.
            let client_chain = chain_hashes(&e["tls"]["client"]["chain"]);
            match h["client_chain"].as_array() {
                Some(c) if visible => {
                    let want_chain: Vec<&str> = c.iter().filter_map(Value::as_str).collect();
                    assert_eq!(client_chain, want_chain, "{port:?}");
                }
                _ => assert!(client_chain.is_empty(), "{port:?}"),
            }
            if !visible {
                assert_eq!(e["trustmap"]["chain_source"], Value::Null);
            }
        }
    }
    // tshark with the same key log (expected-tshark, tshark_oracle.py --keylog) agrees.
    let events = run(true);
    let oracle =
        std::fs::read_to_string(case("expected-tshark/quic-keylog.tshark.jsonl")).expect("oracle");
    let (mut servers, mut clients) = (0, 0);
    for line in oracle.lines() {
        let m: Value = serde_json::from_str(line).expect("oracle JSON");
        let from_server = m["direction"] == "server->client";
        let client_port = if from_server {
            &m["dport"]
        } else {
            &m["sport"]
        };
        let e = events
            .iter()
            .find(|e| &e["source"]["port"] == client_port)
            .expect("event for the oracle's connection");
        let want: Vec<String> = m["sha256"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect();
        let side = if from_server { "server" } else { "client" };
        assert_eq!(
            chain_hashes(&e["tls"][side]["chain"]),
            want,
            "{side} {client_port}"
        );
        *(if from_server {
            &mut servers
        } else {
            &mut clients
        }) += 1;
    }
    assert_eq!(
        (servers, clients),
        (3, 1),
        "tshark decrypts the v1, v2 and mTLS connections, and the mTLS client's chain"
    );
}

/// `inventory --format json`: each endpoint says how its chains were known. The key-log
/// endpoint 127.0.1.30 was decrypted four times and inferred once (the connection without
/// secrets); the mTLS one only decrypted; a TLS 1.2 endpoint was observed in the clear.
#[test]
fn inventory_endpoints_carry_their_evidence() {
    let dir = testkit::TempDir::new("keylog-evidence");
    let db = dir.join("inv.db");
    testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["analyze", "-q", "-o", "/dev/null", "--db"])
            .arg(&db)
            .arg("--keylog")
            .arg(case("tls13-keylog.keys"))
            .arg(case("tls13-keylog.pcap"))
            .arg(case("mtls.pcap")),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["inventory", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .expect("inventory");
    let inv: Value = serde_json::from_slice(&out.stdout).expect("inventory JSON");
    let mut evidence: BTreeMap<String, Value> = BTreeMap::new();
    for ca in inv.as_array().expect("array") {
        for ep in ca["endpoints"].as_array().into_iter().flatten() {
            let key = format!("{}:{}", ep["ip"].as_str().unwrap_or(""), ep["port"]);
            evidence.insert(key, ep["evidence"].clone());
        }
    }
    assert_eq!(
        evidence["127.0.1.30:443"],
        serde_json::json!(["inferred", "keylog"])
    );
    assert_eq!(evidence["127.0.1.31:443"], serde_json::json!(["keylog"]));
    assert_eq!(evidence["127.0.1.5:443"], serde_json::json!(["observed"]));
}

/// `inventory --algorithms`: Chrome's hybrid key exchange makes its endpoint `kx_only` and the
/// client that offered it too; the ML-DSA endpoint's certificate is post-quantum; a classic ECDHE
/// endpoint is `not_ready`.
#[test]
fn algorithm_map_from_real_captures() {
    let dir = testkit::TempDir::new("keylog-algorithms");
    let db = dir.join("inv.db");
    let zeek = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/zeek");
    testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["analyze", "-q", "-o", "/dev/null", "--db"])
            .arg(&db)
            .arg(zeek.join("chrome-1250-tls-x25519-kyber.pcap"))
            .arg(zeek.join("ml-dsa-44-cert.pcap"))
            .arg(zeek.join("ecdhe.pcap")),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["inventory", "--algorithms", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .expect("inventory");
    let m: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let status: BTreeMap<String, (Value, Value, Value)> = m["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["ip"].as_str().unwrap_or("").to_string(),
                (
                    e["group"].clone(),
                    e["leaf_key"].clone(),
                    e["status"].clone(),
                ),
            )
        })
        .collect();
    assert_eq!(
        status["142.250.200.14"],
        (
            "X25519Kyber768Draft00".into(),
            Value::Null,
            "kx_only".into()
        )
    );
    assert_eq!(status["10.0.0.2"].1, "ML-DSA-44");
    assert_eq!(status["10.0.0.2"].2, "cert_only");
    assert_eq!(status["74.125.239.97"].2, "not_ready");
    let clients: Vec<&Value> = m["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["pq_key_exchange_offered"] == 1)
        .collect();
    assert_eq!(clients.len(), 1, "only Chrome offered a hybrid: {m}");
}
