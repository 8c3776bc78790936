//! The built-in distrust history through the whole binary: the Zeek corpus judged at a fixed
//! instant under each `--distrust-policy` (the library-level cases are in distrust_history.rs).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// (code, rule) -> count of ca_removal findings over the corpus.
fn removal_counts(policy: &str, as_of: &str, pcaps: &[&str]) -> BTreeMap<(String, String), usize> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/zeek");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustmap"));
    cmd.args([
        "analyze",
        "-q",
        "-o",
        "-",
        "--db",
        ":memory:",
        "--suppress",
        "0",
    ])
    .args(["--distrust-policy", policy, "--as-of", as_of]);
    if pcaps.is_empty() {
        let mut all: Vec<_> = std::fs::read_dir(&dir)
            .expect("corpus")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        all.sort();
        cmd.args(all);
    } else {
        cmd.args(pcaps.iter().map(|p| dir.join(p)));
    }
    let out = cmd.output().expect("run trustmap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(l).expect("json");
        if v["event"]["dataset"] != "trustmap.finding" {
            continue;
        }
        let f = &v["trustmap"]["finding"];
        let code = f["code"].as_str().unwrap_or("");
        if code.starts_with("ca_removal.") {
            assert_eq!(
                v["rule"]["id"], f["rule"],
                "ECS rule.id mirrors the finding's rule"
            );
            *m.entry((
                code.to_string(),
                f["rule"].as_str().unwrap_or("").to_string(),
            ))
            .or_insert(0) += 1;
        }
    }
    m
}

fn counts(list: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    list.iter()
        .map(|(c, r, n)| ((c.to_string(), r.to_string()), *n))
        .collect()
}

#[test]
fn corpus_under_each_policy_today() {
    // Chrome exempts the Google Internet Authority G2 and Apple IST CA 2 sub-CAs (8 Symantec
    // chains); Mozilla and strict do not. WoSign/StartCom is distrusted by every program.
    let at = "2026-11-25T00:00:00Z";
    assert_eq!(
        removal_counts("chrome", at, &[]),
        counts(&[
            ("ca_removal.residual_use", "symantec-2018", 8),
            ("ca_removal.residual_use", "wosign-startcom-2016", 6),
            ("ca_removal.stale_trust", "symantec-2018", 8),
            ("ca_removal.stale_trust", "wosign-startcom-2016", 4),
        ])
    );
    let wide = counts(&[
        ("ca_removal.residual_use", "symantec-2018", 16),
        ("ca_removal.residual_use", "wosign-startcom-2016", 6),
        ("ca_removal.stale_trust", "symantec-2018", 16),
        ("ca_removal.stale_trust", "wosign-startcom-2016", 4),
    ]);
    assert_eq!(removal_counts("mozilla", at, &[]), wide);
    assert_eq!(removal_counts("strict", at, &[]), wide);
}

#[test]
fn capture_time_and_cross_sign_detours() {
    // At capture time (no --as-of would use 2014-era packet times), long before any event.
    assert!(removal_counts("strict", "2014-01-01T00:00:00Z", &[]).is_empty());
    // Google's chain also sends GeoTrust Global CA cross-signed by Equifax; that detour to a
    // root NSS dropped in 2015 is not a dependency of the chain.
    assert!(removal_counts(
        "mozilla",
        "2016-01-01T00:00:00Z",
        &["chrome-34-google.pcap"]
    )
    .is_empty());
}
