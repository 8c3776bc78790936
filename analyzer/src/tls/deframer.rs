//! TLS record deframer for one direction of a byte stream.
//!
//! Records may be split across `feed` calls and one handshake message may span many records (the
//! Zeek trace tls-fragmented-handshake.pcap has a 339,629-byte Certificate over ~21 records), while
//! one record may hold several messages. tls-parser does not join messages across records, so this
//! module does: it buffers at most one record plus one handshake message, both capped.
//! After the direction's ChangeCipherSpec, record payloads are ciphertext: only their content
//! types are reported.

use super::reader::{be16_at, be24};
use std::borrow::Cow;

/// Record content types.
pub mod ct {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

pub const RECORD_HEADER_LEN: usize = 5;
/// Largest record body accepted: 2^14 + 2048 (TLSCiphertext limit), plus slack for stacks that
/// overshoot it slightly.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048 + 256;
/// Handshake message header: type (1) + length (3).
pub const HS_HEADER_LEN: usize = 4;

/// Why a direction stopped being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeframeError {
    /// Content type, version or length of a record header is impossible.
    BadRecordHeader,
    /// A handshake message claims more than the configured maximum.
    MessageTooLarge,
}

/// What one direction's bytes showed, in order. A handshake message that lies whole inside a
/// record of the fed bytes is borrowed from them; one that spans records (or whose record was
/// split across `feed` calls) is copied out of the deframer's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete plaintext handshake message (body without its 4-byte header).
    Handshake {
        typ: u8,
        body: Cow<'a, [u8]>,
    },
    ChangeCipherSpec,
    /// A plaintext alert.
    Alert {
        level: u8,
        code: u8,
    },
    /// An encrypted record of type alert.
    EncryptedAlert,
    /// An encrypted handshake record (Finished, or TLS 1.3 flights after a compat CCS).
    EncryptedHandshake,
    /// A heartbeat record (RFC 6520); nothing is read from it.
    Heartbeat,
    /// An application-data record (also TLS 1.3 encrypted handshake records). The whole record
    /// (header and body) when the deframer keeps them for decryption
    /// ([`Deframer::keep_records`]), else `None`.
    ApplicationData {
        record: Option<Cow<'a, [u8]>>,
    },
    Error(DeframeError),
}

/// Is this a plausible TLS record header (SSL 3.0 .. TLS 1.3 record versions)?
pub fn plausible_record_header(h: &[u8]) -> bool {
    let (Some(&t), Some(&maj), Some(&min), Some(len)) =
        (h.first(), h.get(1), h.get(2), be16_at(h, 3))
    else {
        return false;
    };
    (ct::CHANGE_CIPHER_SPEC..=ct::HEARTBEAT).contains(&t)
        && maj == 3
        && min <= 4
        && (len as usize) <= MAX_RECORD_LEN
}

/// Deframer for one direction.
#[derive(Debug)]
pub struct Deframer {
    rec_buf: Vec<u8>,
    messages: MessageJoiner,
    encrypted: bool,
    broken: bool,
    /// Hand application-data records out whole (a key log may decrypt them).
    pub keep_records: bool,
    pub records: u64,
    pub errors: u64,
    /// Bytes ignored after the direction broke.
    pub ignored_bytes: u64,
}

impl Deframer {
    pub fn new(max_message: usize) -> Self {
        Deframer {
            rec_buf: Vec::new(),
            messages: MessageJoiner::new(max_message),
            encrypted: false,
            broken: false,
            keep_records: false,
            records: 0,
            errors: 0,
            ignored_bytes: 0,
        }
    }

    /// From now on, records are ciphertext (after a ChangeCipherSpec, or a TLS 1.3 ServerHello).
    pub fn set_encrypted(&mut self) {
        self.encrypted = true;
        self.messages.clear();
    }

    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes currently buffered (partial record + partial handshake message).
    pub fn buffered(&self) -> usize {
        self.rec_buf.len() + self.messages.buffered()
    }

    fn fail(&mut self, e: DeframeError, out: &mut Vec<Event<'_>>) {
        self.broken = true;
        self.errors += 1;
        self.rec_buf = Vec::new();
        self.messages.clear();
        out.push(Event::Error(e));
    }

    /// Feeds in-order stream bytes; appends what they completed to `out`.
    pub fn feed<'a>(&mut self, data: &'a [u8], out: &mut Vec<Event<'a>>) {
        let mut input = data;
        // Bounded: each pass consumes at least one byte or returns.
        loop {
            if self.broken {
                self.ignored_bytes += input.len() as u64;
                return;
            }
            if input.is_empty() {
                return;
            }
            // The common case (one segment, whole records), and after a buffered record: a whole
            // plausible record at the start of `input` is handled in place, without copying it
            // into the record buffer.
            if let Some(end) = self.whole_record(input) {
                let typ = input.first().copied().unwrap_or(0);
                self.records += 1;
                let whole = input.get(..end).unwrap_or_default();
                self.record(typ, whole, Cow::Borrowed, out);
                input = input.get(end..).unwrap_or_default();
                continue;
            }
            // Complete the header first.
            if self.rec_buf.len() < RECORD_HEADER_LEN {
                let need = RECORD_HEADER_LEN - self.rec_buf.len();
                let n = need.min(input.len());
                let (h, t) = input.split_at(n);
                self.rec_buf.extend_from_slice(h);
                input = t;
                if self.rec_buf.len() < RECORD_HEADER_LEN {
                    return;
                }
                if !plausible_record_header(&self.rec_buf) {
                    self.fail(DeframeError::BadRecordHeader, out);
                    continue;
                }
            }
            let body_len = be16_at(&self.rec_buf, 3).unwrap_or(0) as usize;
            let have = self.rec_buf.len() - RECORD_HEADER_LEN;
            let n = (body_len - have.min(body_len)).min(input.len());
            let (b, t) = input.split_at(n);
            self.rec_buf.extend_from_slice(b);
            input = t;
            if self.rec_buf.len() < RECORD_HEADER_LEN + body_len {
                return;
            }
            let rec = std::mem::take(&mut self.rec_buf);
            self.records += 1;
            let typ = rec.first().copied().unwrap_or(0);
            self.record(typ, &rec, |m| Cow::Owned(m.to_vec()), out);
        }
    }

    /// With no partial record buffered: the length of the whole, plausible record at the start
    /// of `input`, if it is all there.
    fn whole_record(&self, input: &[u8]) -> Option<usize> {
        if !self.rec_buf.is_empty() {
            return None;
        }
        let end = RECORD_HEADER_LEN + be16_at(input, 3)? as usize;
        (input.len() >= end && plausible_record_header(input)).then_some(end)
    }

    /// One whole record (header and body). `keep` turns bytes that lie inside `whole` into an
    /// event body: borrowed when `whole` is in the fed bytes, copied when it is in a buffer about
    /// to go.
    fn record<'a, 'b>(
        &mut self,
        typ: u8,
        whole: &'b [u8],
        keep: impl Fn(&'b [u8]) -> Cow<'a, [u8]>,
        out: &mut Vec<Event<'a>>,
    ) {
        let body = whole.get(RECORD_HEADER_LEN..).unwrap_or_default();
        match typ {
            ct::CHANGE_CIPHER_SPEC => {
                out.push(Event::ChangeCipherSpec);
                self.set_encrypted();
            }
            ct::ALERT if self.encrypted => out.push(Event::EncryptedAlert),
            ct::ALERT => {
                for a in body.chunks_exact(2) {
                    if let [level, code] = a {
                        out.push(Event::Alert {
                            level: *level,
                            code: *code,
                        });
                    }
                }
            }
            ct::HANDSHAKE if self.encrypted && !plaintext_hello(body) => {
                out.push(Event::EncryptedHandshake)
            }
            ct::HANDSHAKE => {
                if let Err(e) = self.messages.push(body, keep, out) {
                    self.fail(e, out);
                }
            }
            ct::APPLICATION_DATA => out.push(Event::ApplicationData {
                record: self.keep_records.then(|| keep(whole)),
            }),
            ct::HEARTBEAT => out.push(Event::Heartbeat),
            _ => {}
        }
    }
}

/// Joins handshake messages split across records (tls-parser does not), for the plaintext
/// records of the deframer and for the decrypted records of a TLS 1.3 flight.
#[derive(Debug, Default)]
pub struct MessageJoiner {
    buf: Vec<u8>,
    max_message: usize,
}

impl MessageJoiner {
    pub fn new(max_message: usize) -> Self {
        MessageJoiner {
            buf: Vec::new(),
            max_message,
        }
    }

    pub fn clear(&mut self) {
        self.buf = Vec::new();
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds one record's handshake content; appends each message it completes to `out`. A
    /// message that claims more than the maximum is an error (the caller stops the direction).
    /// `keep` makes an event body of a message lying whole in `body` (borrowed or copied).
    pub fn push<'a, 'b>(
        &mut self,
        body: &'b [u8],
        keep: impl Fn(&'b [u8]) -> Cow<'a, [u8]>,
        out: &mut Vec<Event<'a>>,
    ) -> Result<(), DeframeError> {
        // Fast path: no partial message pending, parse directly from the record.
        let mut rest = body;
        if self.buf.is_empty() {
            while let Some((typ, len)) = hs_header(rest) {
                if len > self.max_message {
                    return Err(DeframeError::MessageTooLarge);
                }
                let Some(msg) = rest.get(HS_HEADER_LEN..HS_HEADER_LEN + len) else {
                    break;
                };
                out.push(Event::Handshake {
                    typ,
                    body: keep(msg),
                });
                rest = rest.get(HS_HEADER_LEN + len..).unwrap_or_default();
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
        self.buf.extend_from_slice(rest);
        while let Some((typ, len)) = hs_header(&self.buf) {
            if len > self.max_message {
                return Err(DeframeError::MessageTooLarge);
            }
            if self.buf.len() < HS_HEADER_LEN + len {
                return Ok(());
            }
            let body = self
                .buf
                .get(HS_HEADER_LEN..HS_HEADER_LEN + len)
                .unwrap_or_default()
                .to_vec();
            self.buf.drain(..HS_HEADER_LEN + len);
            out.push(Event::Handshake {
                typ,
                body: Cow::Owned(body),
            });
        }
        Ok(())
    }
}

/// A record that holds exactly one ClientHello or ServerHello in the clear. After a TLS 1.3
/// HelloRetryRequest the peers send a middlebox-compatibility ChangeCipherSpec and then the second
/// hello in plaintext; an encrypted TLS <= 1.2 Finished looks like this with odds of about 2^-31.
fn plaintext_hello(body: &[u8]) -> bool {
    matches!(hs_header(body), Some((1 | 2, len)) if len + HS_HEADER_LEN == body.len())
}

fn hs_header(b: &[u8]) -> Option<(u8, usize)> {
    Some((*b.first()?, be24(b.get(1..4)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(typ: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![typ, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    fn hs(typ: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut v = vec![typ, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn message_split_across_records_and_calls() {
        let big: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let msg = hs(11, &big);
        let mut stream = Vec::new();
        for chunk in msg.chunks(512) {
            stream.extend(record(22, chunk));
        }
        // two messages in one record after it
        let mut two = hs(14, &[]);
        two.extend(hs(16, &[1, 2, 3]));
        stream.extend(record(22, &two));
        stream.extend(record(20, &[1]));
        stream.extend(record(22, &[9; 40]));
        stream.extend(record(21, &[2, 48]));
        let mut d = Deframer::new(1 << 20);
        let mut ev = Vec::new();
        for c in stream.chunks(7) {
            d.feed(c, &mut ev);
        }
        // Whole records in one call (in-place path) give the same events.
        let mut d2 = Deframer::new(1 << 20);
        let mut ev2 = Vec::new();
        d2.feed(&stream, &mut ev2);
        assert_eq!(ev, ev2);
        assert_eq!(
            ev,
            vec![
                Event::Handshake {
                    typ: 11,
                    body: big.into()
                },
                Event::Handshake {
                    typ: 14,
                    body: vec![].into()
                },
                Event::Handshake {
                    typ: 16,
                    body: vec![1, 2, 3].into()
                },
                Event::ChangeCipherSpec,
                Event::EncryptedHandshake,
                Event::EncryptedAlert,
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn caps_and_bad_headers() {
        let mut d = Deframer::new(1000);
        let mut ev = Vec::new();
        let too_large = record(22, &[11, 0, 0x10, 0]);
        d.feed(&too_large, &mut ev);
        assert_eq!(ev, vec![Event::Error(DeframeError::MessageTooLarge)]);
        assert!(d.is_broken());
        let mut d = Deframer::new(1000);
        let mut ev = Vec::new();
        let hello = record(22, &hs(1, &[]));
        d.feed(b"GET / HTTP/1.1\r\n", &mut ev);
        assert_eq!(ev, vec![Event::Error(DeframeError::BadRecordHeader)]);
        d.feed(&hello, &mut ev);
        assert_eq!(ev.len(), 1, "a broken direction stays broken");
        assert_eq!(d.errors, 1);
    }

    #[test]
    fn plaintext_alerts() {
        let mut d = Deframer::new(1000);
        let mut ev = Vec::new();
        let alerts = record(21, &[1, 112, 2, 40]);
        d.feed(&alerts, &mut ev);
        assert_eq!(
            ev,
            vec![
                Event::Alert {
                    level: 1,
                    code: 112
                },
                Event::Alert { level: 2, code: 40 }
            ]
        );
    }
}
