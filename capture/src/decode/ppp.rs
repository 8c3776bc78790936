//! PPP (optionally in HDLC framing) and the PPPoE session stage that carries it.
use super::{ipv4, ipv6, Bytes, DResult, DecodeProblem, Decoded, Depth};

/// PPP header, after the optional HDLC address and control bytes.
mod field {
    use crate::decode::Field;
    pub const PROTOCOL: Field = 0..2;
    /// Bytes before the payload.
    pub const HEADER_LEN: usize = 2;
}

/// HDLC-like framing (RFC 1662): address 0xff, control 0x03, before the PPP header.
mod hdlc_field {
    use crate::decode::Field;
    pub const ADDRESS_CONTROL: Field = 0..2;
    pub const HEADER_LEN: usize = 2;
}
const HDLC_ADDRESS_CONTROL: u16 = 0xff03;

/// PPP protocol numbers.
mod protocol {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    /// Link and network control protocols (LCP, IPCP, IPV6CP, CHAP, PAP, CCP...): no payload for
    /// us.
    pub const CONTROL: [u16; 7] = [0xc021, 0x8021, 0x8057, 0xc223, 0xc023, 0x80fd, 0x00fd];
}

/// PPPoE header (RFC 2516).
mod pppoe_field {
    use crate::decode::{Field, Rest};
    pub const VER_TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const LENGTH: Field = 4..6;
    pub const PAYLOAD: Rest = 6..;
}
/// PPPoE version 1, type 1.
const PPPOE_VER_TYPE: u8 = 0x11;
/// The code of a session-stage packet.
const PPPOE_SESSION_CODE: u8 = 0;

/// A PPP frame (optionally with HDLC address/control 0xff 0x03).
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let start = if b.u16(hdlc_field::ADDRESS_CONTROL) == Some(HDLC_ADDRESS_CONTROL) {
        hdlc_field::HEADER_LEN
    } else {
        0
    };
    let proto = super::shifted(field::PROTOCOL, start)
        .and_then(|f| b.u16(f))
        .ok_or(DecodeProblem::TruncatedLink)?;
    let rest = b
        .rest(start + field::HEADER_LEN..)
        .ok_or(DecodeProblem::TruncatedLink)?;
    match proto {
        protocol::IPV4 => ipv4::decode(rest, d),
        protocol::IPV6 => ipv6::decode(rest, d),
        p if protocol::CONTROL.contains(&p) => Ok(Decoded::Other),
        p => Err(DecodeProblem::UnsupportedPppProtocol(p)),
    }
}

/// A PPPoE session-stage packet: ver/type 0x11, code 0x00, session id, length; then PPP.
pub(super) fn pppoe_session(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    if b.u8(pppoe_field::VER_TYPE) != Some(PPPOE_VER_TYPE)
        || b.u8(pppoe_field::CODE) != Some(PPPOE_SESSION_CODE)
    {
        return Err(DecodeProblem::BadTunnel);
    }
    // The PPPoE length excludes Ethernet padding. Trust it over the IP total length (in the Zeek
    // trace pppoe-over-qinq, an IPv4 header claims 46 bytes where PPPoE correctly says 40: the
    // rest is padding that must not become TCP payload).
    let len = usize::from(
        b.u16(pppoe_field::LENGTH)
            .ok_or(DecodeProblem::TruncatedLink)?,
    );
    let body = b
        .rest(pppoe_field::PAYLOAD)
        .ok_or(DecodeProblem::TruncatedLink)?;
    let body = body.get(..len).unwrap_or(body);
    decode(body, d)
}
