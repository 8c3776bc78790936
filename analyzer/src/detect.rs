//! Protocol detection by content: TLS (and SSLv2) from the first byte on any port, or TLS that
//! starts later in a plaintext stream (STARTTLS, SOCKS, sslh, ...), and naming the plaintext
//! protocol that upgraded.

use crate::sslv2;
use crate::tls::deframer::{ct, MAX_RECORD_LEN};
use crate::tls::reader::{be16_at, be24};

/// Bytes of a record + handshake header needed to recognise a hello: 5 + 4 + 2 (hello version).
pub const HELLO_SIG_LEN: usize = 11;
/// Bytes of each direction's plaintext kept to name the upgrading protocol.
pub const PREFIX_KEEP: usize = 512;

/// What the start of a direction looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A TLS record header (any content type, plausible version/length).
    Tls,
    /// An SSLv2 CLIENT-HELLO or SERVER-HELLO.
    Sslv2,
    /// Not enough bytes to tell.
    NeedMore,
    /// Something else.
    Other,
}

/// Is there a TLS ClientHello (1) or ServerHello (2) record at the start of `b`?
/// Checks record type/version/length, handshake type, a handshake length compatible with the
/// record, and the hello's own version (3.x, TLS 1.3 drafts 0x7fxx, or experiments 0x7exx).
pub fn hello_at(b: &[u8]) -> bool {
    let (Some(&t), Some(&maj), Some(&min), Some(rlen), Some(&ht), Some(hlen), Some(&vmaj)) = (
        b.first(),
        b.get(1),
        b.get(2),
        be16_at(b, 3),
        b.get(5),
        b.get(6..9).and_then(be24),
        b.get(9),
    ) else {
        return false;
    };
    let rlen = rlen as usize;
    let Some(&vmin) = b.get(10) else { return false };
    t == ct::HANDSHAKE
        && maj == 3
        && min <= 4
        && (6..=MAX_RECORD_LEN).contains(&rlen)
        && (ht == 1 || ht == 2)
        && hlen >= 38
        && (hlen + 4 <= rlen || rlen >= 512)
        && ((vmaj == 3 && vmin <= 4) || vmaj == 0x7f || vmaj == 0x7e)
}

/// Is there a TLS Certificate record at the start of `b` (capture began after the hellos)? The
/// certificate_list length must be the message length minus its own 3 bytes.
pub fn certificate_at(b: &[u8]) -> bool {
    let (Some(&t), Some(&maj), Some(&min), Some(&ht), Some(hlen), Some(llen)) = (
        b.first(),
        b.get(1),
        b.get(2),
        b.get(5),
        b.get(6..9).and_then(be24),
        b.get(9..12).and_then(be24),
    ) else {
        return false;
    };
    t == ct::HANDSHAKE && maj == 3 && min <= 3 && ht == 11 && hlen >= 3 && llen + 3 == hlen
}

/// Classifies the first bytes of a direction's stream.
pub fn classify_start(b: &[u8]) -> Start {
    if b.len() < 3 {
        return Start::NeedMore;
    }
    if b.first().is_some_and(|&x| x & 0x80 != 0) {
        // A SERVER-HELLO's fixed fields end at byte 13.
        if b.len() < 13 {
            return Start::NeedMore;
        }
        if sslv2::looks_like_client_hello(b) || sslv2::looks_like_server_hello(b) {
            return Start::Sslv2;
        }
        return Start::Other;
    }
    if b.len() < HELLO_SIG_LEN {
        return Start::NeedMore;
    }
    if hello_at(b) {
        Start::Tls
    } else if b.len() < 12 {
        Start::NeedMore
    } else if certificate_at(b) {
        Start::Tls
    } else {
        Start::Other
    }
}

/// Finds the first offset of `b` where a TLS hello record starts.
pub fn find_hello(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        // memchr-like skip to the next 0x16
        let off = b.get(i..)?.iter().position(|&x| x == ct::HANDSHAKE)?;
        i += off;
        if hello_at(b.get(i..)?) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// OID 1.3.6.1.4.1.1466.20037 (LDAP StartTLS) as it appears in the ExtendedRequest.
const LDAP_STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
/// PostgreSQL SSLRequest: length 8, code 80877103.
const PG_SSLREQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// MySQL capability flag CLIENT_SSL.
const MYSQL_CLIENT_SSL: u16 = 0x0800;

/// Names the plaintext protocol that preceded TLS, from the first bytes each side sent before
/// TLS: `tls_client` is the side that sent (or will send) the ClientHello.
pub fn name_upgrade(client: &[u8], server: &[u8]) -> &'static str {
    if client.starts_with(&PG_SSLREQUEST) {
        return "postgresql";
    }
    if contains_ci(client, LDAP_STARTTLS_OID) {
        return "ldap";
    }
    if contains_ci(client, b"<starttls") || contains_ci(server, b"<proceed") {
        return "xmpp";
    }
    if contains_ci(client, b"AUTH TLS") || contains_ci(client, b"AUTH SSL") {
        return "ftp";
    }
    if contains_ci(client, b"STLS") && server.starts_with(b"+OK") {
        return "pop3";
    }
    if contains_ci(client, b"STARTTLS") {
        if server.starts_with(b"* ") || contains_ci(server, b"IMAP") {
            return "imap";
        }
        if server.starts_with(b"220")
            || contains_ci(client, b"EHLO")
            || contains_ci(client, b"HELO")
        {
            return "smtp";
        }
        if contains_ci(server, b" 670 ") || server.starts_with(b":") || contains_ci(client, b"NICK")
        {
            return "irc";
        }
        return "smtp";
    }
    // RDP: TPKT (03 00) + X.224 Connection Request (0xe0) from the client, Confirm (0xd0).
    if client.starts_with(&[3, 0]) && client.get(5) == Some(&0xe0) {
        return "rdp";
    }
    // MySQL: server greeting (protocol 10) with CLIENT_SSL, then a 32-byte SSL request.
    if server.get(4) == Some(&10) && client.len() >= 36 && client.get(..3) == Some(&[32, 0, 0]) {
        let caps = crate::tls::reader::be16_at(client, 4).map(u16::swap_bytes);
        if caps.is_some_and(|c| c & MYSQL_CLIENT_SSL != 0) {
            return "mysql";
        }
    }
    if client.starts_with(b"CONNECT ") {
        return "http-connect";
    }
    if client.first() == Some(&5) || client.first() == Some(&4) {
        return "socks";
    }
    "unknown"
}

/// HTTP request methods that never carry TLS afterwards (CONNECT does: proxies).
const HTTP_METHODS: [&[u8]; 7] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
];

/// Does a direction that begins with `prefix` belong to a protocol that never switches to TLS?
/// SSH, and HTTP requests other than CONNECT that ask for no `Upgrade:` (WebSocket tunnels can
/// carry TLS). Such flows are bypassed at once instead of having their plaintext (or SSH
/// ciphertext) scanned. `None` while the request head is still incomplete.
pub fn never_upgrades(prefix: &[u8]) -> Option<bool> {
    if prefix.starts_with(b"SSH-") {
        return Some(true);
    }
    if !HTTP_METHODS.iter().any(|m| prefix.starts_with(m)) {
        return Some(false);
    }
    let head_done = prefix.windows(4).any(|w| w == b"\r\n\r\n") || prefix.len() >= PREFIX_KEEP;
    if !head_done {
        return None;
    }
    Some(!contains_ci(prefix, b"\nUpgrade:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello_record() -> Vec<u8> {
        testkit::tls::client_hello_record(None)
    }

    #[test]
    fn finds_hello_after_plaintext() {
        let mut s = b"a001 STARTTLS\r\n".to_vec();
        let at = s.len();
        s.extend(client_hello_record());
        assert_eq!(find_hello(&s), Some(at));
        assert_eq!(find_hello(b"\x16\x03\x01 nothing here"), None);
        assert_eq!(classify_start(&client_hello_record()), Start::Tls);
        assert_eq!(classify_start(b"EHLO example.org\r\n"), Start::Other);
        assert_eq!(classify_start(b"\x16\x03"), Start::NeedMore);
        let cert = [
            0x16, 3, 3, 0x10, 0, 11, 0, 0x0f, 0xf0, 0, 0x0f, 0xed, 0, 0x0f,
        ];
        assert_eq!(classify_start(&cert), Start::Tls);
    }

    #[test]
    fn protocols_that_never_upgrade() {
        assert_eq!(never_upgrades(b"SSH-2.0-OpenSSH_9.6\r\n"), Some(true));
        assert_eq!(
            never_upgrades(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(true)
        );
        assert_eq!(never_upgrades(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(
            never_upgrades(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            Some(false)
        );
        assert_eq!(
            never_upgrades(b"CONNECT a:443 HTTP/1.1\r\n\r\n"),
            Some(false)
        );
        assert_eq!(never_upgrades(b"EHLO x\r\n"), Some(false));
    }

    #[test]
    fn names_upgrades() {
        assert_eq!(
            name_upgrade(b"EHLO x\r\nSTARTTLS\r\n", b"220 mx ESMTP\r\n"),
            "smtp"
        );
        assert_eq!(
            name_upgrade(b"a1 STARTTLS\r\n", b"* OK IMAP4rev1\r\n"),
            "imap"
        );
        assert_eq!(name_upgrade(b"STLS\r\n", b"+OK POP3\r\n"), "pop3");
        assert_eq!(name_upgrade(b"AUTH TLS\r\n", b"220 ftp\r\n"), "ftp");
        assert_eq!(name_upgrade(&PG_SSLREQUEST, b"S"), "postgresql");
        assert_eq!(
            name_upgrade(b"<stream:stream><starttls xmlns=", b"<proceed/>"),
            "xmpp"
        );
    }
}
