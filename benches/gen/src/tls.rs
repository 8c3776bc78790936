//! Genuine TLS transcripts: a rustls client and server talk in memory and we keep the exact
//! bytes each side wrote, grouped into flights.
//!
//! Why a custom crypto provider: rustls normally draws randoms and ephemeral keys from the OS,
//! which would make every run different. We swap in (a) a `SecureRandom` fed by a per-thread
//! seeded PRNG and (b) an X25519 key exchange whose secret comes from the same PRNG
//! (x25519-dalek's pure function). Signatures are Ed25519 (deterministic). Everything else is
//! rustls + ring unchanged, so the bytes are a real, decryptable-with-keys TLS session.
//! Do not reuse this provider for anything but generating test traffic.

use crate::pki::Chain;
use crate::rng::Rng;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, Connection, DigitallySignedStruct, NamedGroup, ServerConfig,
    ServerConnection, SignatureScheme,
};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::sync::Arc;

thread_local! {
    static TL_RNG: RefCell<Rng> = RefCell::new(Rng::new(0));
}

/// Upper bound on flights exchanged while handshaking; a correct handshake needs ≤ 4.
const MAX_PUMPS: usize = 16;

/// Which side wrote a flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    C2S,
    /// Server to client.
    S2C,
}

/// One genuine session, ready to be replayed on any addresses/ports/ISNs.
#[derive(Clone, Debug)]
pub struct Transcript {
    /// True for TLS 1.3 (chain encrypted), false for TLS 1.2 (chain in clear).
    pub tls13: bool,
    /// Index of the chain the server sent.
    pub chain: usize,
    /// Handshake flights then one real request/response, in order.
    pub flights: Vec<(Dir, Vec<u8>)>,
    /// How many leading entries of `flights` are the handshake proper.
    pub handshake_flights: usize,
    /// The client's encrypted close_notify record.
    pub close_client: Vec<u8>,
    /// The server's encrypted close_notify record.
    pub close_server: Vec<u8>,
    /// Negotiated cipher suite (IANA name), for the manifest.
    pub suite: String,
}

#[derive(Debug)]
struct SeededRandom;

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        TL_RNG.with(|r| r.borrow_mut().fill(buf));
        Ok(())
    }
}

#[derive(Debug)]
struct SeededX25519;

struct X25519Active {
    secret: [u8; 32],
    public: [u8; 32],
}

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let mut secret = [0u8; 32];
        TL_RNG.with(|r| r.borrow_mut().fill(&mut secret));
        let public = x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES);
        Ok(Box::new(X25519Active { secret, public }))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for X25519Active {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer
            .try_into()
            .map_err(|_| rustls::Error::General("bad x25519 share".into()))?;
        let shared = x25519_dalek::x25519(self.secret, peer);
        if shared == [0u8; 32] {
            return Err(rustls::Error::General("x25519 low order point".into()));
        }
        Ok(SharedSecret::from(&shared[..]))
    }
    fn pub_key(&self) -> &[u8] {
        &self.public
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

static SEEDED_RANDOM: SeededRandom = SeededRandom;
static SEEDED_X25519: SeededX25519 = SeededX25519;

/// Accepts any chain: the bench PKI is not in any trust store and validity is irrelevant to
/// the bytes on the wire.
#[derive(Debug)]
struct AcceptAll;

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    /// What a browser-like client advertises (only Ed25519 will be used by our leaves).
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::ED25519,
        ]
    }
}

fn provider(tls13: bool, rng: &mut Rng) -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut p = rustls::crypto::ring::default_provider();
    p.kx_groups = vec![&SEEDED_X25519];
    p.secure_random = &SEEDED_RANDOM;
    let choices = if tls13 {
        vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ]
    } else {
        vec![
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
    };
    // Rotate so the client prefers a seed-chosen suite (and the server honours the client).
    let k = rng.below(choices.len() as u64) as usize;
    let mut suites = choices.clone();
    suites.rotate_left(k);
    p.cipher_suites = suites;
    p
}

fn pump(from: &mut Connection, to: &mut Connection) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut guard = 0;
    while from.wants_write() && guard < MAX_PUMPS {
        from.write_tls(&mut buf).map_err(|e| e.to_string())?;
        guard += 1;
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).map_err(|e| e.to_string())?;
        to.process_new_packets().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

fn push_flight(flights: &mut Vec<(Dir, Vec<u8>)>, dir: Dir, bytes: Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match flights.last_mut() {
        Some((d, b)) if *d == dir => b.extend_from_slice(&bytes),
        _ => flights.push((dir, bytes)),
    }
}

/// Runs one full handshake (+ one HTTP exchange + close_notify both ways) for `chain`.
/// Deterministic in `seed` (give each pool entry its own), whatever thread runs it.
pub fn transcript(
    chain: &Chain,
    chain_idx: usize,
    tls13: bool,
    seed: u64,
) -> Result<Transcript, String> {
    let mut rng = Rng::derive(seed, 0x7153);
    TL_RNG.with(|r| *r.borrow_mut() = Rng::new(rng.next_u64()));
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let prov = Arc::new(provider(tls13, &mut rng));
    let certs: Vec<CertificateDer<'static>> = chain
        .certs
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.leaf_key.clone()));
    let mut scfg = ServerConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    scfg.send_tls13_tickets = 0;
    scfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    scfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut ccfg = ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll))
        .with_no_client_auth();
    ccfg.resumption = rustls::client::Resumption::disabled();
    ccfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let name = ServerName::try_from(chain.server_name.clone()).map_err(|e| e.to_string())?;
    let mut client =
        Connection::Client(ClientConnection::new(Arc::new(ccfg), name).map_err(|e| e.to_string())?);
    let mut server =
        Connection::Server(ServerConnection::new(Arc::new(scfg)).map_err(|e| e.to_string())?);

    let mut flights = Vec::new();
    for _ in 0..MAX_PUMPS {
        let a = pump(&mut client, &mut server)?;
        let a_empty = a.is_empty();
        push_flight(&mut flights, Dir::C2S, a);
        let b = pump(&mut server, &mut client)?;
        let b_empty = b.is_empty();
        push_flight(&mut flights, Dir::S2C, b);
        if a_empty && b_empty && !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
    }
    if client.is_handshaking() || server.is_handshaking() {
        return Err("handshake did not complete".into());
    }
    let handshake_flights = flights.len();
    let suite = client
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();

    // One genuine request/response so "application data flowed both ways" holds even for the
    // shortest connection.
    let req = format!(
        "GET /api/v1/items?page={} HTTP/1.1\r\nHost: {}\r\nUser-Agent: trustmap-benchgen\r\nAccept: */*\r\n\r\n",
        rng.below(1000),
        chain.server_name
    );
    client
        .writer()
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let a = pump(&mut client, &mut server)?;
    push_flight(&mut flights, Dir::C2S, a);
    let mut got = vec![0u8; req.len()];
    server
        .reader()
        .read_exact(&mut got)
        .map_err(|e| e.to_string())?;
    let body_len = rng.range(200, 3000) as usize;
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    resp.extend(std::iter::repeat_n(b'x', body_len));
    server
        .writer()
        .write_all(&resp)
        .map_err(|e| e.to_string())?;
    let b = pump(&mut server, &mut client)?;
    push_flight(&mut flights, Dir::S2C, b);

    client.send_close_notify();
    let close_client = pump(&mut client, &mut server)?;
    server.send_close_notify();
    let close_server = pump(&mut server, &mut client)?;

    Ok(Transcript {
        tls13,
        chain: chain_idx,
        flights,
        handshake_flights,
        close_client,
        close_server,
        suite,
    })
}
