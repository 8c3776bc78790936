//! DTLS 1.0/1.2 over datagrams: 13-byte record headers (several records per datagram) and
//! handshake fragments (message_seq, fragment_offset, fragment_length) reassembled even when
//! reordered or duplicated. DTLS 1.3 unified-header records are ciphertext and only counted.

use crate::tls::deframer::{ct, Event};
use crate::tls::handshake::msg;
use crate::tls::reader::Rd;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

pub const DTLS_RECORD_HEADER_LEN: usize = 13;
pub const DTLS_HS_HEADER_LEN: usize = 12;
/// Messages being reassembled at once per direction (a flight holds fewer than 10).
pub const MAX_PENDING_MESSAGES: usize = 32;
/// Delivered message sequence numbers remembered per direction (for duplicate suppression).
pub const MAX_DELIVERED: usize = 256;
/// Records parsed from one datagram.
pub const MAX_RECORDS_PER_DATAGRAM: usize = 64;
/// Bytes of partial messages held per direction: reassembly buffers are allocated at the declared
/// message length, so the sum is capped to stop forged lengths from reserving memory.
pub const MAX_PENDING_BYTES: usize = 1 << 20;
/// Fragments kept per message (bounds the range list).
pub const MAX_FRAGMENTS_PER_MESSAGE: usize = 512;

/// DTLS record versions: 1.0 (0xfeff), 1.2 (0xfefd), 1.3 (0xfefc).
pub fn is_dtls_version(v: u16) -> bool {
    v == 0xfeff || v == 0xfefd || v == 0xfefc
}

/// Does the datagram start with a DTLS record header (plaintext types, DTLS version)?
pub fn looks_like_dtls(d: &[u8]) -> bool {
    let mut r = Rd::new(d);
    let (Some(t), Some(v)) = (r.u8(), r.u16()) else {
        return false;
    };
    (ct::CHANGE_CIPHER_SPEC..=ct::APPLICATION_DATA).contains(&t) && is_dtls_version(v)
}

/// Does the datagram start with a DTLS epoch-0 handshake record carrying a Client/ServerHello
/// or HelloVerifyRequest first fragment?
pub fn looks_like_dtls_hello(d: &[u8]) -> bool {
    looks_like_dtls(d)
        && d.first() == Some(&ct::HANDSHAKE)
        && d.get(3..5) == Some(&[0, 0])
        && matches!(
            d.get(DTLS_RECORD_HEADER_LEN),
            Some(&msg::CLIENT_HELLO) | Some(&msg::SERVER_HELLO) | Some(&msg::HELLO_VERIFY_REQUEST)
        )
}

/// STUN (RFC 5389): first two bits zero and the magic cookie at offset 4.
pub fn looks_like_stun(d: &[u8]) -> bool {
    d.first().is_some_and(|b| b & 0xc0 == 0) && d.get(4..8) == Some(&[0x21, 0x12, 0xa4, 0x42])
}

#[derive(Debug)]
struct Partial {
    typ: u8,
    buf: Vec<u8>,
    /// Sorted, merged covered ranges [start, end).
    ranges: Vec<(usize, usize)>,
}

impl Partial {
    fn add(&mut self, off: usize, data: &[u8]) -> bool {
        let end = off + data.len();
        if let Some(dst) = self.buf.get_mut(off..end) {
            dst.copy_from_slice(data);
        } else {
            return false;
        }
        if self.ranges.len() >= MAX_FRAGMENTS_PER_MESSAGE {
            return false;
        }
        self.ranges.push((off, end));
        self.ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.ranges.len());
        for &(s, e) in &self.ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
        true
    }

    fn complete(&self) -> bool {
        self.ranges.as_slice() == [(0, self.buf.len())] || self.buf.is_empty()
    }
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct DtlsDir {
    pending: HashMap<u16, Partial>,
    delivered: BTreeSet<u16>,
    /// version+random of the last ClientHello delivered (to tell a new handshake from a copy).
    last_client_hello: Option<Vec<u8>>,
    pub records: u64,
    pub errors: u64,
    pub dropped_fragments: u64,
}

/// What one datagram showed for a direction.
#[derive(Debug, Default)]
pub struct DatagramEvents<'a> {
    /// A message carried whole by one fragment is borrowed from the datagram.
    pub events: Vec<Event<'a>>,
    /// A ClientHello with a new random (a new handshake on the same flow) was seen: the caller
    /// resets the other direction too.
    pub new_client_hello: bool,
}

impl DtlsDir {
    pub fn reset(&mut self) {
        self.pending.clear();
        self.delivered.clear();
    }

    /// Parses one datagram's records.
    pub fn feed<'a>(&mut self, d: &'a [u8], max_message: usize) -> DatagramEvents<'a> {
        let mut out = DatagramEvents::default();
        let mut r = Rd::new(d);
        for _ in 0..MAX_RECORDS_PER_DATAGRAM {
            if r.is_empty() {
                break;
            }
            let Some(&first) = r.rest().first() else {
                break;
            };
            if first & 0xe0 == 0x20 {
                // DTLS 1.3 unified header: ciphertext until the end of the datagram.
                out.events.push(Event::ApplicationData { record: None });
                break;
            }
            let (Some(t), Some(v), Some(epoch), Some(_seq), Some(body)) =
                (r.u8(), r.u16(), r.u16(), r.take(6), r.vec16())
            else {
                self.errors += 1;
                break;
            };
            if !is_dtls_version(v) {
                self.errors += 1;
                break;
            }
            self.records += 1;
            let enc = epoch != 0;
            match t {
                ct::CHANGE_CIPHER_SPEC => out.events.push(Event::ChangeCipherSpec),
                ct::ALERT if enc => out.events.push(Event::EncryptedAlert),
                ct::ALERT => {
                    if let [level, code] = body.get(..2).unwrap_or_default() {
                        out.events.push(Event::Alert {
                            level: *level,
                            code: *code,
                        });
                    }
                }
                ct::HANDSHAKE if enc => out.events.push(Event::EncryptedHandshake),
                ct::HANDSHAKE => self.handshake(body, max_message, &mut out),
                ct::APPLICATION_DATA => out.events.push(Event::ApplicationData { record: None }),
                _ => {}
            }
        }
        out
    }

    fn handshake<'a>(&mut self, body: &'a [u8], max_message: usize, out: &mut DatagramEvents<'a>) {
        let mut r = Rd::new(body);
        for _ in 0..MAX_RECORDS_PER_DATAGRAM {
            if r.is_empty() {
                break;
            }
            let (Some(typ), Some(len), Some(seq), Some(off), Some(flen)) =
                (r.u8(), r.u24(), r.u16(), r.u24(), r.u24())
            else {
                self.errors += 1;
                return;
            };
            let Some(frag) = r.take(flen) else {
                self.errors += 1;
                return;
            };
            if len > max_message || off.checked_add(flen).is_none_or(|e| e > len) {
                self.errors += 1;
                continue;
            }
            if typ == msg::CLIENT_HELLO && off == 0 {
                let id = frag.get(..34).map(|b| b.to_vec());
                if id.is_some() && self.last_client_hello.is_some() && id != self.last_client_hello
                {
                    // Same sequence number space restarts: a new handshake.
                    self.reset();
                    out.new_client_hello = true;
                }
                if id.is_some() {
                    self.last_client_hello = id;
                }
            }
            if self.delivered.contains(&seq) {
                continue; // retransmission
            }
            if !self.pending.contains_key(&seq) {
                let held: usize = self.pending.values().map(|p| p.buf.len()).sum();
                if self.pending.len() >= MAX_PENDING_MESSAGES || held + len > MAX_PENDING_BYTES {
                    self.dropped_fragments += 1;
                    continue;
                }
            }
            if off == 0 && flen == len && !self.pending.contains_key(&seq) {
                // The whole message in one fragment: delivered as it lies in the datagram.
                self.deliver(seq);
                out.events.push(Event::Handshake {
                    typ,
                    body: Cow::Borrowed(frag),
                });
                continue;
            }
            let p = self.pending.entry(seq).or_insert_with(|| Partial {
                typ,
                buf: vec![0; len],
                ranges: Vec::new(),
            });
            if p.typ != typ || p.buf.len() != len || !p.add(off, frag) {
                self.errors += 1;
                continue;
            }
            if p.complete() {
                if let Some(p) = self.pending.remove(&seq) {
                    self.deliver(seq);
                    out.events.push(Event::Handshake {
                        typ: p.typ,
                        body: Cow::Owned(p.buf),
                    });
                }
            }
        }
    }

    /// Remembers `seq` as delivered (the oldest is forgotten past [`MAX_DELIVERED`]).
    fn deliver(&mut self, seq: u16) {
        if self.delivered.len() >= MAX_DELIVERED {
            self.delivered.pop_first();
        }
        self.delivered.insert(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(typ: u8, len: usize, seq: u16, off: usize, data: &[u8]) -> Vec<u8> {
        let mut v = vec![typ];
        v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&(off as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(data);
        v
    }

    fn record(typ: u8, epoch: u16, body: &[u8]) -> Vec<u8> {
        let mut v = vec![typ, 0xfe, 0xfd];
        v.extend_from_slice(&epoch.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reordered_duplicated_fragments() {
        let msgdata: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut d = DtlsDir::default();
        let f3 = record(22, 0, &frag(11, 300, 2, 200, &msgdata[200..]));
        let f1 = record(22, 0, &frag(11, 300, 2, 0, &msgdata[..120]));
        let f2 = record(22, 0, &frag(11, 300, 2, 100, &msgdata[100..200]));
        assert!(d.feed(&f3, 1 << 20).events.is_empty());
        assert!(d.feed(&f3, 1 << 20).events.is_empty());
        let mut two = f1.clone();
        two.extend(record(20, 0, &[1]));
        let ev = d.feed(&two, 1 << 20).events;
        assert_eq!(ev, vec![Event::ChangeCipherSpec]);
        let ev = d.feed(&f2, 1 << 20).events;
        assert_eq!(
            ev,
            vec![Event::Handshake {
                typ: 11,
                body: msgdata.clone().into()
            }]
        );
        // a retransmission of a delivered message is dropped
        assert!(d.feed(&f1, 1 << 20).events.is_empty());
        let encrypted = record(22, 1, &[0; 40]);
        let ev = d.feed(&encrypted, 1 << 20).events;
        assert_eq!(ev, vec![Event::EncryptedHandshake]);
    }

    #[test]
    fn detection() {
        let ch = record(22, 0, &frag(1, 10, 0, 0, &[0xfe; 10]));
        assert!(looks_like_dtls_hello(&ch));
        assert!(!looks_like_stun(&ch));
        let stun = [0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3];
        assert!(looks_like_stun(&stun));
        assert!(!looks_like_dtls(&stun));
    }
}
