//! The repository's own test inputs (`pcaps/` at the repository root). A missing input fails the
//! test that wanted it, with the path; it never lets a test pass without testing anything.

use std::path::{Path, PathBuf};

/// The repository root (this crate sits one level below it).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The Zeek traces shipped with the repository.
pub const ZEEK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/zeek");
/// The captures made from real TLS stacks by `pcaps/gen`.
pub const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/cases");

/// `ROOT/rel`, which must exist.
pub fn file(rel: &str) -> PathBuf {
    let p = Path::new(ROOT).join(rel);
    assert!(
        p.exists(),
        "missing test input {} (in the repository)",
        p.display()
    );
    p
}

/// `ZEEK/name`, which must exist.
pub fn zeek_file(name: &str) -> PathBuf {
    file(&format!("pcaps/zeek/{name}"))
}

/// The bytes of `ZEEK/name`.
pub fn zeek_bytes(name: &str) -> Vec<u8> {
    let p = zeek_file(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read test input {}: {e}", p.display()))
}

/// Every `*.pcap` in `dir`, sorted; panics when the folder cannot be read or holds none.
pub fn pcaps_in(dir: impl AsRef<Path>) -> Vec<PathBuf> {
    let dir = dir.as_ref();
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("missing test inputs: cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    assert!(
        !v.is_empty(),
        "missing test inputs: no *.pcap in {}",
        dir.display()
    );
    v.sort();
    v
}

/// Every `*.pcap` of [`ZEEK`].
pub fn zeek_pcaps() -> Vec<PathBuf> {
    pcaps_in(ZEEK)
}

/// Every `*.pcap` of [`CASES`].
pub fn case_pcaps() -> Vec<PathBuf> {
    pcaps_in(CASES)
}
