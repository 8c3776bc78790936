//! The opt-in active check of a removal's verification step (`trustmap probe`): connect to
//! endpoints the inventory knows, offer TLS 1.3 and 1.2 with the SNI that was observed, record
//! the chain the server presents without judging it, send close_notify, and go.
//!
//! Passive stays passive: `analyze` and `capture` never call this. Every address must be inside
//! an allow list that the caller must give ([`ProbeConfig::allow`]); anything else is counted and
//! never connected to. Connections are rate-limited and each has a timeout.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rules::segment::Cidr;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// Certificates recorded from one server (a hostile server could send many).
pub const MAX_CHAIN: usize = 32;
/// Bytes read from one server at most (the handshake flight and the close).
pub const MAX_READ: usize = 4 << 20;

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Only addresses inside these networks are ever connected to (mandatory, non-empty).
    pub allow: Vec<Cidr>,
    /// Connections per second at most.
    pub rate_per_sec: f64,
    /// Connect, handshake and close, each.
    pub timeout: Duration,
}

/// One endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ip: IpAddr,
    pub port: u16,
    /// The SNI observed for it (none: the probe sends none).
    pub sni: Option<String>,
}

/// What a server presented.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The certificates in wire order (DER).
    pub chain: Vec<Vec<u8>>,
    pub version: Option<u16>,
    pub cipher: Option<u16>,
    /// The handshake completed (a server that requires a client certificate still showed its
    /// chain, then refused).
    pub completed: bool,
    /// The local address the probe used.
    pub local: Option<SocketAddr>,
}

/// One probe's result.
#[derive(Debug)]
pub struct ProbeResult {
    pub target: Target,
    /// Wall-clock time of the probe (a probe is an act, not a capture).
    pub ts_ns: u64,
    pub presented: Result<Presented, String>,
}

/// Counters of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProbeStats {
    pub probed: u64,
    pub chains: u64,
    pub failed: u64,
    /// Targets outside the allow list: never connected to.
    pub refused: u64,
}

/// Records what the server presented and accepts it: the probe judges nothing, trust is the
/// enrichment stage's business.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Vec<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut s) = self.seen.lock() {
            s.clear();
            s.extend(
                std::iter::once(end_entity)
                    .chain(intermediates)
                    .take(MAX_CHAIN)
                    .map(|c| c.as_ref().to_vec()),
            );
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ProbeConfig {
    /// Is `ip` inside the allow list?
    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(ip))
    }
}

/// Probes every target in turn, rate-limited; calls `on_result` for each one probed (targets
/// outside the allow list are only counted).
pub fn probe_all(
    cfg: &ProbeConfig,
    targets: &[Target],
    on_result: &mut dyn FnMut(ProbeResult),
) -> ProbeStats {
    let mut stats = ProbeStats::default();
    let gap = if cfg.rate_per_sec > 0.0 {
        Duration::from_secs_f64(1.0 / cfg.rate_per_sec)
    } else {
        Duration::ZERO
    };
    let mut next = Instant::now();
    for t in targets {
        if cfg.allow.is_empty() || !cfg.allowed(t.ip) {
            stats.refused += 1;
            continue;
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next = Instant::now() + gap;
        stats.probed += 1;
        let ts_ns = now_ns();
        let presented = probe_one(t, cfg.timeout);
        match &presented {
            Ok(p) if !p.chain.is_empty() => stats.chains += 1,
            Ok(_) => {}
            Err(_) => stats.failed += 1,
        }
        on_result(ProbeResult {
            target: t.clone(),
            ts_ns,
            presented,
        });
    }
    stats
}

/// One connection: TLS 1.3 or 1.2, the observed SNI, the chain recorded, close_notify.
pub fn probe_one(t: &Target, timeout: Duration) -> Result<Presented, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name: ServerName<'static> = match &t.sni {
        Some(s) => ServerName::try_from(s.clone()).map_err(|e| format!("SNI {s:?}: {e}"))?,
        None => ServerName::IpAddress(t.ip.into()),
    };
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let addr = SocketAddr::new(t.ip, t.port);
    let mut sock = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let local = sock.local_addr().ok();
    let mut io = Limited {
        sock: &mut sock,
        left: MAX_READ,
    };
    let deadline = Instant::now() + timeout;
    let mut hs_error = None;
    while conn.is_handshaking() && Instant::now() < deadline {
        if let Err(e) = conn.complete_io(&mut io) {
            hs_error = Some(e.to_string());
            break;
        }
    }
    let completed = hs_error.is_none() && !conn.is_handshaking();
    if completed {
        conn.send_close_notify();
        let _ = conn.complete_io(&mut io);
    }
    let chain = recorder.seen.lock().map(|s| s.clone()).unwrap_or_default();
    if chain.is_empty() {
        return Err(hs_error.unwrap_or_else(|| "no certificate presented".into()));
    }
    Ok(Presented {
        chain,
        version: conn.protocol_version().map(u16::from),
        cipher: conn.negotiated_cipher_suite().map(|s| u16::from(s.suite())),
        completed,
        local,
    })
}

/// A socket that stops reading after a budget (a hostile server cannot make the probe read
/// forever).
struct Limited<'a> {
    sock: &'a mut TcpStream,
    left: usize,
}

impl Read for Limited<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.left);
        let got = self.sock.read(buf.get_mut(..n).unwrap_or_default())?;
        self.left -= got;
        Ok(got)
    }
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A target outside the allow list is never connected to: a listener there sees nothing.
    #[test]
    fn never_connects_outside_the_allow_list() {
        let outside = TcpListener::bind("127.0.0.1:0").unwrap();
        outside.set_nonblocking(true).unwrap();
        let port = outside.local_addr().unwrap().port();
        let cfg = ProbeConfig {
            allow: vec!["127.0.0.2/32".parse().unwrap()],
            rate_per_sec: 100.0,
            timeout: Duration::from_secs(2),
        };
        let targets = vec![Target {
            ip: "127.0.0.1".parse().unwrap(),
            port,
            sni: None,
        }];
        let mut results = 0;
        let s = probe_all(&cfg, &targets, &mut |_| results += 1);
        assert_eq!((s.refused, s.probed, results), (1, 0, 0));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            outside.accept().is_err(),
            "no connection reached the listener"
        );
        // An empty allow list refuses everything.
        let none = ProbeConfig {
            allow: vec![],
            ..cfg
        };
        assert_eq!(probe_all(&none, &targets, &mut |_| {}).refused, 1);
    }
}
