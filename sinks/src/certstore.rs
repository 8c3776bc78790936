//! `--store-certs DIR`: each unique certificate written once, as `DIR/<sha256>.pem`, like
//! Suricata's tls-store. A file is written under a temporary name in the same directory and
//! renamed into place, so a reader (or a crash) never sees half a certificate; a certificate
//! already in the directory (from this run or an earlier one) is left as it is.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The store and its counters.
#[derive(Debug)]
pub struct CertStore {
    dir: PathBuf,
    /// Certificates written by this run.
    pub written: u64,
    /// Certificates already in the directory.
    pub present: u64,
    /// Certificates that could not be written (the error is counted, the run goes on).
    pub errors: u64,
}

/// PEM lines are 64 base64 characters.
const PEM_LINE: usize = 64;

/// `der` as a PEM CERTIFICATE block.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / PEM_LINE + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(PEM_LINE) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl CertStore {
    /// Creates `dir` if needed.
    pub fn open(dir: &Path) -> std::io::Result<CertStore> {
        std::fs::create_dir_all(dir)?;
        Ok(CertStore {
            dir: dir.to_path_buf(),
            written: 0,
            present: 0,
            errors: 0,
        })
    }

    /// Stores one certificate (once).
    pub fn store(&mut self, sha256: &[u8; 32], der: &[u8]) {
        let name = hex::encode(sha256);
        let path = self.dir.join(format!("{name}.pem"));
        if path.exists() {
            self.present += 1;
            return;
        }
        let tmp = self
            .dir
            .join(format!(".{name}.pem.{}.tmp", std::process::id()));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(pem(der).as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => self.written += 1,
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
                self.errors += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_each_certificate_once_as_pem() {
        let d = testkit::TempDir::new("certstore");
        let mut s = CertStore::open(&d.join("certs")).unwrap();
        let der: Vec<u8> = (0..100u8).collect();
        let sha = [7u8; 32];
        s.store(&sha, &der);
        s.store(&sha, &der);
        assert_eq!((s.written, s.present, s.errors), (1, 1, 0));
        let text =
            std::fs::read_to_string(d.join("certs").join(format!("{}.pem", hex::encode(sha))))
                .unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
            der
        );
        assert!(text.lines().all(|l| l.len() <= PEM_LINE + 8));
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(d.join("certs")).unwrap().count(), 1);
    }
}
