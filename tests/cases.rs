//! The generated cases (pcaps/cases/*.pcap, made by pcaps/gen from real OpenSSL / python-ssl stacks
//! in a network namespace) through the built binary, checked against each `<case>.expected.json`.
//!
//! This is compare_trustmap.py in Rust, stricter: every key an expected.json states is checked (an
//! unknown key fails the test, so a new expectation cannot be silently ignored), and each failure
//! names the case, the handshake and the field. Only `trustmap.tls` and `trustmap.x509` events are
//! read, and only the fields checked, so new fields and new datasets do not disturb it.
//!
//! Two more guards: the set of cases is fixed (a deleted or renamed fixture fails), and every item
//! of the mandatory list has a case whose capture really shows the property (1-byte
//! segments, 512-byte records, VLAN tag, VXLAN header, ...), checked on the pcap bytes themselves.
//!
//! Semantics where expected.json and the event contract use different words (DESIGN.md §4):
//! - `outcome: "accepted"` (handshake finished, application data both ways) is `tls.established`;
//!   `trustmap.outcome` says how the client reacted to the *server's chain*, so it is `accepted`
//!   when the chain is visible and may only be `unknown` (or `accepted`) when it is not (TLS 1.3,
//!   resumed), never `rejected`.
//! - `chain_visible: false` means no chain may be reported. `trustmap.chain_visible` itself is
//!   defined by the contract for TLS 1.3 only, so it must be false there; a resumed TLS 1.2
//!   handshake reports `trustmap.chain_visible: true` (the protocol would show a chain) with no
//!   chain, and `resumed: true`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every case with an expected.json, except `estate` (tests/estate.rs).
const CASES: &[&str] = &[
    "ipv6-vlan",
    "midstream-after-clienthello",
    "midstream-after-syn",
    "mtls",
    "port-reuse",
    "record-split-512",
    "reorder-dup",
    "resumed-tls12",
    "side-signals",
    "starttls-ftp",
    "starttls-imap",
    "starttls-ldap",
    "starttls-mysql",
    "starttls-pop3",
    "starttls-postgres",
    "starttls-smtp",
    "starttls-xmpp",
    "tcp-1byte",
    "tls10",
    "tls13",
    "tls13-keylog",
    "unknown-ca",
    "vxlan",
];

/// Cases tested elsewhere (estate: tests/estate.rs; QUIC: tests/keylog.rs; OpenVPN:
/// tests/encapsulations.rs; the servers' mTLS verdicts: tests/client_auth.rs).
const SKIPPED: &[&str] = &["estate", "quic-keylog", "openvpn", "mtls-outcomes"];

/// Keys an expected.json may hold at the top level and per handshake; each is checked below.
const CASE_KEYS: &[&str] = &[
    "case",
    "pcap",
    "description",
    "handshakes",
    "certificate_request_ca_names",
    "encapsulation",
    "keylog",
    "note",
    // OCSP / CA certificate / CRL requests: checked by tests/side_signals.rs.
    "side_signals",
];
const HANDSHAKE_KEYS: &[&str] = &[
    "client",
    "server",
    "sni",
    "starttls",
    "version",
    "resumed",
    "chain_visible",
    "server_chain",
    "client_chain",
    "outcome",
    "alert",
    "certificate_request_ca_names",
    "note",
];

/// STARTTLS protocols of the issue, with the label trustmap gives each.
const STARTTLS: &[(&str, &str)] = &[
    ("smtp", "smtp"),
    ("imap", "imap"),
    ("pop3", "pop3"),
    ("ftp", "ftp"),
    ("ldap", "ldap"),
    ("xmpp", "xmpp"),
    ("postgres", "postgresql"),
    ("mysql", "mysql"),
];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/cases")
}

fn load_expected(case: &str) -> Value {
    let p = cases_dir().join(format!("{case}.expected.json"));
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every event of one run over `pcap` (NDJSON on stdout), with a key log when given.
fn run_binary(pcap: &Path, keylog: Option<&Path>) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustmap"));
    cmd.args(["analyze", "-q", "-o", "-", "--db", ":memory:"]);
    if let Some(k) = keylog {
        cmd.arg("--keylog").arg(k);
    }
    let out = cmd.arg(pcap).output().expect("run trustmap");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "trustmap failed on {}: {:?}\n{err}",
        pcap.display(),
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad NDJSON line {l:?}: {e}", pcap.display()))
        })
        .collect()
}

fn dataset(v: &Value) -> &str {
    v["event"]["dataset"].as_str().unwrap_or("")
}

/// SHA-256 list of a `tls.*.chain`, `None` when the key is absent.
fn chain_hashes(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|c| c["sha256"].as_str().unwrap_or("<no sha256>").to_string())
            .collect()
    })
}

fn str_list(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|h| h.as_str().unwrap_or("<not a string>").to_string())
            .collect()
    })
}

fn endpoint_key(v: &Value) -> String {
    format!("{}:{}", v["ip"].as_str().unwrap_or("?"), v["port"])
}

/// Collects "case X, handshake #i (client -> server): field: got G, want W" problems.
struct Problems<'a> {
    case: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, hs: &str, field: &str, got: impl std::fmt::Debug, want: impl std::fmt::Debug) {
        self.list.push(format!(
            "case {}, {hs}: {field}: got {got:?}, want {want:?}",
            self.case
        ));
    }
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, hs: &str, field: &str, got: T, want: T) {
        if got != want {
            self.at(hs, field, got, want);
        }
    }
}

/// Compares one case's expected.json with the events of a run. Returns the problems found.
fn check_case(case: &str, doc: &Value, events: &[Value]) -> Vec<String> {
    let mut p = Problems {
        case,
        list: Vec::new(),
    };
    let Some(obj) = doc.as_object() else {
        p.at("document", "expected.json", "not an object", "object");
        return p.list;
    };
    for k in obj.keys() {
        if !CASE_KEYS.contains(&k.as_str()) {
            p.at("document", "key", k, "a key this test checks");
        }
    }
    p.eq("document", "case", doc["case"].as_str(), Some(case));
    let pcap = format!("{case}.pcap");
    p.eq(
        "document",
        "pcap",
        doc["pcap"].as_str(),
        Some(pcap.as_str()),
    );

    let tls: Vec<&Value> = events
        .iter()
        .filter(|e| dataset(e) == "trustmap.tls")
        .collect();
    let x509: Vec<&Value> = events
        .iter()
        .filter(|e| dataset(e) == "trustmap.x509")
        .collect();
    let want = doc["handshakes"].as_array().cloned().unwrap_or_default();
    if want.is_empty() {
        p.at("document", "handshakes", "none", "at least one");
    }
    p.eq(
        "run",
        "number of trustmap.tls events",
        tls.len(),
        want.len(),
    );

    // Match by endpoints, in order of occurrence (port-reuse has the same 4-tuple twice).
    let mut by_key: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &tls {
        by_key
            .entry(format!(
                "{}>{}",
                endpoint_key(&e["source"]),
                endpoint_key(&e["destination"])
            ))
            .or_default()
            .push(e);
    }
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    let cr_names = doc.get("certificate_request_ca_names").map(|v| {
        v.as_array()
            .map(|a| a.len())
            .unwrap_or_else(|| panic!("{case}: certificate_request_ca_names is not a list"))
    });

    for (i, h) in want.iter().enumerate() {
        let hs = format!(
            "handshake #{i} ({}:{} -> {}:{})",
            h["client"]["ip"].as_str().unwrap_or("?"),
            h["client"]["port"],
            h["server"]["ip"].as_str().unwrap_or("?"),
            h["server"]["port"]
        );
        for k in h
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or(Vec::new())
        {
            if !HANDSHAKE_KEYS.contains(&k.as_str()) {
                p.at(&hs, "key", k, "a key this test checks");
            }
        }
        // Endpoints: source = client. A null client port means unknown: match on the IP only.
        let client_port = h["client"]["port"].as_u64();
        let ev = if client_port.is_some() {
            let key = format!(
                "{}>{}",
                endpoint_key(&h["client"]),
                endpoint_key(&h["server"])
            );
            let n = used.entry(key.clone()).or_insert(0);
            let ev = by_key.get(&key).and_then(|v| v.get(*n)).copied();
            *n += 1;
            ev
        } else {
            tls.iter().copied().find(|e| {
                e["source"]["ip"] == h["client"]["ip"]
                    && endpoint_key(&e["destination"]) == endpoint_key(&h["server"])
            })
        };
        let Some(e) = ev else {
            let seen: Vec<&String> = by_key.keys().collect();
            p.at(
                &hs,
                "endpoints (source = client, destination = server)",
                seen,
                "an event with these endpoints",
            );
            continue;
        };
        let (t, tm) = (&e["tls"], &e["trustmap"]);

        p.eq(
            &hs,
            "network.transport",
            e["network"]["transport"].as_str(),
            Some("tcp"),
        );
        p.eq(
            &hs,
            "network.protocol",
            e["network"]["protocol"].as_str(),
            Some("tls"),
        );

        // SNI (null: none seen, so the field must be absent or null).
        p.eq(
            &hs,
            "tls.client.server_name",
            t["client"]["server_name"].as_str(),
            h["sni"].as_str(),
        );
        p.eq(
            &hs,
            "tls.version",
            t["version"].as_str(),
            h["version"].as_str(),
        );
        p.eq(
            &hs,
            "tls.version_protocol",
            t["version_protocol"].as_str(),
            Some("tls"),
        );
        // STARTTLS label: must be present (null for direct TLS).
        p.eq(
            &hs,
            "trustmap.starttls",
            tm.get("starttls").cloned(),
            Some(h["starttls"].clone()),
        );
        p.eq(
            &hs,
            "tls.resumed",
            t["resumed"].as_bool(),
            h["resumed"].as_bool(),
        );

        // Server chain.
        let visible = h["chain_visible"]
            .as_bool()
            .unwrap_or_else(|| panic!("{case} {hs}: chain_visible is not a bool"));
        let want_server = str_list(&h["server_chain"])
            .unwrap_or_else(|| panic!("{case} {hs}: server_chain is not a list"));
        let got_server = chain_hashes(&t["server"]["chain"]);
        if visible {
            p.eq(
                &hs,
                "trustmap.chain_visible",
                tm["chain_visible"].as_bool(),
                Some(true),
            );
            p.eq(
                &hs,
                "tls.server.chain (sha256, wire order)",
                got_server.clone(),
                Some(want_server.clone()),
            );
            p.eq(
                &hs,
                "tls.server.hash.sha256 (leaf)",
                t["server"]["hash"]["sha256"].as_str(),
                want_server.first().map(String::as_str),
            );
            for (j, c) in t["server"]["chain"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if c.get("parse_error").is_some() {
                    p.at(
                        &hs,
                        &format!("tls.server.chain[{j}].parse_error"),
                        &c["parse_error"],
                        "none",
                    );
                }
            }
        } else {
            // Not on the wire in the clear: nothing may be reported.
            if got_server.as_ref().is_some_and(|c| !c.is_empty()) {
                p.at(
                    &hs,
                    "tls.server.chain (not visible)",
                    &got_server,
                    "absent or []",
                );
            }
            if t["server"].get("hash").is_some() {
                p.at(
                    &hs,
                    "tls.server.hash (not visible)",
                    &t["server"]["hash"],
                    "absent",
                );
            }
        }
        if h["version"] == "1.3" {
            // Hidden without keys; known from a key log when the case gives one.
            p.eq(
                &hs,
                "trustmap.chain_visible (TLS 1.3)",
                tm["chain_visible"].as_bool(),
                Some(visible),
            );
        }
        // How the chain was known: in the clear, from a key log, or not at all.
        let source = if !visible || (want_server.is_empty() && h["client_chain"].is_null()) {
            None
        } else if h["version"] == "1.3" {
            Some("keylog")
        } else {
            Some("handshake")
        };
        p.eq(
            &hs,
            "trustmap.chain_source",
            tm.get("chain_source").map(|v| v.as_str()),
            Some(source),
        );
        if h["resumed"] == true && !want_server.is_empty() {
            p.at(
                &hs,
                "expected server_chain of a resumed handshake",
                &want_server,
                "[]",
            );
        }

        // Client chain: null = no client Certificate message; [] = an empty one.
        let got_client = chain_hashes(&t["client"]["chain"]);
        match str_list(&h["client_chain"]) {
            None if h["client_chain"].is_null() => {
                p.eq(&hs, "tls.client.chain", got_client, None);
            }
            None => panic!("{case} {hs}: client_chain is neither null nor a list"),
            Some(want_client) => {
                p.eq(
                    &hs,
                    "tls.client.chain (sha256, wire order)",
                    got_client,
                    Some(want_client.clone()),
                );
                p.eq(
                    &hs,
                    "tls.client.hash.sha256 (leaf)",
                    t["client"]["hash"]["sha256"].as_str(),
                    want_client.first().map(String::as_str),
                );
            }
        }

        // Alert: the first plaintext fatal alert.
        if h["alert"].is_null() {
            p.eq(
                &hs,
                "trustmap.alert",
                tm.get("alert").cloned(),
                Some(Value::Null),
            );
        } else {
            for k in ["from", "code", "name"] {
                p.eq(
                    &hs,
                    &format!("trustmap.alert.{k}"),
                    tm["alert"][k].clone(),
                    h["alert"][k].clone(),
                );
            }
        }

        // Outcome.
        let result = tm["outcome"]["result"].as_str();
        match h["outcome"].as_str() {
            Some("accepted") => {
                p.eq(
                    &hs,
                    "tls.established",
                    t["established"].as_bool(),
                    Some(true),
                );
                if visible {
                    p.eq(&hs, "trustmap.outcome.result", result, Some("accepted"));
                } else if !matches!(result, Some("accepted" | "unknown")) {
                    p.at(
                        &hs,
                        "trustmap.outcome.result (chain not visible)",
                        result,
                        "accepted or unknown",
                    );
                }
            }
            Some("rejected") => {
                p.eq(
                    &hs,
                    "tls.established",
                    t["established"].as_bool(),
                    Some(false),
                );
                p.eq(&hs, "trustmap.outcome.result", result, Some("rejected"));
                if h["alert"].is_null() {
                    p.eq(
                        &hs,
                        "trustmap.outcome.evidence",
                        tm["outcome"]["evidence"].as_str(),
                        Some("close"),
                    );
                } else {
                    p.eq(
                        &hs,
                        "trustmap.outcome.evidence",
                        tm["outcome"]["evidence"].as_str(),
                        Some("alert"),
                    );
                    p.eq(
                        &hs,
                        "trustmap.outcome.code",
                        tm["outcome"]["code"].clone(),
                        h["alert"]["code"].clone(),
                    );
                }
            }
            other => panic!("{case} {hs}: unknown outcome {other:?}"),
        }

        // CertificateRequest: its CA-name count (the handshake's own list, else the case-level
        // one), or none at all.
        let got_cr = tm["certificate_request"]["ca_names"].as_u64();
        let own = h.get("certificate_request_ca_names").map(|v| {
            v.as_array()
                .map(|a| a.len())
                .unwrap_or_else(|| panic!("{case} {hs}: certificate_request_ca_names"))
        });
        match own.or(cr_names) {
            Some(n) if visible => p.eq(
                &hs,
                "trustmap.certificate_request.ca_names",
                got_cr,
                Some(n as u64),
            ),
            Some(_) => {}
            None => p.eq(
                &hs,
                "trustmap.certificate_request",
                tm.get("certificate_request"),
                None,
            ),
        }

        // Every certificate reported has exactly one trustmap.x509 event in the run.
        let mut certs = if visible {
            want_server.clone()
        } else {
            Vec::new()
        };
        certs.extend(str_list(&h["client_chain"]).unwrap_or_default());
        for c in certs {
            let n = x509
                .iter()
                .filter(|x| x["trustmap"]["sha256"].as_str() == Some(c.as_str()))
                .count();
            p.eq(&hs, &format!("trustmap.x509 events for {c}"), n, 1);
        }
    }
    p.list
}

#[test]
fn case_files_are_the_expected_set() {
    let mut pcaps = BTreeSet::new();
    let mut expected = BTreeSet::new();
    for e in std::fs::read_dir(cases_dir()).expect("pcaps/cases") {
        let name = e
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(s) = name.strip_suffix(".expected.json") {
            expected.insert(s.to_string());
        } else if let Some(s) = name.strip_suffix(".pcap") {
            pcaps.insert(s.to_string());
        }
    }
    assert_eq!(
        pcaps, expected,
        "every capture has an expected.json and vice versa"
    );
    let want: BTreeSet<String> = CASES.iter().chain(SKIPPED).map(|s| s.to_string()).collect();
    assert_eq!(
        expected, want,
        "pcaps/cases changed: update CASES in tests/cases.rs (and the README table)"
    );
}

#[test]
fn every_case_matches_its_expected_json() {
    let mut problems = Vec::new();
    let mut handshakes = 0;
    for case in CASES {
        let doc = load_expected(case);
        handshakes += doc["handshakes"].as_array().map_or(0, Vec::len);
        let keylog = doc["keylog"].as_str().map(|k| cases_dir().join(k));
        let events = run_binary(&cases_dir().join(format!("{case}.pcap")), keylog.as_deref());
        problems.extend(check_case(case, &doc, &events));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "{} cases, {handshakes} handshakes: all fields match",
        CASES.len()
    );
}

/// The comparison itself can fail: each edit of a correct expectation is reported, naming the
/// case and the field.
#[test]
fn comparison_reports_each_wrong_field() {
    let case = "mtls";
    let doc = load_expected(case);
    let events = run_binary(&cases_dir().join("mtls.pcap"), None);
    assert_eq!(check_case(case, &doc, &events), Vec::<String>::new());

    type Edit = fn(&mut Value);
    let edits: &[(&str, Edit)] = &[
        ("tls.server.chain", |d| {
            let c = d["handshakes"][0]["server_chain"].as_array_mut().unwrap();
            c.swap(0, 1);
        }),
        ("tls.server.chain", |d| {
            d["handshakes"][1]["server_chain"][1] = Value::from("00".repeat(32));
        }),
        ("tls.client.chain", |d| {
            d["handshakes"][1]["client_chain"] = Value::Null;
        }),
        ("tls.client.chain", |d| {
            d["handshakes"][0]["client_chain"]
                .as_array_mut()
                .unwrap()
                .pop();
        }),
        ("endpoints", |d| {
            d["handshakes"][0]["client"]["port"] = 1.into()
        }),
        ("endpoints", |d| {
            // source and destination swapped
            let h = &mut d["handshakes"][0];
            let c = h["client"].clone();
            h["client"] = h["server"].clone();
            h["server"] = c;
        }),
        ("tls.client.server_name", |d| {
            d["handshakes"][0]["sni"] = "other.example".into()
        }),
        ("tls.version", |d| {
            d["handshakes"][1]["version"] = "1.3".into()
        }),
        ("trustmap.starttls", |d| {
            d["handshakes"][0]["starttls"] = "smtp".into()
        }),
        ("tls.resumed", |d| {
            d["handshakes"][0]["resumed"] = true.into()
        }),
        (
            "trustmap.alert",
            |d| {
                d["handshakes"][0]["alert"] =
                    serde_json::json!({"from": "client", "code": 48, "name": "unknown_ca"})
            },
        ),
        ("tls.established", |d| {
            d["handshakes"][0]["outcome"] = "rejected".into()
        }),
        ("tls.server.chain (not visible)", |d| {
            d["handshakes"][0]["chain_visible"] = false.into()
        }),
        ("number of trustmap.tls events", |d| {
            d["handshakes"].as_array_mut().unwrap().pop();
        }),
        ("certificate_request.ca_names", |d| {
            d["certificate_request_ca_names"]
                .as_array_mut()
                .unwrap()
                .push("CN=x".into())
        }),
        ("key", |d| d["handshakes"][0]["new_expectation"] = 1.into()),
        ("key", |d| d["tls_version_floor"] = "1.2".into()),
    ];
    for (field, edit) in edits {
        let mut d = doc.clone();
        edit(&mut d);
        let got = check_case(case, &d, &events);
        assert!(
            got.iter()
                .any(|m| m.starts_with("case mtls, ") && m.contains(field)),
            "editing {field} was not reported: {got:?}"
        );
    }
    // Events that lost a field are reported too.
    let mut ev = events.clone();
    for e in ev.iter_mut().filter(|e| dataset(e) == "trustmap.tls") {
        e["trustmap"].as_object_mut().unwrap().remove("starttls");
    }
    assert!(check_case(case, &doc, &ev)
        .iter()
        .any(|m| m.contains("trustmap.starttls")));
    // A TLS 1.3 event that claims a visible chain is reported.
    let doc13 = load_expected("tls13");
    let mut ev13 = run_binary(&cases_dir().join("tls13.pcap"), None);
    assert_eq!(check_case("tls13", &doc13, &ev13), Vec::<String>::new());
    for e in ev13.iter_mut().filter(|e| dataset(e) == "trustmap.tls") {
        e["trustmap"]["chain_visible"] = true.into();
    }
    assert!(check_case("tls13", &doc13, &ev13)
        .iter()
        .any(|m| m.contains("chain_visible (TLS 1.3)")));
}

// ---------------------------------------------------------------------------------------------
// The mandatory list, checked on the captures' bytes.

/// One decoded TCP or UDP packet (after any VLAN tags and one VXLAN layer).
#[derive(Debug, Clone, Default)]
struct Pkt {
    vlans: Vec<u16>,
    vxlan_vni: Option<u32>,
    ipv6: bool,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: u16,
    dport: u16,
    tcp: bool,
    seq: u32,
    flags: u8,
    payload: Vec<u8>,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn decode_eth(d: &[u8], p: &mut Pkt) -> Option<()> {
    let mut off = 12;
    let mut et = be16(d, off)?;
    while et == 0x8100 || et == 0x88a8 {
        p.vlans.push(be16(d, off + 2)? & 0x0fff);
        off += 4;
        et = be16(d, off)?;
    }
    let ip = d.get(off + 2..)?;
    let (proto, l4) = match et {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(be16(ip, 2)?);
            let a: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            p.ipv6 = false;
            p.src = Some(IpAddr::from(a));
            p.dst = Some(IpAddr::from(b));
            (*ip.get(9)?, ip.get(ihl..total.min(ip.len()))?)
        }
        0x86dd => {
            let plen = usize::from(be16(ip, 4)?);
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            p.ipv6 = true;
            p.src = Some(IpAddr::from(a));
            p.dst = Some(IpAddr::from(b));
            (*ip.get(6)?, ip.get(40..(40 + plen).min(ip.len()))?)
        }
        _ => return None,
    };
    p.sport = be16(l4, 0)?;
    p.dport = be16(l4, 2)?;
    match proto {
        6 => {
            let doff = usize::from(l4.get(12)? >> 4) * 4;
            p.tcp = true;
            p.seq = be32(l4, 4)?;
            p.flags = *l4.get(13)?;
            p.payload = l4.get(doff..)?.to_vec();
            Some(())
        }
        17 if p.dport == 4789 && p.vxlan_vni.is_none() => {
            let vx = l4.get(8..)?;
            if vx.first()? & 0x08 == 0 {
                return None;
            }
            p.vxlan_vni = Some(be32(vx, 4)? >> 8);
            decode_eth(vx.get(8..)?, p)
        }
        17 => {
            p.payload = l4.get(8..)?.to_vec();
            Some(())
        }
        _ => None,
    }
}

/// The TCP/UDP packets of a classic little-endian Ethernet pcap (what the generator writes).
fn read_pcap(case: &str) -> Vec<Pkt> {
    let path = cases_dir().join(format!("{case}.pcap"));
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.len() >= 24 && (b[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || b[..4] == [0x4d, 0x3c, 0xb2, 0xa1]),
        "{case}: not a little-endian pcap"
    );
    assert_eq!(b[20..24], [1, 0, 0, 0], "{case}: link type is not Ethernet");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        let end = (off + 16 + caplen).min(b.len());
        let mut p = Pkt::default();
        if decode_eth(&b[off + 16..end], &mut p).is_some() {
            out.push(p);
        }
        off += 16 + caplen;
    }
    assert!(!out.is_empty(), "{case}: no packets decoded");
    out
}

/// One direction of a TCP connection: its segments (offset from the first sequence number, length)
/// in capture order, and the bytes put back in order (first copy wins).
struct Stream {
    segs: Vec<(u64, usize, Vec<u8>)>,
    bytes: Vec<u8>,
}

fn stream(pkts: &[Pkt], from: (IpAddr, u16)) -> Stream {
    let dir: Vec<&Pkt> = pkts
        .iter()
        .filter(|p| p.tcp && p.src == Some(from.0) && p.sport == from.1)
        .collect();
    let base = dir.first().map_or(0, |p| {
        if p.flags & SYN != 0 {
            p.seq.wrapping_add(1)
        } else {
            p.seq
        }
    });
    let mut segs = Vec::new();
    let mut map: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for p in dir.iter().filter(|p| !p.payload.is_empty()) {
        let o = u64::from(p.seq.wrapping_sub(base));
        segs.push((o, p.payload.len(), p.payload.clone()));
        map.entry(o).or_insert_with(|| p.payload.clone());
    }
    let mut bytes = Vec::new();
    for (o, d) in map {
        let o = o as usize;
        if o > bytes.len() {
            break;
        }
        if o + d.len() > bytes.len() {
            bytes.extend_from_slice(&d[bytes.len() - o..]);
        }
    }
    Stream { segs, bytes }
}

/// TLS records at the start of a byte stream: (content type, start offset, body length).
fn records(b: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut v = Vec::new();
    let mut o = 0;
    while o + 5 <= b.len() && matches!(b[o], 20..=23) {
        let len = usize::from(u16::from_be_bytes([b[o + 3], b[o + 4]]));
        v.push((b[o], o, len));
        o += 5 + len;
    }
    v
}

/// The records carrying handshake message `msg_type` (first one in the stream), and the stream
/// offset where the last of them ends.
fn records_of_message(b: &[u8], msg_type: u8) -> Option<(Vec<(usize, usize)>, usize)> {
    let recs: Vec<_> = records(b).into_iter().take_while(|r| r.0 == 22).collect();
    // Handshake bytes, each mapped back to its record index.
    let mut hs = Vec::new();
    let mut owner = Vec::new();
    for (i, (_, start, len)) in recs.iter().enumerate() {
        let body = b.get(start + 5..start + 5 + len)?;
        hs.extend_from_slice(body);
        owner.extend(std::iter::repeat_n(i, body.len()));
    }
    let mut o = 0;
    while o + 4 <= hs.len() {
        let len =
            usize::from(hs[o + 1]) << 16 | usize::from(hs[o + 2]) << 8 | usize::from(hs[o + 3]);
        if hs[o] == msg_type {
            let last = *owner.get((o + 4 + len).checked_sub(1)?)?;
            let first = owner[o];
            let rs: Vec<(usize, usize)> = recs[first..=last].iter().map(|r| (r.1, r.2)).collect();
            let end = rs.last().map(|r| r.0 + 5 + r.1)?;
            return Some((rs, end));
        }
        o += 4 + len;
    }
    None
}

/// The expected.json's (client, server) endpoints of the first handshake.
fn endpoints(case: &str) -> ((IpAddr, u16), (IpAddr, u16)) {
    let d = load_expected(case);
    let h = &d["handshakes"][0];
    let ep = |v: &Value| {
        (
            v["ip"].as_str().unwrap().parse::<IpAddr>().unwrap(),
            v["port"].as_u64().unwrap() as u16,
        )
    };
    (ep(&h["client"]), ep(&h["server"]))
}

#[test]
fn mandatory_list_is_present_in_the_captures() {
    // Certificate split into 512-byte records.
    {
        let (_, server) = endpoints("record-split-512");
        let s = stream(&read_pcap("record-split-512"), server);
        let (recs, _) = records_of_message(&s.bytes, 11).expect("record-split-512: a Certificate");
        assert!(
            recs.len() >= 10,
            "record-split-512: Certificate in {} records",
            recs.len()
        );
        assert!(
            recs.iter().all(|r| r.1 <= 512) && recs.iter().filter(|r| r.1 == 512).count() >= 9,
            "record-split-512: records {recs:?}"
        );
    }
    // 1-byte TCP segments: every byte of the ClientHello and of the server's flight through the
    // Certificate record.
    {
        let (client, server) = endpoints("tcp-1byte");
        let pkts = read_pcap("tcp-1byte");
        let c = stream(&pkts, client);
        let (_, ch_end) = records_of_message(&c.bytes, 1).expect("tcp-1byte: a ClientHello");
        let s = stream(&pkts, server);
        let (_, cert_end) = records_of_message(&s.bytes, 11).expect("tcp-1byte: a Certificate");
        for (what, st, end) in [("client", &c, ch_end), ("server", &s, cert_end)] {
            let in_range: Vec<_> = st.segs.iter().filter(|g| (g.0 as usize) < end).collect();
            assert!(
                in_range.len() >= end && in_range.iter().all(|g| g.1 == 1),
                "tcp-1byte {what}: {} segments for the first {end} bytes, lengths {:?}",
                in_range.len(),
                in_range.iter().map(|g| g.1).collect::<BTreeSet<_>>()
            );
            assert!(end > 100, "tcp-1byte {what}: only {end} bytes");
        }
    }
    // Reordered and duplicated segments carrying the Certificate.
    {
        let (_, server) = endpoints("reorder-dup");
        let s = stream(&read_pcap("reorder-dup"), server);
        let (recs, cert_end) = records_of_message(&s.bytes, 11).expect("reorder-dup: Certificate");
        let cert_start = recs[0].0;
        let (mut reordered, mut duplicated, mut max_end) = (0, 0, 0u64);
        let mut seen = BTreeSet::new();
        for (o, len, data) in &s.segs {
            let touches_cert = (*o as usize) < cert_end && (*o as usize + len) > cert_start;
            if !seen.insert((*o, data.clone())) {
                duplicated += usize::from(touches_cert);
            } else if *o < max_end {
                reordered += usize::from(touches_cert);
            }
            max_end = max_end.max(o + *len as u64);
        }
        assert!(
            reordered >= 1 && duplicated >= 1,
            "reorder-dup: reordered {reordered}, duplicated {duplicated} Certificate segments"
        );
    }
    // Mid-stream starts.
    for case in ["midstream-after-syn", "midstream-after-clienthello"] {
        let pkts = read_pcap(case);
        assert!(
            pkts.iter().all(|p| p.flags & SYN == 0),
            "{case}: the capture has a SYN"
        );
        let (client, server) = endpoints(case);
        let c = stream(&pkts, client);
        let has_ch = records_of_message(&c.bytes, 1).is_some();
        assert_eq!(
            has_ch,
            case == "midstream-after-syn",
            "{case}: ClientHello in capture"
        );
        assert!(
            records_of_message(&stream(&pkts, server).bytes, 11).is_some(),
            "{case}: server Certificate in capture"
        );
    }
    // Port reuse: two SYNs on the same 4-tuple, two different server chains expected.
    {
        let (client, server) = endpoints("port-reuse");
        let syns = read_pcap("port-reuse")
            .iter()
            .filter(|p| {
                p.flags & (SYN | ACK) == SYN
                    && (p.src, p.sport, p.dst, p.dport)
                        == (Some(client.0), client.1, Some(server.0), server.1)
            })
            .count();
        assert_eq!(syns, 2, "port-reuse: SYNs on one 4-tuple");
        let d = load_expected("port-reuse");
        assert_ne!(
            d["handshakes"][0]["server_chain"], d["handshakes"][1]["server_chain"],
            "port-reuse: the two connections must present different chains"
        );
    }
    // Client certificates: one non-empty client chain and one empty Certificate message.
    {
        let d = load_expected("mtls");
        let cc: Vec<&Value> = d["handshakes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["client_chain"])
            .collect();
        assert!(
            cc.iter()
                .any(|c| c.as_array().is_some_and(|a| a.len() >= 2))
                && cc
                    .iter()
                    .any(|c| c.as_array().is_some_and(|a| a.is_empty())),
            "mtls: client chains {cc:?}"
        );
        assert!(d["certificate_request_ca_names"]
            .as_array()
            .is_some_and(|a| !a.is_empty()));
    }
    // Each STARTTLS protocol: labelled in expected.json, and a plaintext preamble on the wire
    // before the first TLS record.
    for (proto, label) in STARTTLS {
        let case = format!("starttls-{proto}");
        let d = load_expected(&case);
        assert_eq!(d["handshakes"][0]["starttls"], *label, "{case}: label");
        let (client, server) = endpoints(&case);
        let pkts = read_pcap(&case);
        let first = pkts
            .iter()
            .find(|p| p.tcp && !p.payload.is_empty())
            .unwrap_or_else(|| panic!("{case}: no data"));
        assert_ne!(first.payload[0], 0x16, "{case}: first data is already TLS");
        // The client's ClientHello comes after some plaintext of its own or of the server.
        let c = stream(&pkts, client);
        let s = stream(&pkts, server);
        let ch_at = c
            .bytes
            .windows(6)
            .position(|w| w[0] == 0x16 && w[1] == 3 && w[5] == 1);
        assert!(
            ch_at.is_some_and(|at| at > 0 || !s.bytes.is_empty()),
            "{case}: no ClientHello after a plaintext preamble"
        );
    }
    // IPv6 over VLAN: every packet tagged 100, IPv6, to port 443.
    {
        let pkts = read_pcap("ipv6-vlan");
        assert!(
            pkts.iter().all(|p| p.vlans == [100] && p.ipv6 && p.tcp),
            "ipv6-vlan: untagged or non-IPv6 packet"
        );
        assert!(pkts.iter().any(|p| p.dport == 443 && !p.payload.is_empty()));
    }
    // VXLAN: every TLS packet inside VNI 42 on UDP 4789.
    {
        let pkts = read_pcap("vxlan");
        let tls: Vec<&Pkt> = pkts
            .iter()
            .filter(|p| p.tcp && (p.dport == 443 || p.sport == 443))
            .collect();
        assert!(tls.len() > 10, "vxlan: {} inner TCP/443 packets", tls.len());
        assert!(
            tls.iter().all(|p| p.vxlan_vni == Some(42)),
            "vxlan: TCP/443 outside VNI 42"
        );
    }
}
