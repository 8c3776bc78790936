//! Test helpers: a recording App, a tiny pcap writer and the repository's Zeek traces.
#![allow(dead_code)]
use capture::{App, CloseKind, Dir, EndReason, FlowCtx, TimestampNs, Verdict};
use std::path::{Path, PathBuf};

/// The Zeek traces shipped with the repository (`pcaps/zeek/` at the repository root).
pub const ZEEK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/zeek");

/// `ZEEK/name`, which must exist: a missing input fails the test instead of passing quietly.
pub fn zeek_file(name: &str) -> PathBuf {
    let p = Path::new(ZEEK).join(name);
    assert!(
        p.is_file(),
        "missing test input {} (the repository's pcaps/zeek/)",
        p.display()
    );
    p
}

/// The bytes of `ZEEK/name` (panics with the path when it cannot be read).
pub fn zeek_bytes(name: &str) -> Vec<u8> {
    let p = zeek_file(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read test input {}: {e}", p.display()))
}

/// Every `*.pcap` of [`ZEEK`], sorted (panics when the folder cannot be read or holds none).
pub fn zeek_pcaps() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ZEEK)
        .unwrap_or_else(|e| panic!("missing test inputs: cannot read {ZEEK}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    assert!(!v.is_empty(), "missing test inputs: no *.pcap in {ZEEK}");
    v.sort();
    v
}

/// Everything one flow produced.
#[derive(Debug, Default, Clone)]
pub struct Rec {
    pub ctx: Option<FlowCtx>,
    /// Stream bytes per direction (Orig, Resp); a gap is recorded in `gaps`, not filled.
    pub streams: [Vec<u8>; 2],
    pub gaps: Vec<(Dir, u64)>,
    pub closes: Vec<(Dir, CloseKind)>,
    pub datagrams: [Vec<Vec<u8>>; 2],
    /// Number of callbacks after which the App asks for bypass (0 = never).
    pub reason: Option<EndReason>,
    pub callbacks: u64,
}

#[derive(Default)]
pub struct Recorder {
    pub done: Vec<Rec>,
    /// Bypass after this many stream bytes in a direction (None = never).
    pub bypass_after: Option<usize>,
    /// Calls made while the flow should be bypassed (must stay 0).
    pub calls: u64,
}

impl Recorder {
    pub fn tcp(&self) -> impl Iterator<Item = &Rec> {
        self.done.iter().filter(|r| {
            r.ctx
                .as_ref()
                .is_some_and(|c| c.transport == capture::Transport::Tcp)
        })
    }
}

impl Rec {
    /// Counts one callback for this flow and keeps its context (from the first one).
    fn callback(&mut self, ctx: &FlowCtx) {
        self.callbacks += 1;
        self.ctx.get_or_insert_with(|| ctx.clone());
    }
}

impl App for Recorder {
    type FlowState = Rec;

    fn on_stream(
        &mut self,
        ctx: &FlowCtx,
        st: &mut Rec,
        dir: Dir,
        _ts: TimestampNs,
        data: &[u8],
    ) -> Verdict {
        assert!(!data.is_empty(), "empty on_stream");
        self.calls += 1;
        st.callback(ctx);
        st.streams[dir.index()].extend_from_slice(data);
        match self.bypass_after {
            Some(n) if st.streams[dir.index()].len() >= n => Verdict::Bypass,
            _ => Verdict::Continue,
        }
    }

    fn on_gap(&mut self, ctx: &FlowCtx, st: &mut Rec, dir: Dir, _ts: TimestampNs, len: u64) {
        st.callback(ctx);
        st.gaps.push((dir, len));
    }

    fn on_datagram(
        &mut self,
        ctx: &FlowCtx,
        st: &mut Rec,
        dir: Dir,
        _ts: TimestampNs,
        data: &[u8],
    ) -> Verdict {
        st.callback(ctx);
        st.datagrams[dir.index()].push(data.to_vec());
        Verdict::Continue
    }

    fn on_close(&mut self, ctx: &FlowCtx, st: &mut Rec, dir: Dir, _ts: TimestampNs, k: CloseKind) {
        st.callback(ctx);
        st.closes.push((dir, k));
    }

    fn on_flow_end(&mut self, ctx: &FlowCtx, mut st: Rec, _ts: TimestampNs, reason: EndReason) {
        st.ctx = Some(ctx.clone());
        st.reason = Some(reason);
        self.done.push(st);
    }
}

/// Writes a classic little-endian pcap (µs or ns) in memory.
pub struct PcapWriter {
    pub buf: Vec<u8>,
    ns: bool,
}

impl PcapWriter {
    pub fn new(linktype: u32, ns: bool) -> Self {
        let magic: u32 = if ns { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut buf = Vec::new();
        buf.extend_from_slice(&magic.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&262_144u32.to_le_bytes());
        buf.extend_from_slice(&linktype.to_le_bytes());
        PcapWriter { buf, ns }
    }

    pub fn packet(&mut self, ts_ns: u64, data: &[u8]) {
        let sec = (ts_ns / 1_000_000_000) as u32;
        let frac = if self.ns {
            (ts_ns % 1_000_000_000) as u32
        } else {
            ((ts_ns % 1_000_000_000) / 1000) as u32
        };
        self.buf.extend_from_slice(&sec.to_le_bytes());
        self.buf.extend_from_slice(&frac.to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(data);
    }
}

/// Big-endian pcap header + one record, to check the other byte order.
pub fn pcap_be(linktype: u32, ns: bool, ts_ns: u64, data: &[u8]) -> Vec<u8> {
    let magic: u32 = if ns { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut b = Vec::new();
    b.extend_from_slice(&magic.to_be_bytes());
    b.extend_from_slice(&2u16.to_be_bytes());
    b.extend_from_slice(&4u16.to_be_bytes());
    b.extend_from_slice(&[0u8; 8]);
    b.extend_from_slice(&65535u32.to_be_bytes());
    b.extend_from_slice(&linktype.to_be_bytes());
    let sec = (ts_ns / 1_000_000_000) as u32;
    let frac = if ns {
        (ts_ns % 1_000_000_000) as u32
    } else {
        ((ts_ns % 1_000_000_000) / 1000) as u32
    };
    b.extend_from_slice(&sec.to_be_bytes());
    b.extend_from_slice(&frac.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// Little-endian pcapng with the given interfaces `(linktype, if_tsresol)` and packets
/// `(interface, timestamp units, data)`.
pub fn pcapng(ifaces: &[(u16, u8)], pkts: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    // SHB
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    for (lt, res) in ifaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&lt.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        // if_tsresol option (code 9, len 1)
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.push(*res);
        pad4(&mut idb);
        idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        block(&mut out, 1, &idb);
    }
    for (iface, units, data) in pkts {
        let mut epb = Vec::new();
        epb.extend_from_slice(&iface.to_le_bytes());
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*units as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        pad4(&mut epb);
        block(&mut out, 6, &epb);
    }
    out
}

fn block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let len = (body.len() + 12) as u32;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&len.to_le_bytes());
}

pub const A: [u8; 4] = [10, 0, 0, 1];
pub const B: [u8; 4] = [10, 0, 0, 2];

/// An IPv4 packet (no fragmentation) with the given protocol payload.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, body: &[u8]) -> Vec<u8> {
    ipv4_frag(src, dst, proto, 1, 0, false, body)
}

pub fn ipv4_frag(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    offset: u16,
    more: bool,
    body: &[u8],
) -> Vec<u8> {
    let total = (20 + body.len()) as u16;
    let frag = (offset / 8) | if more { 0x2000 } else { 0 };
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(body);
    v
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

pub fn tcp_hdr(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

/// Raw-IP (linktype 101) TCP packet.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    ipv4(
        src,
        dst,
        6,
        &tcp_hdr(sport, dport, seq, ack, flags, payload),
    )
}

pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    ipv4(src, dst, 17, &v)
}

/// Small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}
