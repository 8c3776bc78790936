//! One handshake being observed: a [`State`] moved by parsed messages and records of both
//! directions, turned into a [`Handshake`] record when it reaches a final state or its flow ends.
//! The transitions set the outcome; what the messages carried (versions, cipher, certificates,
//! alert) and what each direction sent are kept as data. Directions here are capture directions
//! ([`Dir`]); who is the TLS client is learnt from the messages.

use crate::cert::CertCache;
use crate::fingerprint;
use crate::flow::Output;
use crate::model::{Alert, CertRef, ChainSource, Handshake, Outcome, Protocol, Side};
use crate::tls::handshake::{self as hs, msg, ClientHello};
use capture::{CloseKind, Dir, FlowCtx, TimestampNs};

/// Alert level "fatal".
pub const ALERT_FATAL: u8 = 2;

/// Where one handshake stands, in the spirit of rustls's `Expect*` states: each state names what
/// the bytes have shown and what comes next. Transitions set [`Session`]'s outcome; the states
/// from [`State::Established`] on are final ([`Session::is_done`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing seen yet, or only messages that are no hello (a capture that missed the hellos).
    ExpectClientHello,
    /// The ClientHello is out: the server's answer (ServerHello, HelloVerifyRequest or an alert).
    ExpectServerHello,
    /// A HelloRetryRequest: the next ClientHello continues this handshake (it only adds a cookie or
    /// a key share), and the next ServerHello decides the version.
    ExpectRetriedHello,
    /// A TLS <= 1.2 ServerHello: the server's Certificate (full handshake) or its ChangeCipherSpec
    /// (resumption) is next.
    ExpectServerFlight,
    /// The server's Certificate is out and the client has sent nothing since: what it does next
    /// judges the chain (a fatal alert or a close rejects it, its flight goes on to accept it).
    ExpectClientFlight,
    /// The client answered the chain with records (ClientKeyExchange, ...) but no ChangeCipherSpec
    /// yet: a close from here on is not a rejection.
    ExpectClientCcs,
    /// The server changed cipher spec without a Certificate: a resumed (abbreviated) handshake,
    /// there is no chain to judge; Finished both ways is awaited.
    ExpectResumedFinished,
    /// The client's ChangeCipherSpec after the chain with no fatal alert of its own: it accepted
    /// the chain; Finished (or application data) both ways is awaited.
    ExpectFinished,
    /// TLS 1.3: everything after the ServerHello is encrypted, so the chain cannot be judged;
    /// only establishment or a failure can still be seen.
    Encrypted,
    /// ChangeCipherSpec and Finished both ways, or application data both ways: nothing more to
    /// learn from the bytes.
    Established,
    /// A fatal alert ended the handshake.
    Failed,
    /// The client closed right after the server's Certificate, with no alert and no record in
    /// between: it rejected the chain.
    ClientClosed,
    /// SSLv2: the SERVER-HELLO (with the certificate, if any) is the last visible message.
    Sslv2Done,
}

impl State {
    /// Nothing more about the handshake will be learnt from the bytes.
    fn is_final(self) -> bool {
        matches!(
            self,
            State::Established | State::Failed | State::ClientClosed | State::Sslv2Done
        )
    }
}

/// How far one direction's record layer got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    /// Plaintext handshake records only.
    #[default]
    Handshake,
    /// Its ChangeCipherSpec: what follows is encrypted.
    ChangeCipherSpec,
    /// An encrypted handshake record after its ChangeCipherSpec (its Finished).
    Finished,
}

/// What one capture direction sent (facts, not states).
#[derive(Debug, Default, Clone)]
struct Sent {
    progress: Progress,
    app_data: bool,
    closed: Option<CloseKind>,
    /// The client sent a record after the server's Certificate (it did not just close on it).
    answered: bool,
}

impl Sent {
    fn ccs(&self) -> bool {
        self.progress >= Progress::ChangeCipherSpec
    }
}

/// A handshake in progress.
#[derive(Debug)]
pub struct Session {
    pub protocol: Protocol,
    pub starttls: Option<&'static str>,
    /// The tunnel whose payload carried this TLS ("openvpn": its control channel).
    pub tunnel: Option<&'static str>,
    pub start_ts: TimestampNs,
    /// The capture direction in which the TLS client sends.
    pub client_dir: Option<Dir>,
    state: State,
    /// How the client reacted to the chain, as decided by the transitions so far.
    outcome: Outcome,
    /// The server went to its ChangeCipherSpec after a TLS <= 1.2 ServerHello without a
    /// Certificate.
    resumed: bool,
    client_hello: Option<ClientHello>,
    /// A v2 CLIENT-HELLO version (no extensions, no fingerprint).
    v2_client_version: Option<u16>,
    /// Negotiated version of the last ServerHello (or 0x0002 for an SSLv2 SERVER-HELLO).
    pub version: Option<u16>,
    /// A ServerHello selected TLS 1.3 (or DTLS 1.3): certificates are encrypted.
    tls13: bool,
    /// The TLS 1.3 flight was decrypted with key-log secrets (its messages are known).
    decrypted: bool,
    /// The last ServerHello was a HelloRetryRequest (a ClientHello then continues this handshake,
    /// whatever state a same-segment record moved it to).
    hello_retry: bool,
    cipher: Option<u16>,
    /// Key-exchange group (TLS 1.3 key_share, or a TLS <= 1.2 ECDHE ServerKeyExchange).
    group: Option<u16>,
    server_chain: Option<Vec<CertRef>>,
    client_chain: Option<Vec<CertRef>>,
    cert_request_cas: Option<Vec<Vec<u8>>>,
    alert: Option<Alert>,
    sent: [Sent; 2],
    /// Handshake messages seen (for "was anything seen at all").
    pub messages: u32,
    /// Malformed messages seen.
    pub malformed: u32,
    /// Certificate lists dropped because none of their entries is DER.
    pub garbage_lists: u32,
}

impl Session {
    pub fn new(protocol: Protocol, starttls: Option<&'static str>, ts: TimestampNs) -> Self {
        Session {
            protocol,
            starttls,
            tunnel: None,
            start_ts: ts,
            client_dir: None,
            state: State::ExpectClientHello,
            outcome: Outcome::Unknown,
            resumed: false,
            client_hello: None,
            v2_client_version: None,
            version: None,
            tls13: false,
            decrypted: false,
            hello_retry: false,
            cipher: None,
            group: None,
            server_chain: None,
            client_chain: None,
            cert_request_cas: None,
            alert: None,
            sent: [Sent::default(), Sent::default()],
            messages: 0,
            malformed: 0,
            garbage_lists: 0,
        }
    }

    /// Where the handshake stands.
    pub fn state(&self) -> State {
        self.state
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
            || self.version.is_some()
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
        self.version.is_some() && !self.hello_retry
    }

    /// A ServerHello selected TLS 1.3 (or DTLS 1.3): what follows a ServerHello that is no
    /// HelloRetryRequest is encrypted.
    pub fn tls13(&self) -> bool {
        self.tls13
    }

    /// The negotiated cipher suite.
    pub fn cipher(&self) -> Option<u16> {
        self.cipher
    }

    fn client(&self) -> Option<&Sent> {
        self.client_dir.map(|c| &self.sent[c.index()])
    }

    fn server_cert_seen(&self) -> bool {
        self.server_chain.is_some()
    }

    /// The outcome `o`, where a chain can be judged at all (a visible, non-empty server chain).
    fn judged(&self, o: Outcome) -> Outcome {
        let chain = self.server_chain.as_ref().is_some_and(|c| !c.is_empty());
        if (self.tls13 && !self.decrypted) || !chain {
            Outcome::Unknown
        } else {
            o
        }
    }

    fn client_fatal(&self) -> bool {
        self.alert
            .is_some_and(|a| a.level == ALERT_FATAL && a.from == Side::Client)
    }

    /// Moves to `next` unless the handshake already reached a final state.
    fn go(&mut self, next: State) {
        if !self.state.is_final() {
            self.state = next;
        }
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
                        if self.state == State::ExpectClientHello {
                            self.state = State::ExpectServerHello;
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
                self.on_server_hello(&sh);
            }
            msg::HELLO_VERIFY_REQUEST => {
                self.set_client(d.other());
            }
            msg::CERTIFICATE => {
                if self.client_dir.is_none() {
                    // No hello seen: a Certificate most likely comes from the server.
                    self.client_dir = Some(d.other());
                }
                self.on_certificate_list(d, &hs::parse_certificate(body), ts, certs, out);
            }
            msg::SERVER_KEY_EXCHANGE => {
                if let Some(g) = hs::server_key_exchange_group(body) {
                    self.group = Some(g);
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

    /// One handshake message of a TLS 1.3 flight from direction `d`, decrypted with key-log
    /// secrets: the certificates (1.3 form), the CertificateRequest's CA names, and Finished,
    /// which from the client means it accepted the server's chain (it sends Finished only after
    /// checking the Certificate and CertificateVerify).
    pub fn on_decrypted_message(
        &mut self,
        d: Dir,
        typ: u8,
        body: &[u8],
        ts: TimestampNs,
        certs: &mut CertCache,
        out: &mut Vec<Output>,
    ) {
        if !self.tls13 {
            return;
        }
        self.messages = self.messages.saturating_add(1);
        self.decrypted = true;
        match typ {
            msg::CERTIFICATE => {
                self.on_certificate_list(d, &hs::parse_certificate13(body), ts, certs, out);
            }
            msg::CERTIFICATE_REQUEST => match hs::parse_certificate_request13(body) {
                Some(cas) => {
                    if self.cert_request_cas.is_none() {
                        self.cert_request_cas = Some(cas);
                    }
                }
                None => self.malformed += 1,
            },
            msg::FINISHED => {
                self.sent[d.index()].progress = Progress::Finished;
                if Some(d) == self.client_dir && !self.client_fatal() {
                    self.outcome = self.judged(Outcome::Accepted);
                }
                self.check_established();
            }
            _ => {}
        }
    }

    /// The certificates of a Certificate message (either form) from direction `d`: the server
    /// chain, or the client's (the first one kept).
    fn on_certificate_list(
        &mut self,
        d: Dir,
        list: &hs::CertList<'_>,
        ts: TimestampNs,
        certs: &mut CertCache,
        out: &mut Vec<Output>,
    ) {
        if list.malformed {
            self.malformed += 1;
        }
        // TLS found by scanning plaintext (a STARTTLS, or another protocol's bytes that only
        // looked like TLS, such as a tunnel's framing read as records), with an entry that is not
        // even well-formed DER: no chain, no certificate, counted instead. A certificate that
        // does not parse in a stream that was TLS from its first byte is still reported (with
        // its parse error), as is a DER-shaped one whose contents are wrong.
        if self.starttls.is_some()
            && list
                .certs
                .iter()
                .any(|der| !crate::cert::is_well_formed_der(der))
        {
            self.garbage_lists += 1;
            return;
        }
        let chain: Vec<CertRef> = list
            .certs
            .iter()
            .map(|der| cert_ref(der, ts, certs, out))
            .collect();
        if self.side_of(d) == Side::Server {
            self.on_server_certificate(chain);
        } else if self.client_chain.is_none() {
            self.client_chain = Some(chain);
        }
    }

    fn on_server_hello(&mut self, sh: &hs::ServerHello) {
        let v = sh.version();
        self.version = Some(v);
        self.cipher = Some(sh.cipher);
        if sh.group.is_some() {
            self.group = sh.group;
        }
        self.hello_retry = sh.hello_retry;
        if hs::is_tls13(v) {
            self.tls13 = true;
            self.outcome = Outcome::Unknown;
        }
        self.resumed = self.resumable();
        let next = if sh.hello_retry {
            State::ExpectRetriedHello
        } else if self.tls13 {
            State::Encrypted
        } else if self.server_cert_seen() {
            self.after_certificate()
        } else if self.resumed {
            State::ExpectResumedFinished
        } else {
            State::ExpectServerFlight
        };
        self.go(next);
    }

    /// A ServerHello of TLS <= 1.2 (not SSLv2), the server's ChangeCipherSpec and no Certificate.
    fn resumable(&self) -> bool {
        let server = self.client_dir.unwrap_or(Dir::Orig).other();
        self.version.is_some()
            && !self.tls13
            && self.protocol != Protocol::Sslv2
            && !self.server_cert_seen()
            && self.sent[server.index()].ccs()
    }

    /// Where a TLS <= 1.2 handshake stands once the server's Certificate is out.
    fn after_certificate(&self) -> State {
        match self.client() {
            Some(c) if c.ccs() => State::ExpectFinished,
            Some(c) if c.answered => State::ExpectClientCcs,
            _ => State::ExpectClientFlight,
        }
    }

    fn on_server_certificate(&mut self, chain: Vec<CertRef>) {
        if self.server_chain.is_none() {
            self.server_chain = Some(chain);
            self.resumed = false;
            self.judge_chain();
        }
    }

    /// A server chain to judge has just appeared: what the client already did counts.
    fn judge_chain(&mut self) {
        if self.client_closed_after_cert() {
            self.outcome = self.judged(Outcome::RejectedClose);
            self.go(State::ClientClosed);
            return;
        }
        self.outcome = match self.alert {
            Some(a) if a.level == ALERT_FATAL && a.from == Side::Client && a.after_server_cert => {
                self.judged(Outcome::RejectedAlert { code: a.code })
            }
            _ if self.client().is_some_and(Sent::ccs) && !self.client_fatal() => {
                self.judged(Outcome::Accepted)
            }
            _ if self.established() => self.judged(Outcome::Accepted),
            _ => Outcome::Unknown,
        };
        // After a HelloRetryRequest the next ServerHello still decides the version.
        if !self.tls13 && self.state != State::ExpectRetriedHello {
            let next = self.after_certificate();
            self.go(next);
        }
    }

    /// The client closed right after the server's Certificate: before its CCS, no alert, and
    /// without sending a record in between.
    fn client_closed_after_cert(&self) -> bool {
        self.server_cert_seen()
            && self
                .client()
                .is_some_and(|c| c.closed.is_some() && !c.ccs() && !c.app_data && !c.answered)
            && !self.client_alerted()
    }

    fn client_alerted(&self) -> bool {
        self.alert.is_some_and(|a| a.from == Side::Client)
    }

    /// Any record or message from direction `d` (a client that sends anything after the server's
    /// Certificate did not just close on it).
    pub fn on_activity(&mut self, d: Dir) {
        if self.server_cert_seen() && Some(d) == self.client_dir {
            self.sent[d.index()].answered = true;
            if self.state == State::ExpectClientFlight {
                self.state = State::ExpectClientCcs;
            }
        }
    }

    /// An SSLv2 CLIENT-HELLO.
    pub fn on_v2_client_hello(&mut self, d: Dir, version: u16) {
        self.messages = self.messages.saturating_add(1);
        self.set_client(d);
        self.v2_client_version = Some(version);
        if self.state == State::ExpectClientHello {
            self.state = State::ExpectServerHello;
        }
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
        self.version = Some(0x0002);
        self.resumed = false;
        // SSLv2 cipher kinds are 3 bytes and do not fit the TLS cipher suite field.
        self.cipher = None;
        if let Some(der) = hello.certificate {
            self.server_chain = Some(vec![cert_ref(der, ts, certs, out)]);
        } else if hello.session_id_hit {
            // Session resumption in SSLv2: no certificate.
            self.server_chain = None;
        }
        self.judge_chain();
        self.go(State::Sslv2Done);
    }

    pub fn on_ccs(&mut self, d: Dir) {
        // TLS 1.3's ChangeCipherSpec is a middlebox-compatibility dummy: it says nothing about
        // the chain (the client sends it before its alert as before its Finished).
        if self.tls13 {
            return;
        }
        let s = &mut self.sent[d.index()];
        if s.progress < Progress::ChangeCipherSpec {
            s.progress = Progress::ChangeCipherSpec;
        }
        let from_client = Some(d) == self.client_dir;
        if from_client {
            if !self.client_fatal() {
                self.outcome = self.judged(Outcome::Accepted);
            }
            if matches!(
                self.state,
                State::ExpectClientFlight | State::ExpectClientCcs
            ) {
                self.state = State::ExpectFinished;
            }
        } else {
            self.resumed = self.resumable();
            if self.resumed && self.state == State::ExpectServerFlight {
                self.state = State::ExpectResumedFinished;
            }
        }
    }

    pub fn on_encrypted_handshake(&mut self, d: Dir) {
        let s = &mut self.sent[d.index()];
        if s.progress == Progress::ChangeCipherSpec {
            s.progress = Progress::Finished;
        }
        self.check_established();
    }

    pub fn on_app_data(&mut self, d: Dir) {
        self.sent[d.index()].app_data = true;
        self.check_established();
    }

    /// CCS+Finished both ways, or application data both ways.
    fn established(&self) -> bool {
        let [a, b] = &self.sent;
        (a.progress == Progress::Finished && b.progress == Progress::Finished)
            || (a.app_data && b.app_data)
    }

    fn check_established(&mut self) {
        if self.state != State::Established && self.established() {
            if !matches!(self.outcome, Outcome::RejectedAlert { .. }) {
                self.outcome = self.judged(Outcome::Accepted);
            }
            self.state = State::Established;
        }
    }

    pub fn on_alert(&mut self, d: Dir, level: u8, code: u8, ts: TimestampNs) {
        let from = self.side_of(d);
        let a = Alert {
            from,
            level,
            code,
            ts_ns: ts,
            after_server_cert: self.server_cert_seen() && !self.sent[d.index()].ccs(),
        };
        match self.alert {
            None => self.alert = Some(a),
            Some(prev) if prev.level != ALERT_FATAL && level == ALERT_FATAL => self.alert = Some(a),
            _ => return,
        }
        if level != ALERT_FATAL {
            return;
        }
        if from == Side::Server && self.client_closed_after_cert() {
            // The client's close after the chain stands again: the only alert on record from it
            // (a warning taken as the client's before the roles were known) gave way.
            self.outcome = self.judged(Outcome::RejectedClose);
        }
        if from == Side::Client {
            self.outcome = if a.after_server_cert {
                self.judged(Outcome::RejectedAlert { code })
            } else if self.established() {
                self.judged(Outcome::Accepted)
            } else {
                Outcome::Unknown
            };
        }
        self.go(State::Failed);
    }

    pub fn on_close(&mut self, d: Dir, kind: CloseKind) {
        let s = &mut self.sent[d.index()];
        if s.closed.is_none() {
            s.closed = Some(kind);
        }
        if Some(d) == self.client_dir && self.client_closed_after_cert() {
            self.outcome = self.judged(Outcome::RejectedClose);
            self.go(State::ClientClosed);
        }
    }

    /// Nothing more about this handshake will be learnt from the bytes.
    pub fn is_done(&self) -> bool {
        self.state.is_final()
    }

    /// The record of this handshake, emitted at `ts`.
    /// The server's verdict on the client's certificate (mTLS): accepted when the client sent a
    /// chain and the handshake completed without a fatal alert from the server; rejected on a
    /// fatal alert from the server after it. Unknown for TLS 1.3, whose rejection comes under
    /// application keys that are never opened.
    fn client_cert_verdict(&self) -> Option<bool> {
        let sent = self.client_chain.as_ref().is_some_and(|c| !c.is_empty());
        if !sent || self.tls13 {
            return None;
        }
        let server_fatal = self
            .alert
            .is_some_and(|a| a.from == Side::Server && a.level == ALERT_FATAL);
        if server_fatal {
            Some(false)
        } else if self.established() {
            Some(true)
        } else {
            None
        }
    }

    pub fn finish(self, ctx: &FlowCtx, ts: TimestampNs) -> Handshake {
        let client_cert_verdict = self.client_cert_verdict();
        let client_dir = self.client_dir.unwrap_or(Dir::Orig);
        let (client, server) = match client_dir {
            Dir::Orig => (ctx.orig, ctx.resp),
            Dir::Resp => (ctx.resp, ctx.orig),
        };
        let fp_proto = match self.protocol {
            Protocol::Dtls => 'd',
            Protocol::Quic => 'q',
            Protocol::Tls | Protocol::Sslv2 => 't',
        };
        let (ja3_string, ja3, ja4) = match &self.client_hello {
            Some(ch) => {
                let s = fingerprint::ja3_string(ch);
                let h = fingerprint::ja3(&s);
                (Some(s), Some(h), Some(fingerprint::ja4(ch, fp_proto)))
            }
            None => (None, None, None),
        };
        let chain_source = if self.server_chain.is_none() && self.client_chain.is_none() {
            None
        } else if self.decrypted {
            Some(ChainSource::Keylog)
        } else {
            Some(ChainSource::Handshake)
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
            tunnel: self.tunnel,
            version: self.version,
            client_version: if has_ch {
                Some(ch.version)
            } else {
                self.v2_client_version
            },
            cipher: self.cipher,
            group: self.group,
            server_name: ch.sni,
            alpn: ch.alpn,
            supported_versions: ch.supported_versions,
            offered_groups: ch.groups,
            offered_sig_schemes: ch.sig_algs,
            ja3,
            ja3_string,
            ja4,
            server_chain: self.server_chain,
            client_chain: self.client_chain,
            client_cert_verdict,
            cert_request_cas: self.cert_request_cas,
            alert: self.alert,
            established: self.state == State::Established,
            resumed: self.resumed,
            chain_visible: !self.tls13 || self.decrypted,
            chain_source,
            outcome: self.outcome,
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
        testkit::tls::client_hello_body(1, 0x002f, None)
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

    /// After plaintext, a certificate list with an entry that is not well-formed DER gives no
    /// chain and no certificate (bytes that only looked like TLS); in a stream that was TLS from
    /// its start, a certificate that does not parse is still reported.
    #[test]
    fn garbage_certificate_lists_are_counted_not_reported() {
        let (mut s, mut c, mut o) = up_to_cert();
        // A second server Certificate is ignored; use a fresh session for each case.
        s.garbage_lists = 0;
        // One entry: a SEQUENCE tag claiming 1,280 bytes of which 3 follow (an OpenVPN packet
        // read as a record looked like this).
        let garbage: [u8; 13] = [0, 0, 10, 0, 0, 7, 0x30, 0x82, 0x05, 0x00, 0xaa, 0x01, 0x02];
        // Found after plaintext (as a tunnel's bytes are).
        let mut g = Session::new(Protocol::Tls, Some("unknown"), 10);
        g.on_message(
            Dir::Resp,
            msg::CLIENT_HELLO,
            &client_hello(),
            10,
            &mut c,
            &mut o,
        );
        g.on_message(
            Dir::Orig,
            msg::SERVER_HELLO,
            &server_hello(),
            11,
            &mut c,
            &mut o,
        );
        let before = o.len();
        g.on_message(Dir::Orig, msg::CERTIFICATE, &garbage, 11, &mut c, &mut o);
        assert_eq!(o.len(), before, "no certificate from garbage");
        assert_eq!(g.garbage_lists, 1);
        assert!(g.finish(&ctx(), 12).server_chain.is_none());
        // CERT is a SEQUENCE holding an INTEGER: not a certificate, but DER-shaped: reported.
        assert_eq!(s.finish(&ctx(), 12).server_chain.map(|c| c.len()), Some(1));
        let ok = crate::cert::is_well_formed_der;
        assert!(ok(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x05]));
        assert!(ok(&[0x30, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x05]));
        assert!(!ok(&[0x30, 0x81, 0x02, 0x00]));
        assert!(!ok(&[0x30, 0x80, 0x00, 0x00]), "indefinite length");
        assert!(
            !ok(&[0x30, 0x04, 0x02, 0x01, 0x05, 0x00]),
            "a child overruns"
        );
        assert!(!ok(&[0x30, 0x00, 0x30, 0x00]), "two elements at the top");
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
    fn states_of_full_resumed_and_tls13_handshakes() {
        let (mut s, _, _) = up_to_cert();
        assert_eq!(s.state(), State::ExpectClientFlight);
        s.on_activity(Dir::Resp);
        assert_eq!(s.state(), State::ExpectClientCcs);
        s.on_ccs(Dir::Resp);
        assert_eq!(s.state(), State::ExpectFinished);
        s.on_encrypted_handshake(Dir::Resp);
        s.on_ccs(Dir::Orig);
        s.on_encrypted_handshake(Dir::Orig);
        assert_eq!(s.state(), State::Established);

        let mut s = Session::new(Protocol::Tls, None, 10);
        let (mut c, mut o) = (CertCache::new(), Vec::new());
        assert_eq!(s.state(), State::ExpectClientHello);
        let hello = client_hello();
        s.on_message(Dir::Orig, msg::CLIENT_HELLO, &hello, 10, &mut c, &mut o);
        assert_eq!(s.state(), State::ExpectServerHello);
        s.on_message(
            Dir::Resp,
            msg::SERVER_HELLO,
            &server_hello(),
            11,
            &mut c,
            &mut o,
        );
        assert_eq!(s.state(), State::ExpectServerFlight);
        s.on_ccs(Dir::Resp);
        assert_eq!(s.state(), State::ExpectResumedFinished);

        let mut s = Session::new(Protocol::Tls, None, 10);
        let mut tls13 = server_hello();
        tls13.extend_from_slice(&[0, 6, 0, 0x2b, 0, 2, 3, 4]);
        s.on_message(Dir::Orig, msg::CLIENT_HELLO, &hello, 10, &mut c, &mut o);
        s.on_message(Dir::Resp, msg::SERVER_HELLO, &tls13, 11, &mut c, &mut o);
        assert_eq!(s.state(), State::Encrypted);
        assert!(s.tls13());
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
