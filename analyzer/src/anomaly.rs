//! Protocol anomalies: what was wrong in the bytes of a flow that looked like TLS. As Suricata's
//! `AppLayerEvent`s, they are counted per kind and reported (end-of-run summary, `trustmap.stats`),
//! never turned into Rust errors: hostile or broken traffic is data, not a failure of the run.

use crate::tls::deframer::DeframeError;

/// One kind of protocol anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Anomaly {
    /// A record header with an impossible content type, version or length: the direction stops
    /// being parsed.
    BadRecordHeader,
    /// A handshake message that claims more than the configured maximum: the direction stops
    /// being parsed.
    MessageTooLarge,
    /// A handshake message that did not parse (hello, certificate list, CertificateRequest).
    MalformedMessage,
    /// Bytes lost inside a TLS stream (a reassembly gap): the rest of that direction is not
    /// parsed, since record boundaries are lost.
    StreamGap,
    /// A DTLS record or handshake fragment that did not parse.
    BadDtlsRecord,
    /// A TLS 1.3 flight whose records did not open with the key log's secrets (another
    /// connection's secrets, or 0-RTT data under early keys): decryption was given up.
    UndecryptableFlight,
    /// An OpenVPN packet that did not parse, or a TCP length outside what OpenVPN sends (that
    /// direction is not followed further).
    BadOpenVpnPacket,
    /// A Certificate message none of whose entries is DER: bytes that only looked like TLS. No
    /// chain and no certificate is reported from it.
    GarbageCertificateList,
}

impl Anomaly {
    /// Every kind, in report order.
    pub const ALL: [Anomaly; 8] = [
        Anomaly::BadRecordHeader,
        Anomaly::MessageTooLarge,
        Anomaly::MalformedMessage,
        Anomaly::StreamGap,
        Anomaly::BadDtlsRecord,
        Anomaly::UndecryptableFlight,
        Anomaly::BadOpenVpnPacket,
        Anomaly::GarbageCertificateList,
    ];

    /// The name in reports (`trustmap.stats`, the summary).
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::BadRecordHeader => "bad_record_header",
            Anomaly::MessageTooLarge => "message_too_large",
            Anomaly::MalformedMessage => "malformed_message",
            Anomaly::StreamGap => "stream_gap",
            Anomaly::BadDtlsRecord => "bad_dtls_record",
            Anomaly::UndecryptableFlight => "undecryptable_flight",
            Anomaly::BadOpenVpnPacket => "bad_openvpn_packet",
            Anomaly::GarbageCertificateList => "garbage_certificate_list",
        }
    }

    fn index(self) -> usize {
        match self {
            Anomaly::BadRecordHeader => 0,
            Anomaly::MessageTooLarge => 1,
            Anomaly::MalformedMessage => 2,
            Anomaly::StreamGap => 3,
            Anomaly::BadDtlsRecord => 4,
            Anomaly::UndecryptableFlight => 5,
            Anomaly::BadOpenVpnPacket => 6,
            Anomaly::GarbageCertificateList => 7,
        }
    }
}

impl From<DeframeError> for Anomaly {
    fn from(e: DeframeError) -> Self {
        match e {
            DeframeError::BadRecordHeader => Anomaly::BadRecordHeader,
            DeframeError::MessageTooLarge => Anomaly::MessageTooLarge,
        }
    }
}

/// Counts per [`Anomaly`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anomalies([u64; Anomaly::ALL.len()]);

impl Anomalies {
    pub fn add(&mut self, a: Anomaly, n: u64) {
        if let Some(c) = self.0.get_mut(a.index()) {
            *c = c.saturating_add(n);
        }
    }

    pub fn get(&self, a: Anomaly) -> u64 {
        self.0.get(a.index()).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every kind with its count, in [`Anomaly::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Anomaly, u64)> + '_ {
        Anomaly::ALL.into_iter().map(|a| (a, self.get(a)))
    }

    pub fn merge(&mut self, o: &Anomalies) {
        for (a, n) in o.iter() {
            self.add(a, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_merges() {
        let mut a = Anomalies::default();
        a.add(Anomaly::StreamGap, 2);
        a.add(DeframeError::MessageTooLarge.into(), 1);
        let mut b = Anomalies::default();
        b.add(Anomaly::StreamGap, 1);
        b.merge(&a);
        assert_eq!(b.get(Anomaly::StreamGap), 3);
        assert_eq!(b.get(Anomaly::MessageTooLarge), 1);
        assert_eq!(b.total(), 4);
        let names: Vec<&str> = Anomaly::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), 8);
    }
}
