//! Which client CAs an mTLS server trusts, learnt from its verdicts
//! (pcaps/cases/mtls-outcomes.pcap: two Python ssl servers whose CertificateRequest names no CA,
//! one trusting the test root, one the estate's OLD root; each gets a client chain under each
//! and accepts one, refusing the other with a fatal alert). `inventory --format json` lists each
//! server in `client_auth_trusted_by` of the CA it accepted (evidence `accepted`) and of the one
//! it refused (evidence `rejected`, DESIGN.md §6), as the generator configured them
//! (mtls-outcomes.expected.json).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

#[test]
fn servers_trust_learnt_from_accepted_and_refused_client_chains() {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(testkit::corpus::file(
            "pcaps/cases/mtls-outcomes.expected.json",
        ))
        .expect("expected json"),
    )
    .expect("JSON");
    let d = testkit::TempDir::new("client-auth");
    let db = d.join("inv.db");
    testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["analyze", "-q", "-o", "/dev/null", "--db"])
            .arg(&db)
            .arg("--anchors")
            .arg(testkit::corpus::file("pcaps/cases/pki/root.pem"))
            .arg("--anchors")
            .arg(testkit::corpus::file("pcaps/cases/estate-pki/old-root.pem"))
            .arg(testkit::corpus::file("pcaps/cases/mtls-outcomes.pcap")),
    );
    let inv: Value = serde_json::from_slice(&testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["inventory", "--format", "json", "--db"])
            .arg(&db),
    ))
    .expect("inventory JSON");
    let by_subject = |cn: &str| -> Value {
        inv.as_array()
            .into_iter()
            .flatten()
            .find(|e| e["ca"]["subject"].as_str().is_some_and(|s| s.contains(cn)))
            .cloned()
            .unwrap_or_else(|| panic!("{cn} in the inventory"))
    };
    let servers = |v: &Value| -> BTreeSet<(String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                assert_eq!(r["port"], 443);
                (
                    r["ip"].as_str().unwrap_or("").to_string(),
                    r["evidence"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    // What the generator configured: each server's trusted root, and each verdict.
    let hs = exp["handshakes"].as_array().expect("handshakes");
    assert_eq!(hs.len(), 4);
    for (tag, cn) in [
        ("test-root", "Trustmap Test Root CA"),
        ("estate-old-root", "Corp Root CA G1"),
    ] {
        let mut want_trusted = BTreeSet::new();
        let mut want_rejected = BTreeSet::new();
        for h in hs {
            let ip = h["server"]["ip"].as_str().expect("ip").to_string();
            // A chain under `cn` went to this server: accepted exactly when it trusts `cn`.
            let under_cn = (h["server_trusts"] == tag) == (h["client_cert_accepted"] == true);
            if !under_cn {
                continue;
            }
            if h["client_cert_accepted"] == true {
                want_trusted.insert((ip, "accepted".to_string()));
            } else {
                assert_eq!(h["alert"]["from"], "server");
                want_rejected.insert((ip, "rejected".to_string()));
            }
        }
        let e = by_subject(cn);
        let want: BTreeSet<(String, String)> = &want_trusted | &want_rejected;
        assert_eq!(servers(&e["client_auth_trusted_by"]), want, "{cn}");
        assert_eq!(want_trusted.len() + want_rejected.len(), 2, "{cn}");
    }
}
