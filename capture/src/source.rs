//! Packet sources: pcap (µs and ns), pcapng (several interfaces and link types), gzip, stdin.
//!
//! A reader thread (`chunks`) does the `read` calls and gzip inflation. Classic pcap records are
//! walked there too, with pcap-parser's frame parsers, and handed over in place in recycled
//! batches (`legacy`); pcapng goes through pcap-parser's streaming reader: a block that does not
//! fit yet (`Incomplete`) makes us refill the buffer, a block larger than the buffer makes it
//! grow, up to a cap. Whatever goes wrong after a valid file header (truncation, corrupt lengths,
//! a reader that stops making progress) ends this input with the reason in [`SourceSummary`],
//! never a panic or a hang.
use crate::RawPacket;
use pcap_parser::pcapng::{Block, SecretsType};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

mod chunks;
mod legacy;

use crate::decode::PreTcp;
use chunks::Msg;

/// Initial reader buffer.
pub const READ_BUFFER: usize = 1 << 20;
/// Largest buffer a single block may make us grow to. Real frames are below 256 KiB; a larger
/// claimed length is corruption.
pub const MAX_READ_BUFFER: usize = 16 << 20;
/// Consecutive read attempts without any new bytes or blocks before giving up.
pub const MAX_STALLS: u32 = 64;
/// Most pcapng interfaces remembered per section.
pub const MAX_INTERFACES: usize = 4096;

/// Errors that stop reading one input. Corrupt data after a valid header ends the file with a
/// counted error rather than a panic.
#[derive(Debug)]
pub enum SourceError {
    Io(std::io::Error),
    /// Not a pcap/pcapng file (bad magic).
    Format(String),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Io(e) => write!(f, "{e}"),
            SourceError::Format(s) => write!(f, "{s}"),
        }
    }
}
impl std::error::Error for SourceError {}

impl From<std::io::Error> for SourceError {
    fn from(e: std::io::Error) -> Self {
        SourceError::Io(e)
    }
}

/// Summary of one input once it has been read.
#[derive(Debug, Clone, Default)]
pub struct SourceSummary {
    pub packets: u64,
    /// True when the file ended in the middle of a block/record (truncated capture).
    pub truncated: bool,
    /// Parse error that ended the file early, if any.
    pub error: Option<String>,
    /// Packet records skipped (pcapng packet for an unknown interface, bad timestamp resolution).
    pub skipped: u64,
    /// pcapng Decryption Secrets Blocks with a TLS key log, handed to the secrets sink.
    pub secrets_blocks: u64,
}

/// Reads every packet of `path` (`-` = stdin; gzip detected by magic) and calls `f` for each.
pub fn read_file(
    path: &Path,
    f: &mut dyn FnMut(&RawPacket<'_>),
) -> Result<SourceSummary, SourceError> {
    read_file_pre(path, false, &mut |p, _| f(p))
}

/// [`read_file`], and with `predecode` each classic pcap TCP frame comes with its decode
/// ([`PreTcp`], made on the reader thread) for [`crate::Engine::process_pre`].
pub fn read_file_pre(
    path: &Path,
    predecode: bool,
    f: &mut dyn FnMut(&RawPacket<'_>, Option<&PreTcp>),
) -> Result<SourceSummary, SourceError> {
    read_file_secrets(path, predecode, f, &mut |_| {})
}

/// [`read_file_pre`], and the TLS key logs that a pcapng file carries in Decryption Secrets
/// Blocks go to `secrets`, in file order with the packets (a block's secrets reach the sink
/// before any packet after it).
pub fn read_file_secrets(
    path: &Path,
    predecode: bool,
    f: &mut dyn FnMut(&RawPacket<'_>, Option<&PreTcp>),
    secrets: &mut dyn FnMut(&[u8]),
) -> Result<SourceSummary, SourceError> {
    if path.as_os_str() == "-" {
        read_from_secrets(std::io::stdin(), predecode, f, secrets)
    } else {
        read_from_secrets(std::fs::File::open(path)?, predecode, f, secrets)
    }
}

/// Reads a pcap/pcapng stream (optionally gzip-compressed) from any reader.
pub fn read_from<R: Read + Send + 'static>(
    r: R,
    f: &mut dyn FnMut(&RawPacket<'_>),
) -> Result<SourceSummary, SourceError> {
    read_from_pre(r, false, &mut |p, _| f(p))
}

/// [`read_from`] with the optional pre-decode of [`read_file_pre`].
///
/// A reader thread (`chunks`) does the `read` calls (the kernel copy, and gzip inflation) into
/// recycled batches while this thread runs the callback, so the two overlap on two cores. For
/// classic pcap it also walks the records with pcap-parser's frame parsers while they are still in
/// its cache, and decodes the TCP frames; the records stay in place in the batch (no second copy).
/// pcapng goes through pcap-parser's streaming reader fed from the same batches.
pub fn read_from_pre<R: Read + Send + 'static>(
    r: R,
    predecode: bool,
    f: &mut dyn FnMut(&RawPacket<'_>, Option<&PreTcp>),
) -> Result<SourceSummary, SourceError> {
    read_from_secrets(r, predecode, f, &mut |_| {})
}

/// [`read_from_pre`] with the Decryption Secrets Block sink of [`read_file_secrets`].
pub fn read_from_secrets<R: Read + Send + 'static>(
    r: R,
    predecode: bool,
    f: &mut dyn FnMut(&RawPacket<'_>, Option<&PreTcp>),
    secrets: &mut dyn FnMut(&[u8]),
) -> Result<SourceSummary, SourceError> {
    let mut br = BufReader::new(r);
    let gz = {
        let head = br.fill_buf()?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let mut reader = if gz {
        chunks::Reader::spawn(flate2::bufread::MultiGzDecoder::new(br), predecode)
    } else {
        chunks::Reader::spawn(br, predecode)
    };
    match reader.next() {
        Some(Msg::Records(first)) => Ok(records(first, reader, f)),
        Some(Msg::Raw(first)) => {
            // pcapng (or not a capture: the streaming reader says so).
            let failed = Arc::new(Mutex::new(None));
            let raw = chunks::RawRead::new(first, reader);
            let mut sum = read_pcap(
                Filling::new(raw, failed.clone()),
                &mut |p| f(p, None),
                secrets,
            )?;
            if let Some(e) = failed.lock().ok().and_then(|mut g| g.take()) {
                sum.error.get_or_insert(format!("read error: {e}"));
            }
            Ok(sum)
        }
        Some(Msg::Failed(e)) if gz => Err(SourceError::Format(format!(
            "read error (corrupt gzip?): {e}"
        ))),
        Some(Msg::Failed(e)) => Err(SourceError::Io(e)),
        Some(Msg::End { .. }) | None => Err(SourceError::Format("empty input".into())),
    }
}

/// The records of one batch, to the callback.
fn deliver(
    b: &chunks::Batch,
    f: &mut dyn FnMut(&RawPacket<'_>, Option<&PreTcp>),
    sum: &mut SourceSummary,
) {
    for r in &b.recs {
        let off = r.off as usize;
        let data = b
            .buf
            .get(off..off.saturating_add(r.len as usize))
            .unwrap_or_default();
        sum.packets += 1;
        let pkt = RawPacket {
            ts_ns: r.ts_ns,
            linktype: b.linktype,
            data,
            orig_len: r.orig_len,
        };
        f(&pkt, r.pre.as_ref());
    }
}

/// The classic pcap batches from the reader thread, to the callback.
fn records(
    first: chunks::Batch,
    mut reader: chunks::Reader,
    f: &mut dyn FnMut(&RawPacket<'_>, Option<&PreTcp>),
) -> SourceSummary {
    let mut sum = SourceSummary::default();
    let mut msg = Some(Msg::Records(first));
    loop {
        match msg.take().or_else(|| reader.next()) {
            Some(Msg::Records(b)) => {
                deliver(&b, f, &mut sum);
                reader.recycle(b);
            }
            Some(Msg::End { truncated, error }) => {
                sum.truncated = truncated;
                sum.error = error;
                break;
            }
            Some(Msg::Raw(_)) | Some(Msg::Failed(_)) | None => {
                sum.error = Some("the reader thread stopped".into());
                break;
            }
        }
    }
    sum
}

/// Each `read` gathers at least [`FILL_TARGET`] bytes (or the whole buffer, or up to EOF).
/// pcap-parser checks the file header and refills after a single `read` call, so a pipe or a
/// decompressor that hands out a few bytes at a time would otherwise look like a bad header.
///
/// A read error once bytes have been delivered (a truncated or corrupt gzip stream, an I/O error
/// mid-file) ends the stream like EOF and is kept in `failed` for the summary: pcap-parser reads
/// twice while it checks the header and turns any error into a whole-input `ReadError`, which
/// would throw away every packet before the damage.
struct Filling<R> {
    inner: R,
    delivered: bool,
    stopped: bool,
    failed: Arc<Mutex<Option<std::io::Error>>>,
}

impl<R> Filling<R> {
    fn new(inner: R, failed: Arc<Mutex<Option<std::io::Error>>>) -> Self {
        Filling {
            inner,
            delivered: false,
            stopped: false,
            failed,
        }
    }
}

/// Bytes one `read` gathers before returning (covers any real pcapng section header).
pub const FILL_TARGET: usize = 64 * 1024;

impl<R: Read> Read for Filling<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stopped {
            return Ok(0);
        }
        let want = buf.len().min(FILL_TARGET);
        let mut got = 0;
        while got < want {
            let Some(space) = buf.get_mut(got..) else {
                break;
            };
            match self.inner.read(space) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if got == 0 && !self.delivered => return Err(e),
                Err(e) => {
                    // The bytes we have, then EOF; the error goes to the summary.
                    self.stopped = true;
                    if let Ok(mut g) = self.failed.lock() {
                        *g = Some(e);
                    }
                    break;
                }
            }
        }
        self.delivered |= got > 0;
        Ok(got)
    }
}

struct Iface {
    linktype: u32,
    /// Units per second; `None` when the IDB's resolution is unusable.
    resolution: Option<u64>,
    offset_s: i64,
}

/// Units per second of a pcapng `if_tsresol` (bit 7: power of two, else power of ten).
/// pcap-parser 0.17's own helper rejects every power-of-two resolution (it range-checks the
/// value before masking bit 7), hence this one.
fn ts_resolution(v: u8) -> Option<u64> {
    if v & 0x80 != 0 {
        1u64.checked_shl(u32::from(v & 0x7f))
    } else {
        10u64.checked_pow(u32::from(v))
    }
}

fn units_to_ns(units: u64, resolution: u64) -> u64 {
    if resolution == 0 {
        return 0;
    }
    let ns = u128::from(units) * 1_000_000_000 / u128::from(resolution);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

fn read_pcap<R: Read + Send>(
    r: R,
    f: &mut dyn FnMut(&RawPacket<'_>),
    secrets: &mut dyn FnMut(&[u8]),
) -> Result<SourceSummary, SourceError> {
    let mut reader = match pcap_parser::create_reader(READ_BUFFER, r) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(SourceError::Format("empty input".into())),
        Err(PcapError::ReadError) => {
            return Err(SourceError::Format("read error (corrupt gzip?)".into()))
        }
        Err(e) => {
            return Err(SourceError::Format(format!(
                "not a pcap/pcapng file: {e:?}"
            )))
        }
    };
    let mut sum = SourceSummary::default();
    let mut legacy_linktype = 0u32;
    let mut legacy_ns = false;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut last_ts = 0u64;
    let mut buf_size = READ_BUFFER;
    let mut stalls = 0u32;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_linktype = h.network.0 as u32;
                        legacy_ns = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        // Classic pcap normally goes through `legacy::walk` on the reader thread;
                        // should one reach this reader, its records become packets the same way.
                        let pkt = legacy::raw_packet(&b, legacy_linktype, legacy_ns);
                        last_ts = pkt.ts_ns;
                        sum.packets += 1;
                        f(&pkt);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        if ifaces.len() < MAX_INTERFACES {
                            ifaces.push(Iface {
                                linktype: idb.linktype.0 as u32,
                                resolution: ts_resolution(idb.if_tsresol),
                                offset_s: idb.ts_offset(),
                            });
                        }
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match ifaces.get(epb.if_id as usize) {
                            Some(Iface {
                                linktype,
                                resolution: Some(res),
                                offset_s,
                            }) => {
                                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let off_ns = offset_s.saturating_mul(1_000_000_000);
                                let ts = units_to_ns(units, *res).saturating_add_signed(off_ns);
                                last_ts = ts;
                                sum.packets += 1;
                                f(&RawPacket {
                                    ts_ns: ts,
                                    linktype: *linktype,
                                    data: epb.packet_data(),
                                    orig_len: epb.origlen,
                                });
                            }
                            _ => sum.skipped += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match ifaces.first() {
                        Some(i) => {
                            sum.packets += 1;
                            // No timestamp in an SPB: reuse the last one seen.
                            f(&RawPacket {
                                ts_ns: last_ts,
                                linktype: i.linktype,
                                data: spb.packet_data(),
                                orig_len: spb.origlen,
                            });
                        }
                        None => sum.skipped += 1,
                    },
                    PcapBlockOwned::NG(Block::DecryptionSecrets(dsb))
                        if dsb.secrets_type == SecretsType::TlsKeyLog =>
                    {
                        sum.secrets_blocks += 1;
                        secrets(dsb.data);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                if offset == 0 {
                    stalls += 1;
                    if stalls > MAX_STALLS {
                        sum.error = Some("reader made no progress".into());
                        break;
                    }
                } else {
                    stalls = 0;
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                sum.truncated = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                let before = reader.data().len();
                if let Err(e) = reader.refill() {
                    sum.error = Some(format!("read error: {e:?}"));
                    break;
                }
                if reader.data().len() == before && !reader.reader_exhausted() {
                    stalls += 1;
                    if stalls > MAX_STALLS {
                        sum.error = Some("reader made no progress".into());
                        break;
                    }
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if buf_size >= MAX_READ_BUFFER {
                    sum.error = Some("record larger than the read buffer cap".into());
                    break;
                }
                buf_size = buf_size.saturating_mul(2).min(MAX_READ_BUFFER);
                if !reader.grow(buf_size) {
                    sum.error = Some("could not grow the read buffer".into());
                    break;
                }
                if let Err(e) = reader.refill() {
                    sum.error = Some(format!("read error: {e:?}"));
                    break;
                }
            }
            Err(e) => {
                sum.error = Some(format!("parse error: {e:?}"));
                break;
            }
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A classic pcap of `n` Ethernet-sized records.
    fn pcap(n: u32) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend([0; 8]);
        v.extend(65535u32.to_le_bytes());
        v.extend(1u32.to_le_bytes());
        for i in 0..n {
            v.extend(i.to_le_bytes());
            v.extend(0u32.to_le_bytes());
            v.extend(200u32.to_le_bytes());
            v.extend(200u32.to_le_bytes());
            v.extend((0..200).map(|j| (i * 7 + j) as u8));
        }
        v
    }

    fn count(bytes: &[u8]) -> Result<(u64, SourceSummary), SourceError> {
        let mut n = 0;
        let sum = read_from(std::io::Cursor::new(bytes.to_vec()), &mut |_| n += 1)?;
        Ok((n, sum))
    }

    /// Regression: a gzip stream cut after its first blocks used to fail the whole input ("read
    /// error (corrupt gzip?)", exit 1 from the CLI) because pcap-parser reads twice while it checks
    /// the header and maps any error to `ReadError`. The packets before the damage must come out,
    /// with the reason in the summary.
    #[test]
    fn truncated_gzip_yields_the_packets_before_the_cut() {
        let raw = pcap(300);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let (all, _) = count(&gz).unwrap();
        assert_eq!(all, 300);
        for cut in [gz.len() / 3, gz.len() / 2, gz.len() - 9, gz.len() - 1] {
            let (n, sum) = count(&gz[..cut]).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            // Near the end only the trailer (CRC, length) may be lost: every packet, still flagged.
            assert!(
                n > 0 && (n < 300 || cut > gz.len() - 10),
                "cut {cut}: {n} packets"
            );
            assert!(
                sum.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("read error"))
                    || sum.truncated,
                "cut {cut}: {sum:?}"
            );
        }
        // Damage in the gzip header: no capture header at all, a file-level error.
        assert!(matches!(count(&gz[..5]), Err(SourceError::Format(_))));
    }

    /// Records of every size, straddling chunk boundaries at every kind of offset (inside the
    /// record header, inside the data, one larger than a whole chunk), read from a file-like
    /// reader and from one that hands out odd-sized pieces: the same packets as pcap-parser's own
    /// streaming reader, and a cut anywhere flags the truncation after the whole records.
    #[test]
    fn records_across_chunk_boundaries_match_pcap_parsers_reader() {
        use pcap_parser::traits::PcapReaderIterator;
        let mut raw = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        raw.extend([0; 8]);
        raw.extend(262_144u32.to_le_bytes());
        raw.extend(1u32.to_le_bytes());
        let mut sizes: Vec<u32> = (0..3000).map(|i| (i * 7919 % 1600) as u32).collect();
        sizes.insert(1000, (chunks::CHUNK + 4321) as u32);
        sizes.insert(5, 0);
        for (i, &len) in sizes.iter().enumerate() {
            raw.extend((i as u32).to_le_bytes());
            raw.extend(7u32.to_le_bytes());
            raw.extend(len.to_le_bytes());
            raw.extend((len + 3).to_le_bytes());
            raw.extend((0..len).map(|j| (i as u32 * 13 + j) as u8));
        }
        let mut want = Vec::new();
        let mut r = pcap_parser::LegacyPcapReader::new(1 << 21, &raw[..]).unwrap();
        loop {
            match r.next() {
                Ok((off, PcapBlockOwned::Legacy(b))) => {
                    want.push((
                        u64::from(b.ts_sec) * 1_000_000_000 + 7000,
                        b.origlen,
                        b.data.to_vec(),
                    ));
                    r.consume(off);
                }
                Ok((off, _)) => r.consume(off),
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => r.refill().unwrap(),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(want.len(), sizes.len());

        struct Pieces(Vec<u8>, usize, usize);
        impl Read for Pieces {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.2).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let collect = |r: Box<dyn Read + Send>| {
            let mut got = Vec::new();
            let sum =
                read_from(r, &mut |p| got.push((p.ts_ns, p.orig_len, p.data.to_vec()))).unwrap();
            (got, sum)
        };
        for step in [usize::MAX, 4099, 65_537] {
            let (got, sum) = collect(Box::new(Pieces(raw.clone(), 0, step)));
            assert!(
                got == want,
                "step {step}: {} of {} packets",
                got.len(),
                want.len()
            );
            assert!(!sum.truncated && sum.error.is_none(), "{sum:?}");
        }
        // Cuts: inside a record header and inside the data, before and after the big record.
        let mut at = 24;
        let mut ends = Vec::new();
        for &len in &sizes {
            at += 16 + len as usize;
            ends.push(at);
        }
        for k in [3usize, 999, 1000, 1001, 2500] {
            for into in [5usize, 16 + 1] {
                let cut = ends[k] + into;
                let (got, sum) = collect(Box::new(Pieces(raw[..cut].to_vec(), 0, 70_001)));
                assert_eq!(got.len(), k + 1, "cut {cut}");
                assert!(got[..] == want[..k + 1]);
                assert!(sum.truncated, "cut {cut}: {sum:?}");
            }
        }
    }

    /// An I/O error after some bytes ends the input like a truncation, with the error kept.
    #[test]
    fn read_error_mid_file_ends_the_input() {
        struct Failing(Vec<u8>, usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.1 >= self.0.len() {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let n = buf.len().min(100).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let raw = pcap(50);
        let cut = raw[..24 + 216 * 10 + 50].to_vec();
        let mut n = 0;
        let sum = read_from(Failing(cut, 0), &mut |_| n += 1).unwrap();
        assert_eq!(n, 10);
        assert_eq!(sum.error.as_deref(), Some("read error: disk on fire"));
    }
}
