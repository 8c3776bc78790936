//! Test scaffolding shared by every crate's tests and benches (a dev-dependency only): the
//! repository's test inputs (`corpus`), packet and capture-file builders (`packet`, `pcap`,
//! `tls`), a seeded generator (`rng`), temporary directories (`tmp`) and output comparison.
#![forbid(unsafe_code)]

pub mod corpus;
pub mod packet;
pub mod pcap;
pub mod rng;
pub mod tls;
pub mod tmp;

pub use rng::Rng;
pub use tmp::TempDir;

/// Whether the tests run as root (`id -u` is 0): the live tests need namespaces.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs `cmd`, which must succeed (its stderr in the failure message); returns its stdout.
pub fn run_ok(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Fails with the first differing line, not two walls of text (NDJSON, CSV, ...).
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let (g, w) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    let (gl, wl): (Vec<&str>, Vec<&str>) = (g.lines().collect(), w.lines().collect());
    let i = gl
        .iter()
        .zip(wl.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(gl.len().min(wl.len()));
    panic!(
        "{what}: {} vs {} lines; first difference at line {}:\n got: {}\nwant: {}",
        gl.len(),
        wl.len(),
        i + 1,
        gl.get(i).unwrap_or(&"<none>"),
        wl.get(i).unwrap_or(&"<none>")
    );
}
