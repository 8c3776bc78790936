//! `trustmap probe` end to end (ignored by default; needs root, `ip` and `openssl`; CI runs it):
//! inside a network namespace of its own, an OpenSSL server plays the TLS 1.3 endpoint whose
//! chain the capture could not show, and a decoy listener plays an endpoint outside `--allow`.
//! The probe must record the server's chain with `chain_source: "probe"`, raise the removal
//! finding of its root, add `probe` to the endpoint's evidence, and never touch the decoy.
//! Nothing leaves the namespace.
//!
//! `cargo test --test probe_cli -- --ignored`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

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

#[test]
#[ignore]
fn probe_records_the_hidden_chain_and_never_leaves_allow() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert!(
        is_root && sh(&["openssl", "version"]),
        "this test needs root and openssl"
    );
    let dir = testkit::TempDir::new("probe-cli");
    let db = dir.join("inv.db");
    let db_s = db.to_str().expect("utf-8 path");
    let cases = root().join("pcaps/cases");
    // The inventory: a TLS 1.3 endpoint whose chain is hidden (127.0.1.6) and a TLS 1.0 one with
    // a visible chain (127.0.1.7).
    trustmap(
        &[
            "analyze",
            "-q",
            "--db",
            db_s,
            "-o",
            "/dev/null",
            "pcaps/cases/tls13.pcap",
            "pcaps/cases/tls10.pcap",
        ],
        &root(),
    );
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[removal]]\nid = \"test-root-retirement\"\n\
         ca = { sha256 = \"6e4a39c95ab0b1ac76dc417955f51d44e080fe7193c0ec94f77d7be12e0eaa3e\" }\n\
         removed = \"2020-01-01T00:00:00Z\"\n",
    )
    .expect("rules");

    let ns = Ns(format!("tmprobe{}", std::process::id()));
    assert!(
        sh(&["ip", "netns", "add", &ns.0]),
        "cannot create a network namespace"
    );
    assert!(sh(&[
        "ip", "netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"
    ]));
    let pki = cases.join("pki");
    let p = |f: &str| pki.join(f).to_string_lossy().into_owned();
    let _server = Kill(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "openssl",
                "s_server",
                "-accept",
                "127.0.1.6:443",
            ])
            .args(["-cert", &p("server.pem"), "-key", &p("server.key")])
            .args(["-cert_chain", &p("int.pem"), "-www", "-quiet", "-tls1_3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("s_server"),
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
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_trustmap"),
            "probe",
            "--all",
        ])
        .args([
            "--db",
            db_s,
            "--allow",
            "127.0.1.6/32",
            "--rate",
            "20",
            "--timeout",
            "3",
        ])
        .arg("--rules")
        .arg(&rules)
        .arg("--anchors")
        .arg(pki.join("root.pem"))
        .arg("-o")
        .arg(&events)
        .output()
        .expect("probe");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "probe: {err}");
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

    let evs: Vec<Value> = std::fs::read_to_string(&events)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let tls: Vec<&Value> = evs
        .iter()
        .filter(|e| e["event"]["dataset"] == "trustmap.tls")
        .collect();
    assert_eq!(tls.len(), 1);
    let t = tls[0];
    assert_eq!(t["destination"]["ip"], "127.0.1.6");
    assert_eq!(t["tls"]["client"]["server_name"], "server.test.example");
    assert_eq!(t["tls"]["version"], "1.3");
    assert_eq!(t["trustmap"]["chain_source"], "probe");
    let chain: Vec<&str> = t["tls"]["server"]["chain"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["sha256"].as_str())
        .collect();
    assert_eq!(
        chain,
        [
            "731b8875c8946a18f347d004bdfd07ddf0a8065bb1a49fd370edcd6c7bde7036",
            "0644d00cc1af2c982bae0a67da7aab93fbd5769fece02a6e2670671dd5443e43"
        ]
    );
    assert!(
        evs.iter()
            .any(|e| e["event"]["dataset"] == "trustmap.finding"
                && e["trustmap"]["finding"]["code"] == "ca_removal.residual_use"
                && e["trustmap"]["chain_source"] == "probe"),
        "no probe residual_use finding"
    );

    let inv = trustmap(&["inventory", "--format", "json", "--db", db_s], &root());
    let inv: Value = serde_json::from_slice(&inv.stdout).expect("inventory JSON");
    let ep = inv
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ca| ca["endpoints"].as_array().into_iter().flatten())
        .find(|ep| ep["ip"] == "127.0.1.6")
        .expect("the probed endpoint under its CAs");
    assert!(
        ep["evidence"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == "probe")),
        "{ep}"
    );
}
