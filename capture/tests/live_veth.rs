//! Live capture end to end: trustmap-benchgen traffic (real TLS 1.2/1.3 handshakes, many chains)
//! replayed with `tcpreplay --topspeed` over a veth pair, captured by `capture::live::run` with 2
//! fanout workers and the TLS analyzer, and compared with an offline run of the same file.
//!
//! Ignored by default: it needs root, `ip` and `tcpreplay`, and skips with a message without them.
//! `cargo test -p capture --all-features --test live_veth -- --ignored --nocapture`
//!
//! Isolation: a network namespace of its own holds both veth ends and nothing else (no address,
//! no route, IPv6 off), so no replayed frame can reach any other interface or host. The capture
//! runs in a child process (this test binary again, test `child_capture`, started with
//! `ip netns exec`), drops privileges to `nobody` like a daemon with `--user`, and is stopped with
//! SIGTERM on an interface that has gone quiet.
#![forbid(unsafe_code)]

use analyzer::{Analyzer, Output};
use capture::live::{run, LiveConfig, LiveReport};
use capture::{Engine, EngineConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Interface the child captures on (set only for the child).
const CHILD_IFACE: &str = "TRUSTMAP_LIVE_VETH_IFACE";
/// User the child drops to (empty: no drop).
const CHILD_USER: &str = "TRUSTMAP_LIVE_VETH_USER";
/// Set for the permission child (runs without root).
const CHILD_PERM: &str = "TRUSTMAP_LIVE_VETH_PERM";
/// Prefix of the child's protocol lines on stdout.
const TAG: &str = "LIVEVETH";
/// Size of the replayed capture: small enough for both rings (2 x 64 MiB) to hold it whole, so
/// top speed replay must not drop anything. `TRUSTMAP_LIVE_VETH_MIB` overrides it (a stress run:
/// beyond the rings, drops depend on how fast the workers keep up).
const PCAP_SIZE: u64 = 16 << 20;
const SIZE_ENV: &str = "TRUSTMAP_LIVE_VETH_MIB";
const WORKERS: usize = 2;
const STATS_INTERVAL: Duration = Duration::from_millis(200);

/// Why the test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    if uid.as_deref() != Some("0") {
        return Some(
            "not root (needs CAP_NET_ADMIN for namespaces, CAP_NET_RAW to capture)".into(),
        );
    }
    for (tool, arg) in [("ip", "-V"), ("tcpreplay", "--version")] {
        let ok = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!(
                "`{tool}` not found (apt-get install iproute2 tcpreplay)"
            ));
        }
    }
    None
}

fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A private network namespace holding a veth pair; deleted (with the pair) on drop.
struct Netns {
    name: String,
    /// tcpreplay sends here.
    tx: String,
    /// The capture listens here.
    rx: String,
}

impl Netns {
    fn create() -> Netns {
        let pid = std::process::id();
        let ns = Netns {
            name: format!("trustmap-lv{pid}"),
            tx: format!("tmlva{pid}"),
            rx: format!("tmlvb{pid}"),
        };
        sh("ip", &["netns", "add", &ns.name]).expect("ip netns add");
        // No router solicitations or DAD probes on the pair: only replayed frames are seen.
        for k in ["all", "default"] {
            let _ = sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns.name,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                ],
            );
        }
        // Both ends are created inside the namespace: nothing is attached to the host's stack.
        sh(
            "ip",
            &[
                "-n", &ns.name, "link", "add", &ns.tx, "type", "veth", "peer", "name", &ns.rx,
            ],
        )
        .expect("ip link add veth");
        for dev in [&ns.tx, &ns.rx] {
            sh("ip", &["-n", &ns.name, "link", "set", dev, "up"]).expect("ip link set up");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// Kills the child if the test fails before it exits.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A server chain as one comparable string (SHA-256 of each certificate, wire order).
fn chain_key(h: &analyzer::Handshake) -> Option<String> {
    h.server_chain.as_ref().map(|c| {
        c.iter()
            .map(|r| {
                r.sha256
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Every server chain of `pcap`, through one engine, as the binary's offline path does.
fn offline_chains(pcap: &Path) -> BTreeMap<String, u64> {
    let mut engine = Engine::new(EngineConfig::default(), Analyzer::default());
    let mut chains = BTreeMap::new();
    let mut collect = |out: &mut Vec<Output>| {
        for o in out.drain(..) {
            if let Output::Handshake(h) = o {
                if let Some(k) = chain_key(&h) {
                    *chains.entry(k).or_insert(0u64) += 1;
                }
            }
        }
    };
    capture::source::read_file(pcap, &mut |p| {
        engine.process(p);
    })
    .expect("offline read");
    let (mut app, _) = engine.finish();
    collect(&mut app.out);
    chains
}

/// Collects the child's lines until one matches `pred` (true) or `timeout` passes (false).
fn wait_for(
    rx: &mpsc::Receiver<String>,
    pred: &dyn Fn(&str) -> bool,
    timeout: Duration,
    lines: &mut Vec<String>,
) -> bool {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = pred(&l);
                lines.push(l);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
}

fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `Successful packets: N` etc. from tcpreplay's summary.
fn tcpreplay_count(out: &str, label: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
#[ignore = "needs root, ip and tcpreplay; creates a network namespace and a veth pair"]
fn live_veth_replay() {
    // Ignored by default; asked for explicitly, a missing prerequisite fails (never a quiet pass).
    if let Some(why) = missing_prerequisite() {
        panic!("live_veth_replay cannot run: {why}");
    }
    let t0 = Instant::now();
    let dir = testkit::TempDir::new("live-veth");
    let pcap = dir.join("replay.pcap");
    let cfg = trustmap_benchgen::Config {
        size: std::env::var(SIZE_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(PCAP_SIZE, |m| m << 20),
        handshake_share: 0.3,
        unique_chains: 100,
        pool: 128,
        threads: 2,
        ..trustmap_benchgen::Config::default()
    };
    let file = std::fs::File::create(&pcap).expect("create pcap");
    let (manifest, w) = trustmap_benchgen::generate(&cfg, BufWriter::new(file)).expect("generate");
    drop(w.into_inner().expect("flush pcap"));
    let offline = offline_chains(&pcap);
    let offline_total: u64 = offline.values().sum();
    eprintln!(
        "generated {} packets, {} connections, {} server Certificate messages in clear ({} distinct \
         chains) in {:.1} s; offline: {offline_total} chains ({} distinct)",
        manifest.packets,
        manifest.connections,
        manifest.server_certificate_messages,
        manifest.unique_chains_in_clear,
        t0.elapsed().as_secs_f64(),
        offline.len()
    );
    assert_eq!(
        offline_total, manifest.server_certificate_messages,
        "offline run vs generator manifest"
    );

    let ns = Netns::create();
    let user = if sh("id", &["-u", "nobody"]).is_ok() {
        "nobody"
    } else {
        ""
    };
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = ChildGuard(Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(&exe)
            .args([
                "child_capture",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_IFACE, &ns.rx)
            .env(CHILD_USER, user)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn capture child"),
    ));
    let pid = child.0.as_ref().map(|c| c.id()).expect("child pid");
    let stdout = child
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("child stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test child_capture ... " on the same line first.
            if let Some(l) = line.find(TAG).and_then(|i| line.get(i + TAG.len()..)) {
                if tx.send(l.trim().to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    assert!(
        wait_for(
            &rx,
            &|l| l.starts_with("READY"),
            Duration::from_secs(30),
            &mut lines
        ),
        "the capture child never became ready: {:?}",
        lines.iter().rev().take(3).collect::<Vec<_>>()
    );
    let ready = lines.last().cloned().unwrap_or_default();
    eprintln!("child: {ready}");
    if !user.is_empty() {
        let uid = sh("id", &["-u", user]).unwrap_or_default();
        assert_eq!(
            field(&ready, "uid").map(|u| u.to_string()),
            Some(uid.trim().to_string()),
            "the child did not drop to {user}"
        );
    }
    // The interface was quiet until now; replay at top speed.
    let replay = sh(
        "ip",
        &[
            "netns",
            "exec",
            &ns.name,
            "tcpreplay",
            "--topspeed",
            "-i",
            &ns.tx,
            pcap.to_str().expect("utf-8 temp path"),
        ],
    )
    .expect("tcpreplay");
    let sent = tcpreplay_count(&replay, "Successful packets:").expect("tcpreplay summary");
    let failed = tcpreplay_count(&replay, "Failed packets:").unwrap_or(0);
    for l in replay.lines().filter(|l| {
        let t = l.trim_start();
        t.starts_with("Actual:") || t.starts_with("Rated:")
    }) {
        eprintln!("tcpreplay: {}", l.trim());
    }
    assert_eq!(failed, 0, "tcpreplay failed to send some frames:\n{replay}");
    assert_eq!(sent, manifest.packets, "tcpreplay sent a different count");
    // Wait until the workers have read everything (a TPACKET_V3 block is handed over after at most
    // the 100 ms read timeout), then stop them on a now quiet interface.
    let seen_all = wait_for(
        &rx,
        &|l| l.starts_with("STATS") && field(l, "packets").is_some_and(|p| p >= sent),
        Duration::from_secs(60),
        &mut lines,
    );
    let stop_at = Instant::now();
    sh("kill", &["-TERM", &pid.to_string()]).expect("kill -TERM");
    let status = child.0.take().map(|mut c| c.wait().expect("wait child"));
    let shutdown = stop_at.elapsed();
    let _ = reader.join();
    lines.extend(rx.try_iter());
    assert!(
        status.is_some_and(|s| s.success()),
        "capture child failed: {status:?} {:?}",
        lines.iter().rev().take(3).collect::<Vec<_>>()
    );
    assert!(seen_all, "the periodic stats never showed every packet");
    let fin = lines
        .iter()
        .find(|l| l.starts_with("FINAL"))
        .cloned()
        .expect("final report");
    let periodic = lines.iter().filter(|l| l.starts_with("STATS")).count();
    let mut live: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines.iter().filter_map(|l| l.strip_prefix("CHAIN ")) {
        *live.entry(l.to_string()).or_insert(0) += 1;
    }
    let live_total: u64 = live.values().sum();
    let kernel_dropped = field(&fin, "kernel_dropped");
    eprintln!(
        "replayed {sent} packets; {fin}; {periodic} periodic reports; chains live {live_total} \
         ({} distinct) vs offline {offline_total} ({} distinct); shutdown after SIGTERM {:.0} ms; \
         whole test {:.1} s",
        live.len(),
        offline.len(),
        shutdown.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(kernel_dropped, Some(0), "kernel drops: {fin}");
    assert!(
        field(&fin, "received").is_some_and(|r| r >= sent),
        "fewer packets received than sent: {fin}"
    );
    assert!(periodic >= 1, "no periodic stats report");
    assert!(
        shutdown < Duration::from_secs(5),
        "SIGTERM to exit took {shutdown:?}"
    );
    let missing: Vec<_> = offline
        .iter()
        .filter(|(k, n)| live.get(*k) != Some(n))
        .map(|(k, n)| (k.split(',').next().unwrap_or(""), *n, live.get(k).copied()))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && live_total == offline_total,
        "chains differ (leaf, offline count, live count): {missing:?}; live {live_total} vs offline \
         {offline_total}"
    );
}

/// The capture side of `live_veth_replay`, in its namespace: reports on stdout, stops on SIGTERM.
#[test]
#[ignore = "helper of live_veth_replay (does nothing unless started by it)"]
fn child_capture() {
    let Ok(iface) = std::env::var(CHILD_IFACE) else {
        eprintln!("child_capture: helper of live_veth_replay, nothing to do on its own");
        return;
    };
    let user = std::env::var(CHILD_USER).ok().filter(|u| !u.is_empty());
    let cfg = LiveConfig {
        workers: WORKERS,
        stats_interval: STATS_INTERVAL,
        user,
        ..LiveConfig::new(iface)
    };
    let chains = Mutex::new(Vec::<String>::new());
    let mut ready = false;
    let result = run(
        &cfg,
        EngineConfig::default(),
        |_| Analyzer::default(),
        |_, engine: &mut Engine<Analyzer>| {
            let mut found = Vec::new();
            for o in engine.app.out.drain(..) {
                if let Output::Handshake(h) = o {
                    found.extend(chain_key(&h));
                }
            }
            if !found.is_empty() {
                chains
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(found);
            }
        },
        |r: &LiveReport| {
            if !ready {
                // The first report comes from running workers: handles open, privileges dropped.
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let uid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
                    .unwrap_or_default();
                println!("{TAG} READY uid={uid}");
                ready = true;
            }
            let per_worker: Vec<String> = r
                .workers
                .iter()
                .map(|w| format!("{}/{}", w.received, w.engine.packets))
                .collect();
            println!(
                "{TAG} {} received={} kernel_dropped={} if_dropped={} packets={} flows={} \
                 workers={}",
                if r.is_final { "FINAL" } else { "STATS" },
                r.received(),
                r.kernel_dropped(),
                r.if_dropped(),
                r.engine().packets,
                r.workers.iter().map(|w| w.flows).sum::<usize>(),
                per_worker.join(",")
            );
        },
        Arc::new(AtomicBool::new(false)),
    );
    if let Err(e) = &result {
        println!("{TAG} ERROR {e}");
    }
    for c in chains.into_inner().unwrap_or_else(|p| p.into_inner()) {
        println!("{TAG} CHAIN {c}");
    }
    result.expect("live capture");
}

/// Without CAP_NET_RAW, `run` fails with the capability hint (checked as `nobody` via setpriv).
#[test]
#[ignore = "needs root and setpriv (runs a child as nobody)"]
fn permission_error_names_cap_net_raw() {
    // Ignored by default; asked for explicitly, a missing prerequisite fails (never a quiet pass).
    if let Some(why) = missing_prerequisite() {
        panic!("permission_error_names_cap_net_raw cannot run: {why}");
    }
    if sh("setpriv", &["--version"]).is_err() || sh("id", &["-u", "nobody"]).is_err() {
        panic!("permission_error_names_cap_net_raw cannot run: no setpriv or no user nobody");
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&exe)
        .args([
            "child_permission",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PERM, "1")
        .output()
        .expect("setpriv");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.find(TAG).and_then(|i| l.get(i + TAG.len()..)))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    eprintln!("as nobody: {line}");
    assert!(out.status.success(), "{text}");
    assert!(line.starts_with("PERMISSION"), "{text}");
    assert!(line.contains("CAP_NET_RAW"), "{line}");
}

/// The unprivileged side of `permission_error_names_cap_net_raw`.
#[test]
#[ignore = "helper of permission_error_names_cap_net_raw"]
fn child_permission() {
    if std::env::var(CHILD_PERM).is_err() {
        eprintln!("child_permission: helper, nothing to do on its own");
        return;
    }
    // Stop already set: even if the open succeeded, nothing would be read.
    let r = run(
        &LiveConfig::new("lo"),
        EngineConfig::default(),
        |_| Analyzer::default(),
        |_, _: &mut Engine<Analyzer>| {},
        |_: &LiveReport| {},
        Arc::new(AtomicBool::new(true)),
    );
    match r {
        Err(e @ capture::live::LiveError::Permission { .. }) => println!("{TAG} PERMISSION {e}"),
        Err(e) => println!("{TAG} OTHER {e}"),
        Ok(_) => println!("{TAG} OPENED"),
    }
}
