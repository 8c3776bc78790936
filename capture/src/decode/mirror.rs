//! Remote-mirroring encapsulations over UDP: TZSP (TaZmen Sniffer Protocol, UDP 37008, sent by
//! MikroTik and others) and HP/Aruba ERM (Encapsulated Remote Mirroring, a 12-byte header before
//! the mirrored frame; its UDP port is configured on the switch, 7932 in HP's examples, and a
//! frame is only taken when it looks like Ethernet carrying IP). Cisco ERSPAN is in `gre`;
//! VXLAN (AWS Traffic Mirroring, Azure vTAP) and GENEVE (GCP out-of-band mirroring) in their
//! own files.
use super::{ethernet, Bytes, DResult, Decoded, Depth};

pub const TZSP_PORT: u16 = 37008;
pub const HP_ERM_PORT: u16 = 7932;

mod tzsp_field {
    use crate::decode::Field;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const ENCAPSULATION: Field = 2..4;
    pub const TAGS: usize = 4;
}
const TZSP_VERSION: u8 = 1;
/// Packet types that carry a captured frame: received, for transmit.
const TZSP_TYPE_RECEIVED: u8 = 0;
const TZSP_TYPE_TRANSMIT: u8 = 1;
const TZSP_ENCAP_ETHERNET: u16 = 1;
const TZSP_TAG_PADDING: u8 = 0;
const TZSP_TAG_END: u8 = 1;
/// Tagged fields read before giving up.
const MAX_TZSP_TAGS: usize = 64;

/// A TZSP datagram's captured Ethernet frame; keepalives and other encapsulations are of no
/// interest.
pub(super) fn tzsp(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    if b.u8(tzsp_field::VERSION)? != TZSP_VERSION {
        return None;
    }
    let ty = b.u8(tzsp_field::TYPE)?;
    if ty != TZSP_TYPE_RECEIVED && ty != TZSP_TYPE_TRANSMIT {
        return Some(Ok(Decoded::Other));
    }
    if b.u16(tzsp_field::ENCAPSULATION)? != TZSP_ENCAP_ETHERNET {
        return Some(Ok(Decoded::Other));
    }
    let mut off = tzsp_field::TAGS;
    for _ in 0..MAX_TZSP_TAGS {
        match b.u8(off)? {
            TZSP_TAG_END => {
                let frame = b.rest(off + 1..)?;
                return Some(d.tunnel().and_then(|d| ethernet::decode(frame, d)));
            }
            TZSP_TAG_PADDING => off += 1,
            _ => off += 2 + usize::from(b.u8(off + 1)?),
        }
    }
    None
}

/// HP ERM header length.
const HP_ERM_HEADER_LEN: usize = 12;

/// An HP ERM datagram's mirrored frame.
pub(super) fn hp_erm(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let frame = data.get(HP_ERM_HEADER_LEN..)?;
    if !ethernet::carries_ip(frame) {
        return None;
    }
    Some(d.tunnel().and_then(|d| ethernet::decode(frame, d)))
}
