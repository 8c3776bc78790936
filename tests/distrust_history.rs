//! The built-in distrust history (rules/distrust, 10 events) end to end on the library.
//!
//! (a) Real chains: every server chain of the Zeek corpus (pcaps/zeek), built against the stores
//!     trustmap uses (Mozilla + Chrome + the history's certificates as known CAs) and evaluated
//!     under `--distrust-policy chrome|mozilla|strict` before the announcements, inside the
//!     transition windows and at 2026-11-25. The older captures carry Symantec-era chains
//!     (GeoTrust, VeriSign, Equifax, Thawte brands) and StartCom/WoSign chains; Google Internet
//!     Authority G2 and Apple IST CA 2 are Chrome's Symantec exceptions.
//! (b) Crafted leaves for the grandfathering cut-offs: rcgen leaves whose issuer DN and AKI are
//!     those of a real distrusted CA, signed by a random key (chain building marks that link
//!     `SigStatus::Invalid` and reports it as `ChainResult::claimed`, never as trusted), with a
//!     chosen notBefore and embedded SCT. Each cut-off is checked 1 s either side, under every
//!     policy where it applies; the cut-off instants are read from the rule data.
//!
//! Reproduce the figures: `cargo test --all-features --test distrust_history -- --nocapture`.

use analyzer::cert::{parse, sha256};
use analyzer::{Analyzer, AnalyzerConfig, CertInfo, Output};
use capture::{Engine, EngineConfig};
use rules::time::parse_rfc3339;
use rules::{
    DistrustPolicy, Outcome, Program, RemovalFinding, RuleSet, CODE_FAILURE, CODE_PENDING,
    CODE_RESIDUAL_USE, CODE_STALE_TRUST,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use trust::anchors::TrustStores;
use trust::chain::{build, PathEnd, SigStatus};

const POLICIES: [DistrustPolicy; 3] = [
    DistrustPolicy::Chrome,
    DistrustPolicy::Mozilla,
    DistrustPolicy::Strict,
];

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

/// The trust stores trustmap builds chains against: the embedded Mozilla/NSS and Chrome stores
/// plus every certificate of the built-in distrust history as a known CA tagged with its event.
fn stores() -> &'static TrustStores {
    static S: OnceLock<TrustStores> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = TrustStores::builtin();
        for (event_id, _role, pem) in rules::distrust_certs() {
            assert_eq!(
                s.add_known_ca_pem(pem.as_bytes(), event_id),
                1,
                "{event_id}"
            );
        }
        s
    })
}

fn rule_set(p: DistrustPolicy) -> &'static RuleSet {
    static S: OnceLock<[RuleSet; 3]> = OnceLock::new();
    let sets = S.get_or_init(|| POLICIES.map(|p| RuleSet::builtin(p).unwrap()));
    &sets[POLICIES.iter().position(|x| *x == p).unwrap()]
}

/// One server chain seen in the corpus.
struct Seen {
    /// "<capture>#<n>" (n-th handshake with a server chain in that capture).
    name: String,
    chain: Vec<Arc<CertInfo>>,
    outcome: Outcome,
}

fn corpus() -> &'static [Seen] {
    static S: OnceLock<Vec<Seen>> = OnceLock::new();
    S.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/zeek");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let mut engine = Engine::new(
                EngineConfig::default(),
                Analyzer::new(AnalyzerConfig::default()),
            );
            let mut outs = Vec::new();
            capture::source::read_file(&f, &mut |pkt| {
                engine.process(pkt);
                outs.append(&mut engine.app.out);
            })
            .unwrap();
            let (mut app, _) = engine.finish();
            outs.append(&mut app.out);
            let stem = f.file_stem().unwrap().to_string_lossy().to_string();
            let mut n = 0;
            for o in outs {
                let Output::Handshake(h) = o else { continue };
                let Some(chain) = h.server_chain.as_ref().filter(|c| !c.is_empty()) else {
                    continue;
                };
                out.push(Seen {
                    name: format!("{stem}#{n}"),
                    chain: chain.iter().map(|c| c.info.clone()).collect(),
                    outcome: match h.outcome {
                        analyzer::Outcome::Accepted => Outcome::Accepted,
                        analyzer::Outcome::RejectedAlert { code } => Outcome::RejectedAlert(code),
                        analyzer::Outcome::RejectedClose => Outcome::RejectedClose,
                        analyzer::Outcome::Unknown => Outcome::Unknown,
                    },
                });
                n += 1;
            }
        }
        assert!(out.len() > 50, "corpus chains: {}", out.len());
        out
    })
}

/// `ca_removal.*` findings for one presented chain at `at`, with the facts the binary builds
/// (`enrich::RemovalFacts`): the chain with the leaf first (then the other presented
/// certificates, wire order), and as anchors every CA the chain reaches above the leaf
/// (`ChainResult::reached_cas`: roots the server did not send, store-supplied intermediates,
/// cross-signed anchors, the claimed path).
fn evaluate(
    set: &RuleSet,
    presented: &[Arc<CertInfo>],
    at: i64,
    outcome: Outcome,
) -> Vec<RemovalFinding> {
    let r = build(presented, stores(), at);
    if r.leaf.is_none() {
        return Vec::new();
    }
    enrich::RemovalFacts::of(&r, presented).evaluate(set, at, outcome)
}

/// (code, rule id) pairs.
fn codes(f: &[RemovalFinding]) -> Vec<(&'static str, String)> {
    f.iter().map(|f| (f.code, f.rule_id.clone())).collect()
}

/// A fixed instant after every removal in the history.
const AFTER_ALL: &str = "2026-11-25T00:00:00Z";

/// Symantec chains through one of Chrome's exceptions (kSymantecExceptions, matched by key),
/// with that sub-CA's subject: Google Internet Authority G2 (two certificates of its key occur)
/// and Apple IST CA 2 - G1, both under GeoTrust Global CA (the root is not sent; the stores
/// supply it as a known CA).
const GIAG2: &str = "CN=Google Internet Authority G2, O=Google Inc, C=US";
const APPLE_IST2: &str = "C=US, O=Apple Inc., OU=Certification Authority, CN=Apple IST CA 2 - G1";
const SYMANTEC_EXEMPT_IN_CHROME: &[(&str, &str)] = &[
    ("chrome-34-google#0", GIAG2),
    ("ecdhe#0", GIAG2),
    ("google-duplicate#0", GIAG2),
    ("google-duplicate#1", GIAG2),
    ("signed_certificate_timestamp_tls1_0#0", GIAG2),
    ("smtp-starttls#0", GIAG2),
    ("tls1_1#0", GIAG2),
    ("smtp#0", APPLE_IST2),
];
/// Symantec chains with no exception: VeriSign G5 (EV SGC CA, Symantec Class 3 EV SSL CA - G3,
/// Class 3 Secure Server CA - G3), VeriSign Class 3 PCA (1996), Equifax Secure CA.
const SYMANTEC_NOT_EXEMPT: &[&str] = &[
    "ocsp-stapling#0",
    "pppoe-over-qinq#0",
    "socks-with-ssl#0",
    "ssl.v3#0",
    "ssl.v3#1",
    "ssl.v3#2",
    "tls-conn-with-extensions#0",
    "tls-expired-cert#1",
];
/// StartCom and WoSign chains.
const WOSIGN: &[&str] = &[
    "certificate-with-sct#0",
    "dhe#0",
    "heartbleed-encrypted-success#0",
    "heartbleed-encrypted#0",
    "heartbleed-success#0",
    "heartbleed#0",
];

fn seen(name: &str) -> &'static Seen {
    corpus()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} not in the corpus"))
}

/// What the history should say about a residual chain: residual_use, plus stale_trust when the
/// client accepted the chain (every residual chain of the corpus completed its handshake, or
/// was cut before the outcome showed).
fn residual(id: &str, outcome: Outcome) -> Vec<(&'static str, String)> {
    let mut v = vec![(CODE_RESIDUAL_USE, id.to_string())];
    match outcome {
        Outcome::Accepted => v.push((CODE_STALE_TRUST, id.to_string())),
        Outcome::RejectedAlert(_) | Outcome::RejectedClose => {
            v.push((CODE_FAILURE, id.to_string()))
        }
        Outcome::Unknown => {}
    }
    v
}

/// Expected findings at 2026-11-25 for every corpus chain under `p`; chains not listed: none.
fn expected_after_all(p: DistrustPolicy) -> BTreeMap<&'static str, Vec<(&'static str, String)>> {
    let mut want = BTreeMap::new();
    for name in SYMANTEC_NOT_EXEMPT {
        want.insert(*name, residual("symantec-2018", seen(name).outcome));
    }
    if p != DistrustPolicy::Chrome {
        // Mozilla's Firefox-code exceptions are not in the data: only Chrome exempts.
        for (name, _) in SYMANTEC_EXEMPT_IN_CHROME {
            want.insert(*name, residual("symantec-2018", seen(name).outcome));
        }
    }
    for name in WOSIGN {
        want.insert(*name, residual("wosign-startcom-2016", seen(name).outcome));
    }
    want
}

/// (a) Every corpus chain against all 10 events under each policy, after every removal.
#[test]
fn corpus_chains_after_every_removal() {
    let at = t(AFTER_ALL);
    let events = rules::distrust_event_ids();
    assert_eq!(events.len(), 10);
    let mut figures: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for p in POLICIES {
        let set = rule_set(p);
        let want = expected_after_all(p);
        for s in corpus() {
            let got = codes(&evaluate(set, &s.chain, at, s.outcome));
            let exp = want.get(s.name.as_str()).cloned().unwrap_or_default();
            assert_eq!(got, exp, "{} under {p}", s.name);
            for (code, id) in got {
                if code == CODE_RESIDUAL_USE {
                    *figures
                        .entry((events_key(&events, &id), p.to_string()))
                        .or_default() += 1;
                }
            }
        }
    }
    println!(
        "corpus: {} server chains; residual chains at {AFTER_ALL}:",
        corpus().len()
    );
    for ev in &events {
        let n = |p: &str| figures.get(&(*ev, p.to_string())).copied().unwrap_or(0);
        println!(
            "  {ev:24} chrome {:2}  mozilla {:2}  strict {:2}",
            n("chrome"),
            n("mozilla"),
            n("strict")
        );
    }
    let n = |ev: &str, p: &str| figures.get(&(ev, p.to_string())).copied().unwrap_or(0);
    assert_eq!(
        (
            n("symantec-2018", "chrome"),
            n("symantec-2018", "mozilla"),
            n("symantec-2018", "strict")
        ),
        (8, 16, 16)
    );
    assert_eq!(
        (
            n("wosign-startcom-2016", "chrome"),
            n("wosign-startcom-2016", "mozilla"),
            n("wosign-startcom-2016", "strict")
        ),
        (6, 6, 6)
    );
    assert_eq!(figures.values().sum::<usize>(), 8 + 16 + 16 + 6 * 3);
}

fn events_key(events: &[&'static str], id: &str) -> &'static str {
    events.iter().find(|e| **e == id).copied().unwrap()
}

/// (a) The exempted chains really pass through the exception sub-CA, reach GeoTrust Global CA
/// only through the stores, and are clean under Chrome only because of the exemption.
#[test]
fn chrome_exempts_symantec_sub_cas() {
    let at = t(AFTER_ALL);
    let geotrust = "ff856a2d251dcd88d36656f450126798cfabaade40799c722de4d2b5db36a73a";
    let exception_spkis: BTreeSet<[u8; 32]> = rules::distrust_events()
        .unwrap()
        .into_iter()
        .find(|e| e.info.id == "symantec-2018")
        .unwrap()
        .certificates
        .into_iter()
        .filter(|c| c.role.starts_with("exception-"))
        .map(|c| c.spki_sha256)
        .collect();
    for (name, sub_ca) in SYMANTEC_EXEMPT_IN_CHROME {
        let s = seen(name);
        let r = build(&s.chain, stores(), at);
        let p = r.preferred_path().unwrap();
        assert_eq!(p.certs[1].subject, *sub_ca, "{name}");
        let spki = p.certs[1].spki_sha256.expect("parsed sub-CA");
        assert!(exception_spkis.contains(&spki), "{name}");
        // GeoTrust Global CA left both stores: a known CA from the history, not an anchor.
        assert_eq!(p.end, PathEnd::UntrustedRoot, "{name}");
        assert_eq!(hexs(&p.top().unwrap().sha256), geotrust, "{name}");
        assert_eq!(*p.sources.last().unwrap(), trust::chain::Source::Store);
        let e = stores().get(&p.top().unwrap().sha256).unwrap();
        assert!(!e.is_anchor() && e.tags == vec!["symantec-2018"]);
        assert!(evaluate(rule_set(DistrustPolicy::Chrome), &s.chain, at, s.outcome).is_empty());
        // A server that omits the sub-CA: the stores supply the history's copy of it (same
        // key, another certificate), and the exemption still holds.
        let without: Vec<_> = s
            .chain
            .iter()
            .filter(|c| c.subject != *sub_ca)
            .cloned()
            .collect();
        let r2 = build(&without, stores(), at);
        let p2 = r2.preferred_path().unwrap();
        assert_eq!(p2.sources[1], trust::chain::Source::Store, "{name}");
        assert_eq!(p2.certs[1].spki_sha256, p.certs[1].spki_sha256, "{name}");
        assert!(
            evaluate(rule_set(DistrustPolicy::Chrome), &without, at, s.outcome).is_empty(),
            "{name}"
        );
        assert_eq!(
            codes(&evaluate(
                rule_set(DistrustPolicy::Mozilla),
                &without,
                at,
                s.outcome
            )),
            residual("symantec-2018", s.outcome),
            "{name}"
        );
    }
    // A non-exempt chain is flagged under Chrome by the same entries.
    let s = seen("tls-expired-cert#1");
    let f = evaluate(rule_set(DistrustPolicy::Chrome), &s.chain, at, s.outcome);
    assert_eq!(f[0].program, Some(Program::Chrome));
    assert_eq!(f[0].code, CODE_RESIDUAL_USE);
}

/// (a) The same chains over time: nothing before the first announcement or removal of the
/// event, `pending` inside the announced windows, residual from removal; dates from the data.
#[test]
fn corpus_chains_before_and_during_the_transition() {
    // Earliest instant at which an entry of `id` kept by `p` can say anything.
    let start = |p: DistrustPolicy, id: &str| {
        rule_set(p)
            .removal(id)
            .iter()
            .map(|r| r.announced.unwrap_or(r.removed))
            .min()
    };
    let announced = |p: DistrustPolicy, id: &str, prog: Program| {
        let v: Vec<i64> = rule_set(p)
            .removal(id)
            .iter()
            .filter(|r| r.program == Some(prog))
            .filter_map(|r| r.announced)
            .collect();
        assert_eq!(v.len(), 1, "{id} {prog:?}: one announced entry");
        v[0]
    };
    let by_code = |p: DistrustPolicy, id: &str, at: i64| {
        let mut m: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        for s in corpus() {
            for (code, rid) in codes(&evaluate(rule_set(p), &s.chain, at, s.outcome)) {
                if rid == id && code != CODE_STALE_TRUST {
                    m.entry(code).or_default().insert(s.name.clone());
                }
            }
        }
        m
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    for p in POLICIES {
        for id in rules::distrust_event_ids() {
            // (Certinomis has no Chrome entry: nothing to start.)
            let Some(first) = start(p, id) else { continue };
            assert!(
                by_code(p, id, first - 1).is_empty(),
                "{id} under {p} before its start"
            );
        }
    }
    // WoSign/StartCom: every corpus leaf predates the cut-offs, so the full removal's window
    // (announced by the grandfathering stage) makes all six chains pending.
    for (p, prog) in [
        (DistrustPolicy::Chrome, Program::Chrome),
        (DistrustPolicy::Mozilla, Program::Mozilla),
        (DistrustPolicy::Strict, Program::Chrome),
    ] {
        let a = announced(p, "wosign-startcom-2016", prog);
        let got = by_code(p, "wosign-startcom-2016", a);
        assert_eq!(got, BTreeMap::from([(CODE_PENDING, names(WOSIGN))]), "{p}");
        assert!(by_code(p, "wosign-startcom-2016", a - 1).is_empty(), "{p}");
        let full = rule_set(p)
            .removal("wosign-startcom-2016")
            .iter()
            .filter(|r| r.announced.is_some())
            .map(|r| r.removed)
            .min()
            .unwrap();
        let got = by_code(p, "wosign-startcom-2016", full);
        assert_eq!(
            got,
            BTreeMap::from([(CODE_RESIDUAL_USE, names(WOSIGN))]),
            "{p}"
        );
    }
    // Symantec under Chrome: stage 1 (Chrome 66) distrusts leaves issued before 2016-06-01 and
    // announces stage 2 (Chrome 70); the 2017 iTunes leaf is pending until stage 2.
    for p in [DistrustPolicy::Chrome, DistrustPolicy::Strict] {
        let a = announced(p, "symantec-2018", Program::Chrome);
        let got = by_code(p, "symantec-2018", a);
        let old: Vec<&str> = SYMANTEC_NOT_EXEMPT
            .iter()
            .copied()
            .filter(|n| *n != "pppoe-over-qinq#0")
            .collect();
        assert_eq!(
            got,
            BTreeMap::from([
                (CODE_PENDING, names(&["pppoe-over-qinq#0"])),
                (CODE_RESIDUAL_USE, names(&old)),
            ]),
            "{p}"
        );
        let stage2 = rule_set(p)
            .removal("symantec-2018")
            .iter()
            .find(|r| r.program == Some(Program::Chrome) && r.announced.is_some())
            .unwrap()
            .removed;
        let mut all: Vec<&str> = SYMANTEC_NOT_EXEMPT.to_vec();
        if p == DistrustPolicy::Strict {
            all.extend(SYMANTEC_EXEMPT_IN_CHROME.iter().map(|(n, _)| *n));
        }
        assert_eq!(
            by_code(p, "symantec-2018", stage2),
            BTreeMap::from([(CODE_RESIDUAL_USE, names(&all))]),
            "{p}"
        );
    }
    // Symantec under Mozilla: no announcement in the data; per-root NSS history first (the
    // 1024-bit VeriSign Class 3 PCA lost trust in 2014), everything from 2018-10 (Firefox 63).
    let moz = rule_set(DistrustPolicy::Mozilla);
    assert!(moz
        .removal("symantec-2018")
        .iter()
        .all(|r| r.announced.is_none()));
    let full = moz
        .removal("symantec-2018")
        .iter()
        .find(|r| r.stage.as_deref() == Some("full"))
        .unwrap()
        .removed;
    let mut all: Vec<&str> = SYMANTEC_NOT_EXEMPT.to_vec();
    all.extend(SYMANTEC_EXEMPT_IN_CHROME.iter().map(|(n, _)| *n));
    assert_eq!(
        by_code(DistrustPolicy::Mozilla, "symantec-2018", full),
        BTreeMap::from([(CODE_RESIDUAL_USE, names(&all))])
    );
    // Before that, only chains whose own root NSS had dropped. The Google chains also present
    // GeoTrust Global CA cross-signed by Equifax (dropped from NSS in 2015): that detour ends at
    // a removed root while the chain anchors at GeoTrust Global CA, so it is no dependency
    // (`reached_cas` leaves it out; counting every store-supplied certificate of every path
    // would flag these chains from 2015 on, and under strict at Chrome 66).
    let early = by_code(DistrustPolicy::Mozilla, "symantec-2018", full - 1);
    assert_eq!(
        early,
        BTreeMap::from([(
            CODE_RESIDUAL_USE,
            names(&[
                "socks-with-ssl#0",
                "ssl.v3#0",
                "ssl.v3#1",
                "ssl.v3#2",
                "tls-conn-with-extensions#0"
            ])
        )])
    );
}

/// (a) The outcome decides stale_trust vs failure on a real residual chain.
#[test]
fn outcome_on_a_real_residual_chain() {
    let s = seen("dhe#0");
    let at = t(AFTER_ALL);
    let set = rule_set(DistrustPolicy::Chrome);
    let id = "wosign-startcom-2016".to_string();
    for (outcome, third) in [
        (Outcome::Accepted, Some(CODE_STALE_TRUST)),
        (Outcome::RejectedAlert(48), Some(CODE_FAILURE)),
        (Outcome::RejectedClose, Some(CODE_FAILURE)),
        (Outcome::RejectedAlert(40), None),
        (Outcome::Unknown, None),
    ] {
        let mut want = vec![(CODE_RESIDUAL_USE, id.clone())];
        want.extend(third.map(|c| (c, id.clone())));
        assert_eq!(
            codes(&evaluate(set, &s.chain, at, outcome)),
            want,
            "{outcome:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Crafted leaves for the grandfathering cut-offs.

/// OID of the embedded SCT list extension (RFC 6962 3.3).
const OID_SCT_LIST: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// extnValue content of an SCT list extension with one SCT at `ts_ms`: a DER OCTET STRING
/// around the TLS-encoded SignedCertificateTimestampList. Log id and signature are filler (no
/// log signed anything; trustmap reads the timestamp, it does not check SCT signatures).
fn sct_list_extension(ts_ms: u64) -> Vec<u8> {
    let mut sct = vec![0u8]; // v1
    sct.extend_from_slice(&[0x5c; 32]); // log id
    sct.extend_from_slice(&ts_ms.to_be_bytes());
    sct.extend_from_slice(&[0, 0]); // no CT extensions
    sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
    sct.extend_from_slice(&[0, 8]);
    sct.extend_from_slice(&[0x30; 8]); // signature filler
    let mut list = Vec::new();
    list.extend_from_slice(&u16::try_from(sct.len() + 2).unwrap().to_be_bytes());
    list.extend_from_slice(&u16::try_from(sct.len()).unwrap().to_be_bytes());
    list.extend_from_slice(&sct);
    let mut der = vec![0x04, u8::try_from(list.len()).unwrap()];
    der.extend_from_slice(&list);
    der
}

/// Header length and content length of the DER element at the start of `b`.
fn der_header(b: &[u8]) -> (usize, usize) {
    let first = usize::from(b[1]);
    if first < 0x80 {
        return (2, first);
    }
    let n = first & 0x7f;
    let len = b[2..2 + n]
        .iter()
        .fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
    (2 + n, len)
}

/// The DER elements of a constructed value's contents.
fn der_elements(mut content: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (h, l) = der_header(content);
        out.push(&content[..h + l]);
        content = &content[h + l..];
    }
    out
}

/// A SEQUENCE around `content`.
fn der_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    match content.len() {
        n if n < 0x80 => out.push(u8::try_from(n).unwrap()),
        n if n < 0x100 => out.extend([0x81, u8::try_from(n).unwrap()]),
        n => out.extend([
            0x82,
            u8::try_from(n >> 8).unwrap(),
            u8::try_from(n & 0xff).unwrap(),
        ]),
    }
    out.extend_from_slice(content);
    out
}

/// `cert` with its TBS issuer Name replaced by `issuer` (DER). The signature is left as it was.
fn with_issuer_name(cert: &[u8], issuer: &[u8]) -> Vec<u8> {
    let (h, l) = der_header(cert);
    let parts = der_elements(&cert[h..h + l]); // tbsCertificate, signatureAlgorithm, signature
    let (th, tl) = der_header(parts[0]);
    let fields = der_elements(&parts[0][th..th + tl]);
    // [0] version, serialNumber, signature, issuer, ...
    let issuer_idx = if fields[0][0] == 0xa0 { 3 } else { 2 };
    let mut tbs = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        tbs.extend_from_slice(if i == issuer_idx { issuer } else { f });
    }
    let mut outer = der_sequence(&tbs);
    outer.extend_from_slice(parts[1]);
    outer.extend_from_slice(parts[2]);
    der_sequence(&outer)
}

/// A leaf that names `issuer` (a real CA certificate) as its issuer, by subject DN and by AKI =
/// the CA's SKI, with a chosen notBefore and embedded SCT. rcgen signs it with a random P-256
/// key (it has no other), under a placeholder issuer name that is then replaced by the CA's
/// exact subject DER (rcgen keeps one value per attribute type, and Entrust's DN has two OUs):
/// the signature cannot verify with the CA's key either way.
fn crafted_leaf(issuer: &CertInfo, not_before: i64, sct_ms: Option<u64>) -> Arc<CertInfo> {
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.key_identifier_method =
        rcgen::KeyIdMethod::PreSpecified(hex::decode(issuer.ski.as_deref().unwrap()).unwrap());
    let ca = rcgen::Issuer::new(ca_params, signer);
    let mut params =
        rcgen::CertificateParams::new(vec!["crafted.distrust.test".to_string()]).unwrap();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let nb = u64::try_from(not_before).unwrap();
    params.not_before = epoch + std::time::Duration::from_secs(nb);
    params.not_after = epoch + std::time::Duration::from_secs(nb + 90 * 86_400);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    if let Some(ms) = sct_ms {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                OID_SCT_LIST,
                sct_list_extension(ms),
            ));
    }
    let signed = params.signed_by(&leaf_key, &ca).unwrap();
    let der = with_issuer_name(signed.der(), &issuer.subject_der);
    let leaf = Arc::new(parse(&der, sha256(&der)));
    assert!(leaf.parse_error.is_none(), "{:?}", leaf.parse_error);
    // Issuer matched by name and AKI, as chain building requires.
    assert_eq!(leaf.issuer_der, issuer.subject_der);
    assert_eq!(leaf.issuer, issuer.subject);
    assert!(leaf.aki.is_some());
    assert_eq!(leaf.aki, issuer.ski);
    assert_eq!(leaf.not_before, not_before);
    assert_eq!(leaf.sct_timestamps, sct_ms.into_iter().collect::<Vec<_>>());
    leaf
}

/// Builds [leaf, intermediates...] and checks what chain building makes of a crafted leaf: no
/// trusted path (the trust view is a dead end, no anchor), and a claimed path whose first link
/// is marked Invalid and which reaches `root_sha` (an anchor or a known CA of `event`).
fn check_claimed_path(presented: &[Arc<CertInfo>], at: i64, root_sha: &str, event: &str) {
    let r = build(presented, stores(), at);
    assert!(r.anchor().is_none() && r.anchors.is_empty());
    assert_eq!(r.preferred_path().unwrap().end, PathEnd::IssuerMissing);
    let cl = r.claimed.as_ref().expect("claimed path");
    assert_eq!(
        cl.sigs[0],
        SigStatus::Invalid,
        "the crafted signature is marked"
    );
    assert!(cl.sigs[1..].iter().all(|s| *s == SigStatus::Valid));
    let top = cl.top().unwrap();
    assert_eq!(hexs(&top.sha256), root_sha);
    let e = stores().get(&top.sha256).unwrap();
    assert!(e.tags.iter().any(|t| t == event));
    assert_eq!(cl.end == PathEnd::Anchor, e.is_anchor());
    assert!(r.reached_cas().iter().any(|c| hexs(&c.sha256) == root_sha));
}

/// The one certificate of `event` with this SHA-256 prefix, from the history's PEMs.
fn history_cert(event: &str, prefix: &str) -> Arc<CertInfo> {
    let (_, _, _, pem) = rules::distrust::distrust_certs_with_sha256()
        .iter()
        .find(|(ev, _, sha, _)| *ev == event && sha.starts_with(prefix))
        .unwrap();
    let der = trust::anchors::pem_ders(pem.as_bytes()).remove(0);
    Arc::new(parse(&der, sha256(&der)))
}

/// The entries of `id` kept by `p` that name `ca` (by certificate or key).
fn entries_for<'a>(p: DistrustPolicy, id: &str, ca: &CertInfo) -> Vec<&'a rules::Removal> {
    rule_set(p)
        .removal(id)
        .into_iter()
        .filter(|r| {
            r.cas.iter().any(|s| {
                s.sha256 == Some(ca.sha256)
                    || s.spki_sha256.is_some() && s.spki_sha256 == ca.spki_sha256
            })
        })
        .collect()
}

/// Residual codes only (crafted handshakes have no outcome).
fn verdict(p: DistrustPolicy, presented: &[Arc<CertInfo>], at: i64, id: &str) -> &'static str {
    let f = evaluate(rule_set(p), presented, at, Outcome::Unknown);
    assert!(f.iter().all(|f| f.rule_id == id), "{:?}", codes(&f));
    match codes(&f).as_slice() {
        [] => "none",
        [(c, _)] if *c == CODE_RESIDUAL_USE => "residual",
        [(c, _)] if *c == CODE_PENDING => "pending",
        other => panic!("unexpected {other:?}"),
    }
}

/// notBefore cut-off, "issued before" direction: Chrome 66 distrusted Symantec leaves issued
/// before 2016-06-01 (stage 1), then everything (stage 2). Real intermediates from the corpus:
/// Symantec Class 3 EV SSL CA - G3 (under VeriSign G5) and Google Internet Authority G2 (a
/// Chrome exception, under GeoTrust Global CA).
#[test]
fn crafted_symantec_chrome_stage_one_cut_off() {
    let ev = "symantec-2018";
    let ev_ca = seen("pppoe-over-qinq#0").chain[1].clone();
    assert!(ev_ca
        .subject
        .starts_with("CN=Symantec Class 3 EV SSL CA - G3,"));
    let giag2 = seen("chrome-34-google#0").chain[1].clone();
    assert_eq!(giag2.subject, GIAG2);
    let g5 = history_cert(ev, "9acfab7e");
    let geotrust = history_cert(ev, "ff856a2d");
    let chrome = entries_for(DistrustPolicy::Chrome, ev, &g5);
    let stage1 = chrome.iter().find(|r| r.issued_before.is_some()).unwrap();
    let stage2 = chrome.iter().find(|r| r.issued_before.is_none()).unwrap();
    let cut = stage1.issued_before.unwrap();
    assert_eq!(cut, t("2016-06-01T00:00:00Z"), "Chrome 66 rule text");
    let at = stage1.removed;
    assert!(at < stage2.removed && stage2.announced == Some(at));
    for (nb, want_chrome) in [
        (cut - 1, "residual"), // issued before the cut-off: distrusted by stage 1
        (cut, "pending"),      // grandfathered by stage 1, stage 2 announced
        (cut + 1, "pending"),
    ] {
        let leaf = crafted_leaf(&ev_ca, nb, None);
        let chain = vec![leaf.clone(), ev_ca.clone()];
        check_claimed_path(&chain, at, &hexs(&g5.sha256), ev);
        assert_eq!(
            verdict(DistrustPolicy::Chrome, &chain, at, ev),
            want_chrome,
            "nb {nb}"
        );
        assert_eq!(
            verdict(DistrustPolicy::Strict, &chain, at, ev),
            want_chrome,
            "nb {nb}"
        );
        // Mozilla had not acted on VeriSign G5 yet.
        assert_eq!(
            verdict(DistrustPolicy::Mozilla, &chain, at, ev),
            "none",
            "nb {nb}"
        );
        // Through Google Internet Authority G2: exempt in Chrome, whatever the date.
        let leaf = crafted_leaf(&giag2, nb, None);
        let chain = vec![leaf, giag2.clone()];
        check_claimed_path(&chain, at, &hexs(&geotrust.sha256), ev);
        for at in [at, t(AFTER_ALL)] {
            assert_eq!(verdict(DistrustPolicy::Chrome, &chain, at, ev), "none");
        }
        assert_eq!(
            verdict(DistrustPolicy::Mozilla, &chain, t(AFTER_ALL), ev),
            "residual"
        );
    }
}

/// notBefore cut-off, "issued after" direction: WoSign/StartCom. Chrome (2016-10-21 00:00:00),
/// Mozilla (end of 2016-10-21) and Apple (2016-12-01) each grandfathered older leaves before
/// the full removal; strict takes the earliest. Real intermediate from the corpus: StartCom
/// Class 1 Primary Intermediate Server CA.
#[test]
fn crafted_wosign_not_before_cut_offs() {
    let ev = "wosign-startcom-2016";
    let int = seen("dhe#0").chain[1].clone();
    assert!(int
        .subject
        .starts_with("CN=StartCom Class 1 Primary Intermediate Server CA,"));
    let root = history_cert(ev, "c766a9be"); // StartCom Certification Authority
    let strict = entries_for(DistrustPolicy::Strict, ev, &root);
    let cut_of = |prog: Program| {
        strict
            .iter()
            .find(|r| r.program == Some(prog) && r.issued_after.is_some())
            .map(|r| (r.issued_after.unwrap(), r.removed))
            .unwrap()
    };
    let (c_cut, c_from) = cut_of(Program::Chrome);
    let (m_cut, m_from) = cut_of(Program::Mozilla);
    let (a_cut, a_from) = cut_of(Program::Apple);
    assert!(c_cut < m_cut && m_cut < a_cut);
    // An instant inside every grandfathering window, before any full removal.
    let at = c_from.max(m_from).max(a_from);
    let full = strict
        .iter()
        .filter(|r| r.issued_after.is_none())
        .map(|r| r.removed)
        .min()
        .unwrap();
    assert!(at < full);
    let effective = |p: DistrustPolicy| match p {
        DistrustPolicy::Chrome => c_cut,
        DistrustPolicy::Mozilla => m_cut,
        DistrustPolicy::Strict => c_cut.min(m_cut).min(a_cut),
    };
    for nb in [c_cut - 1, c_cut, c_cut + 1, m_cut - 1, m_cut, m_cut + 1] {
        let leaf = crafted_leaf(&int, nb, None);
        let chain = vec![leaf, int.clone()];
        check_claimed_path(&chain, at, &hexs(&root.sha256), ev);
        for p in POLICIES {
            // After the cut-off: residual. Up to it: grandfathered, but the full removal is
            // announced, so pending.
            let want = if nb > effective(p) {
                "residual"
            } else {
                "pending"
            };
            assert_eq!(verdict(p, &chain, at, ev), want, "{p} nb {nb}");
        }
    }
    // Both directions of each program's own cut-off, spelled out.
    let v = |p, nb| {
        let leaf = crafted_leaf(&int, nb, None);
        verdict(p, &[leaf, int.clone()], at, ev)
    };
    assert_eq!(v(DistrustPolicy::Chrome, c_cut + 1), "residual");
    assert_eq!(v(DistrustPolicy::Chrome, c_cut - 1), "pending");
    assert_eq!(v(DistrustPolicy::Mozilla, m_cut + 1), "residual");
    assert_eq!(v(DistrustPolicy::Mozilla, m_cut - 1), "pending");
    assert_eq!(v(DistrustPolicy::Strict, c_cut + 1), "residual");
}

/// SCT cut-off (Chrome's SCTNotAfter) and notBefore cut-off (NSS distrust-after, Apple) on a
/// root still in both stores. The history has no intermediate of these events, so the crafted
/// leaf names the root itself (DN and AKI): Entrust Root Certification Authority, Chunghwa ePKI.
#[test]
fn crafted_sct_and_not_before_cut_offs_on_current_roots() {
    let at = t(AFTER_ALL);
    for (ev, prefix) in [
        ("entrust-2024", "73c17643"),
        ("chunghwa-netlock-2025", "c0a6f4dc"),
    ] {
        let root = history_cert(ev, prefix);
        let cut = |p: DistrustPolicy, sct: bool| {
            entries_for(p, ev, &root)
                .iter()
                .filter_map(|r| if sct { r.sct_after } else { r.issued_after })
                .min()
        };
        // No entry without a cut-off names this root: grandfathering is the lasting mechanism.
        for p in POLICIES {
            assert!(entries_for(p, ev, &root)
                .iter()
                .all(|r| r.issued_after.is_some() || r.sct_after.is_some()));
        }
        let sct_cut = cut(DistrustPolicy::Chrome, true).unwrap();
        let nb_cut_moz = cut(DistrustPolicy::Mozilla, false).unwrap();
        let nb_cut_strict = cut(DistrustPolicy::Strict, false).unwrap();
        // strict = the earliest cut-off of any program (raw event data, no policy filter).
        let any_program_nb = rules::distrust_events()
            .unwrap()
            .into_iter()
            .find(|e| e.info.id == ev)
            .unwrap()
            .removals
            .iter()
            .filter(|r| r.cas.iter().any(|s| s.sha256 == Some(root.sha256)))
            .filter_map(|r| r.issued_after.map(|c| (c, r.program)))
            .min()
            .unwrap();
        assert_eq!(nb_cut_strict, any_program_nb.0);
        let expect_strict_program = if ev == "entrust-2024" {
            Program::Apple // 2024-11-15, before NSS's 2024-11-30
        } else {
            Program::Mozilla
        };
        assert_eq!(any_program_nb.1, Some(expect_strict_program));
        assert_eq!(cut(DistrustPolicy::Chrome, false), None);
        assert_eq!(cut(DistrustPolicy::Mozilla, true), None);
        assert_eq!(cut(DistrustPolicy::Strict, true), Some(sct_cut));
        // The rule data agrees with the trust stores' own copies (NSS certdata, Chrome v17).
        let e = stores().get(&root.sha256).unwrap();
        assert!(e.is_anchor() && e.tags.iter().any(|t| t == ev));
        assert_eq!(e.nss_server_distrust_after, Some(nb_cut_moz));
        if !e.chrome_constraints.is_empty() {
            assert!(e
                .chrome_constraints
                .iter()
                .any(|c| c.sct_not_after_sec == Some(sct_cut)));
        }
        let early = nb_cut_strict.min(sct_cut) - 30 * 86_400;
        let early_ms = u64::try_from(early).unwrap() * 1000;
        let cut_ms = u64::try_from(sct_cut).unwrap() * 1000;

        // SCT cut-off, both directions (millisecond timestamps against a cut-off in seconds);
        // the leaf's notBefore is early, so only Chrome's rule can apply.
        for (sct_ms, flagged) in [
            (Some(cut_ms - 1000), false),
            (Some(cut_ms), false),
            (Some(cut_ms + 1), true),
            (Some(cut_ms + 1000), true),
            (None, true), // no embedded SCT: Chrome requires one not after the cut-off
        ] {
            let leaf = crafted_leaf(&root, early, sct_ms);
            let chain = vec![leaf];
            check_claimed_path(&chain, at, &hexs(&root.sha256), ev);
            let want = if flagged { "residual" } else { "none" };
            assert_eq!(
                verdict(DistrustPolicy::Chrome, &chain, at, ev),
                want,
                "{ev} {sct_ms:?}"
            );
            assert_eq!(
                verdict(DistrustPolicy::Strict, &chain, at, ev),
                want,
                "{ev} {sct_ms:?}"
            );
            assert_eq!(
                verdict(DistrustPolicy::Mozilla, &chain, at, ev),
                "none",
                "{ev}"
            );
        }

        // notBefore cut-offs, both directions; the SCT is early, so Chrome never applies.
        let mut nbs = vec![nb_cut_moz - 1, nb_cut_moz, nb_cut_moz + 1];
        if nb_cut_strict != nb_cut_moz {
            // Apple's earlier cut-off (Entrust) decides under strict.
            nbs.extend([nb_cut_strict - 1, nb_cut_strict, nb_cut_strict + 1]);
        }
        for nb in nbs {
            let leaf = crafted_leaf(&root, nb, Some(early_ms));
            let chain = vec![leaf];
            check_claimed_path(&chain, at, &hexs(&root.sha256), ev);
            let want = |cut: i64| if nb > cut { "residual" } else { "none" };
            assert_eq!(
                verdict(DistrustPolicy::Chrome, &chain, at, ev),
                "none",
                "{ev} {nb}"
            );
            assert_eq!(
                verdict(DistrustPolicy::Mozilla, &chain, at, ev),
                want(nb_cut_moz),
                "{ev} {nb}"
            );
            assert_eq!(
                verdict(DistrustPolicy::Strict, &chain, at, ev),
                want(nb_cut_strict),
                "{ev} {nb}"
            );
        }
        println!(
            "{ev}: SCT cut-off {} (chrome, strict); notBefore cut-off {} (mozilla), {} (strict)",
            rules::time::format_rfc3339(sct_cut),
            rules::time::format_rfc3339(nb_cut_moz),
            rules::time::format_rfc3339(nb_cut_strict)
        );
    }
}

/// The stores trustmap uses: every certificate of the history is known, tagged with its event,
/// whatever its role; roots still in NSS/Chrome stay anchors (same stores) and gain the tag; no
/// certificate becomes an anchor. The stores do not depend on `--distrust-policy` (the rules
/// do): a known CA only lets chain building name a root the server did not send.
#[test]
fn history_certificates_in_the_stores() {
    let plain = TrustStores::builtin();
    let s = stores();
    assert_eq!(s.anchors().count(), plain.anchors().count());
    let certs = rules::distrust::distrust_certs_with_sha256();
    assert_eq!(certs.len(), 123, "125 affected certificates, 2 without DER");
    let mut still_anchors = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for (ev, role, sha, _pem) in certs {
        let key: [u8; 32] = hex::decode(sha).unwrap().try_into().unwrap();
        let e = s.get(&key).unwrap_or_else(|| panic!("{ev} {sha}"));
        assert!(e.tags.iter().any(|t| t == ev), "{ev} {sha}");
        let before = plain
            .get(&key)
            .map(|p| p.stores.clone())
            .unwrap_or_default();
        assert_eq!(e.stores, before, "{ev} {sha}: anchor status unchanged");
        if e.is_anchor() {
            *still_anchors.entry(*ev).or_insert(0) += 1;
        }
        *roles.entry(*role).or_insert(0) += 1;
    }
    assert_eq!(
        still_anchors,
        BTreeMap::from([("chunghwa-netlock-2025", 3), ("entrust-2024", 9)])
    );
    assert_eq!(
        roles,
        BTreeMap::from([
            ("exception-excluded-subca", 9),
            ("exception-managed-ca", 2),
            ("intermediate", 10),
            ("root", 102),
        ])
    );
    assert_eq!(s.len(), plain.len() + 123 - 12);
}
