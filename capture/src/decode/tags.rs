//! Tags between an EtherType and the payload's EtherType, as switches, fabric extenders and
//! mirror sessions insert them: Cisco TrustSec metadata (CMD, 0x8909, carrying the SGT), VN-Tag
//! (0x8926), IEEE 802.1BR E-Tag (0x893f), Cisco TTag timestamps (0x8988), IEEE 802.1CB R-TAG
//! (0xf1c1) and IEEE 802.1ah PBB's I-TAG (0x88e7, then the customer's MAC addresses). Each is a
//! tag of known size (CMD: given by its length field), then the inner EtherType.
use super::{ethernet, Bytes, DResult, DecodeProblem, Depth};

/// EtherTypes of the tags read here.
pub mod ethertype {
    pub const CISCO_METADATA: u16 = 0x8909;
    pub const VN_TAG: u16 = 0x8926;
    pub const E_TAG: u16 = 0x893f;
    pub const CISCO_TTAG: u16 = 0x8988;
    pub const R_TAG: u16 = 0xf1c1;
    pub const PBB_I_TAG: u16 = 0x88e7;
}

/// Cisco MetaData: version, length (in 4-byte option units), the options (the SGT option),
/// then the EtherType (Wireshark's packet-cisco-metadata.c; one option is 6 bytes in all).
mod cmd_field {
    pub const LENGTH: usize = 1;
    /// Version and length, before the options.
    pub const FIXED_LEN: usize = 2;
    pub const OPTION_UNIT: usize = 4;
}
/// Most CMD option units believed (the length field is one byte).
const MAX_CMD_OPTION_UNITS: usize = 8;

/// Bytes of each fixed-size tag before the inner EtherType.
const VN_TAG_LEN: usize = 4;
const E_TAG_LEN: usize = 6;
/// 48-bit timestamp (nanoseconds).
const TTAG_LEN: usize = 6;
/// Reserved (2 bytes) and sequence number (2 bytes).
const R_TAG_LEN: usize = 4;
/// I-TAG TCI with the I-SID (4 bytes), then the customer destination and source MACs (12).
const PBB_LEN: usize = 16;
/// The inner EtherType.
const ETHERTYPE_LEN: usize = 2;

/// `None` when `et` is not one of these tags.
pub(super) fn decode(et: u16, data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    let tag_len = match et {
        ethertype::CISCO_METADATA => {
            let units = b.u8(cmd_field::LENGTH).map(usize::from).unwrap_or(0);
            cmd_field::FIXED_LEN + units.clamp(1, MAX_CMD_OPTION_UNITS) * cmd_field::OPTION_UNIT
        }
        ethertype::VN_TAG => VN_TAG_LEN,
        ethertype::E_TAG => E_TAG_LEN,
        ethertype::CISCO_TTAG => TTAG_LEN,
        ethertype::R_TAG => R_TAG_LEN,
        ethertype::PBB_I_TAG => PBB_LEN,
        _ => return None,
    };
    Some(inner(b, tag_len, d))
}

fn inner(b: Bytes<'_>, tag_len: usize, d: Depth) -> DResult<'_> {
    let inner = b
        .u16(tag_len..tag_len + ETHERTYPE_LEN)
        .ok_or(DecodeProblem::TruncatedLink)?;
    let rest = b
        .rest(tag_len + ETHERTYPE_LEN..)
        .ok_or(DecodeProblem::TruncatedLink)?;
    ethernet::dispatch(inner, rest, d)
}
