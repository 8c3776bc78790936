//! VXLAN (RFC 7348): an 8-byte header with the I flag set, then an Ethernet frame, over UDP.
use super::{ethernet, Bytes, DResult, Depth};

/// The UDP destination port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;

mod field {
    use crate::decode::Rest;
    pub const FLAGS: usize = 0;
    pub const PAYLOAD: Rest = 8..;
}
/// The I flag: the VNI is valid.
const FLAG_I: u8 = 0x08;

/// `None` when the header does not look like VXLAN, so the datagram is handed over as plain UDP.
pub(super) fn decode(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    let flags = b.u8(field::FLAGS)?;
    if flags & FLAG_I == 0 {
        return None;
    }
    let inner = b.rest(field::PAYLOAD)?;
    Some(d.tunnel().and_then(|d| ethernet::decode(inner, d)))
}
