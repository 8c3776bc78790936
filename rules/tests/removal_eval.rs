//! Removal evaluation edge cases with user rules: window boundaries, grandfathering in both
//! directions, exemptions, outcomes, transition plans.

use rules::time::{format_rfc3339, parse_rfc3339};
use rules::{
    AnchorFacts, CertFacts, DistrustPolicy, HandshakeFacts, Outcome, RemovalFinding, RuleSet,
    CODE_FAILURE, CODE_PENDING, CODE_RESIDUAL_USE, CODE_STALE_TRUST,
};

const ROOT: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const EXEMPT_SPKI: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
/// The same digests as bytes, as chain building hands them over.
const ROOT_D: [u8; 32] = [0xaa; 32];
const ROOT_SPKI_D: [u8; 32] = [0xab; 32];
const INTER_D: [u8; 32] = [0xbb; 32];
const EXEMPT_SPKI_D: [u8; 32] = [0xcd; 32];
const LEAF_D: [u8; 32] = [0x11; 32];

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn rules(extra: &str) -> RuleSet {
    let mut set = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    let text = format!(
        r#"
[[removal]]
id = "corp-root-g1"
name = "Retire Corp Root G1"
ca = {{ sha256 = "{ROOT}" }}
announced = "2026-03-01T00:00:00Z"
removed = "2026-06-01T00:00:00Z"
{extra}
"#
    );
    set.add_str(&text, "corp.toml").expect("valid rules");
    set
}

fn leaf(nb: &str, sct: Option<&str>) -> CertFacts<'static> {
    CertFacts {
        sha256: &LEAF_D,
        spki_sha256: None,
        subject: "CN=billing.corp.example",
        not_before: Some(t(nb)),
        earliest_sct: sct.map(t),
        is_ca: false,
    }
}

fn inter() -> CertFacts<'static> {
    CertFacts {
        sha256: &INTER_D,
        spki_sha256: None,
        subject: "CN=Corp Issuing CA",
        not_before: None,
        earliest_sct: None,
        is_ca: true,
    }
}

fn root_anchor() -> AnchorFacts<'static> {
    AnchorFacts {
        sha256: &ROOT_D,
        spki_sha256: Some(&ROOT_SPKI_D),
        subject: "CN=Corp Root G1,O=Corp",
    }
}

fn eval(set: &RuleSet, at: &str, chain: &[CertFacts<'_>], outcome: Outcome) -> Vec<RemovalFinding> {
    set.evaluate(&HandshakeFacts {
        at: t(at),
        chain,
        anchors: &[root_anchor()],
        outcome,
    })
}

fn codes(f: &[RemovalFinding]) -> Vec<&'static str> {
    f.iter().map(|f| f.code).collect()
}

#[test]
fn window_boundaries() {
    let set = rules("");
    let chain = [leaf("2026-01-01T00:00:00Z", None), inter()];
    assert!(
        eval(&set, "2026-02-28T23:59:59Z", &chain, Outcome::Accepted).is_empty(),
        "before announced"
    );
    assert_eq!(
        codes(&eval(
            &set,
            "2026-03-01T00:00:00Z",
            &chain,
            Outcome::Accepted
        )),
        [CODE_PENDING]
    );
    assert_eq!(
        codes(&eval(
            &set,
            "2026-05-31T23:59:59Z",
            &chain,
            Outcome::Accepted
        )),
        [CODE_PENDING]
    );
    // exactly at the removal instant: residual
    let at = eval(&set, "2026-06-01T00:00:00Z", &chain, Outcome::Accepted);
    assert_eq!(codes(&at), [CODE_RESIDUAL_USE, CODE_STALE_TRUST]);
    assert_eq!(at[0].rule_id, "corp-root-g1");
    assert_eq!(at[0].ca_sha256, Some(ROOT_D));
    assert_eq!(at[0].ca_subject.as_deref(), Some("CN=Corp Root G1,O=Corp"));
    assert_eq!(at[0].cert_sha256, Some(LEAF_D));
    assert_eq!(at[0].severity, 3);
    assert_eq!(at[1].evidence, Some("accepted"));
    assert!(
        at[0].message.contains("2026-06-01T00:00:00Z"),
        "{}",
        at[0].message
    );
    let after = eval(&set, "2027-01-01T00:00:00Z", &chain, Outcome::Unknown);
    assert_eq!(codes(&after), [CODE_RESIDUAL_USE]);
    // no chain, no finding (TLS 1.3 / resumed)
    assert!(set
        .evaluate(&HandshakeFacts {
            at: t("2027-01-01T00:00:00Z"),
            chain: &[],
            anchors: &[root_anchor()],
            outcome: Outcome::Accepted
        })
        .is_empty());
}

#[test]
fn no_announcement_means_no_pending_window() {
    let mut set = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    set.add_str(&format!("[[removal]]\nid = \"x\"\nca = {{ sha256 = \"{ROOT}\" }}\nremoved = \"2026-06-01T00:00:00Z\"\n"), "x.toml")
        .unwrap();
    let chain = [leaf("2026-01-01T00:00:00Z", None)];
    assert!(eval(&set, "2026-05-01T00:00:00Z", &chain, Outcome::Accepted).is_empty());
    assert_eq!(
        eval(&set, "2026-06-01T00:00:00Z", &chain, Outcome::Accepted).len(),
        2
    );
}

#[test]
fn outcomes() {
    let set = rules("");
    let chain = [leaf("2026-01-01T00:00:00Z", None), inter()];
    let at = "2026-07-01T00:00:00Z";
    for code in [42u8, 43, 44, 45, 46, 48, 49] {
        let f = eval(&set, at, &chain, Outcome::RejectedAlert(code));
        assert_eq!(codes(&f), [CODE_RESIDUAL_USE, CODE_FAILURE], "alert {code}");
        assert_eq!(f[1].evidence, Some("alert"));
        assert_eq!(f[1].alert, Some(code));
    }
    let f = eval(&set, at, &chain, Outcome::RejectedClose);
    assert_eq!(codes(&f), [CODE_RESIDUAL_USE, CODE_FAILURE]);
    assert_eq!(f[1].evidence, Some("close"));
    // handshake_failure (40) or protocol_version (70) say nothing about the chain
    assert_eq!(
        codes(&eval(&set, at, &chain, Outcome::RejectedAlert(40))),
        [CODE_RESIDUAL_USE]
    );
    assert_eq!(
        codes(&eval(&set, at, &chain, Outcome::RejectedAlert(70))),
        [CODE_RESIDUAL_USE]
    );
    // pending never reports an outcome code
    assert_eq!(
        codes(&eval(
            &set,
            "2026-04-01T00:00:00Z",
            &chain,
            Outcome::RejectedAlert(48)
        )),
        [CODE_PENDING]
    );
}

#[test]
fn issued_after_both_directions() {
    let set = rules(r#"issued_after = "2026-05-15T00:00:00Z""#);
    let at = "2026-07-01T00:00:00Z";
    let before = [leaf("2026-05-14T23:59:59Z", None), inter()];
    let on = [leaf("2026-05-15T00:00:00Z", None), inter()];
    let after = [leaf("2026-05-15T00:00:01Z", None), inter()];
    assert!(eval(&set, at, &before, Outcome::Accepted).is_empty());
    assert!(
        eval(&set, at, &on, Outcome::Accepted).is_empty(),
        "the cut-off itself is grandfathered"
    );
    let f = eval(&set, at, &after, Outcome::Accepted);
    assert_eq!(codes(&f), [CODE_RESIDUAL_USE, CODE_STALE_TRUST]);
    assert!(f[0].message.contains("notBefore"), "{}", f[0].message);
    // unknown notBefore is not grandfathered
    let unknown = [CertFacts {
        not_before: None,
        ..leaf("2026-01-01T00:00:00Z", None)
    }];
    assert_eq!(eval(&set, at, &unknown, Outcome::Unknown).len(), 1);
    // during the window a grandfathered leaf is still a pending dependency
    let p = eval(&set, "2026-04-01T00:00:00Z", &before, Outcome::Accepted);
    assert_eq!(codes(&p), [CODE_PENDING]);
    assert!(p[0].message.contains("renewal"));
}

#[test]
fn sct_after_both_directions() {
    let set = rules(r#"sct_after = "2026-05-15T00:00:00Z""#);
    let at = "2026-07-01T00:00:00Z";
    // notBefore is irrelevant for an SCT rule: backdated leaf with a late SCT is affected
    let early_sct = [
        leaf("2026-05-20T00:00:00Z", Some("2026-05-14T23:59:59Z")),
        inter(),
    ];
    let late_sct = [
        leaf("2026-05-01T00:00:00Z", Some("2026-05-15T00:00:01Z")),
        inter(),
    ];
    assert!(eval(&set, at, &early_sct, Outcome::Accepted).is_empty());
    assert_eq!(
        codes(&eval(&set, at, &late_sct, Outcome::Accepted)),
        [CODE_RESIDUAL_USE, CODE_STALE_TRUST]
    );
    // no embedded SCT under an SCT rule: affected (Chrome requires an SCT not after the cut-off)
    let no_sct = [leaf("2026-05-01T00:00:00Z", None), inter()];
    let f = eval(&set, at, &no_sct, Outcome::Unknown);
    assert_eq!(codes(&f), [CODE_RESIDUAL_USE]);
    assert!(f[0].message.contains("no embedded SCT"), "{}", f[0].message);
}

#[test]
fn exempt_sub_ca_is_not_flagged() {
    let set = rules(&format!(
        r#"exempt = [{{ spki_sha256 = "{EXEMPT_SPKI}" }}]"#
    ));
    let at = "2026-07-01T00:00:00Z";
    let exempted = [
        leaf("2026-01-01T00:00:00Z", None),
        CertFacts {
            sha256: &INTER_D,
            spki_sha256: Some(&EXEMPT_SPKI_D),
            subject: "CN=Partner CA",
            not_before: None,
            earliest_sct: None,
            is_ca: true,
        },
    ];
    assert!(eval(&set, at, &exempted, Outcome::Accepted).is_empty());
    let normal = [leaf("2026-01-01T00:00:00Z", None), inter()];
    assert_eq!(eval(&set, at, &normal, Outcome::Accepted).len(), 2);
}

#[test]
fn chain_through_removed_intermediate_and_subject_match() {
    let mut set = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    set.add_str(
        r#"
[[removal]]
id = "issuing-ca"
cas = [{ subject = "cn = Corp Issuing CA" }, { spki_sha256 = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" }]
removed = "2026-01-01T00:00:00Z"
"#,
        "sub.toml",
    )
    .unwrap();
    let chain = [leaf("2025-06-01T00:00:00Z", None), inter()];
    let f = eval(&set, "2026-02-01T00:00:00Z", &chain, Outcome::Unknown);
    assert_eq!(codes(&f), [CODE_RESIDUAL_USE]);
    assert_eq!(
        f[0].ca_sha256,
        Some(INTER_D),
        "the matched CA is the intermediate"
    );
    // unrelated chain
    let other = [CertFacts {
        subject: "CN=Other CA",
        ..inter()
    }];
    let none = set.evaluate(&HandshakeFacts {
        at: t("2026-02-01T00:00:00Z"),
        chain: &[leaf("2025-06-01T00:00:00Z", None), other[0]],
        anchors: &[],
        outcome: Outcome::Unknown,
    });
    assert!(none.is_empty());
}

#[test]
fn transition_plan_marks_past_and_upcoming() {
    let set = rules("");
    let plan = set
        .transition_plan("corp-root-g1", t("2026-04-15T00:00:00Z"))
        .unwrap();
    let got: Vec<(&str, String, bool)> = plan
        .iter()
        .map(|m| (m.label, format_rfc3339(m.at), m.past))
        .collect();
    assert_eq!(
        got,
        vec![
            ("announcement", "2026-03-01T00:00:00Z".to_string(), true),
            ("T-90", "2026-03-03T00:00:00Z".to_string(), true),
            ("T-60", "2026-04-02T00:00:00Z".to_string(), true),
            ("T-30", "2026-05-02T00:00:00Z".to_string(), false),
            ("T-14", "2026-05-18T00:00:00Z".to_string(), false),
            ("removal", "2026-06-01T00:00:00Z".to_string(), false),
        ]
    );
    // a late announcement drops the reminders that would precede it
    let late = rules::transition_plan(
        Some(t("2026-05-10T00:00:00Z")),
        t("2026-06-01T00:00:00Z"),
        0,
    );
    let labels: Vec<&str> = late.iter().map(|m| m.label).collect();
    assert_eq!(labels, ["announcement", "T-14", "removal"]);
    assert!(set.transition_plan("no-such-rule", 0).is_none());
    // built-in events have plans too
    let entrust = set
        .transition_plan("entrust-2024", t("2026-01-01T00:00:00Z"))
        .unwrap();
    assert!(entrust.iter().all(|m| m.past));
}

#[test]
fn removals_naming_a_ca() {
    let set = rules("");
    assert_eq!(set.removals_for_ca(&ROOT_D, None, ""), ["corp-root-g1"]);
    assert!(set
        .removals_for_ca(&INTER_D, None, "CN=Corp Issuing CA")
        .is_empty());
    // Entrust Root Certification Authority - G2 (built-in), found by its SPKI alone
    let ev = rules::distrust_events()
        .unwrap()
        .into_iter()
        .find(|e| e.info.id == "entrust-2024")
        .unwrap();
    let g2 = ev
        .certificates
        .iter()
        .find(|c| rules::digest::to_hex(&c.sha256).starts_with("02ed0eb2"))
        .unwrap();
    assert_eq!(
        set.removals_for_ca(&[0; 32], Some(&g2.spki_sha256), ""),
        ["entrust-2024"]
    );
}
