//! TLS secrets from key logs, in the NSS key log format that SSLKEYLOGFILE, OpenSSL
//! (`-keylogfile`), Python (`keylog_filename`), Go, curl, Envoy and HAProxy write:
//! `LABEL <client random, 64 hex> <secret, hex>` per line, `#` comments.
//!
//! Only the TLS 1.3 handshake traffic secrets are kept: they decrypt the encrypted handshake
//! flight (EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished) and
//! nothing else; application traffic secrets are not even read, so application data can never
//! be decrypted. Secrets are matched by client random, held in bounded memory (the oldest entry
//! goes first at [`MAX_ENTRIES`], counted), and never written to any output: [`KeyLog`]'s Debug
//! shows counts only.

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;

/// Client randoms whose secrets are held at once (each entry is about 200 bytes).
pub const MAX_ENTRIES: usize = 100_000;
/// Longest secret accepted (SHA-384 suites: 48 bytes).
pub const MAX_SECRET_LEN: usize = 64;
/// Longest key log line read; longer lines are counted as malformed and skipped.
pub const MAX_LINE_LEN: usize = 512;

/// The two secrets of one TLS 1.3 handshake (either may be missing from a partial log).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HandshakeSecrets {
    pub client: Option<Vec<u8>>,
    pub server: Option<Vec<u8>>,
}

impl std::fmt::Debug for HandshakeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeSecrets")
            .field("client", &self.client.as_ref().map(|_| "<secret>"))
            .field("server", &self.server.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// What reading key logs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLogStats {
    /// Handshake traffic secrets stored.
    pub secrets: u64,
    /// Lines with another label (TLS 1.2 CLIENT_RANDOM, application and exporter secrets).
    pub other_labels: u64,
    /// Lines that are not `LABEL HEX HEX` with a 32-byte random and a secret of a sane size.
    pub malformed: u64,
    /// Entries dropped (oldest first) to stay within [`MAX_ENTRIES`].
    pub evicted: u64,
}

#[derive(Default)]
struct Table {
    map: HashMap<[u8; 32], HandshakeSecrets>,
    order: VecDeque<[u8; 32]>,
    stats: KeyLogStats,
}

/// Handshake secrets by client random, shared by the analysis workers (read-mostly: a live
/// capture may add lines while it runs).
#[derive(Default)]
pub struct KeyLog {
    table: RwLock<Table>,
    /// More secrets may arrive while the traffic is analysed (a live capture following a key
    /// log file): handshakes without secrets yet keep their encrypted flight for a while.
    follows: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stats = self.stats();
        f.debug_struct("KeyLog")
            .field("entries", &self.len())
            .field("stats", &stats)
            .finish()
    }
}

/// Which secret a label names.
enum Which {
    Client,
    Server,
}

fn label(l: &str) -> Option<Which> {
    match l {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Some(Which::Client),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => Some(Which::Server),
        _ => None,
    }
}

fn unhex(s: &str, max: usize) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() / 2 > max {
        return None;
    }
    hex::decode(s).ok()
}

impl KeyLog {
    pub fn new() -> Self {
        KeyLog::default()
    }

    /// Adds every usable line of `text` (the content of a key log file, or a pcapng Decryption
    /// Secrets Block of type TLS key log).
    pub fn add_text(&self, text: &str) {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.len() > MAX_LINE_LEN {
                t.stats.malformed += 1;
                continue;
            }
            let mut f = line.split_ascii_whitespace();
            let (Some(l), Some(random), Some(secret), None) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                t.stats.malformed += 1;
                continue;
            };
            let Some(which) = label(l) else {
                t.stats.other_labels += 1;
                continue;
            };
            let random: Option<[u8; 32]> = unhex(random, 32).and_then(|r| r.try_into().ok());
            let (Some(random), Some(secret)) = (random, unhex(secret, MAX_SECRET_LEN)) else {
                t.stats.malformed += 1;
                continue;
            };
            if secret.is_empty() {
                t.stats.malformed += 1;
                continue;
            }
            if !t.map.contains_key(&random) {
                if t.map.len() >= MAX_ENTRIES {
                    if let Some(old) = t.order.pop_front() {
                        t.map.remove(&old);
                        t.stats.evicted += 1;
                    }
                }
                t.order.push_back(random);
            }
            let e = t.map.entry(random).or_default();
            match which {
                Which::Client => e.client = Some(secret),
                Which::Server => e.server = Some(secret),
            }
            t.stats.secrets += 1;
        }
    }

    /// Reads a key log file.
    pub fn add_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        let bytes = std::fs::read(path)?;
        self.add_text(&String::from_utf8_lossy(&bytes));
        Ok(())
    }

    /// The handshake secrets of the handshake with this client random.
    pub fn get(&self, client_random: &[u8]) -> Option<HandshakeSecrets> {
        let key: [u8; 32] = client_random.try_into().ok()?;
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        t.map.get(&key).cloned()
    }

    /// Says that secrets may still arrive (see [`Self::follows`]).
    pub fn set_follows(&self, on: bool) {
        self.follows.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Secrets may still arrive while traffic is analysed.
    pub fn follows(&self) -> bool {
        self.follows.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Client randoms held.
    pub fn len(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> KeyLogStats {
        self.table.read().unwrap_or_else(|p| p.into_inner()).stats
    }
}

/// Most bytes read from one key log file per poll.
pub const MAX_FOLLOW_READ: usize = 1 << 20;

/// Follows key log files as they grow (a proxy appends while a live capture runs): each
/// [`Self::poll`] reads what was appended since the last one, complete lines only, into the
/// key log. A file that was replaced (rotated: another inode behind the name) or shrank
/// (truncated) is read again from its start, even when it regrew past the old offset
/// between two polls.
#[derive(Debug)]
pub struct KeyLogFollower {
    files: Vec<Followed>,
}

#[derive(Debug)]
struct Followed {
    path: std::path::PathBuf,
    offset: u64,
    identity: Option<(u64, u64)>,
    partial: Vec<u8>,
}

/// The file behind a name (device, inode), where the platform says.
#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl KeyLogFollower {
    /// Follows `paths` from their current ends (what is there was read at start-up).
    pub fn new(paths: &[std::path::PathBuf]) -> Self {
        KeyLogFollower {
            files: paths
                .iter()
                .map(|p| {
                    let meta = std::fs::metadata(p).ok();
                    Followed {
                        path: p.clone(),
                        offset: meta.as_ref().map_or(0, |m| m.len()),
                        identity: meta.as_ref().and_then(identity),
                        partial: Vec::new(),
                    }
                })
                .collect(),
        }
    }

    /// Reads what was appended; returns the bytes of complete lines added to `keylog`.
    pub fn poll(&mut self, keylog: &KeyLog) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let mut added = 0;
        for Followed {
            path,
            offset,
            identity: known,
            partial,
        } in &mut self.files
        {
            let Ok(meta) = std::fs::metadata(&*path) else {
                continue;
            };
            let len = meta.len();
            let now = identity(&meta);
            if len < *offset || now != *known {
                *offset = 0;
                partial.clear();
                *known = now;
            }
            if len == *offset {
                continue;
            }
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            if f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let want = usize::try_from(len - *offset)
                .unwrap_or(usize::MAX)
                .min(MAX_FOLLOW_READ);
            let mut buf = Vec::with_capacity(want);
            let Ok(n) = f.take(want as u64).read_to_end(&mut buf) else {
                continue;
            };
            *offset += n as u64;
            partial.extend_from_slice(&buf);
            // Complete lines only; the rest waits for its newline (bounded like a line).
            if let Some(end) = partial.iter().rposition(|b| *b == b'\n') {
                let lines: Vec<u8> = partial.drain(..=end).collect();
                keylog.add_text(&String::from_utf8_lossy(&lines));
                added += lines.len();
            }
            if partial.len() > MAX_LINE_LEN {
                partial.clear();
            }
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_handshake_secrets_only_and_counts_the_rest() {
        let r = "ab".repeat(32);
        let text = format!(
            "# comment\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {r} {}\n\
             CLIENT_TRAFFIC_SECRET_0 {r} {}\n\
             CLIENT_RANDOM {r} {}\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET zz {}\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {r}\n",
            "01".repeat(32),
            "02".repeat(48),
            "03".repeat(32),
            "04".repeat(48),
            "05".repeat(32),
        );
        let k = KeyLog::new();
        k.add_text(&text);
        let s = k.get(&[0xab; 32]).unwrap();
        assert_eq!(s.client, Some(vec![1; 32]));
        assert_eq!(s.server, Some(vec![2; 48]));
        let st = k.stats();
        assert_eq!((st.secrets, st.other_labels, st.malformed), (2, 2, 2));
        assert!(k.get(&[0; 32]).is_none());
        assert!(
            !format!("{k:?}{s:?}").contains("0101"),
            "secrets never printed"
        );
    }

    #[test]
    fn follower_reads_appended_complete_lines() {
        use std::io::Write;
        let dir =
            std::env::temp_dir().join(format!("trustmap-keylog-follow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.log");
        std::fs::write(&path, "# start\n").unwrap();
        let k = KeyLog::new();
        let mut f = KeyLogFollower::new(std::slice::from_ref(&path));
        assert_eq!(f.poll(&k), 0);
        let line = format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {}",
            "cd".repeat(32),
            "09".repeat(32)
        );
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // Half a line: nothing yet.
        w.write_all(&line.as_bytes()[..40]).unwrap();
        f.poll(&k);
        assert!(k.get(&[0xcd; 32]).is_none());
        w.write_all(&line.as_bytes()[40..]).unwrap();
        w.write_all(b"\n").unwrap();
        assert!(f.poll(&k) > 0);
        assert!(k.get(&[0xcd; 32]).is_some());
        // Truncated (rotated): read again from the start.
        std::fs::write(&path, format!("{}\n", line.replace("cd", "ef"))).unwrap();
        f.poll(&k);
        assert!(k.get(&[0xef; 32]).is_some());
        // Rotated by rename to a new file already longer than the old offset: still read
        // from its start.
        let rotated = dir.join("keys.log.new");
        let [a, b, c] = ["a1", "b2", "c3"].map(|r| format!("{}\n", line.replace("cd", r)));
        std::fs::write(&rotated, format!("{a}{b}{c}")).unwrap();
        std::fs::rename(&rotated, &path).unwrap();
        f.poll(&k);
        assert!(
            k.get(&[0xa1; 32]).is_some(),
            "the rotated file's first line"
        );
        assert!(k.get(&[0xc3; 32]).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bounded_oldest_first() {
        let k = KeyLog::new();
        let mut text = String::new();
        for i in 0..(MAX_ENTRIES + 3) {
            let mut r = [0u8; 32];
            r[..8].copy_from_slice(&(i as u64).to_be_bytes());
            text.push_str(&format!(
                "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\n",
                hex::encode(r),
                "07".repeat(32)
            ));
        }
        k.add_text(&text);
        assert_eq!(k.len(), MAX_ENTRIES);
        assert_eq!(k.stats().evicted, 3);
        assert!(k.get(&[0; 32]).is_none(), "the oldest went first");
    }
}
