//! GENEVE (RFC 8926): version 0, options length in 4-byte words, protocol type (an EtherType),
//! over UDP.
use super::{ethernet, Bytes, DResult, Depth};

/// The UDP destination port of GENEVE.
pub const GENEVE_PORT: u16 = 6081;

mod field {
    use crate::decode::Field;
    /// Version (2 bits) and options length (6 bits).
    pub const VER_OPT_LEN: usize = 0;
    pub const PROTOCOL: Field = 2..4;
    /// Bytes before the options.
    pub const HEADER_LEN: usize = 8;
}
/// The only version defined.
const VERSION: u8 = 0;
const VERSION_SHIFT: u32 = 6;
const OPT_LEN_MASK: u8 = 0x3f;
/// Unit of the options length.
const OPT_LEN_UNIT: usize = 4;

/// `None` when the header does not look like GENEVE, so the datagram is handed over as plain UDP.
pub(super) fn decode(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    let first = b.u8(field::VER_OPT_LEN)?;
    if first >> VERSION_SHIFT != VERSION {
        return None;
    }
    let optlen = usize::from(first & OPT_LEN_MASK) * OPT_LEN_UNIT;
    let proto = b.u16(field::PROTOCOL)?;
    let inner = b.rest(field::HEADER_LEN + optlen..)?;
    Some(d.tunnel().and_then(|d| ethernet::dispatch(proto, inner, d)))
}
