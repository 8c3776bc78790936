//! cert::parse against real certificates from the Zeek corpus; expected values from
//! `openssl x509 -inform DER -noout -text` (see tests/data/x509/README.md).
use analyzer::cert::{parse, sha256};

fn load(name: &str) -> analyzer::CertInfo {
    let p = format!("{}/tests/data/x509/{name}.der", env!("CARGO_MANIFEST_DIR"));
    let der = std::fs::read(&p).unwrap();
    parse(&der, sha256(&der))
}

#[test]
fn sct_leaf_fields() {
    let c = load("certificate-with-sct.0");
    assert_eq!(c.parse_error, None);
    assert_eq!(
        hex::encode(c.sha256),
        "69a61a3b69be6ee7d371de1839600336781106 9a652a6eb7c0ccb49da72eb842".replace(' ', "")
    );
    assert_eq!(c.serial, "38c175340af8a2d022a32cd075ebd0f6");
    assert_eq!(c.subject, "CN=lilawelt.net, C=US");
    assert_eq!(
        c.issuer,
        "CN=WoSign CA Free SSL Certificate G2, O=WoSign CA Limited, C=CN"
    );
    assert_eq!(c.not_before, 1474924238);
    assert_eq!(c.not_after, 1569532238);
    assert_eq!(c.alternative_names, vec!["lilawelt.net"]);
    assert_eq!(c.public_key_algorithm, "RSA");
    assert_eq!(c.public_key_size, Some(2048));
    assert_eq!(c.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(
        c.ski.as_deref(),
        Some("171f941ce849f30cf90636741c6c248835ad06a4")
    );
    assert_eq!(
        c.aki.as_deref(),
        Some("d2a716207cafd9959eeb430a19f2e0b9740ea8c7")
    );
    assert!(!c.is_ca);
    assert!(!c.self_issued);
    assert_eq!(
        c.sct_timestamps,
        vec![1474927230876, 1474927232863, 1474927232112, 1474927232304]
    );
    assert!(c.eku.contains(&"serverAuth".to_string()));
    assert!(c.spki_sha256.is_some());
}

#[test]
fn ecdsa_leaf_fields() {
    let c = load("ecdsa-cert.0");
    assert_eq!(c.parse_error, None);
    assert_eq!(c.serial, "f0afbbf558bf4d1b71fed9cb33793ee4");
    assert_eq!(
        c.subject,
        "CN=pantz.org, OU=PositiveSSL, OU=Domain Control Validated"
    );
    assert_eq!(c.public_key_algorithm, "EC");
    assert_eq!(c.public_key_curve.as_deref(), Some("secp384r1"));
    assert_eq!(c.public_key_size, Some(384));
    assert_eq!(c.signature_algorithm, "ecdsa-with-SHA256");
    assert_eq!(c.alternative_names, vec!["pantz.org", "www.pantz.org"]);
}

#[test]
fn telesec_and_generalizedtime() {
    let c = load("telesec.0");
    assert_eq!(c.parse_error, None);
    assert_eq!(c.serial, "339d9ed8e73927c9");
    assert_eq!(c.signature_algorithm, "sha1WithRSAEncryption");
    assert!(c
        .subject
        .starts_with("CN=imap.gmx.net, emailAddress=server-certs@1und1.de"));
    let g = load("x509-generalizedtime.0");
    assert_eq!(g.parse_error, None);
    assert_eq!(g.serial, "03e8");
    assert_eq!(g.not_before, 1441114417);
    assert_eq!(g.not_after, 1756733617);
    assert_eq!(g.public_key_size, Some(1024));
    assert!(g.self_issued);
}

#[test]
fn malformed_pss_and_unknown_key_alg_do_not_fail() {
    let c = load("CVE-2015-3194.0");
    // Either parsed (with the PSS OID name) or kept with an error: never a panic, fingerprint kept.
    assert_eq!(
        hex::encode(c.sha256),
        "81a29a60dfcea4e4e9e80dd277c1384b002db8601afc57bca2c2ef1377fd9872"
    );
    if c.parse_error.is_none() {
        assert_eq!(c.signature_algorithm, "rsassaPss");
        assert_eq!(c.serial, "e2bcd57bda0ec56f");
    }
    let m = load("ml-dsa-44-cert.0");
    assert_eq!(m.parse_error, None);
    assert_eq!(m.public_key_algorithm, "ML-DSA-44");
    assert_eq!(m.signature_algorithm, "ML-DSA-44");
    assert_eq!(m.subject, "CN=ml-dsa.example.com, O=PQC-Test, C=US");
    assert!(m.is_ca);
    assert!(m.self_issued);
}

#[test]
fn garbage_keeps_fingerprint_and_error() {
    let der = b"\x30\x82\xff\xff not a certificate";
    let c = parse(der, sha256(der));
    assert!(c.parse_error.is_some());
    assert_eq!(c.sha256, sha256(der));
}
