//! The built-in distrust history against its source data, and the policy differences.

use rules::digest::{to_hex, Sha256};
use rules::time::parse_rfc3339;
use rules::{
    distrust_certs, distrust_events, AnchorFacts, CertFacts, DistrustPolicy, HandshakeFacts,
    Outcome, Program, RuleSet, CODE_PENDING, CODE_RESIDUAL_USE, CODE_STALE_TRUST,
};
use std::collections::{BTreeMap, BTreeSet};

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn source() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/distrust_events.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_event_loads_with_all_its_certificates() {
    let src = source();
    let src_events = src["events"].as_array().unwrap();
    let events = distrust_events().expect("built-in events parse");
    assert_eq!(events.len(), 10);
    assert_eq!(events.len(), src_events.len());
    let mut total = 0;
    for (ev, s) in events.iter().zip(src_events) {
        assert_eq!(ev.info.id, s["id"].as_str().unwrap());
        let want: BTreeMap<String, String> = s["affected_certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["sha256"].as_str().unwrap().to_string(),
                    c["role"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let got: BTreeMap<String, String> = ev
            .certificates
            .iter()
            .map(|c| (to_hex(&c.sha256), c.role.clone()))
            .collect();
        assert_eq!(got, want, "{}", ev.info.id);
        assert_eq!(
            ev.certificates.len(),
            s["affected_certificates"].as_array().unwrap().len()
        );
        total += ev.certificates.len();
        // every non-exception certificate is covered by at least one entry, every entry by id
        for c in ev
            .certificates
            .iter()
            .filter(|c| !c.role.starts_with("exception-"))
        {
            let covered = ev.removals.iter().any(|r| {
                r.cas
                    .iter()
                    .any(|s| s.sha256 == Some(c.sha256) || s.spki_sha256 == Some(c.spki_sha256))
            });
            assert!(covered, "{} {} not covered", ev.info.id, c.subject);
        }
        assert!(ev.removals.iter().all(|r| r.id == ev.info.id));
    }
    assert_eq!(total, 125);
}

#[test]
fn programs_present_per_event() {
    let by_id: BTreeMap<String, BTreeSet<Program>> = distrust_events()
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.info.id.clone(),
                e.removals.iter().filter_map(|r| r.program).collect(),
            )
        })
        .collect();
    // Certinomis: no Chrome action in the data; Chunghwa/Netlock: Mozilla only for ePKI.
    assert!(!by_id["certinomis-2019"].contains(&Program::Chrome));
    assert!(by_id["certinomis-2019"].contains(&Program::Mozilla));
    for id in ["entrust-2024", "wosign-startcom-2016", "camerfirma-2021"] {
        assert_eq!(
            by_id[id].len(),
            3,
            "{id} has chrome, mozilla and apple entries"
        );
    }
    assert!(by_id["symantec-2018"].contains(&Program::Chrome));
}

#[test]
fn distrust_certs_match_the_pems_in_the_data() {
    let src = source();
    let mut want = BTreeSet::new();
    for e in src["events"].as_array().unwrap() {
        for c in e["affected_certificates"].as_array().unwrap() {
            if c["pem"].is_string() {
                want.insert((
                    e["id"].as_str().unwrap().to_string(),
                    c["role"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    let certs = distrust_certs();
    assert_eq!(certs.len(), 123);
    for (ev, role, pem) in &certs {
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{ev}");
        assert!(want.contains(&(ev.to_string(), role.to_string())));
    }
    // each embedded PEM is the file named in the data, byte for byte
    for (ev, _role, sha, pem) in rules::distrust::distrust_certs_with_sha256() {
        let dir = format!("{}/distrust/certs/{ev}", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.to_string_lossy()
                    .ends_with(&format!("__{}.pem", &sha[..8]))
            })
            .unwrap_or_else(|| panic!("{ev} {sha}"));
        assert_eq!(std::fs::read_to_string(file).unwrap(), *pem);
    }
}

#[test]
fn generated_files_are_up_to_date() {
    // The TOML files and index.rs must be exactly what generate.py makes from the JSON copy.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/distrust/generate.py");
    // python3 is part of the test toolchain (README): without it this test fails, it does not
    // pass unchecked.
    let out = std::process::Command::new("python3")
        .args([script, "--check", "--no-pems"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to check generate.py's output: {e}"));
    assert!(
        out.status.success(),
        "generate.py --check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The certificate of an event whose SHA-256 starts with `prefix`.
fn cert(event: &str, prefix: &str) -> (Sha256, Sha256, String) {
    let ev = distrust_events()
        .unwrap()
        .into_iter()
        .find(|e| e.info.id == event)
        .unwrap();
    let c = ev
        .certificates
        .into_iter()
        .find(|c| to_hex(&c.sha256).starts_with(prefix))
        .unwrap();
    (c.sha256, c.spki_sha256, c.subject)
}

fn codes(
    set: &RuleSet,
    at: &str,
    chain: &[CertFacts<'_>],
    anchors: &[AnchorFacts<'_>],
) -> Vec<(&'static str, String)> {
    set.evaluate(&HandshakeFacts {
        at: t(at),
        chain,
        anchors,
        outcome: Outcome::Accepted,
    })
    .into_iter()
    .map(|f| (f.code, f.rule_id))
    .collect()
}

fn leaf(nb: &str, sct: Option<&str>) -> CertFacts<'static> {
    CertFacts {
        sha256: &[0x11; 32],
        spki_sha256: Some(&[0x22; 32]),
        subject: "CN=www.example.test",
        not_before: Some(t(nb)),
        earliest_sct: sct.map(t),
        is_ca: false,
    }
}

#[test]
fn entrust_2024_chrome_vs_mozilla_vs_strict() {
    let chrome = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    let mozilla = RuleSet::builtin(DistrustPolicy::Mozilla).unwrap();
    let strict = RuleSet::builtin(DistrustPolicy::Strict).unwrap();
    // Entrust Root Certification Authority - G2: NSS distrust-after 2024-11-30, trust bit off 2026-04-09
    let (sha, spki, subj) = cert("entrust-2024", "02ed0eb2");
    let anchors = [AnchorFacts {
        sha256: &sha,
        spki_sha256: Some(&spki),
        subject: &subj,
    }];
    let residual = vec![
        (CODE_RESIDUAL_USE, "entrust-2024".to_string()),
        (CODE_STALE_TRUST, "entrust-2024".to_string()),
    ];

    // Issued 2024-11-20 (SCT same day): after Chrome's SCT cut-off, before NSS's notBefore cut-off.
    let mid = [leaf("2024-11-20T10:00:00Z", Some("2024-11-20T10:00:00Z"))];
    assert_eq!(
        codes(&chrome, "2025-01-01T00:00:00Z", &mid, &anchors),
        residual
    );
    assert!(codes(&mozilla, "2025-01-01T00:00:00Z", &mid, &anchors).is_empty());
    assert_eq!(
        codes(&strict, "2025-01-01T00:00:00Z", &mid, &anchors),
        residual
    );
    // ... until Mozilla turned the trust bit off for G2 on 2026-04-09
    assert_eq!(
        codes(&mozilla, "2026-05-01T00:00:00Z", &mid, &anchors),
        residual
    );
    let f = &mozilla.evaluate(&HandshakeFacts {
        at: t("2026-05-01T00:00:00Z"),
        chain: &mid,
        anchors: &anchors,
        outcome: Outcome::Unknown,
    })[0];
    assert_eq!(f.program, Some(Program::Mozilla));
    assert_eq!(f.ca_sha256, Some(sha));

    // Chrome's cut-off is on the SCT, not notBefore: a backdated leaf with a late SCT is affected.
    let backdated = [leaf("2024-11-01T00:00:00Z", Some("2024-11-12T00:00:00Z"))];
    assert_eq!(
        codes(&chrome, "2025-01-01T00:00:00Z", &backdated, &anchors),
        residual
    );
    assert!(codes(&mozilla, "2025-01-01T00:00:00Z", &backdated, &anchors).is_empty());

    // Issued 2024-11-05: grandfathered everywhere (Apple's 2024-11-15 cut-off too).
    let early = [leaf("2024-11-05T00:00:00Z", Some("2024-11-05T00:00:00Z"))];
    for set in [&chrome, &mozilla, &strict] {
        assert!(codes(set, "2025-01-01T00:00:00Z", &early, &anchors).is_empty());
    }
    // Issued 2024-12-05: distrusted everywhere.
    let late = [leaf("2024-12-05T00:00:00Z", Some("2024-12-05T00:00:00Z"))];
    for set in [&chrome, &mozilla, &strict] {
        assert_eq!(
            codes(set, "2025-01-01T00:00:00Z", &late, &anchors),
            residual
        );
    }
    // Strict = earliest date: Apple (notBefore after 2024-11-15) flags a leaf that Chrome
    // (SCT before its cut-off) and Mozilla (notBefore before 11-30) both accept.
    let apple_only = [leaf("2024-11-20T00:00:00Z", Some("2024-11-10T00:00:00Z"))];
    assert!(codes(&chrome, "2025-01-01T00:00:00Z", &apple_only, &anchors).is_empty());
    assert!(codes(&mozilla, "2025-01-01T00:00:00Z", &apple_only, &anchors).is_empty());
    assert_eq!(
        codes(&strict, "2025-01-01T00:00:00Z", &apple_only, &anchors),
        residual
    );
}

#[test]
fn symantec_chrome_vs_mozilla_vs_strict_and_exceptions() {
    let chrome = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    let mozilla = RuleSet::builtin(DistrustPolicy::Mozilla).unwrap();
    let strict = RuleSet::builtin(DistrustPolicy::Strict).unwrap();
    let (root_sha, root_spki, root_subj) = cert("symantec-2018", "ff856a2d"); // GeoTrust Global CA
    let (ist_sha, ist_spki, ist_subj) = cert("symantec-2018", "ac2b922e"); // Apple IST CA 2 - G1
    let anchors = [AnchorFacts {
        sha256: &root_sha,
        spki_sha256: Some(&root_spki),
        subject: &root_subj,
    }];

    // Chrome 66 stage: leaves issued before 2016-06-01 are distrusted from 2018-04-17.
    let old = [leaf("2015-01-01T00:00:00Z", None)];
    assert_eq!(
        codes(&chrome, "2018-06-01T00:00:00Z", &old, &anchors).len(),
        2
    );
    assert!(codes(&mozilla, "2018-06-01T00:00:00Z", &old, &anchors).is_empty());
    assert_eq!(
        codes(&strict, "2018-06-01T00:00:00Z", &old, &anchors).len(),
        2
    );
    assert!(codes(&chrome, "2018-04-16T23:59:59Z", &old, &anchors).is_empty());
    // A 2017 leaf survives stage 1, falls in stage 2 (Chrome 70, 2018-10); stage 1 shipped the
    // plan, so between the two stages it is pending (nothing before stage 1).
    let newer = [leaf("2017-01-01T00:00:00Z", None)];
    assert_eq!(
        codes(&chrome, "2018-06-01T00:00:00Z", &newer, &anchors),
        vec![(CODE_PENDING, "symantec-2018".to_string())]
    );
    assert!(codes(&chrome, "2018-04-16T23:59:59Z", &newer, &anchors).is_empty());
    assert!(codes(&mozilla, "2018-06-01T00:00:00Z", &newer, &anchors).is_empty());
    assert_eq!(
        codes(&chrome, "2018-11-01T00:00:00Z", &newer, &anchors).len(),
        2
    );

    // Chrome's exception: a chain through Apple IST CA 2 - G1 is not legacy Symantec.
    let via_apple = [
        leaf("2019-01-01T00:00:00Z", None),
        CertFacts {
            sha256: &ist_sha,
            spki_sha256: Some(&ist_spki),
            subject: &ist_subj,
            not_before: None,
            earliest_sct: None,
            is_ca: true,
        },
    ];
    assert!(codes(&chrome, "2019-06-01T00:00:00Z", &via_apple, &anchors).is_empty());
    // Mozilla has no such exception in the data; strict takes the widest scope.
    assert_eq!(
        codes(&mozilla, "2019-06-01T00:00:00Z", &via_apple, &anchors).len(),
        2
    );
    assert_eq!(
        codes(&strict, "2019-06-01T00:00:00Z", &via_apple, &anchors).len(),
        2
    );
    // Matching by SPKI: the same key under another certificate hash is the same CA for Chrome.
    let cross = [AnchorFacts {
        sha256: &[0; 32],
        spki_sha256: Some(&root_spki),
        subject: "",
    }];
    assert_eq!(
        codes(&chrome, "2018-11-01T00:00:00Z", &newer, &cross).len(),
        2
    );
}

#[test]
fn chunghwa_mozilla_only_epki() {
    let mozilla = RuleSet::builtin(DistrustPolicy::Mozilla).unwrap();
    let chrome = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    let (sha, spki, subj) = cert("chunghwa-netlock-2025", "f015ce3c"); // HiPKI Root CA - G1
    let anchors = [AnchorFacts {
        sha256: &sha,
        spki_sha256: Some(&spki),
        subject: &subj,
    }];
    let late = [leaf("2025-09-01T00:00:00Z", Some("2025-09-01T00:00:00Z"))];
    assert!(codes(&mozilla, "2025-10-01T00:00:00Z", &late, &anchors).is_empty());
    assert_eq!(
        codes(&chrome, "2025-10-01T00:00:00Z", &late, &anchors).len(),
        2
    );
}

/// Every `announced` in the built-in history, by (event, program): only where the data dates the
/// decision before it took effect (generate.py docstring), and always before `removed`.
#[test]
fn announcements_come_from_the_data() {
    let mut got = BTreeMap::new();
    for ev in distrust_events().unwrap() {
        for r in &ev.removals {
            if let Some(a) = r.announced {
                assert!(a < r.removed, "{} {:?}", r.id, r.stage);
                got.insert(
                    (
                        r.id.clone(),
                        r.program.unwrap(),
                        r.stage.clone().unwrap_or_default(),
                    ),
                    rules::time::format_rfc3339(a),
                );
            }
        }
    }
    let want: BTreeMap<(String, Program, String), String> = [
        // summary: "Chrome Root Program distrust (announced 2025-05-30)"
        (
            "chunghwa-netlock-2025",
            Program::Chrome,
            "grandfathered",
            "2025-05-30T00:00:00Z",
        ),
        // full removal announced by the grandfathering stage of the same plan
        (
            "cnnic-2015",
            Program::Mozilla,
            "full",
            "2015-04-01T23:59:59Z",
        ),
        (
            "wosign-startcom-2016",
            Program::Chrome,
            "full",
            "2016-10-21T00:00:00Z",
        ),
        (
            "wosign-startcom-2016",
            Program::Mozilla,
            "full",
            "2016-10-21T23:59:59Z",
        ),
        // NSS commit of 2024-11-15 set distrust-after 2024-11-30T23:59:59Z
        (
            "entrust-2024",
            Program::Mozilla,
            "grandfathered+nss-distrust-after",
            "2024-11-15T19:35:18Z",
        ),
        // Chrome 70 stage announced by the Chrome 66 stage
        (
            "symantec-2018",
            Program::Chrome,
            "stage-2",
            "2018-04-17T00:00:00Z",
        ),
    ]
    .into_iter()
    .map(|(id, p, st, a)| ((id.to_string(), p, st.to_string()), a.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn pending_windows_of_the_history() {
    let (sha, spki, subj) = cert("chunghwa-netlock-2025", "f015ce3c"); // HiPKI Root CA - G1
    let anchors = [AnchorFacts {
        sha256: &sha,
        spki_sha256: Some(&spki),
        subject: &subj,
    }];
    let chrome = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    let strict = RuleSet::builtin(DistrustPolicy::Strict).unwrap();
    let mozilla = RuleSet::builtin(DistrustPolicy::Mozilla).unwrap();
    let old = [leaf("2025-01-01T00:00:00Z", Some("2025-01-01T00:00:00Z"))];
    let pending = vec![(CODE_PENDING, "chunghwa-netlock-2025".to_string())];
    assert!(codes(&chrome, "2025-05-29T23:59:59Z", &old, &anchors).is_empty());
    for set in [&chrome, &strict] {
        assert_eq!(codes(set, "2025-05-30T00:00:00Z", &old, &anchors), pending);
        assert_eq!(codes(set, "2025-07-31T23:59:59Z", &old, &anchors), pending);
        // from removal on, the 2025-01 SCT grandfathers the leaf
        assert!(codes(set, "2025-08-01T00:00:00Z", &old, &anchors).is_empty());
    }
    assert!(codes(&mozilla, "2025-06-01T00:00:00Z", &old, &anchors).is_empty());

    // Entrust under Mozilla: pending from the NSS commit to the distrust-after value.
    let (sha, spki, subj) = cert("entrust-2024", "73c17643");
    let anchors = [AnchorFacts {
        sha256: &sha,
        spki_sha256: Some(&spki),
        subject: &subj,
    }];
    let early = [leaf("2024-10-01T00:00:00Z", Some("2024-10-01T00:00:00Z"))];
    let pending = vec![(CODE_PENDING, "entrust-2024".to_string())];
    assert!(codes(&mozilla, "2024-11-15T19:35:17Z", &early, &anchors).is_empty());
    assert_eq!(
        codes(&mozilla, "2024-11-15T19:35:18Z", &early, &anchors),
        pending
    );
    assert!(codes(&mozilla, "2024-12-01T00:00:00Z", &early, &anchors).is_empty());
}
