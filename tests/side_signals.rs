//! Side signals through the binary: OCSP requests (POST and GET), CA certificate and CRL fetches
//! over plaintext HTTP name the CA a client validates. `pcaps/cases/side-signals.pcap` is real
//! OpenSSL and python traffic (`pcaps/gen/sidesignals.py`, its PKI in `pcaps/cases/side-pki`);
//! Zeek's OCSP captures are real clients on the Internet. The OCSP CertIDs must match what tshark
//! decodes from the same bytes (it reads POST requests only), each signal must name the CA the
//! generator asked about, and the inventory must list the clients under those CAs.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use testkit::corpus::file as input;

fn trustmap(args: &[OsString]) -> Vec<u8> {
    testkit::run_ok(Command::new(env!("CARGO_BIN_EXE_trustmap")).args(args))
}

/// The `trustmap.side_signal` events of `analyze` over `pcap`, with `extra` options.
fn signals(pcap: &Path, extra: &[OsString]) -> Vec<Value> {
    let mut args: Vec<OsString> = ["analyze", "-q", "-o", "-", "--db", ":memory:"]
        .map(OsString::from)
        .to_vec();
    args.extend_from_slice(extra);
    args.push(pcap.into());
    String::from_utf8_lossy(&trustmap(&args))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
        .filter(|e| e["event"]["dataset"] == "trustmap.side_signal")
        .collect()
}

/// (issuer name hash, issuer key hash, serial) of every CertID in `events` sent by `method`.
fn cert_ids(events: &[Value], method: Option<&str>) -> BTreeSet<(String, String, String)> {
    events
        .iter()
        .filter(|e| method.is_none_or(|m| e["http"]["request"]["method"] == m))
        .flat_map(|e| {
            e["trustmap"]["side_signal"]["cert_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| {
            (
                c["issuer_name_hash"].as_str().unwrap_or_default().into(),
                c["issuer_key_hash"].as_str().unwrap_or_default().into(),
                c["serial"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

/// tshark's OCSP request CertIDs in `pcap` (it decodes OCSP over HTTP POST only).
fn tshark_cert_ids(pcap: &Path) -> BTreeSet<(String, String, String)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", "ocsp.tbsRequest_element", "-T", "fields"])
        .args(["-e", "ocsp.issuerNameHash", "-e", "ocsp.issuerKeyHash"])
        .args(["-e", "ocsp.serialNumber"])
        .output()
        .expect("tshark is needed (.ci/run installs it)");
    assert!(out.status.success(), "tshark failed");
    let mut set = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<Vec<&str>> = line.split('\t').map(|c| c.split(',').collect()).collect();
        let [names, keys, serials] = cols.as_slice() else {
            panic!("tshark line {line:?}");
        };
        for ((n, k), s) in names.iter().zip(keys).zip(serials) {
            set.insert((n.to_string(), k.to_string(), s.to_string()));
        }
    }
    set
}

#[test]
fn ocsp_cert_ids_match_tshark_on_real_captures() {
    let mut total = 0;
    for rel in [
        "pcaps/cases/side-signals.pcap",
        "pcaps/zeek/ocsp-request-only.pcap",
        "pcaps/zeek/ocsp-request-response.pcap",
        "pcaps/zeek/ocsp-revoked.pcap",
    ] {
        let pcap = input(rel);
        let ours = signals(&pcap, &[]);
        let theirs = tshark_cert_ids(&pcap);
        assert!(!theirs.is_empty(), "{rel}: tshark saw no OCSP request");
        assert_eq!(cert_ids(&ours, Some("POST")), theirs, "{rel}");
        total += theirs.len();
    }
    assert_eq!(total, 2 + 1 + 1 + 4);
    // An OCSP GET (tshark does not decode those) about a certificate of Google Internet
    // Authority G2, no TLS in the capture: trustmap knows that CA from its Symantec 2018
    // distrust history (GeoTrust issued it).
    let get = signals(&input("pcaps/zeek/ocsp-http-get.pcap"), &[]);
    assert_eq!(get.len(), 1);
    let s = &get[0]["trustmap"]["side_signal"];
    assert_eq!(s["kind"], "ocsp");
    assert_eq!(s["cert_ids"][0]["serial"], "3d474496ff942316");
    // Every certificate of that CA trustmap knows (one here; a run that also saw its
    // cross-signed twin in a chain lists both).
    let cas = s["cas"].as_array().unwrap();
    assert!(!cas.is_empty());
    for ca in cas {
        assert_eq!(
            ca["subject"],
            "CN=Google Internet Authority G2, O=Google Inc, C=US"
        );
        assert_eq!(ca["matched_by"], "issuer_name_and_key_hash");
    }
}

#[test]
fn each_signal_names_the_ca_the_client_asked_about() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(input("pcaps/cases/side-signals.expected.json")).unwrap(),
    )
    .unwrap();
    let want = expected["side_signals"].as_array().unwrap();
    let pcap = input("pcaps/cases/side-signals.pcap");
    let root = input("pcaps/cases/side-pki/root.pem");
    // With the root as an anchor every CA is known; without, the root is known only by the
    // name an issuing CA's certificate gives it (its CRL URL), and the OCSP request about the
    // issuing CA (whose issuer is the root) matches nothing.
    for anchors in [true, false] {
        let extra: Vec<OsString> = if anchors {
            vec!["--anchors".into(), root.clone().into()]
        } else {
            Vec::new()
        };
        let got = signals(&pcap, &extra);
        assert_eq!(
            got.len(),
            want.len(),
            "one event per request, none for the page"
        );
        for (g, w) in got.iter().zip(want) {
            let s = &g["trustmap"]["side_signal"];
            assert_eq!(s["kind"], w["kind"]);
            assert_eq!(g["http"]["request"]["method"], w["method"]);
            if !w["client"].is_null() {
                assert_eq!(g["source"], w["client"]);
            }
            if !w["url"].is_null() {
                assert_eq!(g["url"]["full"], w["url"]);
            }
            let root_only = w["ca"].as_str().unwrap().contains("Side Signal Root");
            if !anchors && root_only && w["kind"] == "ocsp" {
                assert_eq!(s["cas"].as_array().unwrap().len(), 0, "{g}");
                assert_eq!(s["unmatched"], 1);
                continue;
            }
            assert_eq!(s["cas"][0]["subject"], w["ca"], "{g}");
            assert_eq!(s["unmatched"], 0);
            assert_eq!(
                s["cas"][0]["sha256"].is_null(),
                !anchors && root_only,
                "the CA certificate is known unless it is the root without --anchors: {g}"
            );
            if w["kind"] == "ocsp" {
                assert_eq!(s["cas"][0]["serial"], w["serial"]);
                assert_eq!(s["cas"][0]["matched_by"], "issuer_name_and_key_hash");
                assert_eq!(s["evidence"], "ocsp");
            } else {
                assert_eq!(s["cas"][0]["matched_by"], "url");
                assert_eq!(s["evidence"], "aia");
            }
        }
    }
}

#[test]
fn the_inventory_lists_the_clients_under_each_ca() {
    let dir = testkit::TempDir::new("side-signals");
    let db = dir.join("inv.db");
    // A removal of the issuing CA, dated before the capture.
    let pem = std::fs::read(input("pcaps/cases/side-pki/int.pem")).unwrap();
    let der = trust::anchors::pem_ders(&pem).remove(0);
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[removal]]\nid = \"retire-issuing\"\nname = \"Retire the issuing CA\"\n\
             ca = {{ sha256 = \"{}\" }}\nremoved = \"2020-01-01T00:00:00Z\"\n",
            hex::encode(analyzer::cert::sha256(&der))
        ),
    )
    .unwrap();
    trustmap(&[
        "analyze".into(),
        "-q".into(),
        "-o".into(),
        dir.join("ev.ndjson").into(),
        "--db".into(),
        db.clone().into(),
        "--rules".into(),
        rules.clone().into(),
        "--anchors".into(),
        input("pcaps/cases/side-pki/root.pem").into(),
        input("pcaps/cases/side-signals.pcap").into(),
    ]);
    // The removal status lists the clients whose requests named the removed CA.
    let status: Value = serde_json::from_slice(&trustmap(&[
        "removal".into(),
        "status".into(),
        "retire-issuing".into(),
        "--db".into(),
        db.clone().into(),
        "--rules".into(),
        rules.into(),
        "--format".into(),
        "json".into(),
    ]))
    .unwrap();
    let listed: Vec<(String, String, u64)> = status["dependencies"]["side_signal_clients"]
        .as_array()
        .expect("side_signal_clients in the removal status")
        .iter()
        .map(|c| {
            (
                c["ip"].as_str().unwrap().to_string(),
                c["evidence"].as_str().unwrap().to_string(),
                c["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("127.0.0.1".to_string(), "ocsp".to_string(), 1),
            ("127.0.2.40".to_string(), "aia".to_string(), 2),
            ("127.0.2.40".to_string(), "ocsp".to_string(), 1)
        ]
    );
    // Through a merge (as from several sensors) the rows stay.
    let merged = dir.join("merged.db");
    trustmap(&[
        "inventory".into(),
        "merge".into(),
        db.clone().into(),
        "-o".into(),
        merged.clone().into(),
    ]);
    let json = trustmap(&[
        "inventory".into(),
        "--db".into(),
        merged.into(),
        "--format".into(),
        "json".into(),
    ]);
    let direct = trustmap(&[
        "inventory".into(),
        "--db".into(),
        db.clone().into(),
        "--format".into(),
        "json".into(),
    ]);
    assert_eq!(json, direct, "merge keeps the side-signal clients");
    // CSV: one row per side-signal client and CA, its evidence in the last column.
    let csv = trustmap(&[
        "inventory".into(),
        "--db".into(),
        db.clone().into(),
        "--format".into(),
        "csv".into(),
    ]);
    let csv = String::from_utf8_lossy(&csv);
    let signal_rows: Vec<&str> = csv
        .lines()
        .filter(|l| l.ends_with(",ocsp") || l.ends_with(",aia"))
        .collect();
    let json_rows: usize = serde_json::from_slice::<Value>(&direct)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["side_signal_clients"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(json_rows > 0);
    assert_eq!(signal_rows.len(), json_rows, "{csv}");
    assert!(
        signal_rows
            .iter()
            .any(|l| l.contains(",,,,,,,,,127.0.2.40,")),
        "{csv}"
    );
    let inv: Value = serde_json::from_slice(&json).unwrap();
    let clients = |cn: &str| -> BTreeSet<(String, String, u64)> {
        let e = inv
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ca"]["subject"].as_str().unwrap().contains(cn))
            .unwrap_or_else(|| panic!("{cn} not in the inventory"));
        e["side_signal_clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["ip"].as_str().unwrap().to_string(),
                    c["evidence"].as_str().unwrap().to_string(),
                    c["requests"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let set = |v: &[(&str, &str, u64)]| -> BTreeSet<(String, String, u64)> {
        v.iter()
            .map(|(a, b, n)| (a.to_string(), b.to_string(), *n))
            .collect()
    };
    // The issuing CA: two fetches (its certificate, its CRL) and the OCSP GET from the python
    // client, the OCSP POST from the openssl client (127.0.0.1, it cannot bind).
    assert_eq!(
        clients("Issuing CA"),
        set(&[
            ("127.0.0.1", "ocsp", 1),
            ("127.0.2.40", "aia", 2),
            ("127.0.2.40", "ocsp", 1)
        ])
    );
    assert_eq!(
        clients("Side Signal Root"),
        set(&[("127.0.0.1", "ocsp", 1), ("127.0.2.40", "aia", 1)])
    );
}
