//! The estate scenario (pcaps/cases/estate.pcap, made by pcaps/gen/estate.py from real OpenSSL
//! stacks in a network namespace): an internal root rotated from OLD (Corp Root CA G1) to NEW
//! (G2), servers migrated and not, one that sends the root and one that does not, clients trusting
//! both / only NEW (fails with unknown_ca) / only OLD, an mTLS partner, a self-signed SHA-1
//! appliance, a TLS 1.3 server under NEW, and one under OLD (ledger) that old clients reach over
//! TLS 1.2 and whose TLS 1.3 secrets are in estate.keys. pcaps/cases/estate-rules.toml removes OLD
//! 14 days before the capture.
//!
//! Everything expected is read from estate.expected.json (written by the generator from what each
//! stack was configured with), not from trustmap's own output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const RULE: &str = "corp-root-g1-retirement";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> PathBuf {
    root().join("pcaps/cases")
}

fn expected() -> Value {
    let t = std::fs::read_to_string(cases().join("estate.expected.json")).expect("expected json");
    serde_json::from_str(&t).expect("expected json parses")
}

fn trustmap(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run trustmap");
    assert!(
        out.status.success(),
        "trustmap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `analyze` over the estate with its rules and both corp roots as anchors.
fn analyze(db: &Path, as_of: Option<&str>) -> Vec<Value> {
    analyze_keys(db, as_of, false)
}

/// `analyze`, with the clients' key log (estate.keys) when `keys`.
fn analyze_keys(db: &Path, as_of: Option<&str>, keys: bool) -> Vec<Value> {
    let dbs = db.to_string_lossy().into_owned();
    let mut args = vec![
        "analyze",
        "-q",
        "-o",
        "-",
        "--suppress",
        "0",
        "--db",
        &dbs,
        "--rules",
        "pcaps/cases/estate-rules.toml",
        "--anchors",
        "corp=pcaps/cases/estate-pki/old-root.pem",
        "--anchors",
        "corp=pcaps/cases/estate-pki/new-root.pem",
    ];
    if let Some(t) = as_of {
        args.push("--as-of");
        args.push(t);
    }
    if keys {
        args.extend(["--keylog", "pcaps/cases/estate.keys"]);
    }
    args.push("pcaps/cases/estate.pcap");
    stdout(&trustmap(&args))
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect()
}

fn dataset(v: &Value) -> &str {
    v["event"]["dataset"].as_str().unwrap_or("")
}

/// (client ip, server ip, code) of every ca_removal finding about the server's chain
/// (`side = "client"` selects the ones about mTLS client certificates instead).
fn removal_findings_side(
    events: &[Value],
    client_side: bool,
) -> BTreeMap<(String, String, String), usize> {
    let mut m = BTreeMap::new();
    for v in events.iter().filter(|v| dataset(v) == "trustmap.finding") {
        let f = &v["trustmap"]["finding"];
        if (f["side"] == "client") != client_side {
            continue;
        }
        let code = f["code"].as_str().unwrap_or("").to_string();
        if !code.starts_with("ca_removal.") {
            continue;
        }
        assert_eq!(f["rule"], RULE, "only the estate rule applies: {v}");
        *m.entry((
            v["source"]["ip"].as_str().unwrap_or("").to_string(),
            v["destination"]["ip"].as_str().unwrap_or("").to_string(),
            code,
        ))
        .or_insert(0) += 1;
    }
    m
}

fn removal_findings(events: &[Value]) -> BTreeMap<(String, String, String), usize> {
    removal_findings_side(events, false)
}

/// Handshakes whose mTLS client chain goes through the OLD intermediate.
fn old_client_certs(exp: &Value) -> BTreeMap<(String, String, String), usize> {
    let old_int = exp["intermediates"]["old"]
        .as_str()
        .expect("old intermediate");
    let mut m = BTreeMap::new();
    for h in exp["handshakes"].as_array().expect("handshakes") {
        let through_old = h["client_chain"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == old_int));
        if through_old {
            *m.entry((
                h["client"]["ip"].as_str().unwrap_or("").to_string(),
                h["server"]["ip"].as_str().unwrap_or("").to_string(),
                "ca_removal.residual_use".to_string(),
            ))
            .or_insert(0) += 1;
        }
    }
    m
}

/// Server facts by ip from the expected file.
fn servers(exp: &Value) -> BTreeMap<String, Value> {
    exp["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| (s["ip"].as_str().expect("ip").to_string(), s.clone()))
        .collect()
}

fn chains_to_old(exp: &Value, server_ip: &str) -> bool {
    servers(exp)
        .get(server_ip)
        .is_some_and(|s| s["chains_to"] == "old")
}

/// Whether trustmap sees the handshake's chain: in the clear, or with the key log when `keys`.
fn visible(h: &Value, keys: bool) -> bool {
    h["chain_visible"] == true || (keys && h["keylog"] == true)
}

#[test]
fn estate_findings_after_removal() {
    let d = testkit::TempDir::new("estate-after");
    let events = findings_after_removal(&d.join("inv.db"), false);
    // ledger's TLS 1.3 handshakes come before its TLS 1.2 sighting: without keys they raise
    // nothing, not even an inferred finding (the inventory attributes them, see below).
    assert!(
        !events
            .iter()
            .any(|v| v["trustmap"]["finding"]["evidence"] == "inferred"),
        "no inferred finding"
    );
}

/// The same capture with the clients' key log: ledger's TLS 1.3 handshakes show its chain under
/// OLD, a residual use and stale trust from the client that trusts both roots, and the outage of
/// the NEW-only client, whose unknown_ca alert was encrypted.
#[test]
fn estate_findings_with_the_key_log() {
    let exp = expected();
    let d = testkit::TempDir::new("estate-keys");
    let db = d.join("inv.db");
    let events = findings_after_removal(&db, true);
    let keyed: Vec<&Value> = exp["handshakes"]
        .as_array()
        .expect("handshakes")
        .iter()
        .filter(|h| h["keylog"] == true)
        .collect();
    assert_eq!(keyed.len(), 2, "two keyed TLS 1.3 handshakes with ledger");
    for h in keyed {
        let cip = h["client"]["ip"].as_str().expect("cip");
        let sip = h["server"]["ip"].as_str().expect("sip");
        assert!(chains_to_old(&exp, sip));
        let mine: Vec<&Value> = events
            .iter()
            .filter(|v| v["source"]["ip"] == cip && v["destination"]["ip"] == sip)
            .collect();
        assert!(mine.len() >= 3, "a tls event and two findings: {mine:?}");
        for v in mine {
            assert_eq!(v["trustmap"]["chain_source"], "keylog", "{v}");
        }
    }
    // The inventory knows ledger's chain from the key log and from the TLS 1.2 sighting, and
    // reads the NEW-only client's encrypted alert as a refusal.
    let ep = inventory_endpoint(&db, &exp["roots"]["old"]["sha256"], "127.0.1.8");
    assert_eq!(ep["evidence"], serde_json::json!(["keylog", "observed"]));
    let outcomes = client_outcomes(&ep);
    let ip = |k: &str| exp["clients"][k]["ip"].as_str().expect("ip").to_string();
    assert_eq!(outcomes[&ip("both")], "accepted");
    assert_eq!(outcomes[&ip("new-only")], "rejected");
    assert_eq!(outcomes[&ip("old-only")], "accepted");
}

/// One endpoint of one CA in `inventory --format json`.
fn inventory_endpoint(db: &Path, ca_sha: &Value, ip: &str) -> Value {
    let inv: Value = serde_json::from_str(&stdout(&trustmap(&[
        "inventory",
        "--db",
        &db.to_string_lossy(),
        "--format",
        "json",
    ])))
    .expect("inventory json");
    inv.as_array()
        .into_iter()
        .flatten()
        .filter(|e| &e["ca"]["sha256"] == ca_sha)
        .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|p| p["ip"] == ip)
        .unwrap_or_else(|| panic!("{ip} under {ca_sha}"))
}

/// An inventory endpoint's clients: ip -> outcome.
fn client_outcomes(ep: &Value) -> BTreeMap<String, String> {
    ep["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| {
            (
                c["ip"].as_str().unwrap_or("").to_string(),
                c["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Analyzes the estate after the removal (with the key log when `keys`) and checks every
/// handshake's event and the removal findings against what each stack was configured with.
fn findings_after_removal(db: &Path, keys: bool) -> Vec<Value> {
    let exp = expected();
    let events = analyze_keys(db, None, keys);

    // Every handshake of the capture is reported, with the anchor found even when the root is
    // not sent.
    let tls: Vec<&Value> = events
        .iter()
        .filter(|v| dataset(v) == "trustmap.tls")
        .collect();
    let hs = exp["handshakes"].as_array().expect("handshakes");
    assert_eq!(tls.len(), hs.len(), "one trustmap.tls per handshake");
    let srv = servers(&exp);
    for h in hs {
        let (cip, sip) = (
            h["client"]["ip"].as_str().expect("cip"),
            h["server"]["ip"].as_str().expect("sip"),
        );
        let ev = tls
            .iter()
            .find(|v| v["source"]["ip"] == cip && v["destination"]["ip"] == sip)
            .unwrap_or_else(|| panic!("no event for {cip} -> {sip}"));
        let s = &srv[sip];
        match s["chains_to"].as_str() {
            Some("old") | Some("new") if visible(h, keys) => assert_eq!(
                ev["trustmap"]["anchor"]["sha256"], s["root_sha256"],
                "anchor of {sip} (sends root: {})",
                s["sends_root"]
            ),
            _ => assert!(
                ev["trustmap"]["anchor"].is_null(),
                "no anchor for {sip}: {ev}"
            ),
        }
        assert_eq!(ev["trustmap"]["chain_visible"], visible(h, keys), "{ev}");
        let source = match (visible(h, keys), h["chain_visible"] == true) {
            (false, _) => Value::Null,
            (true, true) => "handshake".into(),
            (true, false) => "keylog".into(),
        };
        assert_eq!(ev["trustmap"]["chain_source"], source, "{ev}");
    }

    // Expected ca_removal findings, from the configured trust of each client and each server's
    // root: every handshake through OLD is a residual use; accepted -> stale_trust; rejected
    // (unknown_ca from the NEW-only client) -> failure. Nothing on migrated services.
    let mut want: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for h in hs {
        let (cip, sip) = (
            h["client"]["ip"].as_str().expect("cip").to_string(),
            h["server"]["ip"].as_str().expect("sip").to_string(),
        );
        if !chains_to_old(&exp, &sip) || !visible(h, keys) {
            continue;
        }
        let mut add = |code: &str| {
            *want
                .entry((cip.clone(), sip.clone(), code.to_string()))
                .or_insert(0) += 1
        };
        add("ca_removal.residual_use");
        match h["outcome"].as_str() {
            Some("accepted") => add("ca_removal.stale_trust"),
            Some("rejected") => add("ca_removal.failure"),
            o => panic!("unexpected outcome {o:?}"),
        }
    }
    let got = removal_findings(&events);
    assert_eq!(got, want, "ca_removal findings");
    let (total, what) = if keys {
        (16, "8 residual, 5 stale, 3 failures")
    } else {
        (12, "6 residual, 4 stale, 2 failures")
    };
    assert_eq!(want.values().sum::<usize>(), total, "{what}");

    // Failures carry the alert evidence.
    for v in events.iter().filter(|v| {
        dataset(v) == "trustmap.finding" && v["trustmap"]["finding"]["code"] == "ca_removal.failure"
    }) {
        let f = &v["trustmap"]["finding"];
        assert_eq!(f["evidence"], "alert");
        assert_eq!(f["alert"]["code"], 48);
        assert_eq!(f["ca"]["sha256"], exp["roots"]["old"]["sha256"]);
        assert_eq!(v["source"]["ip"], exp["clients"]["new-only"]["ip"]);
    }

    // The appliance: self-signed, SHA-1, flagged by the heuristic (labelled as such).
    let printer = srv
        .values()
        .find(|s| s["chains_to"] == "self-signed")
        .expect("appliance server");
    let pip = printer["ip"].as_str().expect("ip");
    let codes: BTreeSet<&str> = events
        .iter()
        .filter(|v| dataset(v) == "trustmap.finding" && v["destination"]["ip"] == pip)
        .filter_map(|v| v["trustmap"]["finding"]["code"].as_str())
        .collect();
    assert!(codes.contains("cert.self_signed"), "{codes:?}");
    assert!(codes.contains("signature.weak"), "{codes:?}");
    let pev = tls
        .iter()
        .find(|v| v["destination"]["ip"] == pip)
        .expect("printer event");
    let kinds: Vec<&str> = pev["trustmap"]["heuristics"]
        .as_array()
        .map(|a| a.iter().filter_map(|h| h["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["heuristic.probable_appliance"]);

    // Migrated services raise no finding about their own chain.
    for s in srv.values().filter(|s| s["chains_to"] == "new") {
        let n = events
            .iter()
            .filter(|v| dataset(v) == "trustmap.finding" && v["destination"]["ip"] == s["ip"])
            .filter(|v| v["trustmap"]["finding"]["side"] != "client")
            .count();
        assert_eq!(n, 0, "findings on migrated {}", s["name"]);
    }
    events
}

#[test]
fn estate_before_and_during_transition() {
    let exp = expected();
    let d = testkit::TempDir::new("estate-before");
    // Before the announcement: nothing.
    let ev = analyze(&d.join("a.db"), Some("2026-07-01T00:00:00Z"));
    assert!(
        removal_findings(&ev).is_empty(),
        "no finding before announced"
    );
    // Between announced and removed: every dependency through OLD is pending, and only that.
    let ev = analyze(&d.join("b.db"), Some("2026-09-01T00:00:00Z"));
    let got = removal_findings(&ev);
    let mut servers_pending = BTreeSet::new();
    for (_, sip, code) in got.keys() {
        assert_eq!(code, "ca_removal.pending");
        servers_pending.insert(sip.clone());
    }
    let want: BTreeSet<String> = servers(&exp)
        .into_iter()
        .filter(|(_, s)| s["chains_to"] == "old")
        .map(|(ip, _)| ip)
        .collect();
    assert_eq!(servers_pending, want);
    let pending_clients: BTreeSet<(String, String)> = removal_findings_side(&ev, true)
        .into_keys()
        .map(|(c, s, code)| {
            assert_eq!(code, "ca_removal.pending");
            (c, s)
        })
        .collect();
    let want_clients: BTreeSet<(String, String)> = old_client_certs(&exp)
        .into_keys()
        .map(|(c, s, _)| (c, s))
        .collect();
    assert_eq!(pending_clients, want_clients);
}

#[test]
fn estate_inventory_and_removal_status() {
    let exp = expected();
    let d = testkit::TempDir::new("estate-inv");
    let db = d.join("inv.db");
    let dbs = db.to_string_lossy().into_owned();
    analyze(&db, None);

    // Inventory JSON (DESIGN.md §6).
    let inv: Value = serde_json::from_str(&stdout(&trustmap(&[
        "inventory",
        "--db",
        &dbs,
        "--format",
        "json",
    ])))
    .expect("inventory json");
    let by_sha: BTreeMap<String, &Value> = inv
        .as_array()
        .expect("array")
        .iter()
        .map(|e| (e["ca"]["sha256"].as_str().expect("sha").to_string(), e))
        .collect();
    let srv = servers(&exp);
    for (tag, want_role) in [("old", "root"), ("new", "root")] {
        let sha = exp["roots"][tag]["sha256"].as_str().expect("root sha");
        let e = by_sha
            .get(sha)
            .unwrap_or_else(|| panic!("{tag} root in inventory"));
        assert_eq!(e["ca"]["role"], want_role);
        assert_eq!(e["ca"]["stores"], serde_json::json!(["corp"]));
        let removals = e["ca"]["removals"].as_array().expect("removals");
        assert_eq!(removals.iter().any(|r| r == RULE), tag == "old");
        let eps: BTreeSet<String> = e["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .map(|p| format!("{}:{}", p["ip"].as_str().unwrap_or(""), p["port"]))
            .collect();
        let want: BTreeSet<String> = srv
            .values()
            .filter(|s| s["chains_to"] == tag && (s["version"] != "1.3" || s["also_tls12"] == true))
            .map(|s| format!("{}:{}", s["ip"].as_str().unwrap_or(""), s["port"]))
            .collect();
        assert_eq!(eps, want, "endpoints depending on the {tag} root");
    }
    // Clients of billing through OLD: all three, with their outcomes.
    let old = by_sha[exp["roots"]["old"]["sha256"].as_str().expect("sha")];
    let billing = old["endpoints"]
        .as_array()
        .expect("eps")
        .iter()
        .find(|p| p["server_names"][0] == "billing.corp.example")
        .expect("billing");
    let outcomes = client_outcomes(billing);
    let cl = &exp["clients"];
    let ip = |k: &str| cl[k]["ip"].as_str().expect("client ip").to_string();
    assert_eq!(outcomes[&ip("both")], "accepted");
    assert_eq!(outcomes[&ip("old-only")], "accepted");
    assert_eq!(outcomes[&ip("new-only")], "rejected");
    // Inference: ledger's TLS 1.3 handshakes (no keys here) are attributed to the chain of its
    // TLS 1.2 sighting, later in the capture; their outcome is unknown (the alert is encrypted).
    let ledger = inventory_endpoint(&db, &exp["roots"]["old"]["sha256"], "127.0.1.8");
    assert_eq!(
        ledger["evidence"],
        serde_json::json!(["inferred", "observed"])
    );
    let outcomes = client_outcomes(&ledger);
    assert_eq!(outcomes[&ip("both")], "unknown");
    assert_eq!(outcomes[&ip("new-only")], "unknown");
    assert_eq!(outcomes[&ip("old-only")], "accepted");
    // The mTLS partner's CertificateRequest names OLD, and it accepted the gateway's chain under
    // OLD: client_auth_trusted_by, once per evidence.
    let partner = srv
        .values()
        .find(|s| s["certificate_request_ca_names"].is_array())
        .expect("partner");
    assert_eq!(
        old["client_auth_trusted_by"],
        serde_json::json!([
            {"ip": partner["ip"], "port": partner["port"], "evidence": "accepted"},
            {"ip": partner["ip"], "port": partner["port"], "evidence": "ca_names"}
        ])
    );
    // The appliance's self-signed certificate is its own root, in its segments.
    let printer = srv
        .values()
        .find(|s| s["chains_to"] == "self-signed")
        .expect("printer");
    let pe = by_sha[printer["root_sha256"].as_str().expect("sha")];
    let segs = &pe["endpoints"][0]["segments"];
    for s in [
        "embedded",
        "appliance:printer",
        "heuristic.probable_appliance",
    ] {
        assert!(
            segs.as_array().is_some_and(|a| a.iter().any(|x| x == s)),
            "{s} in {segs}"
        );
    }

    // Table and CSV carry the same rows.
    let table = stdout(&trustmap(&["inventory", "--db", &dbs]));
    assert!(table.contains("CN=Corp Root CA G1, O=Corp Example"));
    assert!(table.contains("127.0.1.1:443") && table.contains("billing.corp.example"));
    let filtered = stdout(&trustmap(&[
        "inventory",
        "--db",
        &dbs,
        "--ca",
        "Corp Root CA G2",
    ]));
    assert!(filtered.contains("Corp Root CA G2") && !filtered.contains("Corp Root CA G1"));
    let csv = stdout(&trustmap(&["inventory", "--db", &dbs, "--format", "csv"]));
    assert!(csv.lines().count() > 5);
    assert!(
        csv.lines()
            .any(|l| l.contains(",127.0.1.8,443,") && l.ends_with(",inferred;observed")),
        "ledger's evidence in the CSV: {csv}"
    );

    // Removal status, JSON: three endpoints and three clients left, eight residual handshakes
    // (two of them ledger's TLS 1.3 ones, inferred, with an unknown outcome), four accepted
    // (stale trust), two failures; the whole plan is past.
    let status = |as_of: &str, format: &str| {
        stdout(&trustmap(&[
            "removal",
            "status",
            RULE,
            "--db",
            &dbs,
            "--rules",
            "pcaps/cases/estate-rules.toml",
            "--as-of",
            as_of,
            "--format",
            format,
        ]))
    };
    let st: Value =
        serde_json::from_str(&status("2026-11-26T00:00:00Z", "json")).expect("status json");
    assert_eq!(st["phase"], "removed");
    assert_eq!(st["dependencies"]["endpoints_left"], 3);
    assert_eq!(st["dependencies"]["clients_left"], 3);
    assert_eq!(st["dependencies"]["complete"], false);
    assert_eq!(st["residual"]["handshakes"], 8);
    assert_eq!(st["residual"]["accepted"], 4);
    assert_eq!(st["residual"]["failures"], 2);
    assert_eq!(st["residual"]["unknown"], 2);
    assert_eq!(st["burndown"].as_array().map(Vec::len), Some(1));
    let plan = st["plan"].as_array().expect("plan");
    assert_eq!(plan.len(), 6);
    assert!(plan.iter().all(|p| p["status"] == "past"));
    // Table form.
    let tt = status("2026-10-30T00:00:00Z", "table");
    assert!(
        tt.contains("Dependencies left: 3 endpoints, 3 clients"),
        "{tt}"
    );
    assert!(tt.contains("phase transition"), "{tt}");
    // The removal is 2026-11-21: T-14 (2026-11-07) is still ahead on 2026-10-30, T-30
    // (2026-10-22) is past.
    let line = |step: &str| {
        tt.lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("{step} in {tt}"))
            .to_string()
    };
    assert!(line("T-30").ends_with("past"));
    assert!(line("T-14").ends_with("upcoming"));

    // Unknown rule id: usage error (exit 2).
    let bad = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .args(["removal", "status", "no-such-rule", "--db", &dbs])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));

    // Reports.
    let html = d.join("r.html");
    let dot = d.join("r.dot");
    trustmap(&[
        "report",
        "--db",
        &dbs,
        "--rules",
        "pcaps/cases/estate-rules.toml",
        "--as-of",
        "2026-11-26T00:00:00Z",
        "--html",
        &html.to_string_lossy(),
        "--dot",
        &dot.to_string_lossy(),
    ]);
    let h = std::fs::read_to_string(&html).expect("html");
    assert!(h.contains("Corp Root CA G1") && h.contains(RULE));
    let g = std::fs::read_to_string(&dot).expect("dot");
    assert!(g.starts_with("digraph") && g.contains("127.0.1.1"));
}

#[test]
fn inventories_accumulate_and_merge() {
    let d = testkit::TempDir::new("estate-merge");
    let a = d.join("a.db");
    let b = d.join("b.db");
    let c = d.join("c.db");
    analyze(&a, None);
    let bs = b.to_string_lossy().into_owned();
    trustmap(&[
        "analyze",
        "-q",
        "--db",
        &bs,
        "pcaps/cases/mtls.pcap",
        "pcaps/cases/tls10.pcap",
    ]);
    let inv = |p: &Path| -> Value {
        serde_json::from_str(&stdout(&trustmap(&[
            "inventory",
            "--db",
            &p.to_string_lossy(),
            "--format",
            "json",
        ])))
        .expect("json")
    };
    let handshakes = |v: &Value| -> u64 {
        v.as_array()
            .expect("array")
            .iter()
            .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
            .map(|p| p["handshakes"].as_u64().unwrap_or(0))
            .sum()
    };
    let (ia, ib) = (inv(&a), inv(&b));
    let cas = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|e| e["ca"]["sha256"].as_str().unwrap_or("").to_string())
            .collect()
    };
    trustmap(&[
        "inventory",
        "merge",
        &a.to_string_lossy(),
        &b.to_string_lossy(),
        "-o",
        &c.to_string_lossy(),
    ]);
    let ic = inv(&c);
    assert_eq!(cas(&ic), &cas(&ia) | &cas(&ib));
    assert_eq!(handshakes(&ic), handshakes(&ia) + handshakes(&ib));
    // Merging the same sensor again changes nothing.
    trustmap(&[
        "inventory",
        "merge",
        &a.to_string_lossy(),
        "-o",
        &c.to_string_lossy(),
    ]);
    assert_eq!(handshakes(&inv(&c)), handshakes(&ia) + handshakes(&ib));
    // A second run into the same database accumulates.
    analyze(&a, None);
    assert_eq!(handshakes(&inv(&a)), 2 * handshakes(&ia));
}
