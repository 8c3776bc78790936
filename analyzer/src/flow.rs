//! Per-flow TLS state and the [`capture::App`] implementation.
//!
//! Each TCP direction goes through: `Start` (classify the first bytes: TLS record, SSLv2 hello,
//! or something else) -> `Plain` (scan a bounded amount of plaintext for a TLS hello record, the
//! generic STARTTLS path) -> `Tls` (record deframer) or `V2` (one SSLv2 record). Parsed events of
//! both directions feed one [`Session`], which is emitted as a [`Handshake`] once its outcome is
//! known (then the flow is bypassed), when the client starts a new handshake, or at flow end.
use std::borrow::Cow;

use crate::anomaly::{Anomalies, Anomaly};
use crate::cert::{CertCache, CertInfo};
use crate::detect::{self, Start, HELLO_SIG_LEN, PREFIX_KEEP};
use crate::dtls::{self, DtlsDir};
use crate::model::{Handshake, Protocol};
use crate::openvpn::{self, Packet, Protection, Reliable, TcpFraming};
use crate::quic::{self, QuicConn};
use crate::session;
use crate::session::Session;
use crate::sidesignal::{self, Parsed, SideSignal};
use crate::sslv2;
use crate::tls::decrypt::{HandshakeDecrypter, Opened};
use crate::tls::deframer::{ct, plausible_record_header, Deframer, Event, MessageJoiner};
use crate::tls::handshake::{self as hs, msg};
use crate::tls::keylog::KeyLog;
use capture::{App, CloseKind, Dir, EndReason, FlowCtx, TimestampNs, Verdict};
use std::sync::Arc;

/// Limits of the analyzer.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Largest handshake message accepted (the Zeek corpus has a 339,629-byte Certificate).
    pub max_handshake_message: usize,
    /// Plaintext bytes scanned per direction looking for a STARTTLS upgrade / TLS start.
    pub max_plaintext_scan: usize,
    /// TLS 1.3 handshake secrets (`--keylog`): the encrypted handshake flight of a handshake
    /// whose client random is there is decrypted (never its application data).
    pub keylog: Option<Arc<KeyLog>>,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            max_handshake_message: 1 << 20,
            max_plaintext_scan: 64 * 1024,
            keylog: None,
        }
    }
}

/// What the analyzer produces; the caller drains [`Analyzer::out`] after each packet or batch.
#[derive(Debug, Clone)]
pub enum Output {
    /// A certificate seen for the first time in this run (for the `trustmap.x509` event).
    NewCert(Arc<CertInfo>, TimestampNs),
    Handshake(Box<Handshake>),
    /// An OCSP request, CA certificate or CRL fetch over plaintext HTTP.
    SideSignal(Box<SideSignal>),
}

/// Counters of the analyzer (anomalies are counted, never fatal).
#[derive(Debug, Clone, Default)]
pub struct AnalyzerStats {
    pub tls_flows: u64,
    pub dtls_flows: u64,
    pub starttls_flows: u64,
    pub sslv2_flows: u64,
    pub handshakes: u64,
    /// Protocol anomalies by kind.
    pub anomalies: Anomalies,
    /// Flows bypassed because no TLS appeared within the plaintext budget, or because they began
    /// with a protocol that never switches to TLS (SSH, plain HTTP).
    pub not_tls: u64,
    pub stun_datagrams: u64,
    /// Flows picked up after their handshake (first bytes were encrypted TLS records).
    pub midstream: u64,
    /// QUIC connections (a v1/v2 Initial seen).
    pub quic_flows: u64,
    /// TLS 1.3 handshakes whose secrets were in the key log, and those whose were not (with a
    /// key log given).
    pub keylog_found: u64,
    pub keylog_missing: u64,
    /// Encrypted handshake records opened with key-log secrets.
    pub records_decrypted: u64,
    /// OCSP requests and CA certificate / CRL fetches read from plaintext HTTP.
    pub side_signals: u64,
    /// OpenVPN flows (a control-channel hard reset seen), and those whose control channel is
    /// encrypted (tls-crypt: no chain can be read).
    pub openvpn_flows: u64,
    pub openvpn_tls_crypt: u64,
    /// UDP flows in which nothing was read (no QUIC, DTLS, STUN or OpenVPN), by the responder's
    /// port (at most [`MAX_UNREAD_PORTS`] ports; the rest in `udp_unread_other_ports`).
    pub udp_unread_ports: std::collections::BTreeMap<u16, u64>,
    pub udp_unread_other_ports: u64,
}

/// Distinct UDP ports counted one by one in [`AnalyzerStats::udp_unread_ports`].
pub const MAX_UNREAD_PORTS: usize = 256;

impl AnalyzerStats {
    /// Counts `n` unread UDP flows on `port`.
    fn unread_udp(&mut self, port: u16, n: u64) {
        let full = self.udp_unread_ports.len() >= MAX_UNREAD_PORTS;
        match self.udp_unread_ports.get_mut(&port) {
            Some(c) => *c += n,
            None if !full => {
                self.udp_unread_ports.insert(port, n);
            }
            None => self.udp_unread_other_ports += n,
        }
    }

    /// The `n` UDP ports with the most unread flows, most first.
    pub fn top_unread_udp_ports(&self, n: usize) -> Vec<(u16, u64)> {
        let mut v: Vec<(u16, u64)> = self
            .udp_unread_ports
            .iter()
            .map(|(p, c)| (*p, *c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

impl AnalyzerStats {
    /// Adds another worker's counters into this one.
    pub fn merge(&mut self, o: &AnalyzerStats) {
        self.tls_flows += o.tls_flows;
        self.dtls_flows += o.dtls_flows;
        self.starttls_flows += o.starttls_flows;
        self.sslv2_flows += o.sslv2_flows;
        self.handshakes += o.handshakes;
        self.anomalies.merge(&o.anomalies);
        self.not_tls += o.not_tls;
        self.stun_datagrams += o.stun_datagrams;
        self.midstream += o.midstream;
        self.quic_flows += o.quic_flows;
        self.keylog_found += o.keylog_found;
        self.keylog_missing += o.keylog_missing;
        self.records_decrypted += o.records_decrypted;
        self.side_signals += o.side_signals;
        self.openvpn_flows += o.openvpn_flows;
        self.openvpn_tls_crypt += o.openvpn_tls_crypt;
        for (p, n) in &o.udp_unread_ports {
            self.unread_udp(*p, *n);
        }
        self.udp_unread_other_ports += o.udp_unread_other_ports;
    }
}

/// The TLS analyzer. Implements [`capture::App`].
#[derive(Debug, Default)]
pub struct Analyzer {
    pub cfg: AnalyzerConfig,
    pub certs: CertCache,
    pub out: Vec<Output>,
    pub stats: AnalyzerStats,
}

/// How one TCP direction is being read.
#[derive(Debug, Default)]
enum Mode {
    /// Nothing classified yet; holds the first few bytes (at most [`START_KEEP`]).
    #[default]
    Fresh,
    Start(Vec<u8>),
    /// Plaintext: scanning for a TLS hello record.
    Plain,
    Tls(Box<Deframer>),
    /// An SSLv2 record being collected (at most [`sslv2::MAX_V2_RECORD`] + 2 bytes).
    V2(Vec<u8>),
    /// A client's HTTP request that may be a side signal, being collected (at most
    /// [`sidesignal::MAX_REQUEST`] bytes).
    Http(Vec<u8>),
    /// Nothing more to read in this direction.
    Dead,
}

/// Total length (header included) of the SSLv2 record whose 2-byte header starts `buf`.
fn v2_record_len(buf: &[u8]) -> Option<usize> {
    let (Some(&a), Some(&b)) = (buf.first(), buf.get(1)) else {
        return None;
    };
    Some((((a & 0x7f) as usize) << 8) + b as usize + 2)
}

/// Capture time a handshake's secrets are awaited when the key log still grows (a proxy writes
/// its key log line a little after the handshake).
pub const LATE_SECRETS_NS: u64 = 5_000_000_000;
/// Encrypted bytes kept per direction while its secrets are awaited.
pub const MAX_LATE_BYTES: usize = 128 * 1024;

/// Bytes held while classifying the start of a direction.
const START_KEEP: usize = 16;

/// A QUIC connection on a UDP flow: the packets' state and the handshake messages being joined
/// from CRYPTO data, per packet-number space (Initial, Handshake) and side (client, server).
#[derive(Debug)]
struct QuicFlow {
    conn: QuicConn,
    /// The capture direction of the client (the sender of the first Initial).
    client_dir: Dir,
    messages: [[MessageJoiner; 2]; 2],
}

/// An OpenVPN flow: the control channel's protection (detected on its first packet), and per
/// direction the TCP framing and the reliability layer.
#[derive(Debug, Default)]
struct OvpnFlow {
    protection: Option<Protection>,
    framing: [TcpFraming; 2],
    reliable: [Reliable; 2],
}

/// One direction's TLS 1.3 handshake flight being decrypted (from the ServerHello to its
/// Finished).
#[derive(Debug)]
struct Decrypting {
    keys: HandshakeDecrypter,
    messages: MessageJoiner,
}

#[derive(Debug, Default)]
struct DirIn {
    mode: Mode,
    /// Handshake keys of this direction, from a key log.
    decrypt: Option<Box<Decrypting>>,
    /// Encrypted records kept while the handshake's secrets are awaited (at most
    /// [`MAX_LATE_BYTES`]).
    late: Vec<Vec<u8>>,
    late_bytes: usize,
    /// Plaintext bytes scanned so far.
    scanned: usize,
    /// Last bytes of the plaintext (a hello header may straddle two segments).
    tail: Vec<u8>,
    /// First plaintext bytes, to name the upgrading protocol.
    prefix: Vec<u8>,
}

impl DirIn {
    /// No more decryption in this direction: application-data records need not be kept.
    fn stop_keeping_records(&mut self) {
        if let Mode::Tls(d) = &mut self.mode {
            d.keep_records = false;
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self.mode, Mode::Tls(_) | Mode::V2(_))
    }

    /// Nothing more can be parsed in this direction.
    fn finished(&self) -> bool {
        match &self.mode {
            Mode::Dead => true,
            Mode::Tls(d) => d.is_broken(),
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    dirs: [DirIn; 2],
    session: Option<Session>,
    starttls: Option<&'static str>,
    dtls: Option<Box<[DtlsDir; 2]>>,
    quic: Option<Box<QuicFlow>>,
    /// OpenVPN's control channel, whose TLS stream feeds the directions' deframers.
    ovpn: Option<Box<OvpnFlow>>,
    /// Non-DTLS datagram bytes seen before DTLS was found.
    udp_other: usize,
    /// A direction began with a protocol that never switches to TLS (SSH, plain HTTP).
    never_tls: bool,
    /// A direction began with a non-handshake TLS record and no handshake was seen: the capture
    /// picked up an established TLS connection (nothing to learn, and ciphertext is not scanned).
    midstream: bool,
    counted: bool,
    /// A TLS 1.3 handshake whose secrets were not in the key log yet, while the key log still
    /// grows: (capture time until which they are awaited, the server's direction).
    awaiting_keys: Option<(TimestampNs, Dir)>,
}

/// Per-flow state (lives inside the capture flow table): empty until the flow carries bytes.
#[derive(Debug, Default)]
pub struct FlowState {
    inner: Option<Box<Inner>>,
    /// Set once nothing more is wanted from the flow.
    done: bool,
}

impl FlowState {
    /// True once the analyzer has asked for the flow to be bypassed.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Analyzer {
    pub fn new(cfg: AnalyzerConfig) -> Self {
        Analyzer {
            cfg,
            certs: CertCache::new(),
            out: Vec::new(),
            stats: AnalyzerStats::default(),
        }
    }

    fn emit(&mut self, ctx: &FlowCtx, s: Session, ts: TimestampNs) {
        self.stats.handshakes += 1;
        self.stats
            .anomalies
            .add(Anomaly::MalformedMessage, u64::from(s.malformed));
        self.stats
            .anomalies
            .add(Anomaly::GarbageCertificateList, u64::from(s.garbage_lists));
        self.out
            .push(Output::Handshake(Box::new(s.finish(ctx, ts))));
    }

    /// Emits the session if its outcome is known; returns true when the flow is done.
    fn check_done(&mut self, ctx: &FlowCtx, inner: &mut Inner, ts: TimestampNs) -> bool {
        if inner.awaiting_keys.is_some() {
            // Its secrets may still come: the handshake stays open until they do or the wait ends.
            self.retry_keys(inner, ts);
            if inner.awaiting_keys.is_some() {
                return false;
            }
        }
        let stuck = inner.dtls.is_none() && inner.dirs.iter().all(DirIn::finished);
        if inner.session.as_ref().is_some_and(|s| s.is_done() || stuck) {
            if let Some(s) = inner.session.take().filter(Session::worth_reporting) {
                self.emit(ctx, s, ts);
            }
            return true;
        }
        false
    }

    /// Dispatches parsed events of direction `dir` to the session.
    fn events(
        &mut self,
        ctx: &FlowCtx,
        inner: &mut Inner,
        dir: Dir,
        ts: TimestampNs,
        events: Vec<Event<'_>>,
        protocol: Protocol,
    ) {
        self.retry_keys(inner, ts);
        for ev in events {
            if let Some(s) = inner.session.as_mut() {
                s.on_activity(dir);
            }
            match ev {
                Event::Handshake { typ, body } => {
                    if typ == msg::CLIENT_HELLO {
                        let random = body.get(2..34);
                        if inner.session.as_ref().is_some_and(|s| s.starts_new(random)) {
                            if let Some(old) = inner.session.take() {
                                self.emit(ctx, old, ts);
                            }
                        }
                    }
                    let starttls = inner.starttls;
                    let s = inner
                        .session
                        .get_or_insert_with(|| Session::new(protocol, starttls, ts));
                    s.on_message(dir, typ, &body, ts, &mut self.certs, &mut self.out);
                    if typ == msg::SERVER_HELLO && s.tls13() {
                        let retry = hs::parse_server_hello(&body).is_some_and(|h| h.hello_retry);
                        if !retry {
                            if let Mode::Tls(d) = &mut inner.dirs[dir.index()].mode {
                                d.set_encrypted();
                            }
                            self.install_keys(inner, dir);
                        }
                    }
                }
                Event::ChangeCipherSpec => {
                    if let Some(s) = inner.session.as_mut() {
                        s.on_ccs(dir)
                    }
                }
                Event::Alert { level, code } => {
                    if let Some(s) = inner.session.as_mut() {
                        s.on_alert(dir, level, code, ts)
                    }
                }
                Event::EncryptedHandshake => {
                    if let Some(s) = inner.session.as_mut() {
                        s.on_encrypted_handshake(dir)
                    }
                }
                Event::ApplicationData { record } => {
                    let opened = match (&record, inner.dirs[dir.index()].decrypt.as_mut()) {
                        (Some(rec), Some(dec)) => dec.keys.open(rec),
                        _ => None,
                    };
                    let waiting =
                        inner.awaiting_keys.is_some() && inner.dirs[dir.index()].decrypt.is_none();
                    if let (true, Some(rec)) = (waiting, &record) {
                        let d = &mut inner.dirs[dir.index()];
                        if d.late_bytes + rec.len() <= MAX_LATE_BYTES {
                            d.late_bytes += rec.len();
                            d.late.push(rec.to_vec());
                        }
                    }
                    match opened {
                        Some(o) => self.decrypted(inner, dir, ts, o),
                        None => {
                            let d = &mut inner.dirs[dir.index()];
                            if d.decrypt.as_ref().is_some_and(|x| x.keys.exhausted()) {
                                self.stats.anomalies.add(Anomaly::UndecryptableFlight, 1);
                                d.decrypt = None;
                                d.stop_keeping_records();
                            }
                            if let Some(s) = inner.session.as_mut() {
                                s.on_app_data(dir)
                            }
                        }
                    }
                }
                Event::EncryptedAlert | Event::Heartbeat => {}
                Event::Error(e) => self.stats.anomalies.add(e.into(), 1),
            }
        }
    }

    /// A TLS 1.3 ServerHello from `server_dir`: with a key log holding this handshake's secrets,
    /// both directions get their handshake keys.
    fn install_keys(&mut self, inner: &mut Inner, server_dir: Dir) {
        let Some(keylog) = self.cfg.keylog.as_ref() else {
            return;
        };
        let Some(s) = inner.session.as_ref() else {
            return;
        };
        let (Some(random), Some(suite)) = (s.client_random(), s.cipher()) else {
            return;
        };
        let secrets = keylog.get(random);
        let found = secrets.is_some();
        let secrets = secrets.unwrap_or_default();
        let max = self.cfg.max_handshake_message;
        for (d, secret) in [
            (server_dir, secrets.server),
            (server_dir.other(), secrets.client),
        ] {
            let dir = &mut inner.dirs[d.index()];
            dir.decrypt = secret
                .and_then(|sec| HandshakeDecrypter::new(suite, &sec))
                .map(|keys| {
                    Box::new(Decrypting {
                        keys,
                        messages: MessageJoiner::new(max),
                    })
                });
            if dir.decrypt.is_none() {
                dir.stop_keeping_records();
            }
        }
        if found {
            self.stats.keylog_found += 1;
            inner.awaiting_keys = None;
        } else if keylog.follows() && inner.awaiting_keys.is_none() {
            // Keep the flight for a while: the secrets may be written a little later.
            let ts = inner.session.as_ref().map_or(0, |s| s.start_ts);
            inner.awaiting_keys = Some((ts.saturating_add(LATE_SECRETS_NS), server_dir));
            for d in &mut inner.dirs {
                if let Mode::Tls(df) = &mut d.mode {
                    df.keep_records = true;
                }
            }
        } else if inner.awaiting_keys.is_none() {
            self.stats.keylog_missing += 1;
        }
    }

    /// A handshake awaiting its secrets: once the key log has them, install the keys and open
    /// the records kept meanwhile (the server's flight first); past the wait, give up.
    fn retry_keys(&mut self, inner: &mut Inner, ts: TimestampNs) {
        let Some((deadline, server_dir)) = inner.awaiting_keys else {
            return;
        };
        let random_known = inner
            .session
            .as_ref()
            .and_then(Session::client_random)
            .zip(self.cfg.keylog.as_ref())
            .is_some_and(|(r, k)| k.get(r).is_some());
        if !random_known {
            if ts > deadline {
                inner.awaiting_keys = None;
                self.stats.keylog_missing += 1;
                for d in &mut inner.dirs {
                    d.late = Vec::new();
                    d.late_bytes = 0;
                    d.stop_keeping_records();
                }
            }
            return;
        }
        self.install_keys(inner, server_dir);
        for dir in [server_dir, server_dir.other()] {
            let late = std::mem::take(&mut inner.dirs[dir.index()].late);
            inner.dirs[dir.index()].late_bytes = 0;
            for rec in late {
                let opened = inner.dirs[dir.index()]
                    .decrypt
                    .as_mut()
                    .and_then(|d| d.keys.open(&rec));
                if let Some(o) = opened {
                    self.decrypted(inner, dir, ts, o);
                }
            }
        }
    }

    /// A record of `dir`'s encrypted handshake flight, opened: its handshake messages and alerts
    /// go to the session; after the direction's Finished its keys are dropped (application data
    /// is never decrypted).
    fn decrypted(&mut self, inner: &mut Inner, dir: Dir, ts: TimestampNs, o: Opened) {
        self.stats.records_decrypted += 1;
        let d = &mut inner.dirs[dir.index()];
        let Some(dec) = d.decrypt.as_mut() else {
            return;
        };
        match o.content_type {
            ct::HANDSHAKE => {
                let mut msgs = Vec::new();
                if let Err(e) =
                    dec.messages
                        .push(&o.plaintext, |m| Cow::Owned(m.to_vec()), &mut msgs)
                {
                    self.stats.anomalies.add(e.into(), 1);
                    d.decrypt = None;
                    d.stop_keeping_records();
                    return;
                }
                let mut finished = false;
                for m in msgs {
                    if let (Event::Handshake { typ, body }, Some(s)) = (m, inner.session.as_mut()) {
                        finished |= typ == msg::FINISHED;
                        s.on_decrypted_message(dir, typ, &body, ts, &mut self.certs, &mut self.out);
                    }
                }
                if finished {
                    let d = &mut inner.dirs[dir.index()];
                    d.decrypt = None;
                    d.stop_keeping_records();
                }
            }
            ct::ALERT => {
                if let Some(s) = inner.session.as_mut() {
                    for a in o.plaintext.chunks_exact(2) {
                        if let [level, code] = a {
                            s.on_alert(dir, *level, *code, ts);
                        }
                    }
                }
            }
            _ => {
                if let Some(s) = inner.session.as_mut() {
                    s.on_app_data(dir)
                }
            }
        }
    }

    /// Switches `dir` to TLS records and feeds `bytes` (which start at a record boundary).
    fn start_tls(
        &mut self,
        ctx: &FlowCtx,
        inner: &mut Inner,
        dir: Dir,
        ts: TimestampNs,
        bytes: &[u8],
    ) {
        let mut d = Box::new(Deframer::new(self.cfg.max_handshake_message));
        // Records are kept for decryption only while a key log holds secrets (given with
        // --keylog, or read from the capture's Decryption Secrets Blocks before this flow).
        d.keep_records = self
            .cfg
            .keylog
            .as_ref()
            .is_some_and(|k| !k.is_empty() || k.follows());
        let mut ev = Vec::new();
        d.feed(bytes, &mut ev);
        inner.dirs[dir.index()].mode = Mode::Tls(d);
        if !inner.counted {
            inner.counted = true;
            self.stats.tls_flows += 1;
        }
        self.events(ctx, inner, dir, ts, ev, Protocol::Tls);
    }

    /// Feeds `data` to `dir`'s deframer `d` (taken out of its mode), puts it back, and hands the
    /// events to the session.
    fn feed_tls(
        &mut self,
        ctx: &FlowCtx,
        inner: &mut Inner,
        dir: Dir,
        ts: TimestampNs,
        mut d: Box<Deframer>,
        data: &[u8],
    ) {
        let mut ev = Vec::new();
        d.feed(data, &mut ev);
        inner.dirs[dir.index()].mode = Mode::Tls(d);
        self.events(ctx, inner, dir, ts, ev, Protocol::Tls);
    }

    fn v2(&mut self, ctx: &FlowCtx, inner: &mut Inner, dir: Dir, ts: TimestampNs, data: &[u8]) {
        let Mode::V2(buf) = &mut inner.dirs[dir.index()].mode else {
            return;
        };
        // Collect the 2-byte header, then the body it announces (15-bit length: bounded).
        let mut rest = data;
        for _ in 0..2 {
            let want = v2_record_len(buf).unwrap_or(2);
            let take = want.saturating_sub(buf.len()).min(rest.len());
            buf.extend_from_slice(rest.get(..take).unwrap_or_default());
            rest = rest.get(take..).unwrap_or_default();
        }
        if v2_record_len(buf).is_none_or(|want| buf.len() < want) {
            return;
        }
        let rec = std::mem::take(buf);
        let body = rec.get(2..).unwrap_or_default();
        if !inner.counted {
            inner.counted = true;
            self.stats.sslv2_flows += 1;
        }
        let starttls = inner.starttls;
        match body.first() {
            Some(&sslv2::MSG_CLIENT_HELLO) => {
                if let Some(ch) = sslv2::parse_client_hello(body) {
                    let s = inner
                        .session
                        .get_or_insert_with(|| Session::new(Protocol::Tls, starttls, ts));
                    s.on_v2_client_hello(dir, ch.version);
                }
                // The server may answer with TLS; the client then continues with TLS records.
                self.start_tls(ctx, inner, dir, ts, rest);
            }
            Some(&sslv2::MSG_SERVER_HELLO) => {
                if let Some(sh) = sslv2::parse_server_hello(body) {
                    let s = inner
                        .session
                        .get_or_insert_with(|| Session::new(Protocol::Sslv2, starttls, ts));
                    s.on_v2_server_hello(dir, &sh, ts, &mut self.certs, &mut self.out);
                }
                inner.dirs[dir.index()].mode = Mode::Dead;
            }
            _ => inner.dirs[dir.index()].mode = Mode::Dead,
        }
    }

    /// A client's HTTP request: a side signal when complete, then nothing more to read.
    fn http(&mut self, ctx: &FlowCtx, inner: &mut Inner, dir: Dir, ts: TimestampNs, buf: Vec<u8>) {
        match sidesignal::parse_request(&buf, ctx.resp) {
            Parsed::NeedMore => {
                inner.dirs[dir.index()].mode = Mode::Http(buf);
                return;
            }
            Parsed::None => {}
            Parsed::Signal {
                kind,
                method,
                url,
                cert_ids,
            } => {
                self.stats.side_signals += 1;
                self.out.push(Output::SideSignal(Box::new(SideSignal {
                    ts_ns: ts,
                    client: ctx.orig,
                    server: ctx.resp,
                    kind,
                    method,
                    url,
                    cert_ids,
                })));
            }
        }
        inner.dirs[dir.index()].mode = Mode::Dead;
        inner.never_tls = true;
    }

    /// A UDP flow in which nothing was read: counted by its responder's port.
    fn count_unread_udp(&mut self, ctx: &FlowCtx, inner: &Inner) {
        if inner.dtls.is_none()
            && inner.quic.is_none()
            && inner.ovpn.is_none()
            && inner.udp_other > 0
        {
            self.stats.unread_udp(ctx.resp.1, 1);
        }
    }

    /// An OpenVPN TCP direction: packets out of the 2-byte length framing.
    fn openvpn_tcp(
        &mut self,
        ctx: &FlowCtx,
        inner: &mut Inner,
        dir: Dir,
        ts: TimestampNs,
        data: &[u8],
    ) {
        let Some(f) = inner.ovpn.as_mut() else {
            return;
        };
        let mut pkts = Vec::new();
        let framing = &mut f.framing[dir.index()];
        let was_broken = framing.broken;
        framing.push(data, |p| pkts.push(p.to_vec()));
        if framing.broken && !was_broken {
            self.stats.anomalies.add(Anomaly::BadOpenVpnPacket, 1);
        }
        for p in pkts {
            self.openvpn_packet(ctx, inner, dir, ts, &p);
        }
    }

    /// One OpenVPN packet: the control channel's TLS bytes, in message order, go to the
    /// direction's deframer; with tls-crypt nothing can be read.
    fn openvpn_packet(
        &mut self,
        ctx: &FlowCtx,
        inner: &mut Inner,
        dir: Dir,
        ts: TimestampNs,
        pkt: &[u8],
    ) {
        let Some(f) = inner.ovpn.as_mut() else {
            return;
        };
        let protection = match f.protection {
            Some(p) => p,
            None => match openvpn::detect(pkt, ts / 1_000_000_000) {
                Some(p) => {
                    f.protection = Some(p);
                    self.stats.openvpn_flows += 1;
                    if p == Protection::TlsCrypt {
                        self.stats.openvpn_tls_crypt += 1;
                    }
                    p
                }
                None => {
                    self.stats.anomalies.add(Anomaly::BadOpenVpnPacket, 1);
                    return;
                }
            },
        };
        let mut tls = Vec::new();
        match openvpn::parse(pkt, protection) {
            None => self.stats.anomalies.add(Anomaly::BadOpenVpnPacket, 1),
            Some(Packet::Other | Packet::Encrypted) => {}
            Some(Packet::Message { id, tls: t }) => {
                f.reliable[dir.index()].push(id, t, |b| tls.extend_from_slice(b));
            }
        }
        if tls.is_empty() {
            return;
        }
        match std::mem::take(&mut inner.dirs[dir.index()].mode) {
            Mode::Tls(d) => self.feed_tls(ctx, inner, dir, ts, d, &tls),
            _ => self.start_tls(ctx, inner, dir, ts, &tls),
        }
        if let Some(s) = inner.session.as_mut() {
            s.tunnel = Some("openvpn");
        }
    }

    /// Plaintext: keep a prefix, scan for a hello record (bounded), switch to TLS when found.
    fn plain(&mut self, ctx: &FlowCtx, inner: &mut Inner, dir: Dir, ts: TimestampNs, data: &[u8]) {
        let other_tls = inner.dirs[dir.other().index()].is_tls();
        let d = &mut inner.dirs[dir.index()];
        if d.scanned >= self.cfg.max_plaintext_scan {
            d.mode = Mode::Dead;
            return;
        }
        let keep = PREFIX_KEEP.saturating_sub(d.prefix.len()).min(data.len());
        d.prefix
            .extend_from_slice(data.get(..keep).unwrap_or_default());
        if keep > 0 && !other_tls && detect::never_upgrades(&d.prefix) == Some(true) {
            // Every byte so far is in the prefix (nothing was scanned past it).
            let whole = d.scanned + keep == d.prefix.len();
            if dir == Dir::Orig && whole && sidesignal::is_candidate(&d.prefix) {
                // The whole request so far: the prefix and what this segment had beyond it.
                let mut buf = d.prefix.clone();
                let more = sidesignal::MAX_REQUEST.saturating_sub(buf.len());
                let rest = data.get(keep..).unwrap_or_default();
                buf.extend_from_slice(rest.get(..more.min(rest.len())).unwrap_or_default());
                return self.http(ctx, inner, dir, ts, buf);
            }
            d.mode = Mode::Dead;
            inner.never_tls = true;
            return;
        }
        // The peer already speaks TLS: a record header at a segment start is our first record
        // (an upgrade switches on a segment boundary; this also catches a bare Alert answer).
        if other_tls && plausible_record_header(data) {
            self.upgrade(inner, dir, data.get(5).copied());
            return self.start_tls(ctx, inner, dir, ts, data);
        }
        let d = &mut inner.dirs[dir.index()];
        let budget = self.cfg.max_plaintext_scan - d.scanned;
        let data = data.get(..budget.min(data.len())).unwrap_or_default();
        let mut buf = std::mem::take(&mut d.tail);
        buf.extend_from_slice(data);
        d.scanned += data.len();
        match detect::find_hello(&buf) {
            Some(k) => {
                let at = buf.get(k..).unwrap_or_default();
                self.upgrade(inner, dir, at.get(5).copied());
                self.start_tls(ctx, inner, dir, ts, at);
            }
            None => {
                let from = buf.len().saturating_sub(HELLO_SIG_LEN - 1);
                d.tail = buf.get(from..).unwrap_or_default().to_vec();
            }
        }
    }

    /// TLS starts after plaintext in `dir`: name the protocol that upgraded.
    fn upgrade(&mut self, inner: &mut Inner, dir: Dir, hs_type: Option<u8>) {
        if inner.starttls.is_some() {
            return;
        }
        // Which side is the TLS client: the sender of a ClientHello, else the other side.
        let client = if hs_type == Some(msg::CLIENT_HELLO) {
            dir
        } else if let Some(c) = inner.session.as_ref().and_then(|s| s.client_dir) {
            c
        } else {
            dir.other()
        };
        let c = &inner.dirs[client.index()].prefix;
        let s = &inner.dirs[client.other().index()].prefix;
        if c.is_empty() && s.is_empty() {
            return;
        }
        inner.starttls = Some(detect::name_upgrade(c, s));
        self.stats.starttls_flows += 1;
        if let Some(sess) = inner.session.as_mut() {
            if sess.starttls.is_none() {
                sess.starttls = inner.starttls;
            }
        }
    }

    fn stream(&mut self, ctx: &FlowCtx, inner: &mut Inner, dir: Dir, ts: TimestampNs, data: &[u8]) {
        if inner.ovpn.is_some() {
            return self.openvpn_tcp(ctx, inner, dir, ts, data);
        }
        let mode = std::mem::take(&mut inner.dirs[dir.index()].mode);
        match mode {
            Mode::Fresh | Mode::Start(_) => {
                let mut buf = match mode {
                    Mode::Start(b) => b,
                    _ => Vec::new(),
                };
                let other_tls = inner.dirs[dir.other().index()].is_tls();
                let take = START_KEEP.saturating_sub(buf.len()).min(data.len());
                buf.extend_from_slice(data.get(..take).unwrap_or_default());
                let rest = data.get(take..).unwrap_or_default();
                if !other_tls && inner.session.is_none() && openvpn::looks_like_tcp_start(&buf) {
                    inner.ovpn = Some(Box::default());
                    let mut all = buf;
                    all.extend_from_slice(rest);
                    return self.openvpn_tcp(ctx, inner, dir, ts, &all);
                }
                let class = detect::classify_start(&buf);
                let record = plausible_record_header(&buf);
                let first = buf.first().copied().unwrap_or(0);
                if class != Start::Tls
                    && !other_tls
                    && record
                    && first != ct::HANDSHAKE
                    && inner.session.is_none()
                {
                    inner.midstream = true;
                    inner.dirs[dir.index()].mode = Mode::Dead;
                } else if class == Start::Tls || (other_tls && record) {
                    let mut all = buf;
                    all.extend_from_slice(rest);
                    self.start_tls(ctx, inner, dir, ts, &all);
                } else if class == Start::Sslv2 {
                    inner.dirs[dir.index()].mode = Mode::V2(Vec::new());
                    let mut all = buf;
                    all.extend_from_slice(rest);
                    self.v2(ctx, inner, dir, ts, &all);
                } else if class == Start::NeedMore && rest.is_empty() {
                    inner.dirs[dir.index()].mode = Mode::Start(buf);
                } else {
                    inner.dirs[dir.index()].mode = Mode::Plain;
                    let mut all = buf;
                    all.extend_from_slice(rest);
                    self.plain(ctx, inner, dir, ts, &all);
                }
            }
            Mode::Plain => {
                inner.dirs[dir.index()].mode = Mode::Plain;
                self.plain(ctx, inner, dir, ts, data);
            }
            Mode::Http(mut buf) => {
                let take = sidesignal::MAX_REQUEST
                    .saturating_sub(buf.len())
                    .min(data.len());
                buf.extend_from_slice(data.get(..take).unwrap_or_default());
                self.http(ctx, inner, dir, ts, buf);
            }
            Mode::Tls(d) => self.feed_tls(ctx, inner, dir, ts, d, data),
            Mode::V2(b) => {
                inner.dirs[dir.index()].mode = Mode::V2(b);
                self.v2(ctx, inner, dir, ts, data);
            }
            Mode::Dead => inner.dirs[dir.index()].mode = Mode::Dead,
        }
    }

    fn datagram(
        &mut self,
        ctx: &FlowCtx,
        inner: &mut Inner,
        dir: Dir,
        ts: TimestampNs,
        data: &[u8],
    ) {
        if inner.quic.is_some() || (inner.dtls.is_none() && quic::looks_like_initial(data)) {
            return self.quic(inner, dir, ts, data);
        }
        if inner.ovpn.is_some()
            || (inner.dtls.is_none()
                && inner.session.is_none()
                && openvpn::looks_like_udp_start(data))
        {
            inner.ovpn.get_or_insert_with(Box::default);
            return self.openvpn_packet(ctx, inner, dir, ts, data);
        }
        if dtls::looks_like_stun(data) {
            self.stats.stun_datagrams += 1;
            return;
        }
        if inner.dtls.is_none() {
            if !dtls::looks_like_dtls_hello(data) {
                inner.udp_other = inner.udp_other.saturating_add(data.len());
                return;
            }
            inner.dtls = Some(Box::default());
            self.stats.dtls_flows += 1;
        }
        let max = self.cfg.max_handshake_message;
        let Some(d) = inner.dtls.as_mut() else {
            return;
        };
        if !dtls::looks_like_dtls(data) && data.first().is_none_or(|b| b & 0xe0 != 0x20) {
            return; // something else multiplexed on the flow
        }
        let [a, b] = &mut **d;
        let (me, other) = match dir {
            Dir::Orig => (a, b),
            Dir::Resp => (b, a),
        };
        let before = me.errors;
        let r = me.feed(data, max);
        self.stats
            .anomalies
            .add(Anomaly::BadDtlsRecord, me.errors.saturating_sub(before));
        if r.new_client_hello {
            other.reset();
        }
        self.events(ctx, inner, dir, ts, r.events, Protocol::Dtls);
    }
}

impl Analyzer {
    /// One UDP datagram of a QUIC connection: each coalesced packet in turn (a ServerHello may
    /// bring the keys of the next one), CRYPTO data to the session.
    fn quic(&mut self, inner: &mut Inner, dir: Dir, ts: TimestampNs, data: &[u8]) {
        let max = self.cfg.max_handshake_message;
        let q = inner.quic.get_or_insert_with(|| {
            self.stats.quic_flows += 1;
            Box::new(QuicFlow {
                conn: QuicConn::default(),
                client_dir: dir,
                messages: std::array::from_fn(|_| std::array::from_fn(|_| MessageJoiner::new(max))),
            })
        });
        let from_client = dir == q.client_dir;
        let session = inner
            .session
            .get_or_insert_with(|| Session::new(Protocol::Quic, None, ts));
        let mut rest = data;
        while let Some((len, frames)) = q.conn.packet(from_client, rest) {
            rest = rest.get(len..).unwrap_or_default();
            if frames.retry {
                // The handshake starts over: what was joined so far is void.
                for m in q.messages.iter_mut().flatten() {
                    m.clear();
                }
                *session = Session::new(Protocol::Quic, None, ts);
            }
            for (space, bytes) in frames.crypto {
                let sp = usize::from(space == quic::Space::Handshake);
                let side = usize::from(!from_client);
                let mut msgs = Vec::new();
                let Some(j) = q.messages.get_mut(sp).and_then(|m| m.get_mut(side)) else {
                    continue;
                };
                if let Err(e) = j.push(&bytes, |m| Cow::Owned(m.to_vec()), &mut msgs) {
                    self.stats.anomalies.add(e.into(), 1);
                    continue;
                }
                for m in msgs {
                    let Event::Handshake { typ, body } = m else {
                        continue;
                    };
                    match space {
                        quic::Space::Initial => {
                            session.on_message(dir, typ, &body, ts, &mut self.certs, &mut self.out);
                            if typ == msg::SERVER_HELLO && !q.conn.has_handshake_keys() {
                                Self::quic_keys(
                                    self.cfg.keylog.as_deref(),
                                    &mut self.stats,
                                    session,
                                    &mut q.conn,
                                );
                            }
                        }
                        quic::Space::Handshake => {
                            session.on_decrypted_message(
                                dir,
                                typ,
                                &body,
                                ts,
                                &mut self.certs,
                                &mut self.out,
                            );
                        }
                    }
                }
            }
            if let Some(code) = frames.tls_alert {
                session.on_alert(dir, session::ALERT_FATAL, code, ts);
            }
        }
        // 1-RTT packets both ways: the handshake is over.
        if q.conn.short_packets[usize::from(!from_client)] > 0 {
            session.on_app_data(dir);
        }
    }

    /// Handshake keys of a QUIC connection from the key log, once the ServerHello named the suite.
    fn quic_keys(
        keylog: Option<&KeyLog>,
        stats: &mut AnalyzerStats,
        session: &Session,
        conn: &mut QuicConn,
    ) {
        let (Some(keylog), Some(random), Some(suite)) =
            (keylog, session.client_random(), session.cipher())
        else {
            return;
        };
        if keylog.is_empty() {
            return;
        }
        match keylog.get(random) {
            Some(s) => {
                stats.keylog_found += 1;
                conn.set_handshake_keys(suite, s.client.as_deref(), s.server.as_deref());
            }
            None => stats.keylog_missing += 1,
        }
    }
}

impl App for Analyzer {
    type FlowState = FlowState;

    fn on_stream(
        &mut self,
        ctx: &FlowCtx,
        s: &mut FlowState,
        dir: Dir,
        ts: TimestampNs,
        data: &[u8],
    ) -> Verdict {
        if s.done {
            return Verdict::Bypass;
        }
        let mut inner = s.inner.take().unwrap_or_default();
        self.stream(ctx, &mut inner, dir, ts, data);
        let done = self.check_done(ctx, &mut inner, ts);
        let idle = inner.session.is_none()
            && inner.dirs.iter().all(|d| {
                matches!(d.mode, Mode::Dead)
                    || (matches!(d.mode, Mode::Plain) && d.scanned >= self.cfg.max_plaintext_scan)
            });
        if idle {
            self.stats.not_tls += 1;
        }
        let midstream = (inner.midstream || inner.never_tls) && inner.session.is_none();
        if midstream {
            if inner.never_tls {
                self.stats.not_tls += 1;
            } else {
                self.stats.midstream += 1;
            }
        }
        if done || idle || midstream {
            // Nothing is left to report (the session went out in `check_done`, or there was
            // none): free the buffers now, the flow may stay tracked for long.
            s.done = true;
            return Verdict::Bypass;
        }
        s.inner = Some(inner);
        Verdict::Continue
    }

    fn on_gap(&mut self, _ctx: &FlowCtx, s: &mut FlowState, dir: Dir, _ts: TimestampNs, _len: u64) {
        let Some(inner) = s.inner.as_mut() else {
            return;
        };
        let d = &mut inner.dirs[dir.index()];
        match d.mode {
            Mode::Tls(_) | Mode::V2(_) => {
                self.stats.anomalies.add(Anomaly::StreamGap, 1);
                d.mode = Mode::Dead;
            }
            Mode::Plain => d.tail.clear(),
            _ => {}
        }
    }

    fn on_datagram(
        &mut self,
        ctx: &FlowCtx,
        s: &mut FlowState,
        dir: Dir,
        ts: TimestampNs,
        data: &[u8],
    ) -> Verdict {
        if s.done {
            return Verdict::Bypass;
        }
        let mut inner = s.inner.take().unwrap_or_default();
        self.datagram(ctx, &mut inner, dir, ts, data);
        let done = self.check_done(ctx, &mut inner, ts);
        let idle = inner.dtls.is_none()
            && inner.quic.is_none()
            && inner.udp_other > 2 * self.cfg.max_plaintext_scan;
        if idle {
            self.stats.not_tls += 1;
            self.count_unread_udp(ctx, &inner);
        }
        if done || idle {
            s.done = true;
            return Verdict::Bypass;
        }
        s.inner = Some(inner);
        Verdict::Continue
    }

    fn on_close(
        &mut self,
        ctx: &FlowCtx,
        s: &mut FlowState,
        dir: Dir,
        ts: TimestampNs,
        kind: CloseKind,
    ) {
        if s.done {
            return;
        }
        let Some(mut inner) = s.inner.take() else {
            return;
        };
        if let Some(sess) = inner.session.as_mut() {
            sess.on_close(dir, kind);
        }
        if self.check_done(ctx, &mut inner, ts) {
            s.done = true;
            return;
        }
        s.inner = Some(inner);
    }

    fn on_flow_end(&mut self, ctx: &FlowCtx, s: FlowState, ts: TimestampNs, _reason: EndReason) {
        let Some(mut inner) = s.inner else {
            return;
        };
        // Secrets that came after the flow's last packet still open its kept flight.
        self.retry_keys(&mut inner, ts);
        if ctx.transport == capture::Transport::Udp {
            self.count_unread_udp(ctx, &inner);
        }
        if let Some(sess) = inner.session {
            if sess.worth_reporting() {
                self.emit(ctx, sess, ts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capture::Transport;
    use std::net::{IpAddr, Ipv4Addr};

    fn ctx() -> FlowCtx {
        FlowCtx {
            id: 1,
            transport: Transport::Tcp,
            orig: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
            resp: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 25),
            syn_seen: true,
            first_ts_ns: 0,
        }
    }

    /// A ClientHello record with SNI "mx.example".
    fn client_hello_record() -> Vec<u8> {
        testkit::tls::client_hello_record(Some("mx.example"))
    }

    #[test]
    fn smtp_starttls_then_alert() {
        let c = ctx();
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut st = FlowState::default();
        let steps: [(Dir, &[u8]); 5] = [
            (Dir::Resp, b"220 mx ESMTP\r\n"),
            (Dir::Orig, b"EHLO client\r\n"),
            (Dir::Resp, b"250-mx\r\n250 STARTTLS\r\n"),
            (Dir::Orig, b"STARTTLS\r\n"),
            (Dir::Resp, b"220 2.0.0 Ready to start TLS\r\n"),
        ];
        for (i, (d, b)) in steps.iter().enumerate() {
            assert_eq!(a.on_stream(&c, &mut st, *d, i as u64, b), Verdict::Continue);
        }
        let ch = client_hello_record();
        assert_eq!(
            a.on_stream(&c, &mut st, Dir::Orig, 10, &ch),
            Verdict::Continue
        );
        let v = a.on_stream(&c, &mut st, Dir::Resp, 11, &[0x15, 3, 3, 0, 2, 2, 40]);
        assert_eq!(v, Verdict::Bypass, "a fatal alert ends the handshake");
        let Some(Output::Handshake(h)) = a.out.pop() else {
            panic!("no handshake emitted")
        };
        assert_eq!(h.starttls, Some("smtp"));
        assert_eq!(h.server_name.as_deref(), Some("mx.example"));
        assert_eq!(
            h.alert.map(|a| (a.from, a.code)),
            Some((crate::Side::Server, 40))
        );
        assert_eq!((h.start_ts_ns, h.ts_ns), (10, 11));
        assert_eq!(h.client, c.orig);
    }

    #[test]
    fn established_tls_picked_up_midstream_is_bypassed() {
        let c = ctx();
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut st = FlowState::default();
        let mut rec = vec![0x17, 3, 3, 0, 100];
        rec.extend_from_slice(&[0x16; 100]);
        assert_eq!(
            a.on_stream(&c, &mut st, Dir::Orig, 1, &rec),
            Verdict::Bypass
        );
        assert_eq!(a.stats.midstream, 1);
        a.on_flow_end(&c, st, 2, EndReason::Closed);
        assert!(a.out.is_empty());
    }

    #[test]
    fn ssh_and_plain_http_are_bypassed_at_once() {
        for first in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let c = ctx();
            let mut a = Analyzer::new(AnalyzerConfig::default());
            let mut st = FlowState::default();
            assert_eq!(
                a.on_stream(&c, &mut st, Dir::Orig, 1, first),
                Verdict::Bypass
            );
            assert_eq!(a.stats.not_tls, 1);
        }
    }

    #[test]
    fn plaintext_only_is_bypassed_within_budget() {
        let c = ctx();
        let mut a = Analyzer::new(AnalyzerConfig {
            max_plaintext_scan: 1000,
            ..Default::default()
        });
        let mut st = FlowState::default();
        let chunk = [b'x'; 300];
        let mut verdict = Verdict::Continue;
        for i in 0..20 {
            let d = if i % 2 == 0 { Dir::Orig } else { Dir::Resp };
            verdict = a.on_stream(&c, &mut st, d, i, &chunk);
            if verdict == Verdict::Bypass {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Bypass);
        assert_eq!(a.stats.not_tls, 1);
        a.on_flow_end(&c, st, 99, EndReason::Closed);
        assert!(a.out.is_empty());
    }
}
