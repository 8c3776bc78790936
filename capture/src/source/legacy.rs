//! Classic pcap on the reader thread: records walked with pcap-parser's frame parsers right after
//! the `read` that brought them in (still in this core's cache), each TCP frame decoded
//! ([`PreTcp::decode`]), and whole records handed over in batches. A record cut by the end of a
//! batch is carried to the start of the next one: the only copy, one record per batch.
use super::chunks::{fill, Batch, Feed, Filled, Msg, Rec, MIN_FILL};
use super::MAX_READ_BUFFER;
use crate::decode::PreTcp;
use crate::RawPacket;
use pcap_parser::nom::{Err as NomErr, Needed};
use pcap_parser::pcap::{
    parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, LegacyPcapBlock, PcapHeader,
};
use std::io::Read;

/// Size of the classic pcap file header.
const FILE_HEADER: usize = 24;

#[derive(Clone, Copy)]
enum Layout {
    Le,
    Be,
    /// Kuznetzov's "modified" pcap: 24-byte record headers.
    Modified,
}

enum Parsed<'a> {
    /// The record and the bytes after it.
    Record(LegacyPcapBlock<'a>, usize),
    /// This many more bytes are needed (at least 1).
    Need(usize),
    Bad(String),
}

fn parse(layout: Layout, i: &[u8]) -> Parsed<'_> {
    let r = match layout {
        Layout::Le => parse_pcap_frame(i),
        Layout::Be => parse_pcap_frame_be(i),
        Layout::Modified => parse_pcap_frame_modified(i),
    };
    match r {
        Ok((rest, b)) => Parsed::Record(b, rest.len()),
        Err(NomErr::Incomplete(Needed::Size(n))) => Parsed::Need(n.get()),
        Err(NomErr::Incomplete(Needed::Unknown)) => Parsed::Need(1),
        Err(e) => Parsed::Bad(format!("parse error: {e:?}")),
    }
}

/// Nanoseconds per second, and per unit of a microsecond-precision record's fraction.
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_US: u64 = 1_000;

/// One classic pcap record as a [`RawPacket`]: its timestamp in nanoseconds (the fraction is in
/// µs, or in ns for a nanosecond-precision file) and its captured bytes (at most `caplen`). The
/// only place a classic pcap record becomes a packet, for this walk and for the streaming
/// reader's [`super::read_pcap`].
pub(super) fn raw_packet<'a>(rec: &LegacyPcapBlock<'a>, linktype: u32, ns: bool) -> RawPacket<'a> {
    let frac = if ns {
        u64::from(rec.ts_usec)
    } else {
        u64::from(rec.ts_usec).saturating_mul(NS_PER_US)
    };
    RawPacket {
        ts_ns: u64::from(rec.ts_sec)
            .saturating_mul(NS_PER_S)
            .saturating_add(frac),
        linktype,
        data: rec.data.get(..rec.caplen as usize).unwrap_or(rec.data),
        orig_len: rec.origlen,
    }
}

/// Walks a classic pcap whose file header is at the front of `b` and sends its records: each read
/// step is walked right after it, and a batch goes out when it has no room for another step.
pub(super) fn walk<R: Read>(
    mut r: R,
    mut b: Batch,
    mut filled: Filled,
    header: PcapHeader,
    feed: &mut Feed,
    predecode: bool,
) {
    let layout = if header.is_modified_format() {
        Layout::Modified
    } else if header.is_bigendian() {
        Layout::Be
    } else {
        Layout::Le
    };
    let linktype = header.network.0 as u32;
    let ns = header.is_nanosecond_precision();
    let mut at = FILE_HEADER;
    loop {
        b.linktype = linktype;
        // Whole records in b[at..len]; `need` is the size of the cut one at the end, if any.
        let mut need = 0usize;
        let mut error = None;
        loop {
            let rest = b.buf.get(at..b.len).unwrap_or_default();
            match parse(layout, rest) {
                Parsed::Record(rec, left) => {
                    let pkt = raw_packet(&rec, linktype, ns);
                    let end = b.len - left;
                    let off = end - rec.data.len();
                    let pre = if predecode {
                        PreTcp::decode(&pkt)
                    } else {
                        None
                    };
                    // Offsets fit: a batch is at most MAX_READ_BUFFER long.
                    b.recs.push(Rec {
                        ts_ns: pkt.ts_ns,
                        off: off as u32,
                        len: rec.data.len() as u32,
                        orig_len: rec.origlen,
                        pre,
                    });
                    at = end;
                }
                Parsed::Need(n) => {
                    need = rest.len().saturating_add(n);
                    if need > MAX_READ_BUFFER {
                        error = Some("record larger than the read buffer cap".to_string());
                    }
                    break;
                }
                Parsed::Bad(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if error.is_none() && !filled.eof {
            // Room for another read step (and for the cut record): walk on in the same batch.
            let room = b.buf.len().saturating_sub(b.len);
            if room >= MIN_FILL && at.saturating_add(need) <= b.buf.len() {
                let want = b.len.saturating_add(MIN_FILL).max(at.saturating_add(need));
                filled = fill(&mut r, &mut b, want);
                continue;
            }
        }
        let cut = b.buf.get(at..b.len).unwrap_or_default();
        let carried = cut.len();
        let ending = error.is_some() || filled.eof;
        let mut next = if ending {
            Batch::default()
        } else {
            feed.batch(need)
        };
        if !ending {
            if let Some(dst) = next.buf.get_mut(..carried) {
                dst.copy_from_slice(cut);
                next.len = carried;
            }
        }
        b.len = at;
        if !feed.send(Msg::Records(b)) {
            return;
        }
        if ending {
            // A parse error ends the input where it is; a record cut by the end of the input (or
            // by a read error) is a truncation.
            let truncated = carried > 0 && error.is_none();
            let error = error.or_else(|| filled.failed.map(|e| format!("read error: {e}")));
            feed.send(Msg::End { truncated, error });
            return;
        }
        b = next;
        at = 0;
        filled = fill(&mut r, &mut b, need.max(carried.saturating_add(MIN_FILL)));
    }
}
