//! `--store-certs DIR` (as Suricata's tls-store): every unique certificate of the run is in DIR
//! once, as `<sha256>.pem`, the same set as the run's `trustmap.x509` events; a second run over
//! the same capture writes nothing new.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn each_unique_certificate_once_as_pem() {
    let d = testkit::TempDir::new("cert-store");
    let dir = d.join("certs");
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
            .args(["analyze", "--db", ":memory:", "-o", "-", "--store-certs"])
            .arg(&dir)
            .arg(testkit::corpus::file("pcaps/cases/estate.pcap"))
            .output()
            .expect("run trustmap");
        assert!(out.status.success());
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (events, err) = run();
    let x509: BTreeSet<String> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("NDJSON"))
        .filter(|e| e["event"]["dataset"] == "trustmap.x509")
        .map(|e| e["trustmap"]["sha256"].as_str().unwrap_or("").to_string())
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("store dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = x509.iter().map(|s| format!("{s}.pem")).collect();
    assert!(x509.len() >= 10, "{x509:?}");
    assert_eq!(files, want);
    for f in &files {
        let text = std::fs::read_to_string(dir.join(f)).expect("pem");
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"), "{f}");
        assert!(text.ends_with("-----END CERTIFICATE-----\n"), "{f}");
    }
    assert!(
        err.contains(&format!(
            "certificate store: {} written, 0 already there",
            x509.len()
        )),
        "{err}"
    );
    let (_, err) = run();
    assert!(
        err.contains(&format!(
            "certificate store: 0 written, {} already there",
            x509.len()
        )),
        "{err}"
    );
}
