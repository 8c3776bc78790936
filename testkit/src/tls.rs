//! TLS message builders for unit tests: a ClientHello (body, handshake message or record), with
//! an optional SNI. Real handshakes come from the captures; these are for edge cases.

/// TLS content type of a handshake record.
pub const CONTENT_HANDSHAKE: u8 = 0x16;
/// Handshake message type of a ClientHello.
pub const CLIENT_HELLO: u8 = 1;

/// A ClientHello body: TLS 1.2, random filled with `random`, no session id, one cipher suite,
/// null compression, and the server_name extension when `sni` is given.
pub fn client_hello_body(random: u8, cipher: u16, sni: Option<&str>) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[random; 32]);
    b.push(0); // session id
    b.extend_from_slice(&2u16.to_be_bytes());
    b.extend_from_slice(&cipher.to_be_bytes());
    b.extend_from_slice(&[1, 0]); // compression: null
    if let Some(name) = sni {
        let n = name.as_bytes();
        let l = n.len() as u16;
        let mut ext = vec![0, 0]; // server_name
        ext.extend_from_slice(&(l + 5).to_be_bytes());
        ext.extend_from_slice(&(l + 3).to_be_bytes());
        ext.push(0); // host_name
        ext.extend_from_slice(&l.to_be_bytes());
        ext.extend_from_slice(n);
        b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        b.extend_from_slice(&ext);
    }
    b
}

/// A handshake message: type, 24-bit length, body.
pub fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut v = vec![ty];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

/// A TLS record of `content` type with record version 3.1.
pub fn record(content: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![content, 3, 1];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A ClientHello record (`client_hello_body(5, 0xc02f, sni)`).
pub fn client_hello_record(sni: Option<&str>) -> Vec<u8> {
    record(
        CONTENT_HANDSHAKE,
        &handshake(CLIENT_HELLO, &client_hello_body(5, 0xc02f, sni)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_add_up() {
        let r = client_hello_record(Some("mx.example"));
        assert_eq!(r[0], CONTENT_HANDSHAKE);
        assert_eq!(usize::from(u16::from_be_bytes([r[3], r[4]])), r.len() - 5);
        assert_eq!(r[5], CLIENT_HELLO);
        let hs_len = u32::from_be_bytes([0, r[6], r[7], r[8]]) as usize;
        assert_eq!(hs_len, r.len() - 9);
        assert!(r.windows(10).any(|w| w == b"mx.example"));
    }
}
