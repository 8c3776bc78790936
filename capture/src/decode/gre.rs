//! GRE (RFC 2784/2890) version 0, with checksum/key/sequence fields, carrying IP, transparent
//! Ethernet, ERSPAN type I/II/III (mirrored frames) or anything else with an EtherType.
use super::{ethernet, ethertype, link, Bytes, DResult, DecodeProblem, Depth};

mod field {
    use crate::decode::Field;
    pub const FLAGS_VERSION: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
    /// Bytes before the optional fields.
    pub const HEADER_LEN: usize = 4;
    /// Each optional field (checksum+reserved, key, sequence number).
    pub const OPTION_LEN: usize = 4;
}
/// Flag bits of the first 16 bits.
const FLAG_CHECKSUM: u16 = 0x8000;
/// Source routing (RFC 1701), deprecated.
const FLAG_ROUTING: u16 = 0x4000;
const FLAG_KEY: u16 = 0x2000;
const FLAG_SEQUENCE: u16 = 0x1000;
const VERSION_MASK: u16 = 0x0007;

/// ERSPAN type II header (its presence is flagged by GRE's sequence number).
const ERSPAN2_HEADER_LEN: usize = 8;

/// ERSPAN type III header.
mod erspan3_field {
    /// Holds the frame type (5 bits, shifted left by 2).
    pub const FRAME_TYPE: usize = 10;
    /// Holds the O bit: an 8-byte platform-specific sub-header follows.
    pub const FLAGS: usize = 11;
    pub const HEADER_LEN: usize = 12;
    pub const HEADER_LEN_WITH_SUBHEADER: usize = 20;
}
const ERSPAN3_FLAG_O: u8 = 0x01;
const ERSPAN3_FRAME_TYPE_SHIFT: u32 = 2;
const ERSPAN3_FRAME_TYPE_MASK: u8 = 0x1f;
/// Frame type 0: Ethernet; any other is taken as IP.
const ERSPAN3_FRAME_ETHERNET: u8 = 0;

/// A GRE packet and its payload (one more tunnel).
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.tunnel()?;
    let b = Bytes(data);
    let flags = b
        .u16(field::FLAGS_VERSION)
        .ok_or(DecodeProblem::BadTunnel)?;
    let proto = b.u16(field::PROTOCOL).ok_or(DecodeProblem::BadTunnel)?;
    if flags & VERSION_MASK != 0 {
        // Version 1 is PPTP's enhanced GRE (mostly MPPE-encrypted PPP).
        return Err(DecodeProblem::BadTunnel);
    }
    if flags & FLAG_ROUTING != 0 {
        return Err(DecodeProblem::BadTunnel);
    }
    let seq = flags & FLAG_SEQUENCE != 0;
    let options = [FLAG_CHECKSUM, FLAG_KEY, FLAG_SEQUENCE]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count();
    let off = field::HEADER_LEN + options * field::OPTION_LEN;
    let rest = b.rest(off..).ok_or(DecodeProblem::BadTunnel)?;
    match proto {
        ethertype::ERSPAN2 => {
            if !seq {
                // ERSPAN type I: no ERSPAN header, the mirrored frame follows directly.
                return ethernet::decode(rest, d);
            }
            ethernet::decode(
                rest.get(ERSPAN2_HEADER_LEN..)
                    .ok_or(DecodeProblem::BadTunnel)?,
                d,
            )
        }
        ethertype::ERSPAN3 => {
            let e = Bytes(rest);
            let last = e.u8(erspan3_field::FLAGS).ok_or(DecodeProblem::BadTunnel)?;
            let ft = (e
                .u8(erspan3_field::FRAME_TYPE)
                .ok_or(DecodeProblem::BadTunnel)?
                >> ERSPAN3_FRAME_TYPE_SHIFT)
                & ERSPAN3_FRAME_TYPE_MASK;
            let hdr = if last & ERSPAN3_FLAG_O != 0 {
                erspan3_field::HEADER_LEN_WITH_SUBHEADER
            } else {
                erspan3_field::HEADER_LEN
            };
            let inner = rest.get(hdr..).ok_or(DecodeProblem::BadTunnel)?;
            match ft {
                ERSPAN3_FRAME_ETHERNET => ethernet::decode(inner, d),
                _ => link::raw_ip(inner, d),
            }
        }
        _ => ethernet::dispatch(proto, rest, d),
    }
}
