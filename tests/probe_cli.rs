//! `trustmap probe` end to end (ignored by default; needs root, `ip` and `openssl`; CI runs it):
//! inside a network namespace of its own, an OpenSSL server plays the TLS 1.3 endpoint whose
//! chain the capture could not show, and a decoy listener plays an endpoint outside `--allow`.
//! The probe must record the server's chain with `chain_source: "probe"`, raise the removal
//! finding of its root, add `probe` to the endpoint's evidence, and never touch the decoy.
//! The estate's TLS 1.3 servers (portal under NEW, ledger under the removed OLD root) are probed
//! the same way. Nothing leaves the namespace.
//!
//! `cargo test --test probe_cli -- --ignored`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::chain_hashes;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

/// Deletes the namespace (and so every process left in it) when the test ends.
struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.0])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").arg(pid).status();
                }
            });
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn trustmap(args: &[&str], dir: &Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_trustmap"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run trustmap");
    assert!(
        out.status.success(),
        "trustmap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `trustmap analyze -q -o /dev/null --db DB ARGS...` from the repository root.
fn analyze_into(db: &str, args: &[&str]) {
    let mut all = vec!["analyze", "-q", "-o", "/dev/null", "--db", db];
    all.extend_from_slice(args);
    trustmap(&all, &root());
}

fn needs_root_and_openssl() {
    let is_root = testkit::is_root();
    assert!(
        is_root && sh(&["openssl", "version"]),
        "this test needs root and openssl"
    );
}

/// A fresh namespace with its loopback up.
fn netns(tag: &str) -> Ns {
    let ns = Ns(format!("{tag}{}", std::process::id()));
    assert!(
        sh(&["ip", "netns", "add", &ns.0]),
        "cannot create a network namespace"
    );
    assert!(sh(&[
        "ip", "netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"
    ]));
    ns
}

/// `openssl s_server -www` in the namespace: the leaf, its key and the rest of the chain.
fn s_server(ns: &Ns, accept: &str, cert: &Path, key: &Path, chain: &Path, extra: &[&str]) -> Kill {
    Kill(
        Command::new("ip")
            .args([
                "netns", "exec", &ns.0, "openssl", "s_server", "-accept", accept,
            ])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-cert_chain")
            .arg(chain)
            .args(["-www", "-quiet"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("s_server"),
    )
}

/// `trustmap probe` inside the namespace, writing its events to `events`; returns its stderr.
fn probe(ns: &Ns, args: &[&std::ffi::OsStr], events: &Path) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_trustmap"),
            "probe",
        ])
        .args(args)
        .arg("-o")
        .arg(events)
        .output()
        .expect("probe");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "probe: {err}");
    err
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect()
}

fn tls_events(evs: &[Value]) -> Vec<&Value> {
    evs.iter()
        .filter(|e| e["event"]["dataset"] == "trustmap.tls")
        .collect()
}

fn has_probe_residual_use(evs: &[Value]) -> bool {
    evs.iter().any(|e| {
        e["event"]["dataset"] == "trustmap.finding"
            && e["trustmap"]["finding"]["code"] == "ca_removal.residual_use"
            && e["trustmap"]["chain_source"] == "probe"
    })
}

/// The endpoint `ip` in `inventory --format json`, under the CA `ca` (any CA when `None`).
fn inventory_endpoint(db: &str, ca: Option<&str>, ip: &str) -> Value {
    let inv = trustmap(&["inventory", "--format", "json", "--db", db], &root());
    let inv: Value = serde_json::from_slice(&inv.stdout).expect("inventory JSON");
    inv.as_array()
        .into_iter()
        .flatten()
        .filter(|c| ca.is_none_or(|sha| c["ca"]["sha256"] == sha))
        .flat_map(|c| c["endpoints"].as_array().into_iter().flatten())
        .find(|ep| ep["ip"] == ip)
        .cloned()
        .unwrap_or_else(|| panic!("{ip} under {ca:?}"))
}

fn evidence(ep: &Value) -> Vec<&str> {
    ep["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
#[ignore]
fn probe_records_the_hidden_chain_and_never_leaves_allow() {
    needs_root_and_openssl();
    let dir = testkit::TempDir::new("probe-cli");
    let db = dir.join("inv.db");
    let db_s = db.to_str().expect("utf-8 path");
    let cases = root().join("pcaps/cases");
    // The inventory: a TLS 1.3 endpoint whose chain is hidden (127.0.1.6) and a TLS 1.0 one with
    // a visible chain (127.0.1.7).
    analyze_into(db_s, &["pcaps/cases/tls13.pcap", "pcaps/cases/tls10.pcap"]);
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[removal]]\nid = \"test-root-retirement\"\n\
         ca = { sha256 = \"6e4a39c95ab0b1ac76dc417955f51d44e080fe7193c0ec94f77d7be12e0eaa3e\" }\n\
         removed = \"2020-01-01T00:00:00Z\"\n",
    )
    .expect("rules");

    let ns = netns("tmprobe");
    let pki = cases.join("pki");
    let _server = s_server(
        &ns,
        "127.0.1.6:443",
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("int.pem"),
        &["-tls1_3"],
    );
    // The decoy counts connections for a few seconds and prints the count.
    let decoy = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c"])
        .arg(
            "import socket,time\n\
             s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.1.7',443)); s.listen(8); s.settimeout(0.2)\n\
             n=0; end=time.time()+6\n\
             while time.time()<end:\n    try:\n        c,_=s.accept(); n+=1; c.close()\n    except OSError: pass\n\
             print(n)",
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("decoy");
    std::thread::sleep(Duration::from_millis(800));

    let events = dir.join("probe.ndjson");
    let os = |v: &'static str| std::ffi::OsStr::new(v);
    let err = probe(
        &ns,
        &[
            os("--all"),
            os("--db"),
            db.as_os_str(),
            os("--allow"),
            os("127.0.1.6/32"),
            os("--rate"),
            os("20"),
            os("--timeout"),
            os("3"),
            os("--rules"),
            rules.as_os_str(),
            os("--anchors"),
            pki.join("root.pem").as_os_str(),
        ],
        &events,
    );
    assert!(
        err.contains("1 probed") && err.contains("1 outside --allow"),
        "{err}"
    );
    let decoy = decoy.wait_with_output().expect("decoy");
    assert_eq!(
        String::from_utf8_lossy(&decoy.stdout).trim(),
        "0",
        "the endpoint outside --allow saw a connection"
    );

    let evs = read_events(&events);
    let tls = tls_events(&evs);
    assert_eq!(tls.len(), 1);
    let t = tls[0];
    assert_eq!(t["destination"]["ip"], "127.0.1.6");
    assert_eq!(t["tls"]["client"]["server_name"], "server.test.example");
    assert_eq!(t["tls"]["version"], "1.3");
    assert_eq!(t["trustmap"]["chain_source"], "probe");
    assert_eq!(
        chain_hashes(&t["tls"]["server"]["chain"]),
        [
            "731b8875c8946a18f347d004bdfd07ddf0a8065bb1a49fd370edcd6c7bde7036",
            "0644d00cc1af2c982bae0a67da7aab93fbd5769fece02a6e2670671dd5443e43"
        ]
    );
    assert!(
        has_probe_residual_use(&evs),
        "no probe residual_use finding"
    );
    let ep = inventory_endpoint(db_s, None, "127.0.1.6");
    assert!(evidence(&ep).contains(&"probe"), "{ep}");
}

/// The estate (pcaps/cases/estate.pcap, analysed without keys) has two TLS 1.3 servers: portal,
/// never seen with a chain, and ledger, whose chain under the removed OLD root is known only from
/// its TLS 1.2 sighting. The default probe targets portal alone; `--all` reaches ledger, whose
/// live chain then raises the removal finding with `chain_source: "probe"`.
#[test]
#[ignore]
fn probe_shows_the_estate_ledger_under_the_removed_root() {
    needs_root_and_openssl();
    let dir = testkit::TempDir::new("probe-estate");
    let db = dir.join("inv.db");
    let db_s = db.to_str().expect("utf-8 path");
    let rules = "pcaps/cases/estate-rules.toml";
    let (old, new) = (
        "corp=pcaps/cases/estate-pki/old-root.pem",
        "corp=pcaps/cases/estate-pki/new-root.pem",
    );
    analyze_into(
        db_s,
        &[
            "--rules",
            rules,
            "--anchors",
            old,
            "--anchors",
            new,
            "pcaps/cases/estate.pcap",
        ],
    );
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("pcaps/cases/estate.expected.json"))
            .expect("estate.expected.json"),
    )
    .expect("expected json");
    let server = |name: &str| -> Value {
        exp["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in estate.expected.json"))
    };
    let (portal, ledger) = (server("portal"), server("ledger"));
    assert_eq!(ledger["chains_to"], "old");

    let ns = netns("tmprobe-e");
    let pki = root().join("pcaps/cases/estate-pki");
    let _portal = s_server(
        &ns,
        "127.0.1.7:443",
        &pki.join("portal.pem"),
        &pki.join("portal.key"),
        &pki.join("new-int.pem"),
        &["-tls1_3"],
    );
    let _ledger = s_server(
        &ns,
        "127.0.1.8:443",
        &pki.join("ledger.pem"),
        &pki.join("ledger.key"),
        &pki.join("old-int.pem"),
        &[],
    );
    std::thread::sleep(Duration::from_millis(800));
    let os = std::ffi::OsStr::new;
    let run = |extra: &[&str], events: &Path| {
        let mut args: Vec<&std::ffi::OsStr> = extra.iter().copied().map(os).collect();
        args.extend([os("--db"), os(db_s), os("--rules"), os(rules)]);
        args.extend([os("--anchors"), os(old), os("--anchors"), os(new)]);
        args.extend([os("--timeout"), os("3")]);
        let err = probe(&ns, &args, events);
        (read_events(events), err)
    };

    // By default only the endpoints with no known chain: portal, under NEW (no finding).
    let (evs, err) = run(&["--allow", "127.0.1.0/24"], &dir.join("default.ndjson"));
    assert!(err.contains("1 targets, 1 probed, 1 chains"), "{err}");
    let tls = tls_events(&evs);
    assert_eq!(tls.len(), 1, "{evs:?}");
    assert_eq!(tls[0]["destination"]["ip"], portal["ip"]);
    assert_eq!(tls[0]["trustmap"]["chain_source"], "probe");
    let want: Vec<&str> = portal["chain"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(chain_hashes(&tls[0]["tls"]["server"]["chain"]), want);
    assert!(!has_probe_residual_use(&evs), "portal is migrated: {evs:?}");

    // --all, allowed to reach ledger alone: its TLS 1.3 chain, under the removed root.
    let (evs, err) = run(
        &["--all", "--allow", "127.0.1.8/32"],
        &dir.join("all.ndjson"),
    );
    assert!(err.contains("1 probed, 1 chains"), "{err}");
    let tls = tls_events(&evs);
    assert_eq!(tls.len(), 1, "{evs:?}");
    let t = tls[0];
    assert_eq!(t["destination"]["ip"], ledger["ip"]);
    assert_eq!(t["tls"]["client"]["server_name"], ledger["sni"]);
    assert_eq!(t["tls"]["version"], "1.3");
    assert_eq!(t["trustmap"]["chain_source"], "probe");
    assert_eq!(
        t["trustmap"]["anchor"]["sha256"],
        exp["roots"]["old"]["sha256"]
    );
    assert!(
        has_probe_residual_use(&evs),
        "no probe residual_use: {evs:?}"
    );
    let ep = inventory_endpoint(
        db_s,
        exp["roots"]["old"]["sha256"].as_str(),
        ledger["ip"].as_str().expect("ip"),
    );
    let ev = evidence(&ep);
    for e in ["inferred", "observed", "probe"] {
        assert!(ev.contains(&e), "{e} in {ep}");
    }
}
