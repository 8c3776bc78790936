//! Tunnels recognised by UDP port that carry subscriber or remote traffic: GTP-U (3GPP TS 29.281,
//! UDP 2152) from a mobile core, L2TP (RFC 2661 v2 with PPP, RFC 3931 v3 with Ethernet; UDP
//! 1701, or v3 directly over IP protocol 115), and Teredo (RFC 4380, UDP 3544). Each returns
//! `None` when the datagram does not look like its tunnel, so it is handed over as plain UDP.
use super::{ethernet, ipv6, link, ppp, Bytes, DResult, DecodeProblem, Decoded, Depth};

pub const GTPU_PORT: u16 = 2152;
pub const L2TP_PORT: u16 = 1701;
pub const TEREDO_PORT: u16 = 3544;

mod gtp_field {
    use crate::decode::Field;
    pub const FLAGS: usize = 0;
    pub const MESSAGE_TYPE: usize = 1;
    /// Bytes after the mandatory 8-byte header (optional fields and extensions included).
    pub const LENGTH: Field = 2..4;
    pub const HEADER_LEN: usize = 8;
    /// Sequence number (2), N-PDU number (1), next extension header type (1).
    pub const OPTIONAL_LEN: usize = 4;
    /// The next extension header type, last of the optional fields.
    pub const NEXT_EXT: usize = 11;
}
const GTP_VERSION_1: u8 = 1;
const GTP_VERSION_SHIFT: u32 = 5;
/// Protocol type: GTP (not GTP').
const GTP_FLAG_PT: u8 = 0x10;
/// E, S or PN: the 4 optional bytes are present.
const GTP_FLAGS_OPTIONAL: u8 = 0x07;
/// T-PDU: a subscriber's packet.
const GTP_G_PDU: u8 = 0xff;
/// Extension headers read before giving up.
const MAX_GTP_EXTENSIONS: usize = 16;
const EXT_UNIT: usize = 4;

/// A GTP-U datagram: the subscriber's IP packet of a G-PDU; echo, error indication and end
/// marker messages are of no interest.
pub(super) fn gtpu(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    let flags = b.u8(gtp_field::FLAGS)?;
    if flags >> GTP_VERSION_SHIFT != GTP_VERSION_1 || flags & GTP_FLAG_PT == 0 {
        return None;
    }
    if b.u8(gtp_field::MESSAGE_TYPE)? != GTP_G_PDU {
        return Some(Ok(Decoded::Other));
    }
    let len = usize::from(b.u16(gtp_field::LENGTH)?);
    let body = data.get(..gtp_field::HEADER_LEN + len).unwrap_or(data);
    let b = Bytes(body);
    let mut off = gtp_field::HEADER_LEN;
    if flags & GTP_FLAGS_OPTIONAL != 0 {
        off += gtp_field::OPTIONAL_LEN;
        let mut next = b.u8(gtp_field::NEXT_EXT)?;
        let mut n = 0;
        while next != 0 {
            n += 1;
            if n > MAX_GTP_EXTENSIONS {
                return Some(Err(DecodeProblem::BadTunnel));
            }
            // Length in 4-byte units (contents and the next type, its last byte).
            let units = usize::from(b.u8(off)?);
            if units == 0 {
                return Some(Err(DecodeProblem::BadTunnel));
            }
            off += units * EXT_UNIT;
            next = b.u8(off - 1)?;
        }
    }
    let inner = b.rest(off..)?;
    Some(d.tunnel().and_then(|d| link::raw_ip(inner, d)))
}

mod l2tp_field {
    use crate::decode::Field;
    pub const FLAGS_VERSION: Field = 0..2;
}
const L2TP_FLAG_T: u16 = 0x8000;
const L2TP_FLAG_L: u16 = 0x4000;
const L2TP_FLAG_S: u16 = 0x0800;
const L2TP_FLAG_O: u16 = 0x0200;
const L2TP_VERSION_MASK: u16 = 0x000f;
const L2TP_V2: u16 = 2;
const L2TP_V3: u16 = 3;
/// Tunnel id and session id (v2).
const L2TP_V2_IDS_LEN: usize = 4;
/// Ns and Nr (v2).
const L2TP_V2_SEQ_LEN: usize = 4;
/// v3 over UDP: flags/version, reserved, then the session id.
const L2TP_V3_UDP_HEADER_LEN: usize = 4;
const SESSION_ID_LEN: usize = 4;

/// An L2TP datagram over UDP: a v2 data message's PPP frame, or a v3 session's Ethernet frame;
/// control messages are of no interest.
pub(super) fn l2tp_udp(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    let fv = b.u16(l2tp_field::FLAGS_VERSION)?;
    match fv & L2TP_VERSION_MASK {
        L2TP_V2 if fv & L2TP_FLAG_T != 0 => Some(Ok(Decoded::Other)),
        L2TP_V2 => {
            let mut off = l2tp_field::FLAGS_VERSION.end;
            if fv & L2TP_FLAG_L != 0 {
                off += 2;
            }
            off += L2TP_V2_IDS_LEN;
            if fv & L2TP_FLAG_S != 0 {
                off += L2TP_V2_SEQ_LEN;
            }
            if fv & L2TP_FLAG_O != 0 {
                let pad = usize::from(b.u16(off..off + 2)?);
                off += 2 + pad;
            }
            let ppp_frame = b.rest(off..)?;
            Some(d.tunnel().and_then(|d| ppp::decode(ppp_frame, d)))
        }
        L2TP_V3 if fv & L2TP_FLAG_T != 0 => Some(Ok(Decoded::Other)),
        L2TP_V3 => l2tpv3_session(b.rest(L2TP_V3_UDP_HEADER_LEN..)?, d),
        _ => None,
    }
}

/// L2TPv3 directly over IP (protocol 115): session id 0 is a control message.
pub(super) fn l2tpv3_ip(data: &[u8], d: Depth) -> DResult<'_> {
    l2tpv3_session(data, d).unwrap_or(Err(DecodeProblem::BadTunnel))
}

/// Cookie and L2-specific sublayer sizes tried, in order: both are configured per session and
/// never announced, so (like Wireshark's "Detect") the first layout that leaves a plausible
/// Ethernet frame wins.
const L2TPV3_LAYOUTS: [(usize, usize); 6] = [(0, 4), (0, 0), (4, 4), (4, 0), (8, 4), (8, 0)];

/// An L2TPv3 session header (session id, cookie, sublayer) and its Ethernet pseudowire frame.
fn l2tpv3_session(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    if b.u32(0..SESSION_ID_LEN)? == 0 {
        return Some(Ok(Decoded::Other));
    }
    let frame = L2TPV3_LAYOUTS.iter().find_map(|(cookie, sub)| {
        let f = b.rest(SESSION_ID_LEN + cookie + sub..)?;
        ethernet::carries_ip(f).then_some(f)
    })?;
    Some(d.tunnel().and_then(|d| ethernet::decode(frame, d)))
}

/// Teredo indicators before the IPv6 packet.
const TEREDO_AUTH: u16 = 0x0001;
const TEREDO_ORIGIN: u16 = 0x0000;
/// Origin indication: indicator, port, address.
const TEREDO_ORIGIN_LEN: usize = 8;
/// Authentication: indicator, client id length, auth value length, then id and value, then
/// nonce (8) and confirmation (1).
const TEREDO_AUTH_FIXED: usize = 4 + 8 + 1;
const IPV6_HEADER_LEN: usize = 40;

/// A Teredo datagram: an IPv6 packet, perhaps after an authentication and an origin indication.
pub(super) fn teredo(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    let mut off = 0;
    if b.u16(0..2)? == TEREDO_AUTH {
        let id = usize::from(b.u8(2)?);
        let au = usize::from(b.u8(3)?);
        off += TEREDO_AUTH_FIXED + id + au;
    }
    if b.u16(off..off + 2)? == TEREDO_ORIGIN {
        off += TEREDO_ORIGIN_LEN;
    }
    let inner = b.rest(off..)?;
    // An IPv6 header whose payload length fits the datagram (Teredo has no other marker).
    let i = Bytes(inner);
    let fits = i
        .u16(4..6)
        .is_some_and(|l| usize::from(l) + IPV6_HEADER_LEN <= inner.len());
    if !fits || inner.first().map(|&v| super::ip_version(v)) != Some(ipv6::VERSION) {
        return None;
    }
    Some(d.tunnel().and_then(|d| ipv6::decode(inner, d)))
}
