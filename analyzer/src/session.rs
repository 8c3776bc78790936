//! One handshake being observed: the state fed by parsed messages of both directions, turned into
//! a [`Handshake`] record when it completes, fails or its flow ends. Directions here are capture
//! directions ([`Dir`]); who is the TLS client is learnt from the messages.

use crate::cert::CertCache;
use crate::fingerprint;
use crate::flow::Output;
use crate::model::{Alert, CertRef, Handshake, Outcome, Protocol, Side};
use crate::tls::handshake::{self as hs, msg, ClientHello};
use capture::{CloseKind, Dir, FlowCtx, TimestampNs};

/// Alert level "fatal".
pub const ALERT_FATAL: u8 = 2;

/// Per-direction facts.
#[derive(Debug, Default, Clone)]
struct Side2 {
    ccs: bool,
    /// An encrypted handshake record after CCS (Finished).
    finished: bool,
    app_data: bool,
    closed: Option<CloseKind>,
    /// Records/messages sent after the server's Certificate.
    records_after_server_cert: u32,
}

/// A handshake in progress.
#[derive(Debug)]
pub struct Session {
    pub protocol: Protocol,
    pub starttls: Option<&'static str>,
    pub start_ts: TimestampNs,
    /// The capture direction in which the TLS client sends.
    pub client_dir: Option<Dir>,
    client_hello: Option<ClientHello>,
    /// A v2 CLIENT-HELLO version (no extensions, no fingerprint).
    v2_client_version: Option<u16>,
    pub server_hello_seen: bool,
    hello_retry: bool,
    pub version: Option<u16>,
    cipher: Option<u16>,
    server_chain: Option<Vec<CertRef>>,
    client_chain: Option<Vec<CertRef>>,
    cert_request_cas: Option<Vec<Vec<u8>>>,
    alert: Option<Alert>,
    dirs: [Side2; 2],
    /// The server's Certificate has been seen.
    server_cert_seen: bool,
    /// TLS 1.3 (or DTLS 1.3): the rest of the handshake is encrypted.
    pub tls13: bool,
    /// Set for SSLv2: the SERVER-HELLO closes what can be seen.
    v2_done: bool,
    /// Handshake messages seen (for "was anything seen at all").
    pub messages: u32,
    /// Malformed messages seen.
    pub malformed: u32,
}

impl Session {
    pub fn new(protocol: Protocol, starttls: Option<&'static str>, ts: TimestampNs) -> Self {
        Session {
            protocol,
            starttls,
            start_ts: ts,
            client_dir: None,
            client_hello: None,
            v2_client_version: None,
            server_hello_seen: false,
            hello_retry: false,
            version: None,
            cipher: None,
            server_chain: None,
            client_chain: None,
            cert_request_cas: None,
            alert: None,
            dirs: [Side2::default(), Side2::default()],
            server_cert_seen: false,
            tls13: false,
            v2_done: false,
            messages: 0,
            malformed: 0,
        }
    }

    fn side_of(&self, d: Dir) -> Side {
        match self.client_dir {
            Some(c) if c == d => Side::Client,
            Some(_) => Side::Server,
            None => Side::Client,
        }
    }

    fn set_client(&mut self, d: Dir) {
        if self.client_dir.is_none() {
            self.client_dir = Some(d);
        }
    }

    /// The ClientHello random of this handshake (to tell a retransmission from a new handshake).
    pub fn client_random(&self) -> Option<&[u8]> {
        self.client_hello.as_ref().map(|c| c.random.as_slice())
    }

    /// A hello or a certificate was seen: worth a record (a stray message is not).
    pub fn worth_reporting(&self) -> bool {
        self.has_client_hello()
            || self.server_hello_seen
            || self.server_chain.is_some()
            || self.client_chain.is_some()
    }

    pub fn has_client_hello(&self) -> bool {
        self.client_hello.is_some() || self.v2_client_version.is_some()
    }

    /// Would a new ClientHello with this random start a new handshake (rather than continue this
    /// one after a HelloRetryRequest/HelloVerifyRequest, or be a retransmission)?
    pub fn starts_new(&self, random: Option<&[u8]>) -> bool {
        if !self.has_client_hello() {
            return false;
        }
        if random.is_some() && random == self.client_random() {
            return false;
        }
        self.server_hello_seen && !self.hello_retry
    }

    /// One complete plaintext handshake message from direction `d`.
    pub fn on_message(
        &mut self,
        d: Dir,
        typ: u8,
        body: &[u8],
        ts: TimestampNs,
        certs: &mut CertCache,
        out: &mut Vec<Output>,
    ) {
        self.messages = self.messages.saturating_add(1);
        let dtls = self.protocol == Protocol::Dtls;
        match typ {
            msg::CLIENT_HELLO => {
                self.set_client(d);
                match hs::parse_client_hello(body, dtls) {
                    // The first ClientHello is the one fingerprinted (a second one after a
                    // HelloRetryRequest/HelloVerifyRequest only adds a cookie or key share).
                    Some(ch) => {
                        if self.client_hello.is_none() {
                            self.client_hello = Some(ch);
                        }
                    }
                    None => self.malformed += 1,
                }
            }
            msg::SERVER_HELLO => {
                self.set_client(d.other());
                let Some(sh) = hs::parse_server_hello(body) else {
                    self.malformed += 1;
                    return;
                };
                self.server_hello_seen = true;
                self.hello_retry = sh.hello_retry;
                let v = sh.version();
                self.version = Some(v);
                self.cipher = Some(sh.cipher);
                if hs::is_tls13(v) {
                    self.tls13 = true;
                }
            }
            msg::HELLO_VERIFY_REQUEST => {
                self.set_client(d.other());
            }
            msg::CERTIFICATE => {
                if self.client_dir.is_none() {
                    // No hello seen: a Certificate most likely comes from the server.
                    self.client_dir = Some(d.other());
                }
                let list = hs::parse_certificate(body);
                if list.malformed {
                    self.malformed += 1;
                }
                let chain: Vec<CertRef> = list
                    .certs
                    .iter()
                    .map(|der| cert_ref(der, ts, certs, out))
                    .collect();
                if self.side_of(d) == Side::Server {
                    if self.server_chain.is_none() {
                        self.server_chain = Some(chain);
                    }
                    self.server_cert_seen = true;
                } else if self.client_chain.is_none() {
                    self.client_chain = Some(chain);
                }
            }
            msg::CERTIFICATE_REQUEST => {
                let v = self.version.unwrap_or(0x0303);
                match hs::parse_certificate_request(body, v) {
                    Some(cas) => {
                        if self.cert_request_cas.is_none() {
                            self.cert_request_cas = Some(cas);
                        }
                    }
                    None => self.malformed += 1,
                }
            }
            _ => {}
        }
    }

    /// Any record or message from direction `d` (a client that sends anything after the server's
    /// Certificate did not just close on it).
    pub fn on_activity(&mut self, d: Dir) {
        if self.server_cert_seen && Some(d) == self.client_dir {
            let s = &mut self.dirs[d.index()];
            s.records_after_server_cert = s.records_after_server_cert.saturating_add(1);
        }
    }

    /// An SSLv2 CLIENT-HELLO.
    pub fn on_v2_client_hello(&mut self, d: Dir, version: u16) {
        self.messages = self.messages.saturating_add(1);
        self.set_client(d);
        self.v2_client_version = Some(version);
    }

    /// An SSLv2 SERVER-HELLO: the certificate is the server chain, and nothing more is visible.
    pub fn on_v2_server_hello(
        &mut self,
        d: Dir,
        hello: &crate::sslv2::V2ServerHello<'_>,
        ts: TimestampNs,
        certs: &mut CertCache,
        out: &mut Vec<Output>,
    ) {
        self.messages = self.messages.saturating_add(1);
        self.set_client(d.other());
        self.protocol = Protocol::Sslv2;
        self.server_hello_seen = true;
        self.version = Some(0x0002);
        // SSLv2 cipher kinds are 3 bytes and do not fit the TLS cipher suite field.
        self.cipher = None;
        if let Some(der) = hello.certificate {
            self.server_chain = Some(vec![cert_ref(der, ts, certs, out)]);
            self.server_cert_seen = true;
        } else if hello.session_id_hit {
            // Session resumption in SSLv2: no certificate.
            self.server_chain = None;
        }
        self.v2_done = true;
    }

    pub fn on_ccs(&mut self, d: Dir) {
        self.dirs[d.index()].ccs = true;
    }

    pub fn on_encrypted_handshake(&mut self, d: Dir) {
        let s = &mut self.dirs[d.index()];
        if s.ccs {
            s.finished = true;
        }
    }

    pub fn on_app_data(&mut self, d: Dir) {
        self.dirs[d.index()].app_data = true;
    }

    pub fn on_alert(&mut self, d: Dir, level: u8, code: u8, ts: TimestampNs) {
        let from = self.side_of(d);
        let a = Alert {
            from,
            level,
            code,
            ts_ns: ts,
            after_server_cert: self.server_cert_seen && !self.dirs[d.index()].ccs,
        };
        match self.alert {
            None => self.alert = Some(a),
            Some(prev) if prev.level != ALERT_FATAL && level == ALERT_FATAL => self.alert = Some(a),
            _ => {}
        }
    }

    pub fn on_close(&mut self, d: Dir, kind: CloseKind) {
        let s = &mut self.dirs[d.index()];
        if s.closed.is_none() {
            s.closed = Some(kind);
        }
    }

    fn fatal_alert(&self) -> bool {
        self.alert.is_some_and(|a| a.level == ALERT_FATAL)
    }

    /// CCS+Finished both ways, or application data both ways.
    pub fn established(&self) -> bool {
        let [a, b] = &self.dirs;
        (a.ccs && a.finished && b.ccs && b.finished) || (a.app_data && b.app_data)
    }

    /// The client closed right after the server's Certificate: before its CCS, no alert, and
    /// without sending a handshake message in between.
    fn client_closed_after_cert(&self) -> bool {
        let Some(c) = self.client_dir else {
            return false;
        };
        let s = &self.dirs[c.index()];
        self.server_cert_seen
            && s.closed.is_some()
            && !s.ccs
            && !s.app_data
            && s.records_after_server_cert == 0
            && self.alert.is_none_or(|a| a.from != Side::Client)
    }

    /// Nothing more about this handshake will be learnt from the bytes.
    pub fn is_done(&self) -> bool {
        self.v2_done || self.fatal_alert() || self.established() || self.client_closed_after_cert()
    }

    fn outcome(&self) -> Outcome {
        let chain = self.server_chain.as_ref().is_some_and(|c| !c.is_empty());
        if self.tls13 || !chain {
            return Outcome::Unknown;
        }
        if let Some(a) = self.alert {
            if a.level == ALERT_FATAL && a.from == Side::Client && a.after_server_cert {
                return Outcome::RejectedAlert { code: a.code };
            }
        }
        // The client went on to its ChangeCipherSpec without a fatal alert of its own: it accepted
        // the chain (a later fatal alert from the server is about something else, e.g. the
        // client's certificate).
        if let Some(c) = self.client_dir {
            let s = &self.dirs[c.index()];
            let client_fatal = self
                .alert
                .is_some_and(|a| a.level == ALERT_FATAL && a.from == Side::Client);
            if s.ccs && !client_fatal {
                return Outcome::Accepted;
            }
        }
        if self.established() {
            return Outcome::Accepted;
        }
        if self.client_closed_after_cert() {
            return Outcome::RejectedClose;
        }
        Outcome::Unknown
    }

    /// The record of this handshake, emitted at `ts`.
    pub fn finish(self, ctx: &FlowCtx, ts: TimestampNs) -> Handshake {
        let client_dir = self.client_dir.unwrap_or(Dir::Orig);
        let (client, server) = match client_dir {
            Dir::Orig => (ctx.orig, ctx.resp),
            Dir::Resp => (ctx.resp, ctx.orig),
        };
        let outcome = self.outcome();
        let established = self.established();
        // Resumed: a ServerHello (TLS <= 1.2) followed by the server's CCS without a Certificate.
        let server_ccs = self.dirs[client_dir.other().index()].ccs;
        let resumed = self.server_hello_seen
            && !self.tls13
            && self.protocol != Protocol::Sslv2
            && !self.server_cert_seen
            && server_ccs;
        let chain_visible = !self.tls13;
        let fp_proto = if self.protocol == Protocol::Dtls {
            'd'
        } else {
            't'
        };
        let (ja3_string, ja3, ja4) = match &self.client_hello {
            Some(ch) => {
                let s = fingerprint::ja3_string(ch);
                let h = fingerprint::ja3(&s);
                (Some(s), Some(h), Some(fingerprint::ja4(ch, fp_proto)))
            }
            None => (None, None, None),
        };
        let ch = self.client_hello.unwrap_or_default();
        let has_ch = !ch.random.is_empty();
        Handshake {
            ts_ns: ts,
            start_ts_ns: self.start_ts,
            client,
            server,
            transport: ctx.transport,
            protocol: self.protocol,
            starttls: self.starttls,
            version: self.version,
            client_version: if has_ch {
                Some(ch.version)
            } else {
                self.v2_client_version
            },
            cipher: self.cipher,
            server_name: ch.sni,
            alpn: ch.alpn,
            supported_versions: ch.supported_versions,
            ja3,
            ja3_string,
            ja4,
            server_chain: self.server_chain,
            client_chain: self.client_chain,
            cert_request_cas: self.cert_request_cas,
            alert: self.alert,
            established,
            resumed,
            chain_visible,
            outcome,
        }
    }
}

/// Looks a certificate up in the cache; a first sighting in this run emits `NewCert`.
fn cert_ref(der: &[u8], ts: TimestampNs, certs: &mut CertCache, out: &mut Vec<Output>) -> CertRef {
    let (info, new) = certs.get_or_parse(der);
    if new {
        out.push(Output::NewCert(info.clone(), ts));
    }
    CertRef {
        sha256: info.sha256,
        info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ctx() -> FlowCtx {
        FlowCtx {
            id: 1,
            transport: capture::Transport::Tcp,
            orig: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
            resp: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 443),
            syn_seen: true,
            first_ts_ns: 0,
        }
    }

    fn client_hello() -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[1; 32]);
        b.extend_from_slice(&[0, 0, 2, 0x00, 0x2f, 1, 0]);
        b
    }

    fn server_hello() -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[2; 32]);
        b.extend_from_slice(&[0, 0x00, 0x2f, 0]);
        b
    }

    const CERT: [u8; 11] = [0, 0, 8, 0, 0, 5, 0x30, 3, 2, 1, 5];

    /// Client = Resp here (the TLS client is not the TCP originator).
    fn up_to_cert() -> (Session, CertCache, Vec<Output>) {
        let mut s = Session::new(Protocol::Tls, None, 10);
        let mut c = CertCache::new();
        let mut o = Vec::new();
        s.on_message(
            Dir::Resp,
            msg::CLIENT_HELLO,
            &client_hello(),
            10,
            &mut c,
            &mut o,
        );
        s.on_message(
            Dir::Orig,
            msg::SERVER_HELLO,
            &server_hello(),
            11,
            &mut c,
            &mut o,
        );
        s.on_message(Dir::Orig, msg::CERTIFICATE, &CERT, 11, &mut c, &mut o);
        (s, c, o)
    }

    #[test]
    fn rejected_by_alert() {
        let (mut s, _, o) = up_to_cert();
        assert_eq!(o.len(), 1, "one NewCert");
        s.on_activity(Dir::Resp);
        s.on_alert(Dir::Resp, 2, 48, 12);
        assert!(s.is_done());
        let h = s.finish(&ctx(), 12);
        assert_eq!(h.outcome, Outcome::RejectedAlert { code: 48 });
        assert_eq!(h.client, ctx().resp);
        assert!(h
            .alert
            .is_some_and(|a| a.after_server_cert && a.from == Side::Client));
        assert_eq!(h.server_chain.map(|c| c.len()), Some(1));
    }

    #[test]
    fn rejected_by_close_and_accepted() {
        let (mut s, _, _) = up_to_cert();
        s.on_close(Dir::Resp, CloseKind::Rst);
        assert!(s.is_done());
        assert_eq!(s.finish(&ctx(), 13).outcome, Outcome::RejectedClose);

        let (mut s, _, _) = up_to_cert();
        for d in [Dir::Resp, Dir::Orig] {
            s.on_activity(d);
            s.on_ccs(d);
            s.on_encrypted_handshake(d);
        }
        assert!(s.is_done());
        let h = s.finish(&ctx(), 14);
        assert!(h.established);
        assert_eq!(h.outcome, Outcome::Accepted);
    }

    #[test]
    fn resumed_without_certificate() {
        let mut s = Session::new(Protocol::Tls, None, 10);
        let mut c = CertCache::new();
        let mut o = Vec::new();
        s.on_message(
            Dir::Orig,
            msg::CLIENT_HELLO,
            &client_hello(),
            10,
            &mut c,
            &mut o,
        );
        s.on_message(
            Dir::Resp,
            msg::SERVER_HELLO,
            &server_hello(),
            11,
            &mut c,
            &mut o,
        );
        s.on_ccs(Dir::Resp);
        let h = s.finish(&ctx(), 12);
        assert!(h.resumed && h.server_chain.is_none());
        assert_eq!(h.outcome, Outcome::Unknown);
    }

    #[test]
    fn new_client_hello_only_after_server_hello() {
        let (s, _, _) = up_to_cert();
        assert!(!s.starts_new(Some(&[1; 32])), "same random: retransmission");
        assert!(s.starts_new(Some(&[9; 32])));
        let mut s = Session::new(Protocol::Tls, None, 10);
        let (mut c, mut o) = (CertCache::new(), Vec::new());
        s.on_message(
            Dir::Orig,
            msg::CLIENT_HELLO,
            &client_hello(),
            10,
            &mut c,
            &mut o,
        );
        assert!(!s.starts_new(Some(&[9; 32])), "no ServerHello yet");
    }
}
