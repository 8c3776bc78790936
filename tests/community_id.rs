//! `network.community_id` (Community ID v1, the key SIEMs join sensors on) of every
//! `trustmap.tls` event equals the one tshark computes for that flow
//! (pcaps/cases/expected-tshark/community-ids.json: `tshark --enable-protocol communityid`):
//! TCP over IPv4, IPv6 in a VLAN, QUIC over UDP, OpenVPN over TCP and UDP, TLS inside VXLAN
//! (the inner flow's).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

#[test]
fn community_ids_match_tshark() {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(testkit::corpus::file(
            "pcaps/cases/expected-tshark/community-ids.json",
        ))
        .expect("oracle"),
    )
    .expect("JSON");
    let cases = exp["cases"].as_object().expect("cases");
    assert_eq!(cases.len(), 5);
    for (case, ids) in cases {
        let want: BTreeSet<&str> = ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let out = testkit::run_ok(
            Command::new(env!("CARGO_BIN_EXE_trustmap"))
                .args(["analyze", "-q", "--db", ":memory:", "-o", "-"])
                .arg(testkit::corpus::file(&format!("pcaps/cases/{case}.pcap"))),
        );
        let mut n = 0;
        for line in String::from_utf8_lossy(&out).lines() {
            let e: Value = serde_json::from_str(line).expect("NDJSON");
            if e["event"]["dataset"] != "trustmap.tls" {
                continue;
            }
            let id = e["network"]["community_id"].as_str().unwrap_or("");
            assert!(
                want.contains(id),
                "{case}: {id} not among tshark's {want:?}"
            );
            n += 1;
        }
        assert!(n > 0, "{case}: no tls event");
    }
}
