//! MPLS label stacks (over Ethernet, or MPLS-in-IP): the payload after the bottom of the stack is
//! IPv4, IPv6, or a pseudowire control word and an Ethernet frame.
use super::{ethernet, ipv4, ipv6, Bytes, DResult, DecodeProblem, Depth};

/// Most MPLS labels in one stack.
pub const MAX_MPLS_LABELS: usize = 16;

/// One label stack entry.
mod field {
    use crate::decode::{Field, Rest};
    pub const ENTRY: Field = 0..4;
    /// What follows the entry: the next entry, or the payload.
    pub const NEXT: Rest = 4..;
}
/// Bottom-of-stack bit of a label stack entry.
const BOTTOM_OF_STACK: u32 = 0x100;

/// Pseudowire control word (RFC 4385), then the emulated Ethernet frame.
mod control_word_field {
    use crate::decode::Rest;
    pub const PAYLOAD: Rest = 4..;
}

/// First nibble after the stack: there is no next-protocol field, so it is guessed from this.
const NIBBLE_CONTROL_WORD: u8 = 0;

/// A label stack and its payload (one more tunnel).
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.tunnel()?;
    let mut at = data;
    for _ in 0..MAX_MPLS_LABELS {
        let b = Bytes(at);
        let entry = b.u32(field::ENTRY).ok_or(DecodeProblem::TruncatedLink)?;
        at = b.rest(field::NEXT).ok_or(DecodeProblem::TruncatedLink)?;
        if entry & BOTTOM_OF_STACK != 0 {
            let rest = at;
            // No next-protocol field: guess by the first nibble after the bottom of stack.
            return match rest.first().map(|&v| super::ip_version(v)) {
                Some(ipv4::VERSION) => ipv4::decode(rest, d),
                Some(ipv6::VERSION) => ipv6::decode(rest, d),
                // Pseudowire control word (first nibble 0), then an Ethernet frame.
                Some(NIBBLE_CONTROL_WORD) => ethernet::decode(
                    rest.get(control_word_field::PAYLOAD)
                        .ok_or(DecodeProblem::TruncatedLink)?,
                    d,
                ),
                Some(_) => Err(DecodeProblem::BadTunnel),
                None => Err(DecodeProblem::TruncatedLink),
            };
        }
    }
    Err(DecodeProblem::TunnelTooDeep)
}
