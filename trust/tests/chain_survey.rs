//! Survey (ignored): prints chain results for hex chains in $CHAIN_DIR (one file per certificate).
use analyzer::cert::{parse, sha256};
use std::sync::Arc;
use trust::anchors::TrustStores;

#[test]
#[ignore]
fn survey() {
    let dir = std::env::var("CHAIN_DIR").unwrap();
    let stores = TrustStores::builtin();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut groups: std::collections::BTreeMap<String, Vec<(usize, String)>> = Default::default();
    for n in names {
        let parts: Vec<&str> = n.rsplitn(3, '.').collect();
        groups
            .entry(parts[2].to_string())
            .or_default()
            .push((parts[1].parse().unwrap(), n.clone()));
    }
    for (g, mut files) in groups {
        files.sort();
        let certs: Vec<_> = files
            .iter()
            .map(|(_, f)| {
                let h = std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
                let der = hex::decode(h.trim()).unwrap();
                Arc::new(parse(&der, sha256(&der)))
            })
            .collect();
        let t = certs[0].not_before + 86400;
        let r = trust::chain::build(&certs, &stores, t);
        let p = r.preferred_path().unwrap();
        println!(
            "{g}: n={} end={:?} len={} anchors={:?} issues={:?} sigs={:?}",
            certs.len(),
            p.end,
            p.certs.len(),
            r.anchors
                .iter()
                .map(|a| (&a.subject, &a.stores))
                .collect::<Vec<_>>(),
            r.issues,
            p.sigs
        );
    }
}
