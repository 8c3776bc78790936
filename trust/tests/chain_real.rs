//! Chain building and findings on real chains from the Zeek corpus (tests/data/x509, wire order).
use analyzer::cert::{parse, sha256};
use analyzer::CertInfo;
use std::sync::{Arc, OnceLock};
use trust::anchors::TrustStores;
use trust::chain::{build, ChainIssue, PathEnd, SigStatus};
use trust::findings::{evaluate, PolicyConfig};

fn stores() -> &'static TrustStores {
    static S: OnceLock<TrustStores> = OnceLock::new();
    S.get_or_init(TrustStores::builtin)
}

fn chain(name: &str, n: usize) -> Vec<Arc<CertInfo>> {
    (0..n)
        .map(|i| {
            let p = format!(
                "{}/../analyzer/tests/data/x509/{name}.{i}.der",
                env!("CARGO_MANIFEST_DIR")
            );
            let der = std::fs::read(&p).unwrap();
            Arc::new(parse(&der, sha256(&der)))
        })
        .collect()
}

fn codes(f: &[trust::findings::Finding]) -> Vec<&'static str> {
    f.iter().map(|x| x.code).collect()
}

/// Capture time of google-cert-repeat.pcap (first packet).
const GOOGLE_T: i64 = 1624959854;
/// Capture time of tls-expired-cert.pcap.
const EXPIRED_T: i64 = 1394745602;

#[test]
fn google_reaches_current_root_not_sent_and_cross_sign() {
    let c = chain("google-cert-repeat", 3);
    let r = build(&c, stores(), GOOGLE_T);
    let p = r.preferred_path().unwrap();
    assert_eq!(p.end, PathEnd::Anchor);
    assert_eq!(p.sigs, vec![SigStatus::Valid, SigStatus::Valid]);
    // Preferred: GTS Root R1 self-signed from the stores (the server sent only the cross-sign).
    let a = r.anchor().unwrap();
    assert_eq!(
        a.subject,
        "CN=GTS Root R1, O=Google Trust Services LLC, C=US"
    );
    assert!(a.stores.contains(&"mozilla".to_string()) && a.stores.contains(&"chrome".to_string()));
    // Alternative via the presented cross-sign to GlobalSign Root CA.
    assert_eq!(r.anchors.len(), 2);
    assert!(r.anchors[1].subject.starts_with("CN=GlobalSign Root CA"));
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let f = evaluate(
        &r,
        &c,
        Some("www.google.com"),
        GOOGLE_T,
        &PolicyConfig::default(),
    );
    assert!(!codes(&f).contains(&"tls.sni_mismatch"));
    assert!(!codes(&f).contains(&"cert.expired"));
    let f = evaluate(
        &r,
        &c,
        Some("www.example.org"),
        GOOGLE_T,
        &PolicyConfig::default(),
    );
    assert!(codes(&f).contains(&"tls.sni_mismatch"));
}

#[test]
fn ecdsa_chain_anchors_without_root() {
    let c = chain("ecdsa-cert", 2);
    let r = build(&c, stores(), c[0].not_before + 86400);
    assert_eq!(r.preferred_path().unwrap().certs.len(), 3);
    assert!(r
        .anchor()
        .unwrap()
        .subject
        .starts_with("CN=COMODO ECC Certification Authority"));
    assert!(r.issues.is_empty());
}

#[test]
fn missing_intermediate_is_incomplete() {
    let c = chain("missing-intermediate", 1);
    let r = build(&c, stores(), c[0].not_before + 86400);
    assert!(r.has(&ChainIssue::Incomplete));
    assert!(r.anchor().is_none());
    let f = evaluate(
        &r,
        &c,
        None,
        c[0].not_before + 86400,
        &PolicyConfig::default(),
    );
    assert!(codes(&f).contains(&"chain.incomplete"));
    assert!(!codes(&f).contains(&"cert.self_signed"));
}

#[test]
fn expired_cert_at_capture_time() {
    let c = chain("tls-expired-cert", 2);
    let r = build(&c, stores(), EXPIRED_T);
    let f = evaluate(
        &r,
        &c,
        Some("www.spidh.org"),
        EXPIRED_T,
        &PolicyConfig::default(),
    );
    let e: Vec<_> = f.iter().filter(|x| x.code == "cert.expired").collect();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].cert_sha256, c[0].sha256);
    // The same chain a week before expiry: expiring, not expired. All checks use the instant.
    let before = c[0].not_after - 7 * 86400;
    let f = evaluate(
        &build(&c, stores(), before),
        &c,
        None,
        before,
        &PolicyConfig::default(),
    );
    assert!(codes(&f).contains(&"cert.expiring"));
    assert!(!codes(&f).contains(&"cert.expired"));
}

#[test]
fn extra_root_and_sha1_chain() {
    // Go Daddy chain: leaf, intermediate, Go Daddy Class 2 (cross-signed by ValiCert), ValiCert root.
    let c = chain("tls-early-alert", 4);
    let t = c[0].not_before + 86400;
    let r = build(&c, stores(), t);
    assert_eq!(r.preferred_path().unwrap().end, PathEnd::Anchor);
    assert!(r.anchor().unwrap().subject.contains("Go Daddy Class 2"));
    assert!(!r.has(&ChainIssue::Misordered));
    let f = evaluate(&r, &c, None, t, &PolicyConfig::default());
    assert!(codes(&f).contains(&"signature.weak"), "{:?}", codes(&f)); // sha1WithRSA leaf
}

#[test]
fn self_signed_leaf_and_weak_key() {
    let c = chain("x509-generalizedtime", 1);
    let t = c[0].not_before + 86400;
    let r = build(&c, stores(), t);
    assert!(r.has(&ChainIssue::SelfSignedLeaf));
    let f = evaluate(&r, &c, None, t, &PolicyConfig::default());
    assert!(codes(&f).contains(&"cert.self_signed"));
    assert!(codes(&f).contains(&"key.weak")); // RSA 1024
}

#[test]
fn unknown_anchor_telesec() {
    let c = chain("telesec", 3);
    let t = c[0].not_before + 86400;
    let r = build(&c, stores(), t);
    assert!(r
        .issues
        .iter()
        .any(|i| matches!(i, ChainIssue::UnknownAnchor(_))));
    let f = evaluate(&r, &c, None, t, &PolicyConfig::default());
    let u = f.iter().find(|x| x.code == "chain.unknown_anchor").unwrap();
    assert!(u
        .ca
        .as_ref()
        .unwrap()
        .subject
        .contains("Deutsche Telekom Root CA 2"));
}

#[test]
fn user_anchor_makes_it_known() {
    let c = chain("telesec", 3);
    let t = c[0].not_before + 86400;
    let mut s = TrustStores::empty();
    assert!(s.add_anchor(&c[2].der, "corp"));
    let r = build(&c, &s, t);
    assert_eq!(r.anchor().unwrap().stores, vec!["corp"]);
    assert!(r.issues.is_empty());
}

#[test]
fn misordered_wire_order() {
    let mut c = chain("google-cert-repeat", 3);
    c.swap(1, 2);
    let r = build(&c, stores(), GOOGLE_T);
    assert!(r.has(&ChainIssue::Misordered));
    // Leaf not first at all.
    let mut c = chain("google-cert-repeat", 3);
    c.swap(0, 1);
    let r = build(&c, stores(), GOOGLE_T);
    assert!(r.has(&ChainIssue::Misordered));
    assert_eq!(r.leaf.as_ref().unwrap().subject, "CN=www.google.com");
}

#[test]
fn unrelated_extra_certificate() {
    let mut c = chain("google-cert-repeat", 3);
    c.extend(chain("ecdsa-cert", 2).into_iter().skip(1));
    let r = build(&c, stores(), GOOGLE_T);
    assert!(r.has(&ChainIssue::Unrelated(3)));
    assert_eq!(
        r.anchor().unwrap().subject,
        "CN=GTS Root R1, O=Google Trust Services LLC, C=US"
    );
}

#[test]
fn expired_intermediate_and_known_ca() {
    // tls-early-alert's ValiCert root expired 2019; at 2020 the path through it has an expired CA,
    // but the preferred path (Go Daddy Class 2 anchor) does not.
    let c = chain("tls-early-alert", 4);
    let mut s = TrustStores::empty();
    s.add_anchor(&c[3].der, "old");
    let t = 1_600_000_000; // 2020-09-13: ValiCert (2019) expired, Go Daddy intermediates valid.
    let r = build(&c, &s, t);
    assert_eq!(r.anchor().unwrap().stores, vec!["old"]);
    // Intermediate "Go Daddy Class 2" cross-cert valid until 2024: not expired at t.
    assert!(!r
        .issues
        .iter()
        .any(|i| matches!(i, ChainIssue::ExpiredIntermediate(_))));
    let t2 = 1_730_000_000; // 2024-10-27: the cross-cert (to 2024-06-29) has expired.
    let r = build(&c, &s, t2);
    assert!(r.has(&ChainIssue::ExpiredIntermediate(c[2].sha256)));
    // Known CA (not an anchor): a chain that stops at the intermediate reaches it, as unknown anchor.
    let mut k = TrustStores::empty();
    k.add_known_ca(&c[3].der, "valicert-event");
    let short: Vec<_> = c.iter().take(3).cloned().collect();
    let r = build(&short, &k, t);
    let top = r.preferred_path().unwrap().top().unwrap().clone();
    assert_eq!(top.sha256, c[3].sha256);
    assert!(r.has(&ChainIssue::UnknownAnchor(c[3].sha256)));
}

#[test]
fn instant_drives_every_time_check() {
    // The same google chain at three instants: before issuance, at capture, long after.
    let c = chain("google-cert-repeat", 3);
    let cfg = PolicyConfig::default();
    let at = |t: i64| codes(&evaluate(&build(&c, stores(), t), &c, None, t, &cfg));
    let before = at(c[0].not_before - 10);
    assert!(before.contains(&"cert.not_yet_valid"));
    assert!(!before.contains(&"cert.expired"));
    let now = at(GOOGLE_T);
    assert!(!now.iter().any(|c| c.starts_with("cert.")), "{now:?}");
    assert!(!now.contains(&"anchor.term_limit"));
    // 2030: leaf expired, 1C3 (to 2027) expired, GTS Root R1 key (2016) not yet 15 years old.
    let later = at(1_900_000_000);
    assert_eq!(
        later.iter().filter(|c| **c == "cert.expired").count(),
        2,
        "{later:?}"
    );
}

#[test]
fn bad_signature_breaks_the_link() {
    let c = chain("google-cert-repeat", 3);
    let mut der = c[0].der.clone();
    let n = der.len();
    der[n - 5] ^= 0x55; // inside the signature value
    let leaf = Arc::new(parse(&der, sha256(&der)));
    let forged = vec![leaf, c[1].clone(), c[2].clone()];
    let r = build(&forged, stores(), GOOGLE_T);
    assert!(r.anchor().is_none());
    assert!(r.has(&ChainIssue::Incomplete));
    assert!(r.has(&ChainIssue::Unrelated(1)));
}

#[test]
fn lifetime_and_term_limit_on_real_chain() {
    // tls-early-alert leaf: 2010-04-26 .. 2011-04-16 (355 days), before the 825-day rule: no finding.
    let c = chain("tls-early-alert", 4);
    let t = c[0].not_before + 86400;
    let r = build(&c, stores(), t);
    let f = codes(&evaluate(&r, &c, None, t, &PolicyConfig::default()));
    assert!(!f.contains(&"cert.lifetime_exceeds_policy"));
    // Same anchor (Go Daddy Class 2, key from 2004) evaluated in 2026-05: past the term limit.
    let t2 = 1_779_000_000;
    let r = build(&c, stores(), t2);
    let f = evaluate(&r, &c, None, t2, &PolicyConfig::default());
    let tl = f.iter().find(|x| x.code == "anchor.term_limit").unwrap();
    assert!(tl.ca.as_ref().unwrap().subject.contains("Go Daddy Class 2"));
    // The google leaf (84 days) is within the schedule of its issuance date.
    let g = chain("google-cert-repeat", 3);
    let r = build(&g, stores(), GOOGLE_T);
    assert!(
        !codes(&evaluate(&r, &g, None, GOOGLE_T, &PolicyConfig::default()))
            .contains(&"cert.lifetime_exceeds_policy")
    );
}
