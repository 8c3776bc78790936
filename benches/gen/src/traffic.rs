//! The replay engine: builds the transcript pool, then interleaves `concurrency` TCP
//! connections into one pcap until the target size is reached.

use crate::pcap::{Flow, Ips, PcapWriter, Seg, ACK, FIN, PSH, SYN};
use crate::pki::{Chain, Hierarchy};
use crate::rng::Rng;
use crate::tls::{transcript, Dir, Transcript};
use crate::{ChainSeen, Config, Manifest};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Instant;

/// Random bytes that bulk record bodies are sliced from.
const RANDOM_POOL: usize = 4 << 20;
/// Most segments one connection emits per scheduling turn (keeps flows interleaved).
const BURST_SEGMENTS: usize = 16;
/// Frames after which the running average frame size replaces the steady-state estimate.
const AVG_WARMUP_FRAMES: u64 = 20_000;
/// Hard cap on the transcript pool (memory and startup time).
const MAX_POOL: usize = 200_000;
/// Smallest IP MTU we accept (IPv6 minimum).
const MIN_MTU: usize = 1280;
/// Largest MTU (jumbo).
const MAX_MTU: usize = 9000;
/// TLS 1.2 AEAD overhead per record (explicit nonce 8 + tag 16).
const TLS12_OVERHEAD: usize = 24;
/// TLS 1.3 AEAD overhead per record (inner content type 1 + tag 16).
const TLS13_OVERHEAD: usize = 17;

struct Pool {
    chains: Vec<Chain>,
    entries: Vec<Transcript>,
    /// Segments a connection spends on setup + handshake, per entry (for budgeting).
    hs_packets: Vec<u64>,
}

fn build_pool(cfg: &Config) -> Result<Pool, String> {
    let n_chains = cfg.unique_chains.clamp(1, MAX_POOL);
    let n_entries = cfg.pool.max(n_chains).min(MAX_POOL);
    let hier = Hierarchy::new()?;
    let threads = cfg.threads.clamp(1, 64);
    // Build chains and transcripts in parallel; each item is seeded by its index, so the
    // result does not depend on thread scheduling.
    let chains: Vec<Chain> = par_map(n_chains, threads, |i| hier.chain(cfg.seed, i))?;
    let mut ver_rng = Rng::derive(cfg.seed, 0x7E25);
    let versions: Vec<bool> = (0..n_entries)
        .map(|_| ver_rng.chance(cfg.tls13_share))
        .collect();
    let entries: Vec<Transcript> = par_map(n_entries, threads, |j| {
        let ci = j % n_chains;
        let chain = chains.get(ci).ok_or("chain index")?;
        let tls13 = versions.get(j).copied().unwrap_or(false);
        transcript(
            chain,
            ci,
            tls13,
            cfg.seed ^ (j as u64).wrapping_mul(0x9E37_79B9),
        )
    })?;
    let hs_packets = entries
        .iter()
        .map(|t| {
            3 + t
                .flights
                .iter()
                .take(t.handshake_flights)
                .map(|(_, b)| b.len().div_ceil(cfg.mtu.saturating_sub(72).max(1)) as u64)
                .sum::<u64>()
        })
        .collect();
    Ok(Pool {
        chains,
        entries,
        hs_packets,
    })
}

fn par_map<T: Send, F>(n: usize, threads: usize, f: F) -> Result<Vec<T>, String>
where
    F: Fn(usize) -> Result<T, String> + Sync,
{
    let mut out: Vec<Option<Result<T, String>>> = (0..n).map(|_| None).collect();
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (k, slot) in out.chunks_mut(chunk).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (i, o) in slot.iter_mut().enumerate() {
                    *o = Some(f(k * chunk + i));
                }
            });
        }
    });
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err("missing".into())))
        .collect()
}

/// One TCP endpoint's sending state.
#[derive(Clone, Copy)]
struct Side {
    seq: u32,
    ip_id: u16,
    ts_off: u32,
    /// Full segments received and not yet acknowledged.
    unacked: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Syn,
    Flight(usize),
    Data,
    Close,
}

struct Conn {
    entry: usize,
    flow: Flow,
    c: Side,
    s: Side,
    phase: Phase,
    /// Data frames this connection may still send.
    data_left: u64,
    /// Bulk bytes (plaintext) still to frame for the current transfer.
    xfer_left: u64,
    /// Current transfer direction.
    xfer_c2s: bool,
    /// Framed stream bytes waiting to be segmented (current transfer).
    tx: Vec<u8>,
    tx_off: usize,
}

struct Engine<W: Write> {
    w: PcapWriter<W>,
    rng: Rng,
    now_ns: u64,
    rate_mbps: u64,
    mtu: usize,
    ack_every: u32,
    max_record: usize,
    random: Vec<u8>,
    hs_packets: u64,
    payload_bytes: u64,
}

impl<W: Write> Engine<W> {
    fn emit(
        &mut self,
        conn: &mut Conn,
        c2s: bool,
        flags: u8,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let ms = (self.now_ns / 1_000_000) as u32;
        let (me, peer) = if c2s {
            (&mut conn.c, &mut conn.s)
        } else {
            (&mut conn.s, &mut conn.c)
        };
        let seg = Seg {
            c2s,
            seq: me.seq,
            ack: peer.seq,
            flags,
            ip_id: me.ip_id,
            tsval: ms.wrapping_add(me.ts_off),
            tsecr: ms.wrapping_add(peer.ts_off).wrapping_sub(1),
            payload,
        };
        let len = self.w.segment(self.now_ns, &conn.flow, &seg)?;
        me.seq = me
            .seq
            .wrapping_add(payload.len() as u32)
            .wrapping_add(u32::from(flags & (SYN | FIN) != 0));
        me.ip_id = me.ip_id.wrapping_add(1);
        if flags & ACK != 0 {
            me.unacked = 0;
        }
        if !payload.is_empty() {
            peer.unacked += 1;
        }
        self.payload_bytes += payload.len() as u64;
        // Wire time at the nominal rate (+24 B preamble/IFG/FCS), plus a little jitter.
        let bits = (len as u64 + 24) * 8;
        self.now_ns += bits * 1000 / self.rate_mbps.max(1) + self.rng.below(64);
        Ok(())
    }

    fn mss(&self, conn: &Conn) -> usize {
        let ip = if matches!(conn.flow.ips, Ips::V6(..)) {
            40
        } else {
            20
        };
        self.mtu - ip - 32
    }

    /// Sends `bytes` as MSS-sized segments; the receiver ACKs every `ack_every` segments.
    fn send_stream(&mut self, conn: &mut Conn, c2s: bool, bytes: &[u8]) -> std::io::Result<u64> {
        let mss = self.mss(conn);
        let mut n = 0;
        for chunk in bytes.chunks(mss) {
            self.emit(conn, c2s, ACK | (PSH * u8::from(chunk.len() < mss)), chunk)?;
            n += 1;
            let recv_unacked = if c2s { conn.s.unacked } else { conn.c.unacked };
            if recv_unacked >= self.ack_every {
                self.emit(conn, !c2s, ACK, &[])?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Appends TLS application_data records carrying `plain` bytes of random "ciphertext".
    fn frame_records(&mut self, out: &mut Vec<u8>, mut plain: u64, tls13: bool) {
        let overhead = if tls13 {
            TLS13_OVERHEAD
        } else {
            TLS12_OVERHEAD
        };
        while plain > 0 {
            let full = self.rng.chance(0.7);
            let want = if full {
                self.max_record
            } else {
                self.rng.range(64, self.max_record as u64) as usize
            };
            let p = (want as u64).min(plain) as usize;
            plain -= p as u64;
            let body = p + overhead;
            out.extend_from_slice(&[0x17, 0x03, 0x03]);
            out.extend_from_slice(&(body as u16).to_be_bytes());
            let off = self.rng.below((self.random.len() - body) as u64) as usize;
            out.extend_from_slice(&self.random[off..off + body]);
        }
    }

    /// One scheduling turn of `conn`; returns false when the connection is finished.
    fn step(&mut self, conn: &mut Conn, pool: &Pool) -> std::io::Result<bool> {
        let t = &pool.entries[conn.entry];
        match conn.phase {
            Phase::Syn => {
                self.emit(conn, true, SYN, &[])?;
                self.emit(conn, false, SYN | ACK, &[])?;
                self.emit(conn, true, ACK, &[])?;
                self.hs_packets += 3;
                conn.phase = Phase::Flight(0);
            }
            Phase::Flight(i) => {
                if let Some((dir, bytes)) = t.flights.get(i) {
                    let n = self.send_stream(conn, *dir == Dir::C2S, bytes)?;
                    if i < t.handshake_flights {
                        self.hs_packets += n;
                    } else {
                        conn.data_left = conn.data_left.saturating_sub(n);
                    }
                    conn.phase = Phase::Flight(i + 1);
                } else {
                    conn.phase = Phase::Data;
                }
            }
            Phase::Data => {
                if conn.tx_off >= conn.tx.len() && conn.xfer_left == 0 {
                    if conn.data_left == 0 {
                        conn.phase = Phase::Close;
                        return Ok(true);
                    }
                    // New request/response: a small request, then a transfer.
                    let mut req = Vec::new();
                    let upload = self.rng.chance(0.1);
                    let small = self.rng.range(80, 900);
                    self.frame_records(&mut req, small, t.tls13);
                    let n = self.send_stream(conn, !upload, &req)?;
                    conn.data_left = conn.data_left.saturating_sub(n);
                    conn.xfer_c2s = upload;
                    // Log-uniform transfer size, 1 kB .. 4 MB.
                    let e = self.rng.unit() * 12.0;
                    conn.xfer_left = (1024.0 * e.exp2()) as u64;
                    conn.tx.clear();
                    conn.tx_off = 0;
                    return Ok(true);
                }
                let mss = self.mss(conn);
                let want = mss * BURST_SEGMENTS;
                if conn.tx.len() - conn.tx_off < want && conn.xfer_left > 0 {
                    conn.tx.drain(..conn.tx_off);
                    conn.tx_off = 0;
                    let chunk = conn.xfer_left.min(4 * self.max_record as u64);
                    conn.xfer_left -= chunk;
                    let mut tx = std::mem::take(&mut conn.tx);
                    self.frame_records(&mut tx, chunk, t.tls13);
                    conn.tx = tx;
                }
                let avail = conn.tx.len() - conn.tx_off;
                // Only send a short tail segment when the transfer is fully framed.
                let mut take = avail.min(want);
                if conn.xfer_left > 0 {
                    take -= take % mss;
                }
                let tx = std::mem::take(&mut conn.tx);
                let n =
                    self.send_stream(conn, conn.xfer_c2s, &tx[conn.tx_off..conn.tx_off + take])?;
                conn.tx = tx;
                conn.tx_off += take;
                conn.data_left = conn.data_left.saturating_sub(n);
                if conn.data_left == 0 {
                    // Out of budget: frame no more records, but finish the ones already framed
                    // so each stream stays a clean sequence of whole TLS records before the
                    // close_notify (at most 4 records of overshoot).
                    conn.xfer_left = 0;
                }
            }
            Phase::Close => {
                self.emit(conn, true, ACK | PSH, &t.close_client)?;
                self.emit(conn, true, FIN | ACK, &[])?;
                self.emit(conn, false, ACK | PSH, &t.close_server)?;
                self.emit(conn, false, FIN | ACK, &[])?;
                self.emit(conn, true, ACK, &[])?;
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn new_conn(rng: &mut Rng, cfg: &Config, pool: &Pool, k: u64) -> Conn {
    let n = pool.entries.len() as u64;
    // The first `n` connections walk the whole pool so that every chain appears once the
    // file is large enough; later ones pick at random.
    let entry = if k < n { k } else { rng.below(n) } as usize;
    let v6 = rng.chance(cfg.ipv6_share);
    let ips = if v6 {
        let mut c = [0u8; 16];
        let mut s = [0u8; 16];
        c[0] = 0xfd;
        s[0] = 0xfd;
        c[1] = 0x10;
        s[1] = 0x20;
        rng.fill(&mut c[8..]);
        rng.fill(&mut s[12..]);
        Ips::V6(c, s)
    } else {
        let c = [
            10,
            rng.below(256) as u8,
            rng.below(256) as u8,
            1 + rng.below(254) as u8,
        ];
        let s = [
            172,
            16 + rng.below(16) as u8,
            rng.below(256) as u8,
            1 + rng.below(254) as u8,
        ];
        Ips::V4(c, s)
    };
    let sport = match rng.below(20) {
        0 => 8443,
        1 => 993,
        2 => 5061,
        _ => 443,
    };
    let cport = 32768 + rng.below(28231) as u16;
    let hs = pool.hs_packets.get(entry).copied().unwrap_or(10);
    let share = cfg.handshake_share.clamp(1e-6, 1.0);
    let mean = hs as f64 * (1.0 / share - 1.0);
    let data_left = (mean * (0.5 + rng.unit())) as u64;
    let mut cmac = [0x02, 0, 0, 0, 0, 0];
    rng.fill(&mut cmac[2..]);
    let side = |rng: &mut Rng| Side {
        seq: rng.next_u64() as u32,
        ip_id: rng.next_u64() as u16,
        ts_off: rng.next_u64() as u32,
        unacked: 0,
    };
    Conn {
        entry,
        flow: Flow {
            ips,
            macs: (cmac, [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]),
            ports: (cport, sport),
            mtu: cfg.mtu as u16,
        },
        c: side(rng),
        s: side(rng),
        phase: Phase::Syn,
        data_left,
        xfer_left: 0,
        xfer_c2s: false,
        tx: Vec::new(),
        tx_off: 0,
    }
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Generates a capture into `out` and returns its manifest.
pub fn generate<W: Write>(cfg: &Config, out: W) -> Result<(Manifest, W), String> {
    if !(MIN_MTU..=MAX_MTU).contains(&cfg.mtu) {
        return Err(format!("mtu must be in {MIN_MTU}..={MAX_MTU}"));
    }
    if !(64..=16_384).contains(&cfg.max_record) {
        return Err("max-record must be in 64..=16384".into());
    }
    let t0 = Instant::now();
    let pool = build_pool(cfg)?;
    let pool_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();

    let mut rng = Rng::derive(cfg.seed, 0xF10E);
    let mut random = vec![0u8; RANDOM_POOL];
    rng.fill(&mut random);
    let mut eng = Engine {
        w: PcapWriter::new(out).map_err(|e| e.to_string())?,
        rng: Rng::derive(cfg.seed, 0xE061),
        now_ns: cfg.start_unix * 1_000_000_000,
        rate_mbps: cfg.rate_mbps,
        mtu: cfg.mtu,
        ack_every: cfg.ack_every.max(1),
        max_record: cfg.max_record,
        random,
        hs_packets: 0,
        payload_bytes: 0,
    };
    let first_ts = eng.now_ns;
    let mut m = Manifest {
        generator: format!("trustmap-benchgen {}", env!("CARGO_PKG_VERSION")),
        config: Some(cfg.clone()),
        ..Manifest::default()
    };
    let mut active: Vec<Conn> = Vec::new();
    let mut opened = 0u64;
    let mut used = vec![0u64; pool.entries.len()];
    let concurrency = cfg.concurrency.max(1);
    let ae = u64::from(cfg.ack_every.max(1));
    let steady_avg = (ae * (cfg.mtu as u64 + 30) + 82) / (ae + 1);
    loop {
        // Open connections while the projected size is below target.
        while active.len() < concurrency {
            let pending: u64 = active.iter().map(|c| c.data_left).sum();
            // Early on, the running average is dominated by SYNs; use the steady-state
            // estimate (ack_every full frames + one pure ACK) until enough frames are out.
            let avg = if eng.w.packets > AVG_WARMUP_FRAMES {
                eng.w.file_bytes / eng.w.packets
            } else {
                steady_avg
            };
            if opened > 0 && eng.w.file_bytes + pending * avg >= cfg.size {
                break;
            }
            let c = new_conn(&mut rng, cfg, &pool, opened);
            opened += 1;
            if let Some(u) = used.get_mut(c.entry) {
                *u += 1;
            }
            let t = &pool.entries[c.entry];
            if t.tls13 {
                m.handshakes_tls13 += 1;
            } else {
                m.handshakes_tls12 += 1;
            }
            *m.cipher_suites.entry(t.suite.clone()).or_insert(0) += 1;
            if matches!(c.flow.ips, Ips::V6(..)) {
                m.ipv6_connections += 1;
            } else {
                m.ipv4_connections += 1;
            }
            active.push(c);
        }
        if active.is_empty() {
            break;
        }
        let i = rng.below(active.len() as u64) as usize;
        let alive = eng.step(&mut active[i], &pool).map_err(|e| e.to_string())?;
        if !alive {
            active.swap_remove(i);
        }
    }
    m.connections = opened;
    m.server_certificate_messages = m.handshakes_tls12;
    let mut per_chain: BTreeMap<usize, u64> = BTreeMap::new();
    let mut all_chains = HashSet::new();
    for (j, &u) in used.iter().enumerate() {
        if u == 0 {
            continue;
        }
        let t = &pool.entries[j];
        all_chains.insert(t.chain);
        if !t.tls13 {
            *per_chain.entry(t.chain).or_insert(0) += u;
        }
    }
    let mut certs = HashSet::new();
    for (&ci, &n) in &per_chain {
        let ch = &pool.chains[ci];
        let hashes: Vec<String> = ch.certs.iter().map(|c| hex_sha256(c)).collect();
        m.certificates_in_clear += n * hashes.len() as u64;
        certs.extend(hashes.iter().cloned());
        m.chains.push(ChainSeen {
            leaf_sha256: hashes.first().cloned().unwrap_or_default(),
            sha256: hashes,
            server_name: ch.server_name.clone(),
            connections: n,
        });
    }
    m.unique_chains_in_clear = per_chain.len() as u64;
    m.unique_certificates_in_clear = certs.len() as u64;
    m.unique_chains_total = all_chains.len() as u64;
    m.packets = eng.w.packets;
    m.handshake_packets = eng.hs_packets;
    m.bytes = eng.w.file_bytes;
    m.frame_bytes = eng.w.frame_bytes;
    m.tcp_payload_bytes = eng.payload_bytes;
    m.first_ts_ns = first_ts;
    m.last_ts_ns = eng.now_ns;
    m.pool_seconds = pool_seconds;
    let out = eng.w.finish().map_err(|e| e.to_string())?;
    m.write_seconds = t1.elapsed().as_secs_f64();
    Ok((m, out))
}
