//! Unit tests of the inventory (integration tests cannot reach bin-internal modules).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use rules::time::{rfc3339_ns, rfc3339_s};

const NS: u64 = 1_000_000_000;
const DAY: i64 = 86_400;
/// 2026-06-01T00:00:00Z
const REMOVED: i64 = 1_780_272_000;

/// A test digest from a short hex pattern ("aa11" -> "aa11aa11...", 64 digits): the inventory
/// stores and prints the 64-digit hex.
fn hex64(short: &str) -> String {
    short.repeat(64 / short.len().max(1))
}

fn digest(short: &str) -> [u8; 32] {
    rules::digest::parse_hex(&hex64(short)).expect("test digest")
}

fn ca(sha: &str, subject: &str, role: Role) -> CaRef {
    CaRef {
        sha256: digest(sha),
        subject: subject.into(),
        role,
        stores: vec!["mozilla".into()],
        removals: vec![],
    }
}

fn obs(ts_s: i64, client: &str, server: &str, sni: Option<&str>, cas: Vec<CaRef>) -> Observation {
    Observation {
        ts_ns: (ts_s as u64) * NS,
        client_ip: client.parse().unwrap(),
        server_ip: server.parse().unwrap(),
        server_port: 443,
        server_name: sni.map(str::to_string),
        segments: vec![],
        chain_visible: !cas.is_empty(),
        evidence: None,
        resumed: false,
        outcome: Outcome::Accepted,
        cas,
        leaf_sha256: None,
        client_auth_ca_names: vec![],
        client_auth_outcome: None,
        algorithms: Default::default(),
    }
}

fn root_a() -> CaRef {
    ca("aa11", "CN=Root A,O=Example", Role::Root)
}
fn inter_b() -> CaRef {
    ca("bb22", "CN=Issuing B,O=Example", Role::Intermediate)
}

fn find<'a>(v: &'a [CaEntry], sha: &str) -> &'a CaEntry {
    v.iter()
        .find(|e| e.ca.sha256 == hex64(sha))
        .expect("CA present")
}

fn t(s: i64) -> String {
    rfc3339_ns(s as u64 * NS)
}

#[test]
fn accumulates_across_two_runs_on_a_file_db() {
    let dir = testkit::TempDir::new("inv-accum");
    let path = dir.join("inv.db");
    let p = path.to_str().unwrap();
    let src1;
    {
        let mut inv = Inventory::open(p).unwrap();
        src1 = inv.source_id().to_string();
        inv.record(&obs(
            1000,
            "10.0.0.5",
            "10.0.0.9",
            Some("a.example"),
            vec![inter_b(), root_a()],
        ))
        .unwrap();
        inv.record(&obs(
            2000,
            "10.0.0.5",
            "10.0.0.9",
            Some("a.example"),
            vec![inter_b(), root_a()],
        ))
        .unwrap();
        inv.flush().unwrap();
    }
    let mut inv = Inventory::open(p).unwrap();
    assert_eq!(inv.source_id(), src1, "source id is stable across runs");
    let mode: String = inv
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: i64 = inv
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mut o = obs(
        500,
        "10.0.0.6",
        "10.0.0.9",
        Some("b.example"),
        vec![inter_b(), root_a()],
    );
    o.outcome = Outcome::Rejected(Some(48));
    inv.record(&o).unwrap();
    inv.record(&obs(
        3000,
        "10.0.0.5",
        "10.0.0.9",
        None,
        vec![inter_b(), root_a()],
    ))
    .unwrap();
    inv.flush().unwrap();
    let q = inv.query(None).unwrap();
    assert_eq!(q.len(), 2);
    let b = find(&q, "bb22");
    assert_eq!(b.ca.role, "intermediate");
    assert_eq!(b.endpoints.len(), 1);
    let ep = &b.endpoints[0];
    assert_eq!(ep.handshakes, 4);
    assert_eq!(ep.first_seen, t(500));
    assert_eq!(ep.last_seen, t(3000));
    assert_eq!(ep.server_names, vec!["a.example", "b.example"]);
    assert_eq!(ep.clients.len(), 2);
    let c5 = ep.clients.iter().find(|c| c.ip == "10.0.0.5").unwrap();
    assert_eq!(
        (c5.first_seen.clone(), c5.last_seen.clone()),
        (t(1000), t(3000))
    );
    assert_eq!(c5.counts.accepted, 3);
    let c6 = ep.clients.iter().find(|c| c.ip == "10.0.0.6").unwrap();
    assert_eq!(c6.outcome, "rejected");
    assert_eq!(c6.counts.rejected, 1);
    drop(inv);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn flushes_in_batches_and_on_drop() {
    let dir = testkit::TempDir::new("inv-batch");
    let p = dir.join("b.db");
    {
        let mut inv = Inventory::open(p.to_str().unwrap()).unwrap();
        inv.set_flush_every(2);
        for i in 0..5 {
            inv.record(&obs(100 + i, "10.0.0.1", "10.0.0.2", None, vec![root_a()]))
                .unwrap();
        }
        assert_eq!(inv.stats().flushes, 2);
        // The fifth record is written when the handle is dropped.
    }
    let inv = Inventory::open(p.to_str().unwrap()).unwrap();
    assert_eq!(inv.query(None).unwrap()[0].endpoints[0].handshakes, 5);
    drop(inv);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn merges_two_sensors_idempotently() {
    let dir = testkit::TempDir::new("inv-merge");
    let (a, b, out, out2) = (
        dir.join("a.db"),
        dir.join("b.db"),
        dir.join("out.db"),
        dir.join("out2.db"),
    );
    {
        let mut ia = Inventory::open(a.to_str().unwrap()).unwrap();
        let mut o = obs(
            1000,
            "10.0.0.5",
            "10.0.0.9",
            Some("a.example"),
            vec![root_a()],
        );
        o.segments = vec!["internal".into()];
        ia.record(&o).unwrap();
        ia.record(&obs(2000, "10.0.0.5", "10.0.0.9", None, vec![root_a()]))
            .unwrap();
        let mut ib = Inventory::open(b.to_str().unwrap()).unwrap();
        let mut o = obs(
            500,
            "10.0.0.7",
            "10.0.0.9",
            Some("b.example"),
            vec![root_a()],
        );
        o.outcome = Outcome::Rejected(None);
        o.cas[0].removals = vec!["rule-1".into()];
        o.cas[0].stores = vec!["chrome".into()];
        ib.record(&o).unwrap();
        ib.record(&obs(900, "10.0.0.5", "10.0.0.10", None, vec![inter_b()]))
            .unwrap();
    }
    let s = Inventory::merge(&[&a, &b], &out).unwrap();
    assert_eq!(s.inputs, 2);
    assert_eq!(s.sources.len(), 2, "two distinct sensors");
    let check = |path: &PathBuf| {
        let inv = Inventory::open(path.to_str().unwrap()).unwrap();
        let q = inv.query(None).unwrap();
        assert_eq!(q.len(), 2);
        let ra = find(&q, "aa11");
        assert_eq!(ra.ca.stores, vec!["chrome", "mozilla"]);
        assert_eq!(ra.ca.removals, vec!["rule-1"]);
        let ep = &ra.endpoints[0];
        assert_eq!(ep.handshakes, 3);
        assert_eq!(ep.first_seen, t(500));
        assert_eq!(ep.last_seen, t(2000));
        assert_eq!(ep.server_names, vec!["a.example", "b.example"]);
        assert_eq!(ep.segments, vec!["internal"]);
        assert_eq!(ep.clients.len(), 2);
        assert_eq!(find(&q, "bb22").endpoints[0].ip, "10.0.0.10");
    };
    check(&out);
    // Merging the same inputs again (and the output into a second inventory twice) changes nothing.
    Inventory::merge(&[&a, &b, &a], &out).unwrap();
    check(&out);
    Inventory::merge(&[&out], &out).unwrap();
    check(&out);
    Inventory::merge(&[&out], &out2).unwrap();
    Inventory::merge(&[&out], &out2).unwrap();
    check(&out2);
    // A newer snapshot of sensor A replaces its older rows instead of adding to them.
    {
        let mut ia = Inventory::open(a.to_str().unwrap()).unwrap();
        ia.record(&obs(2500, "10.0.0.5", "10.0.0.9", None, vec![root_a()]))
            .unwrap();
    }
    Inventory::merge(&[&a], &out).unwrap();
    let inv = Inventory::open(out.to_str().unwrap()).unwrap();
    assert_eq!(
        find(&inv.query(None).unwrap(), "aa11").endpoints[0].handshakes,
        4
    );
    drop(inv);
    assert!(Inventory::merge(&[dir.join("missing.db")], &out).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn json_shape_is_exactly_design_section_6() {
    let mut inv = Inventory::open(":memory:").unwrap();
    let mut o = obs(
        1_700_000_000,
        "10.0.0.5",
        "10.0.0.9",
        Some("billing.corp.example"),
        vec![root_a()],
    );
    o.segments = vec!["internal".into()];
    inv.record(&o).unwrap();
    inv.flush().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&render_json(&inv.query(None).unwrap())).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    let e = &arr[0];
    assert_eq!(keys(e), set(&["ca", "endpoints", "client_auth_trusted_by"]));
    assert_eq!(
        keys(&e["ca"]),
        set(&["sha256", "subject", "role", "stores", "removals"])
    );
    assert_eq!(e["ca"]["role"], "root");
    assert_eq!(e["ca"]["stores"], serde_json::json!(["mozilla"]));
    let ep = &e["endpoints"][0];
    assert_eq!(
        keys(ep),
        set(&[
            "ip",
            "port",
            "server_names",
            "segments",
            "evidence",
            "first_seen",
            "last_seen",
            "handshakes",
            "chain_visible",
            "clients"
        ])
    );
    assert_eq!(ep["ip"], "10.0.0.9");
    assert_eq!(ep["port"], 443);
    assert_eq!(ep["handshakes"], 1);
    assert_eq!(ep["chain_visible"], true);
    assert_eq!(ep["first_seen"], "2023-11-14T22:13:20.000000Z");
    assert_eq!(
        ep["server_names"],
        serde_json::json!(["billing.corp.example"])
    );
    let cl = &ep["clients"][0];
    assert_eq!(keys(cl), set(&["ip", "first_seen", "last_seen", "outcome"]));
    assert_eq!(cl["outcome"], "accepted");
    assert_eq!(e["client_auth_trusted_by"], serde_json::json!([]));
}

#[test]
fn tls13_endpoint_keeps_the_link_of_its_earlier_visible_chain() {
    let mut inv = Inventory::open(":memory:").unwrap();
    inv.record(&obs(
        1000,
        "10.0.0.5",
        "10.0.0.9",
        Some("a.example"),
        vec![root_a()],
    ))
    .unwrap();
    let mut o13 = obs(5000, "10.0.0.6", "10.0.0.9", Some("a.example"), vec![]);
    o13.outcome = Outcome::Unknown;
    inv.record(&o13).unwrap();
    // An endpoint only ever seen with TLS 1.3.
    inv.record(&obs(
        6000,
        "10.0.0.6",
        "10.0.0.77",
        Some("only13.example"),
        vec![],
    ))
    .unwrap();
    inv.flush().unwrap();
    let q = inv.query(None).unwrap();
    assert_eq!(q.len(), 1);
    let ep = &q[0].endpoints[0];
    assert!(!ep.chain_visible);
    assert_eq!(
        ep.last_visible_chain_seen.as_deref(),
        Some(t(1000).as_str())
    );
    assert_eq!(ep.handshakes, 2);
    assert_eq!(ep.last_seen, t(5000));
    let v = serde_json::to_value(ep).unwrap();
    assert_eq!(v["chain_visible"], false);
    assert_eq!(v["last_visible_chain_seen"], t(1000));
    let c6 = ep.clients.iter().find(|c| c.ip == "10.0.0.6").unwrap();
    assert_eq!(c6.outcome, "unknown");
    let opaque = inv.opaque_endpoints().unwrap();
    assert_eq!(opaque.len(), 1);
    assert_eq!(opaque[0].ip, "10.0.0.77");
    assert_eq!(opaque[0].server_names, vec!["only13.example"]);
    assert_eq!(inv.stats().inferred, 1);
    assert_eq!(inv.stats().unattributed, 1);
}

#[test]
fn resumed_sessions_count_against_the_last_visible_chain() {
    let dir = testkit::TempDir::new("inv-resumed");
    let p = dir.join("r.db");
    let new_ca = ca("cc33", "CN=Root C", Role::Root);
    {
        let mut inv = Inventory::open(p.to_str().unwrap()).unwrap();
        // Resumption seen before any chain of its endpoint in this run: deferred to the flush.
        let mut early = obs(900, "10.0.0.8", "10.0.0.9", None, vec![]);
        early.resumed = true;
        inv.record(&early).unwrap();
        inv.record(&obs(1000, "10.0.0.5", "10.0.0.9", None, vec![root_a()]))
            .unwrap();
        inv.record(&obs(
            2000,
            "10.0.0.5",
            "10.0.0.9",
            None,
            vec![new_ca.clone()],
        ))
        .unwrap();
        let mut r = obs(3000, "10.0.0.5", "10.0.0.9", None, vec![]);
        r.resumed = true;
        r.chain_visible = false;
        inv.record(&r).unwrap();
        inv.flush().unwrap();
    }
    // A later run: the chain comes from the database.
    {
        let mut inv = Inventory::open(p.to_str().unwrap()).unwrap();
        let mut r = obs(4000, "10.0.0.6", "10.0.0.9", None, vec![]);
        r.resumed = true;
        inv.record(&r).unwrap();
        inv.flush().unwrap();
        assert_eq!(inv.stats().inferred, 1);
    }
    let inv = Inventory::open(p.to_str().unwrap()).unwrap();
    let q = inv.query(None).unwrap();
    let a = &find(&q, "aa11").endpoints[0];
    assert_eq!(a.handshakes, 1, "the old chain gets no resumption");
    let c = &find(&q, "cc33").endpoints[0];
    assert_eq!(c.handshakes, 4);
    assert_eq!(c.resumed, 3);
    assert!(!c.chain_visible, "the latest handshake was resumed");
    assert_eq!(c.last_visible_chain_seen.as_deref(), Some(t(2000).as_str()));
    assert_eq!(serde_json::to_value(c).unwrap()["resumed"], 3);
    assert!(c.clients.iter().any(|x| x.ip == "10.0.0.6"));
    assert!(c.clients.iter().any(|x| x.ip == "10.0.0.8"));
    drop(inv);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn client_auth_trusted_by_matches_certificate_request_names() {
    let mut inv = Inventory::open(":memory:").unwrap();
    let client_ca = ca("dd44", "CN=Corp Client CA,O=Corp", Role::Root);
    inv.record(&obs(1000, "10.0.0.5", "10.0.0.20", None, vec![client_ca]))
        .unwrap();
    let mut o = obs(1100, "10.0.0.5", "10.0.0.9", None, vec![root_a()]);
    o.client_auth_ca_names = vec!["cn=Corp Client CA, o=Corp".into(), "CN=Other".into()];
    inv.record(&o).unwrap();
    inv.flush().unwrap();
    let q = inv.query(None).unwrap();
    let d = find(&q, "dd44");
    assert_eq!(
        d.client_auth_trusted_by,
        vec![EndpointRef {
            ip: "10.0.0.9".into(),
            port: 443,
            evidence: "ca_names"
        }]
    );
    assert!(find(&q, "aa11").client_auth_trusted_by.is_empty());
}

#[test]
fn ca_filter_by_sha_prefix_or_subject_substring() {
    let mut inv = Inventory::open(":memory:").unwrap();
    inv.record(&obs(
        1000,
        "10.0.0.5",
        "10.0.0.9",
        None,
        vec![inter_b(), root_a()],
    ))
    .unwrap();
    inv.flush().unwrap();
    let by_sha = inv.query(Some("AA1")).unwrap();
    assert_eq!(by_sha.len(), 1);
    assert_eq!(by_sha[0].ca.sha256, hex64("aa11"));
    let by_name = inv.query(Some("issuing b")).unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].ca.sha256, hex64("bb22"));
    assert!(inv.query(Some("nothing")).unwrap().is_empty());
}

#[test]
fn removal_status_burndown_residual_and_plan() {
    let mut inv = Inventory::open(":memory:").unwrap();
    let mut old = ca("ee55", "CN=Old Root", Role::Root);
    old.removals = vec!["retire-old".into()];
    let new = ca("ff66", "CN=New Root", Role::Root);
    let mut with = |ts: i64, client: &str, server: &str, c: &CaRef, out: Outcome, seg: &str| {
        let mut o = obs(ts, client, server, Some("svc.example"), vec![c.clone()]);
        o.outcome = out;
        if !seg.is_empty() {
            o.segments = vec![seg.into()];
        }
        inv.record(&o).unwrap();
    };
    // Day -3: both endpoints on the old root. Day -1: E1 migrated. Day +1: E2 still on it.
    with(
        REMOVED - 3 * DAY + 10,
        "10.0.1.1",
        "10.0.0.1",
        &old,
        Outcome::Accepted,
        "",
    );
    with(
        REMOVED - 3 * DAY + 20,
        "10.0.1.2",
        "10.0.0.2",
        &old,
        Outcome::Accepted,
        "embedded",
    );
    with(
        REMOVED - DAY + 10,
        "10.0.1.1",
        "10.0.0.1",
        &new,
        Outcome::Accepted,
        "",
    );
    with(
        REMOVED + DAY + 10,
        "10.0.1.2",
        "10.0.0.2",
        &old,
        Outcome::Accepted,
        "embedded",
    );
    with(
        REMOVED + DAY + 20,
        "10.0.1.3",
        "10.0.0.2",
        &old,
        Outcome::Rejected(Some(48)),
        "embedded",
    );
    inv.flush().unwrap();
    let rule = RemovalInfo {
        id: "retire-old".into(),
        name: "Retire Old Root".into(),
        ca_sha256s: vec![], // found through the CA's recorded removal ids
        announced: Some(REMOVED - 120 * DAY),
        removed: REMOVED,
    };
    let instant = REMOVED - 45 * DAY;
    let st = inv.removal_status(&rule, instant).unwrap();
    assert_eq!(st.cas.len(), 1);
    assert_eq!(st.cas[0].subject, "CN=Old Root");
    assert_eq!(st.phase, "transition");
    assert_eq!(st.days_to_removal, 45);
    let d = &st.dependencies;
    assert_eq!(
        (d.endpoints_left, d.endpoints_migrated, d.clients_left),
        (1, 1, 2)
    );
    assert!(!d.complete);
    assert_eq!(d.by_segment.len(), 1);
    assert_eq!(d.by_segment[0].segment, "embedded");
    assert_eq!(d.by_segment[0].endpoints[0].ip, "10.0.0.2");
    assert_eq!(d.by_segment[0].clients, vec!["10.0.1.2", "10.0.1.3"]);
    let r = &st.residual;
    assert_eq!((r.handshakes, r.accepted, r.failures), (2, 1, 1));
    assert_eq!(r.endpoints.len(), 1);
    assert_eq!(r.clients.len(), 2);
    let burn: Vec<(String, usize, usize)> = st
        .burndown
        .iter()
        .map(|b| (b.day.clone(), b.endpoints, b.clients))
        .collect();
    assert_eq!(
        burn,
        vec![
            ("2026-05-29".to_string(), 2, 2),
            ("2026-06-02".to_string(), 1, 2)
        ]
    );
    let plan: Vec<(&str, &str)> = st
        .plan
        .iter()
        .map(|p| (p.step.as_str(), p.status))
        .collect();
    assert_eq!(
        plan,
        vec![
            ("announcement", "past"),
            ("T-90", "past"),
            ("T-60", "past"),
            ("T-30", "upcoming"),
            ("T-14", "upcoming"),
            ("removal", "upcoming"),
        ]
    );
    assert_eq!(st.plan[1].at, rfc3339_s(REMOVED - 90 * DAY));
    let v: serde_json::Value = serde_json::from_str(&render_removal_json(&st)).unwrap();
    assert_eq!(v["plan"][3]["step"], "T-30");
    assert_eq!(v["plan"][3]["status"], "upcoming");
    assert_eq!(v["dependencies"]["endpoints_left"], 1);
    let text = render_removal_table(&st);
    assert!(text.contains("T-14") && text.contains("upcoming") && text.contains("embedded"));
    // After the removal, every step is past; explicit sha256 selection works the same.
    let rule2 = RemovalInfo {
        id: "other".into(),
        ca_sha256s: vec![hex64("EE55")],
        ..rule
    };
    let st2 = inv.removal_status(&rule2, REMOVED + 2 * DAY).unwrap();
    assert_eq!(st2.phase, "removed");
    assert!(st2.plan.iter().all(|p| p.status == "past"));
    assert_eq!(st2.residual.failures, 1);
}

#[test]
fn table_and_csv_neutralise_hostile_strings() {
    let mut inv = Inventory::open(":memory:").unwrap();
    inv.record(&obs(
        1000,
        "10.0.0.5",
        "10.0.0.9",
        Some("=HYPERLINK(\"x\")\u{1b}[31m"),
        vec![root_a()],
    ))
    .unwrap();
    inv.flush().unwrap();
    let q = inv.query(None).unwrap();
    let table = render_table(&q);
    assert!(!table.contains('\u{1b}'));
    assert!(table.contains("\\u{1b}"));
    assert!(table.starts_with("CA "));
    let csv = render_csv(&q);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("ca_sha256,ca_subject,"));
    let row = lines.next().unwrap();
    assert!(row.contains("\"'=HYPERLINK(\"\"x\"\")"), "{row}");
    assert!(row.starts_with(&format!(
        "{},\"CN=Root A,O=Example\",root,mozilla,,10.0.0.9,443,",
        hex64("aa11")
    )));
    assert!(row.ends_with(
        ",10.0.0.5,1970-01-01T00:16:40.000000Z,1970-01-01T00:16:40.000000Z,accepted,1,0,0,0,"
    ));
}

#[test]
fn long_and_numerous_network_strings_are_capped() {
    let mut inv = Inventory::open(":memory:").unwrap();
    for i in 0..(MAX_NAMES_PER_ENDPOINT + 10) {
        let name = format!("{i}{}", "x".repeat(MAX_STRING + 10));
        inv.record(&obs(
            1000,
            "10.0.0.5",
            "10.0.0.9",
            Some(&name),
            vec![root_a()],
        ))
        .unwrap();
    }
    inv.flush().unwrap();
    let q = inv.query(None).unwrap();
    let names = &q[0].endpoints[0].server_names;
    assert_eq!(names.len(), MAX_NAMES_PER_ENDPOINT);
    assert!(names.iter().all(|n| n.len() <= MAX_STRING));
    assert!(inv.stats().truncated >= 10);
}

#[test]
fn normalize_dn_ignores_case_and_spacing() {
    assert_eq!(
        normalize_dn("CN=A b, O = Corp"),
        normalize_dn("cn=a b,o=corp")
    );
    assert_ne!(normalize_dn("CN=A"), normalize_dn("CN=B"));
}

#[test]
fn removal_info_resolves_rules_by_sha256_and_subject() {
    let mut inv = Inventory::open(":memory:").unwrap();
    inv.record(&obs(
        1000,
        "10.0.0.5",
        "10.0.0.9",
        None,
        vec![inter_b(), root_a()],
    ))
    .unwrap();
    inv.flush().unwrap();
    let file = rules::parse_rules_str(
        r#"
[[removal]]
id = "retire"
name = "Retire A and B"
ca = { subject = "cn=Root A, o=Example" }
announced = "2026-03-01T00:00:00Z"
removed = "2026-06-01T00:00:00Z"

[[removal]]
id = "retire"
name = "Retire A and B (stage 2)"
ca = { sha256 = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" }
removed = "2026-07-01T00:00:00Z"
"#,
        "test.toml",
    )
    .unwrap();
    let info = inv.removal_info(&file.removals, "retire").unwrap().unwrap();
    assert_eq!(info.ca_sha256s, vec![hex64("aa11"), "b".repeat(64)]);
    assert_eq!(info.removed, REMOVED);
    assert_eq!(info.announced, Some(REMOVED - 92 * DAY));
    assert_eq!(info.name, "Retire A and B");
    assert!(inv.removal_info(&file.removals, "nope").unwrap().is_none());
    let st = inv.removal_status(&info, REMOVED).unwrap();
    assert_eq!(st.dependencies.endpoints_left, 1);
    assert_eq!(
        st.burndown[0].handshakes, 1,
        "a chain through two removed CAs counts once"
    );
}

/// Throughput of the record path on a file database (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn record_throughput() {
    let dir = testkit::TempDir::new("inv-perf");
    let p = dir.join("p.db");
    let mut inv = Inventory::open(p.to_str().unwrap()).unwrap();
    let start = std::time::Instant::now();
    let n = 300_000u32;
    for i in 0..n {
        let server = format!("10.1.{}.{}", (i % 1000) / 250, i % 250);
        let client = format!("10.2.0.{}", i % 200);
        let mut o = obs(
            1_700_000_000 + i64::from(i),
            &client,
            &server,
            Some("svc.example"),
            vec![inter_b(), root_a()],
        );
        if i % 3 == 0 {
            o.cas.clear();
            o.chain_visible = false;
        }
        inv.record(&o).unwrap();
    }
    inv.flush().unwrap();
    let el = start.elapsed();
    eprintln!(
        "{n} records in {el:?} ({:.0}/s), {:?}",
        f64::from(n) / el.as_secs_f64(),
        inv.stats()
    );
    let q = inv.query(None).unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].endpoints.len(), 1000);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_visible_chain_without_cas_is_a_migration_not_a_resumption() {
    let mut inv = Inventory::open(":memory:").unwrap();
    let mut old = ca("ee55", "CN=Old Root", Role::Root);
    old.removals = vec!["retire-old".into()];
    inv.record(&obs(1000, "10.0.0.5", "10.0.0.9", None, vec![old]))
        .unwrap();
    let mut selfsigned = obs(2000, "10.0.0.5", "10.0.0.9", None, vec![]);
    selfsigned.chain_visible = true;
    inv.record(&selfsigned).unwrap();
    inv.flush().unwrap();
    assert_eq!(inv.stats().inferred, 0);
    let q = inv.query(None).unwrap();
    assert_eq!(q[0].endpoints[0].handshakes, 1);
    let rule = RemovalInfo {
        id: "retire-old".into(),
        name: String::new(),
        ca_sha256s: vec![],
        announced: None,
        removed: REMOVED,
    };
    let st = inv.removal_status(&rule, 1500).unwrap();
    assert_eq!(st.dependencies.endpoints_left, 0);
    assert_eq!(st.dependencies.endpoints_migrated, 1);
    assert!(st.dependencies.complete);
}

#[test]
fn ip_text_is_display() {
    for a in [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.100.9",
        "1.20.3.199",
        "192.168.10.1",
        "::1",
        "2001:db8::10",
        "::ffff:10.1.2.3",
    ] {
        let ip: IpAddr = a.parse().unwrap();
        assert_eq!(super::ip_text(&ip), ip.to_string());
    }
    for o in 0..=255u8 {
        let ip = IpAddr::from([o, 255 - o, o / 3, o.wrapping_mul(7)]);
        assert_eq!(super::ip_text(&ip), ip.to_string());
    }
}

/// A handle opened on a database without chains answers "no chain" from its cache alone, until
/// another connection commits: then a chainless handshake finds the chain that one wrote.
#[test]
fn chainless_handshake_finds_a_chain_another_writer_committed() {
    let dir = testkit::TempDir::new("inv-two-writers");
    let path = dir.join("inv.db");
    let p = path.to_str().unwrap();
    let mut a = Inventory::open(p).unwrap();
    assert!(a.no_chain_in_db);
    {
        let mut b = Inventory::open(p).unwrap();
        b.record(&obs(1000, "10.0.0.5", "10.0.0.9", None, vec![inter_b()]))
            .unwrap();
        b.flush().unwrap();
    }
    a.record(&obs(2000, "10.0.0.6", "10.0.0.9", None, vec![]))
        .unwrap();
    a.flush().unwrap();
    assert!(!a.no_chain_in_db);
    assert_eq!(a.stats().inferred, 1, "{:?}", a.stats());
    assert_eq!(a.stats().unattributed, 0);
    let q = a.query(None).unwrap();
    assert_eq!(q[0].endpoints[0].clients.len(), 2);
    drop(a);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ip_text_sorts_as_its_text() {
    let ips: Vec<IpAddr> = [
        "10.0.0.1",
        "10.0.0.10",
        "10.0.0.2",
        "1.2.3.4",
        "100.1.1.1",
        "9.9.9.9",
        "2001:db8::1",
        "2001:db8::10",
        "2001:db8:0:0:1::",
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1",
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
        "::1",
        "fe80::1",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    let mut by_key: Vec<super::IpText> = ips.iter().map(super::IpText::new).collect();
    by_key.sort();
    let mut by_text: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    by_text.sort();
    let keyed: Vec<&str> = by_key.iter().map(|k| k.text.as_str()).collect();
    assert_eq!(keyed, by_text);
}

/// `n` handshakes to 10.0.0.9:443 (through `inter_b`), each with a new server name `{prefix}{i}.example`.
fn record_names(inv: &mut Inventory, prefix: &str, n: usize) {
    for i in 0..n {
        let sni = format!("{prefix}{i}.example");
        inv.record(&obs(
            1000,
            "10.0.0.5",
            "10.0.0.9",
            Some(&sni),
            vec![inter_b()],
        ))
        .unwrap();
    }
}

/// The per-endpoint set caps hold when a handle that found an empty database skips the set
/// counts: for endpoints it wrote itself, and after another writer filled an endpoint's names.
#[test]
fn set_caps_hold_for_a_handle_that_started_on_an_empty_database() {
    let dir = testkit::TempDir::new("inv-fresh-caps");
    let path = dir.join("inv.db");
    let p = path.to_str().unwrap();
    let names = |inv: &Inventory| {
        inv.conn
            .query_row(
                "SELECT count(*) FROM endpoint_name WHERE ip='10.0.0.9'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
    };
    let mut a = Inventory::open(p).unwrap();
    a.set_flush_every(1);
    assert!(a.fresh_eps.is_some());
    record_names(&mut a, "a", MAX_NAMES_PER_ENDPOINT + 5);
    assert!(a.fresh_eps.is_some());
    assert_eq!(names(&a), MAX_NAMES_PER_ENDPOINT as i64);
    let mut a2 = Inventory::open(p).unwrap();
    assert!(a2.fresh_eps.is_none(), "the database has endpoints now");
    a2.record(&obs(
        1000,
        "10.0.0.5",
        "10.0.0.9",
        Some("late.example"),
        vec![],
    ))
    .unwrap();
    a2.flush().unwrap();
    assert_eq!(names(&a2), MAX_NAMES_PER_ENDPOINT as i64);
    drop((a, a2));
    let _ = std::fs::remove_dir_all(&dir);

    let dir = testkit::TempDir::new("inv-fresh-caps-2");
    let path = dir.join("inv.db");
    let p = path.to_str().unwrap();
    let mut a = Inventory::open(p).unwrap();
    {
        let mut b = Inventory::open(p).unwrap();
        record_names(&mut b, "b", MAX_NAMES_PER_ENDPOINT);
        b.flush().unwrap();
    }
    a.record(&obs(
        2000,
        "10.0.0.6",
        "10.0.0.9",
        Some("a.example"),
        vec![inter_b()],
    ))
    .unwrap();
    a.flush().unwrap();
    assert!(a.fresh_eps.is_none(), "another writer committed");
    assert_eq!(names(&a), MAX_NAMES_PER_ENDPOINT as i64);
    drop(a);
    let _ = std::fs::remove_dir_all(dir);
}

/// The evidence set: recorded as bits, united over sources and merges; a database made before
/// the column existed gets it on open, and merges from one still work.
#[test]
fn evidence_bits_record_merge_and_migrate() {
    let dir = testkit::TempDir::new("inv-evidence");
    let (a, b, c) = (dir.join("a.db"), dir.join("b.db"), dir.join("c.db"));
    let mut o = obs(1000, "10.0.0.5", "10.0.0.9", None, vec![root_a()]);
    o.evidence = Some("keylog");
    {
        let mut inv = Inventory::open(a.to_str().unwrap()).unwrap();
        inv.record(&o).unwrap();
        inv.flush().unwrap();
    }
    {
        // An older sensor's database: no evidence column at all.
        let mut inv = Inventory::open(b.to_str().unwrap()).unwrap();
        o.evidence = Some("observed");
        inv.record(&o).unwrap();
        inv.flush().unwrap();
        inv.conn
            .execute_batch("ALTER TABLE endpoint DROP COLUMN evidence")
            .unwrap();
    }
    Inventory::merge(&[&a, &b], &c).unwrap();
    let inv = Inventory::open(c.to_str().unwrap()).unwrap();
    let q = inv.query(None).unwrap();
    assert_eq!(q[0].endpoints[0].evidence, ["keylog"]);
    // Reopened, the old database has the column again and records evidence.
    let mut old = Inventory::open(b.to_str().unwrap()).unwrap();
    o.evidence = Some("probe");
    old.record(&o).unwrap();
    old.flush().unwrap();
    assert_eq!(old.query(None).unwrap()[0].endpoints[0].evidence, ["probe"]);
    Inventory::merge(&[&a, &b], &c).unwrap();
    let q = Inventory::open(c.to_str().unwrap())
        .unwrap()
        .query(None)
        .unwrap();
    assert_eq!(q[0].endpoints[0].evidence, ["keylog", "probe"]);
}

/// The post-quantum map: the latest key exchange and leaf algorithms per endpoint, the offers
/// per client, and a readiness word for each.
#[test]
fn algorithm_map_per_endpoint_and_client() {
    let mut inv = Inventory::open(":memory:").unwrap();
    let mut o = obs(1000, "10.0.0.5", "10.0.0.9", None, vec![root_a()]);
    o.algorithms = enrich::Algorithms {
        group: Some(29),
        leaf_key: Some("EC".into()),
        leaf_sig: Some("ecdsa-with-SHA256".into()),
        client_seen: true,
        client_pq_group: false,
        client_pq_sig: false,
    };
    inv.record(&o).unwrap();
    // Later, the endpoint moved to a hybrid key exchange; a second client offers ML-KEM and ML-DSA.
    let mut o2 = obs(2000, "10.0.0.6", "10.0.0.9", None, vec![root_a()]);
    o2.algorithms = enrich::Algorithms {
        group: Some(0x11ec),
        leaf_key: Some("EC".into()),
        leaf_sig: Some("ecdsa-with-SHA256".into()),
        client_seen: true,
        client_pq_group: true,
        client_pq_sig: true,
    };
    inv.record(&o2).unwrap();
    inv.flush().unwrap();
    let m = inv.algorithms().unwrap();
    assert_eq!(m.endpoints.len(), 1);
    let e = &m.endpoints[0];
    assert_eq!(e.group.as_deref(), Some("X25519MLKEM768"));
    assert!(e.pq_key_exchange && !e.pq_certificate);
    assert_eq!(e.status, "kx_only");
    let st: Vec<(&str, &str)> = m
        .clients
        .iter()
        .map(|c| (c.ip.as_str(), c.status))
        .collect();
    assert_eq!(st, [("10.0.0.6", "ready")]);
    assert_eq!(m.other_clients, 1, "10.0.0.5 offered nothing post-quantum");
    let v: serde_json::Value =
        serde_json::from_str(&algorithms::render_algorithms_json(&m)).unwrap();
    assert_eq!(v["endpoints"][0]["status"], "kx_only");
    assert!(algorithms::render_algorithms_table(&m).contains("X25519MLKEM768"));
}
