//! The dependency inventory: "which services depend on this CA, and which clients still trust it?"
//!
//! One [`Observation`] per handshake goes in; per CA we keep the endpoints (ip, port) that presented
//! a chain through it and the clients that connected to them, with capture-time first/last seen and
//! outcome counts. The JSON shape of `trustmap inventory --format json` is the DESIGN.md §6 contract.
//!
//! Why it looks like this:
//! - **SQLite in WAL mode** so a report can read while a capture writes, and so the inventory survives
//!   runs: runs accumulate (first_seen = min, last_seen = max, counts add).
//! - **Aggregate in memory, flush in one transaction** every [`FLUSH_EVERY`] records: a run may carry
//!   hundreds of thousands of handshakes, and one row write per handshake would dominate the run.
//! - **Every counted row carries a `source` id** (one random id per database file, kept in `meta`).
//!   Recording adds to the rows of the database's own source. Merging copies rows of other sources
//!   *keyed by their source* and keeps, per key, the row with the larger count (counts of one source
//!   only grow). So merging the same sensor database twice, or an older snapshot after a newer one,
//!   changes nothing: merge is idempotent and order-insensitive. Queries sum over sources.
//! - **Per-day outcome counts** (`ca_day`) make removal status possible for any removal instant chosen
//!   later: residual uses and failures after `removed`, and the burndown by capture day.
//! - **TLS 1.3 and resumed handshakes carry no chain.** They are counted against the endpoint's last
//!   visible chain (kept per endpoint), marked `inferred`/`resumed`; an endpoint never seen with a
//!   visible chain stays in the `endpoint` table only (see [`Inventory::opaque_endpoints`]).
#![forbid(unsafe_code)]

pub mod algorithms;
mod flush;
mod query;
mod removal;
mod render;
pub mod writer;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// What goes in: one observation per handshake, made by the enrichment stage.
pub use enrich::model::{CaRef, Observation, Outcome, Role, SignalObservation};

pub use query::{CaEntry, CaInfo, ClientEntry, EndpointEntry, EndpointRef, SignalClient};
pub use removal::{
    BurndownDay, DepEndpoint, Dependencies, PlanStep, RemovalInfo, RemovalStatus, RemovedCa,
    Residual, ResidualUse, SegmentDeps,
};
pub use render::{
    clean, render_csv, render_json, render_removal_json, render_removal_table, render_table,
};
pub use writer::InventoryWriter;

/// Records aggregated in memory before one write transaction.
pub const FLUSH_EVERY: usize = 50_000;
/// Distinct aggregate rows held in memory before an early flush (bounds memory on wide captures).
pub const MAX_PENDING_ROWS: usize = 200_000;
/// Server names kept per endpoint (a hostile client can send any SNI).
pub const MAX_NAMES_PER_ENDPOINT: usize = 64;
/// Segments kept per endpoint.
pub const MAX_SEGMENTS_PER_ENDPOINT: usize = 32;
/// CertificateRequest CA names kept per endpoint.
pub const MAX_AUTH_NAMES_PER_ENDPOINT: usize = 256;
/// CAs attributed per handshake (a chain longer than this is abuse, not PKI).
pub const MAX_CAS_PER_CHAIN: usize = 16;
/// How an endpoint's chains were known, as bits of the `endpoint.evidence` column (a set that
/// upserts and merges OR together, at no extra statement per endpoint).
pub struct Evidence;

impl Evidence {
    pub const OBSERVED: u8 = 1;
    pub const KEYLOG: u8 = 2;
    pub const INFERRED: u8 = 4;
    pub const PROBE: u8 = 8;
    /// Every kind with its name, in report order.
    pub const NAMES: [(u8, &'static str); 4] = [
        (Self::INFERRED, "inferred"),
        (Self::KEYLOG, "keylog"),
        (Self::OBSERVED, "observed"),
        (Self::PROBE, "probe"),
    ];

    /// The bit of an observation's evidence word (unknown words: none).
    pub fn bit(name: &str) -> u8 {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(0, |(b, _)| *b)
    }

    /// The names of the bits in `bits`, in report order.
    pub fn names(bits: u8) -> Vec<String> {
        Self::NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

/// Longest string stored from the network (names, subjects); longer ones are cut.
pub const MAX_STRING: usize = 1024;
/// Endpoints whose last visible chain is cached for resumed/TLS 1.3 attribution.
pub const MAX_CHAIN_CACHE: usize = 100_000;
/// Distinct CA certificates given ids before the ids (and the chain cache) are reset at a flush.
pub const MAX_CA_IDS: usize = 1 << 20;
/// Chainless handshakes waiting for their endpoint's first visible chain until the next flush.
pub const MAX_DEFERRED: usize = 100_000;
/// Endpoints remembered as written by this handle into a database that had none (see
/// `Inventory::fresh_eps`); past that, set counts are queried again.
pub const MAX_FRESH_EPS: usize = 250_000;
/// Schema version in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;
/// Default inventory file (DESIGN.md §3).
pub const DEFAULT_DB: &str = "trustmap.db";

/// Why an inventory operation failed.
#[derive(Debug)]
pub enum InventoryError {
    /// SQLite said no (locked, corrupt, disk full, ...).
    Db(rusqlite::Error),
    /// The file is an inventory of a schema this build does not know.
    Schema(String),
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::Db(e) => write!(f, "inventory database: {e}"),
            InventoryError::Schema(s) => write!(f, "inventory schema: {s}"),
        }
    }
}

impl std::error::Error for InventoryError {}

impl From<rusqlite::Error> for InventoryError {
    fn from(e: rusqlite::Error) -> Self {
        InventoryError::Db(e)
    }
}

pub type Result<T> = std::result::Result<T, InventoryError>;

/// Counters of one [`Inventory`] handle (for the run summary).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordStats {
    pub observations: u64,
    pub flushes: u64,
    /// Chainless handshakes (TLS 1.3, resumed) counted against an earlier visible chain.
    pub inferred: u64,
    /// Chainless handshakes whose endpoint never showed a chain: kept at endpoint level only.
    pub unattributed: u64,
    /// Strings cut at [`MAX_STRING`] or set members dropped at their per-endpoint cap.
    pub truncated: u64,
    /// Side signals recorded (OCSP requests, CA certificate and CRL fetches).
    pub signals: u64,
}

/// What a merge did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    pub inputs: usize,
    /// Distinct source ids found in the inputs.
    pub sources: Vec<String>,
}

/// Aggregation maps: keyed (randomly seeded) ahash instead of SipHash, a few lookups per record.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

type EpKey = (IpAddr, u16);
/// A CA certificate by its [`CaIds`] id.
type CaId = u32;
type CaEpKey = (CaId, IpAddr, u16);
type ClKey = (CaId, IpAddr, u16, IpAddr);
type DayKey = (CaId, IpAddr, u16, IpAddr, i64);

/// Small ids for the CA SHA-256s this handle has seen: aggregate keys and cached chains hold a
/// `u32` instead of a 64-character string (tens of thousands of endpoints may share a few CAs).
/// Cleared, with the chain cache that refers to it, after a flush once it holds [`MAX_CA_IDS`].
#[derive(Debug, Default)]
struct CaIds {
    ids: HashMap<String, CaId>,
    shas: Vec<String>,
}

impl CaIds {
    fn id(&mut self, sha: &str) -> CaId {
        if let Some(&id) = self.ids.get(sha) {
            return id;
        }
        let id = CaId::try_from(self.shas.len()).unwrap_or(CaId::MAX);
        self.ids.insert(sha.to_string(), id);
        self.shas.push(sha.to_string());
        id
    }

    fn sha(&self, id: CaId) -> &str {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.shas.get(i))
            .map_or("", String::as_str)
    }

    /// Each id's place in the text order of the SHA-256s (index: id), so rows can be sorted in
    /// key order by an integer instead of 64-character string compares.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<usize> = (0..self.shas.len()).collect();
        order.sort_unstable_by(|&a, &b| self.shas.get(a).cmp(&self.shas.get(b)));
        let mut rank = vec![0u32; self.shas.len()];
        for (r, id) in order.into_iter().enumerate() {
            if let Some(x) = rank.get_mut(id) {
                *x = u32::try_from(r).unwrap_or(u32::MAX);
            }
        }
        rank
    }

    fn rank(ranks: &[u32], id: CaId) -> u32 {
        usize::try_from(id)
            .ok()
            .and_then(|i| ranks.get(i))
            .copied()
            .unwrap_or(u32::MAX)
    }
}

/// An address's stored text with a sort key: its first 16 bytes as a big-endian integer (NUL
/// padded, so shorter sorts first), then the whole text. Same order as the text alone, and rows
/// sort by integer compares instead of string compares (sorting was a tenth of a flush).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct IpText {
    prefix: u128,
    text: String,
}

impl IpText {
    fn new(ip: &IpAddr) -> Self {
        let text = ip_text(ip);
        let mut b = [0u8; 16];
        for (d, s) in b.iter_mut().zip(text.bytes()) {
            *d = s;
        }
        IpText {
            prefix: u128::from_be_bytes(b),
            text,
        }
    }
}

impl rusqlite::ToSql for IpText {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.text.to_sql()
    }
}

/// An address as stored (the text of `Display`); IPv4 without the formatting machinery, which
/// was a tenth of a flush.
fn ip_text(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let mut s = String::with_capacity(15);
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    s.push(char::from(b'0' + (o / 10) % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
            s
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// A set kept as a sorted `Vec`: per-endpoint sets hold a name or two, and a `BTreeSet` node is
/// hundreds of bytes.
type SmallSet = Vec<String>;

#[derive(Debug, Default)]
struct EpAgg {
    first: i64,
    last: i64,
    handshakes: u64,
    last_visible: bool,
    chain: Option<(i64, Vec<CaId>)>,
    names: SmallSet,
    segments: SmallSet,
    auth_names: SmallSet,
    /// How the endpoint's chains were known ([`Evidence`] bits).
    evidence: u8,
    /// The latest algorithms seen.
    algo: Option<EpAlgo>,
}

/// An endpoint's latest algorithms: (capture time, group, leaf key, leaf signature).
type EpAlgo = (i64, Option<u16>, Option<String>, Option<String>);

/// One client's post-quantum offers, for the post-quantum map.
#[derive(Debug, Default)]
struct ClientAlgoAgg {
    first: i64,
    last: i64,
    handshakes: u64,
    pq_group: u64,
    pq_sig: u64,
}

#[derive(Debug, Default)]
struct CaAgg {
    subject: String,
    root: bool,
    stores: SmallSet,
    removals: SmallSet,
}

#[derive(Debug, Default, Clone, Copy)]
struct CaEpAgg {
    first: i64,
    last: i64,
    handshakes: u64,
    resumed: u64,
    inferred: u64,
}

/// Outcome counters, shared by client and per-day rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub rejected: u64,
    pub unknown: u64,
    pub resumed: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome, resumed: bool) {
        match o {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Unknown => self.unknown += 1,
        }
        if resumed {
            self.resumed += 1;
        }
    }
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.unknown
    }
    fn sum(&mut self, o: &Counts) {
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.unknown += o.unknown;
        self.resumed += o.resumed;
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ClAgg {
    first: i64,
    last: i64,
    last_outcome: Option<Outcome>,
    counts: Counts,
}

/// A chainless handshake waiting for its endpoint's chain.
#[derive(Debug, Clone, Copy)]
struct Deferred {
    key: EpKey,
    client: IpAddr,
    ts: i64,
    outcome: Outcome,
    resumed: bool,
}

#[derive(Debug, Default)]
struct Pending {
    records: usize,
    ep: FastMap<EpKey, EpAgg>,
    ca: FastMap<CaId, CaAgg>,
    ca_ep: FastMap<CaEpKey, CaEpAgg>,
    cl: FastMap<ClKey, ClAgg>,
    day: FastMap<DayKey, Counts>,
    client_algo: FastMap<IpAddr, ClientAlgoAgg>,
    signal: FastMap<SignalKey, SignalAgg>,
    auth: FastMap<AuthKey, SignalAgg>,
    deferred: Vec<Deferred>,
}

/// (server endpoint, the client chain's CA, "accepted" / "rejected") of an mTLS verdict.
type AuthKey = (EpKey, CaId, &'static str);

/// (CA, client, evidence) of a side signal.
type SignalKey = (CaId, IpAddr, &'static str);

#[derive(Debug, Default, Clone, Copy)]
struct SignalAgg {
    first: i64,
    last: i64,
    requests: u64,
}

/// Tables added after the first schema, and how `merge` copies each (per source, the bigger
/// count wins: merging the same input twice changes nothing).
const ADDED_TABLES_MERGE: [(&str, &str); 3] = [
    (
        "client_auth_outcome",
        "INSERT INTO main.client_auth_outcome SELECT * FROM src.client_auth_outcome WHERE true
           ON CONFLICT(source, ip, port, ca, evidence) DO UPDATE SET
             first_seen=excluded.first_seen, last_seen=excluded.last_seen,
             handshakes=excluded.handshakes
           WHERE excluded.handshakes>=handshakes;",
    ),
    (
        "ca_signal",
        "INSERT INTO main.ca_signal SELECT * FROM src.ca_signal WHERE true
           ON CONFLICT(source, ca, client, evidence) DO UPDATE SET
             first_seen=excluded.first_seen, last_seen=excluded.last_seen,
             requests=excluded.requests
           WHERE excluded.requests>=requests;",
    ),
    (
        "client_algo",
        "INSERT INTO main.client_algo SELECT * FROM src.client_algo WHERE true
           ON CONFLICT(source, ip) DO UPDATE SET
             first_seen=excluded.first_seen, last_seen=excluded.last_seen,
             handshakes=excluded.handshakes, pq_group=excluded.pq_group,
             pq_sig=excluded.pq_sig
           WHERE excluded.handshakes>=handshakes;",
    ),
];

impl SignalAgg {
    /// One more event at `ts` under `key` (side signals, mTLS verdicts).
    fn bump<K: std::hash::Hash + Eq>(map: &mut FastMap<K, SignalAgg>, key: K, ts: i64) {
        let a = map.entry(key).or_insert(SignalAgg {
            first: ts,
            last: ts,
            requests: 0,
        });
        a.first = a.first.min(ts);
        a.last = a.last.max(ts);
        a.requests += 1;
    }
}

impl Pending {
    fn rows(&self) -> usize {
        self.ep.len()
            + self.ca.len()
            + self.ca_ep.len()
            + self.cl.len()
            + self.day.len()
            + self.client_algo.len()
            + self.signal.len()
            + self.auth.len()
    }
}

/// The inventory store. Record with [`Inventory::record`]; call [`Inventory::flush`] at the end of a
/// run (dropping the handle also flushes, but cannot report an error).
pub struct Inventory {
    conn: Connection,
    source: String,
    pending: Pending,
    chain_cache: FastMap<EpKey, Option<(i64, Vec<CaId>)>>,
    /// The database held no visible chain when opened, and every chain written since is still in
    /// `chain_cache` (never cleared): a cache miss is then a "no chain" without a query.
    no_chain_in_db: bool,
    /// While `Some`: the database held no endpoint when opened, nobody else has written to it
    /// since, and these are the endpoints our flushes wrote: any other endpoint has no row in the
    /// per-endpoint set tables, so their counts need no query. Dropped at [`MAX_FRESH_EPS`].
    fresh_eps: Option<FastSet<EpKey>>,
    /// `PRAGMA data_version` when `no_chain_in_db` was established (changes only with commits of
    /// other connections).
    data_version: i64,
    ca_ids: CaIds,
    flush_every: usize,
    stats: RecordStats,
}

/// Endpoint columns added after the first schema, with their types (older databases get them on
/// open; merges from older databases read them as empty).
const ENDPOINT_ADDED_COLUMNS: [(&str, &str); 5] = [
    ("evidence", "INTEGER NOT NULL DEFAULT 0"),
    ("algo_seen", "INTEGER"),
    ("kx_group", "INTEGER"),
    ("leaf_key", "TEXT"),
    ("leaf_sig", "TEXT"),
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ca(sha256 TEXT PRIMARY KEY, subject TEXT NOT NULL, role TEXT NOT NULL,
  stores TEXT NOT NULL, removals TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoint(source TEXT NOT NULL, ip TEXT NOT NULL, port INTEGER NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, handshakes INTEGER NOT NULL,
  last_visible INTEGER NOT NULL, last_chain_seen INTEGER, last_chain TEXT,
  evidence INTEGER NOT NULL DEFAULT 0, algo_seen INTEGER, kx_group INTEGER, leaf_key TEXT,
  leaf_sig TEXT,
  PRIMARY KEY(source, ip, port));
CREATE TABLE IF NOT EXISTS client_algo(source TEXT NOT NULL, ip TEXT NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, handshakes INTEGER NOT NULL,
  pq_group INTEGER NOT NULL, pq_sig INTEGER NOT NULL, PRIMARY KEY(source, ip));
CREATE TABLE IF NOT EXISTS client_auth_outcome(source TEXT NOT NULL, ip TEXT NOT NULL,
  port INTEGER NOT NULL, ca TEXT NOT NULL, evidence TEXT NOT NULL, first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, handshakes INTEGER NOT NULL,
  PRIMARY KEY(source, ip, port, ca, evidence));
CREATE TABLE IF NOT EXISTS ca_signal(source TEXT NOT NULL, ca TEXT NOT NULL, client TEXT NOT NULL,
  evidence TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  requests INTEGER NOT NULL, PRIMARY KEY(source, ca, client, evidence));
CREATE TABLE IF NOT EXISTS endpoint_name(ip TEXT NOT NULL, port INTEGER NOT NULL, name TEXT NOT NULL,
  PRIMARY KEY(ip, port, name));
CREATE TABLE IF NOT EXISTS endpoint_segment(ip TEXT NOT NULL, port INTEGER NOT NULL, segment TEXT NOT NULL,
  PRIMARY KEY(ip, port, segment));
CREATE TABLE IF NOT EXISTS client_auth(ip TEXT NOT NULL, port INTEGER NOT NULL, name TEXT NOT NULL,
  norm TEXT NOT NULL, PRIMARY KEY(ip, port, name));
CREATE INDEX IF NOT EXISTS endpoint_key ON endpoint(ip, port);
CREATE INDEX IF NOT EXISTS client_auth_norm ON client_auth(norm);
CREATE TABLE IF NOT EXISTS ca_endpoint(source TEXT NOT NULL, ca TEXT NOT NULL, ip TEXT NOT NULL,
  port INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  handshakes INTEGER NOT NULL, resumed INTEGER NOT NULL, inferred INTEGER NOT NULL,
  PRIMARY KEY(source, ca, ip, port));
CREATE TABLE IF NOT EXISTS ca_client(source TEXT NOT NULL, ca TEXT NOT NULL, ip TEXT NOT NULL,
  port INTEGER NOT NULL, client TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  last_outcome TEXT NOT NULL, accepted INTEGER NOT NULL, rejected INTEGER NOT NULL,
  unknown INTEGER NOT NULL, resumed INTEGER NOT NULL,
  PRIMARY KEY(source, ca, ip, port, client));
CREATE TABLE IF NOT EXISTS ca_day(source TEXT NOT NULL, ca TEXT NOT NULL, ip TEXT NOT NULL,
  port INTEGER NOT NULL, client TEXT NOT NULL, day INTEGER NOT NULL, accepted INTEGER NOT NULL,
  rejected INTEGER NOT NULL, unknown INTEGER NOT NULL, resumed INTEGER NOT NULL,
  PRIMARY KEY(source, ca, ip, port, client, day));
CREATE INDEX IF NOT EXISTS ca_day_ca ON ca_day(ca, day);
";

/// Capture time in ns as SQLite's i64 (saturating: year 2262 is far enough).
fn ts_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Unix day of a capture time in ns.
fn day_of(ns: i64) -> i64 {
    ns.div_euclid(rules::time::SECS_PER_DAY * 1_000_000_000)
}

/// Cuts a network string at [`MAX_STRING`] bytes (on a char boundary).
fn cap_slice<'a>(s: &'a str, truncated: &mut u64) -> &'a str {
    if s.len() <= MAX_STRING {
        return s;
    }
    *truncated += 1;
    let mut end = MAX_STRING;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn cap_str(s: &str, truncated: &mut u64) -> String {
    cap_slice(s, truncated).to_string()
}

/// Normalises a DN for matching CertificateRequest names against CA subjects: case and the spaces
/// around separators differ between encoders, the DN does not.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let mut kv = part.splitn(2, '=');
        let k = kv.next().unwrap_or_default().trim().to_lowercase();
        match kv.next() {
            Some(v) => {
                out.push_str(&k);
                out.push('=');
                out.push_str(&v.trim().to_lowercase());
            }
            None => out.push_str(&k),
        }
    }
    out
}

/// A fresh random source id (std's `RandomState` is seeded from the OS).
fn new_source_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h1 = std::collections::hash_map::RandomState::new().build_hasher();
    h1.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h1.write_u32(std::process::id());
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(h1.finish());
    format!("{:016x}{:016x}", h1.finish(), h2.finish())
}

fn set_json(s: &BTreeSet<String>) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "[]".into())
}

fn json_set(s: &str) -> BTreeSet<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl Inventory {
    /// Opens (creating if needed) the inventory at `path`; `":memory:"` keeps nothing.
    pub fn open(path: &str) -> Result<Self> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;")?;
        // Without the query planner stability guarantee, SQLite re-plans a statement whenever a
        // parameter compared with an indexed column is re-bound: every per-endpoint lookup would
        // be compiled again. We never run ANALYZE, so the re-plan could not find a better plan.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v > SCHEMA_VERSION {
            return Err(InventoryError::Schema(format!(
                "database schema version {v} is newer than this trustmap ({SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch(SCHEMA)?;
        // Databases made before the evidence and algorithm columns: add them (empty).
        for (col, ty) in ENDPOINT_ADDED_COLUMNS {
            let has: bool = conn.query_row(
                "SELECT count(*) > 0 FROM pragma_table_info('endpoint') WHERE name = ?1",
                [col],
                |r| r.get(0),
            )?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE endpoint ADD COLUMN {col} {ty}"))?;
            }
        }
        if v < SCHEMA_VERSION {
            conn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))?;
        }
        let source: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='source'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let source = match source {
            Some(s) => s,
            None => {
                let s = new_source_id();
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('source', ?1)",
                    params![s],
                )?;
                s
            }
        };
        let no_chain_in_db: bool = conn.query_row(
            "SELECT NOT EXISTS(SELECT 1 FROM endpoint WHERE last_chain IS NOT NULL)",
            [],
            |r| r.get(0),
        )?;
        let no_endpoints: bool =
            conn.query_row("SELECT NOT EXISTS(SELECT 1 FROM endpoint)", [], |r| {
                r.get(0)
            })?;
        let fresh_eps = no_endpoints.then(FastSet::default);
        let data_version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(Inventory {
            conn,
            source,
            pending: Pending::default(),
            chain_cache: FastMap::default(),
            no_chain_in_db,
            fresh_eps,
            data_version,
            ca_ids: CaIds::default(),
            flush_every: FLUSH_EVERY,
            stats: RecordStats::default(),
        })
    }

    /// This database's source (sensor) id.
    pub fn source_id(&self) -> &str {
        &self.source
    }

    pub fn stats(&self) -> RecordStats {
        self.stats
    }

    /// Sets how many records are aggregated before a write (tests use small values).
    pub fn set_flush_every(&mut self, n: usize) {
        self.flush_every = n.max(1);
    }

    /// Adds one handshake. Buffered: written by the next automatic or explicit [`Self::flush`].
    pub fn record(&mut self, o: &Observation) -> Result<()> {
        let ts = ts_i64(o.ts_ns);
        let key = (o.server_ip, o.server_port);
        let mut truncated = 0u64;
        // A visible chain is attributed as it is, even without any CA (a self-signed leaf: the
        // endpoint has moved off every CA). Only chainless handshakes (TLS 1.3, resumption) borrow
        // the endpoint's last visible chain.
        let direct = !o.cas.is_empty() || (o.chain_visible && !o.resumed);
        {
            let ep = self.pending.ep.entry(key).or_insert_with(|| EpAgg {
                first: ts,
                last: ts,
                ..EpAgg::default()
            });
            ep.first = ep.first.min(ts);
            if ts >= ep.last {
                ep.last = ts;
                ep.last_visible = direct;
            }
            ep.handshakes += 1;
            if let Some(n) = &o.server_name {
                insert_capped(&mut ep.names, n, MAX_NAMES_PER_ENDPOINT, &mut truncated);
            }
            for s in &o.segments {
                insert_capped(
                    &mut ep.segments,
                    s,
                    MAX_SEGMENTS_PER_ENDPOINT,
                    &mut truncated,
                );
            }
            for n in &o.client_auth_ca_names {
                insert_capped(
                    &mut ep.auth_names,
                    n,
                    MAX_AUTH_NAMES_PER_ENDPOINT,
                    &mut truncated,
                );
            }
        }
        // The server's verdict on a client chain: which client CAs it trusts, learnt from what
        // it accepted and refused.
        if let Some((accepted, ca)) = &o.client_auth_outcome {
            let id = self.note_ca(ca, &mut truncated);
            let ev = if *accepted { "accepted" } else { "rejected" };
            SignalAgg::bump(&mut self.pending.auth, (key, id, ev), ts);
        }
        if let Some(ep) = self.pending.ep.get_mut(&key) {
            if let Some(e) = o.evidence.filter(|_| direct) {
                ep.evidence |= Evidence::bit(e);
            }
            let a = &o.algorithms;
            if (a.group.is_some() || a.leaf_key.is_some())
                && ep.algo.as_ref().is_none_or(|(t, ..)| ts >= *t)
            {
                ep.algo = Some((
                    ts,
                    a.group,
                    a.leaf_key.as_deref().map(|k| cap_str(k, &mut truncated)),
                    a.leaf_sig.as_deref().map(|k| cap_str(k, &mut truncated)),
                ));
            }
        }
        // Only clients that offer something post-quantum get a row: today they are few, and
        // every other client (the map counts them) is simply not ready.
        if o.algorithms.client_pq_group || o.algorithms.client_pq_sig {
            let c = self
                .pending
                .client_algo
                .entry(o.client_ip)
                .or_insert_with(|| ClientAlgoAgg {
                    first: ts,
                    last: ts,
                    ..ClientAlgoAgg::default()
                });
            c.first = c.first.min(ts);
            c.last = c.last.max(ts);
            c.handshakes += 1;
            c.pq_group += u64::from(o.algorithms.client_pq_group);
            c.pq_sig += u64::from(o.algorithms.client_pq_sig);
        }
        if direct {
            let mut chain: Vec<CaId> = Vec::new();
            for c in o.cas.iter().take(MAX_CAS_PER_CHAIN) {
                let id = self.note_ca(c, &mut truncated);
                if !chain.contains(&id) {
                    chain.push(id);
                }
            }
            if o.cas.len() > MAX_CAS_PER_CHAIN {
                truncated += 1;
            }
            if let Some(ep) = self.pending.ep.get_mut(&key) {
                if ep.chain.as_ref().is_none_or(|(t, _)| ts >= *t) {
                    ep.chain = Some((ts, chain.clone()));
                }
            }
            self.cache_chain(key, ts, &chain);
            self.attribute(key, o.client_ip, ts, o.outcome, o.resumed, false, &chain);
        } else {
            let d = Deferred {
                key,
                client: o.client_ip,
                ts,
                outcome: o.outcome,
                resumed: o.resumed,
            };
            if !self.resolve(d)? {
                if self.pending.deferred.len() < MAX_DEFERRED {
                    self.pending.deferred.push(d);
                } else {
                    self.stats.unattributed += 1;
                }
            }
        }
        self.stats.truncated += truncated;
        self.stats.observations += 1;
        self.pending.records += 1;
        if self.pending.records >= self.flush_every || self.pending.rows() >= MAX_PENDING_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// The CA's id, its row (subject, role, stores, removals) aggregated for the next flush.
    fn note_ca(&mut self, c: &CaRef, truncated: &mut u64) -> CaId {
        // The database keeps SHA-256s as lowercase hex text.
        let id = self.ca_ids.id(&rules::digest::to_hex(&c.sha256));
        let ca = self.pending.ca.entry(id).or_default();
        if ca.subject.is_empty() {
            ca.subject = cap_str(&c.subject, truncated);
        }
        ca.root |= c.role == Role::Root;
        for s in &c.stores {
            insert_capped(&mut ca.stores, s, MAX_SEGMENTS_PER_ENDPOINT, truncated);
        }
        for r in &c.removals {
            insert_capped(&mut ca.removals, r, MAX_SEGMENTS_PER_ENDPOINT, truncated);
        }
        id
    }

    /// Adds one side signal: its client depends on each of its CAs (`evidence` "ocsp"/"aia").
    pub fn record_signal(&mut self, o: &SignalObservation) -> Result<()> {
        let ts = ts_i64(o.ts_ns);
        let mut truncated = 0u64;
        for c in o.cas.iter().take(MAX_CAS_PER_CHAIN) {
            let id = self.note_ca(c, &mut truncated);
            SignalAgg::bump(&mut self.pending.signal, (id, o.client_ip, o.evidence), ts);
        }
        self.stats.truncated += truncated;
        self.stats.signals += 1;
        if self.pending.rows() >= MAX_PENDING_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Another connection (another process recording into the same file) committed since the
    /// last check: chains may now be in the database that are not in our cache.
    fn check_other_writers(&mut self) -> Result<()> {
        if self.no_chain_in_db || self.fresh_eps.is_some() {
            let v: i64 = self
                .conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))?;
            if v != self.data_version {
                self.no_chain_in_db = false;
                self.fresh_eps = None;
            }
        }
        Ok(())
    }

    fn clear_chain_cache(&mut self) {
        self.chain_cache.clear();
        self.no_chain_in_db = false;
    }

    fn cache_chain(&mut self, key: EpKey, ts: i64, chain: &[CaId]) {
        if self.chain_cache.len() >= MAX_CHAIN_CACHE && !self.chain_cache.contains_key(&key) {
            self.clear_chain_cache();
        }
        let e = self.chain_cache.entry(key).or_insert(None);
        if e.as_ref().is_none_or(|(t, _)| ts >= *t) {
            *e = Some((ts, chain.to_vec()));
        }
    }

    /// The endpoint's last visible chain: this run's, else the database's (any source).
    ///
    /// Negative answers are cached too: most traffic is TLS 1.3, and an endpoint never seen with a
    /// chain would otherwise cost a database lookup per handshake. A chain seen later in the run
    /// overwrites the negative entry ([`Self::cache_chain`]), and the database only changes under
    /// this handle by our own flushes (or a merge, which clears the cache).
    fn last_chain(&mut self, key: EpKey) -> Result<Option<Vec<CaId>>> {
        if let Some((_, c)) = self.pending.ep.get(&key).and_then(|e| e.chain.as_ref()) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = self.chain_cache.get(&key) {
            return Ok(c.as_ref().map(|(_, v)| v.clone()));
        }
        if self.no_chain_in_db {
            return Ok(None);
        }
        let row: Option<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT last_chain_seen, last_chain FROM endpoint WHERE ip=?1 AND port=?2
                 AND last_chain IS NOT NULL ORDER BY last_chain_seen DESC LIMIT 1",
            )?
            .query_row(params![ip_text(&key.0), key.1], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let found = row.and_then(|(t, c)| {
            let v: Vec<String> = serde_json::from_str(&c).ok()?;
            Some((
                t,
                v.iter().map(|sha| self.ca_ids.id(sha)).collect::<Vec<_>>(),
            ))
        });
        if self.chain_cache.len() >= MAX_CHAIN_CACHE {
            self.clear_chain_cache();
        }
        let out = found.as_ref().map(|(_, v)| v.clone());
        self.chain_cache.insert(key, found);
        Ok(out)
    }

    /// Counts a chainless handshake against its endpoint's last visible chain, if there is one.
    fn resolve(&mut self, d: Deferred) -> Result<bool> {
        match self.last_chain(d.key)? {
            Some(chain) => {
                self.stats.inferred += 1;
                if let Some(ep) = self.pending.ep.get_mut(&d.key) {
                    ep.evidence |= Evidence::INFERRED;
                }
                self.attribute(d.key, d.client, d.ts, d.outcome, d.resumed, true, &chain);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attribute(
        &mut self,
        key: EpKey,
        client: IpAddr,
        ts: i64,
        outcome: Outcome,
        resumed: bool,
        inferred: bool,
        chain: &[CaId],
    ) {
        let day = day_of(ts);
        for &ca in chain {
            let e = self
                .pending
                .ca_ep
                .entry((ca, key.0, key.1))
                .or_insert(CaEpAgg {
                    first: ts,
                    last: ts,
                    ..CaEpAgg::default()
                });
            e.first = e.first.min(ts);
            e.last = e.last.max(ts);
            e.handshakes += 1;
            e.resumed += u64::from(resumed);
            e.inferred += u64::from(inferred);
            let c = self
                .pending
                .cl
                .entry((ca, key.0, key.1, client))
                .or_insert(ClAgg {
                    first: ts,
                    last: ts,
                    ..ClAgg::default()
                });
            c.first = c.first.min(ts);
            if ts >= c.last || c.last_outcome.is_none() {
                c.last = c.last.max(ts);
                c.last_outcome = Some(outcome);
            }
            c.counts.add(outcome, resumed);
            self.pending
                .day
                .entry((ca, key.0, key.1, client, day))
                .or_default()
                .add(outcome, resumed);
        }
    }

    /// Writes everything aggregated so far in one transaction.
    pub fn flush(&mut self) -> Result<()> {
        self.check_other_writers()?;
        let deferred = std::mem::take(&mut self.pending.deferred);
        for d in deferred {
            if !self.resolve(d)? {
                self.stats.unattributed += 1;
            }
        }
        let p = std::mem::take(&mut self.pending);
        if p.rows() == 0 {
            return Ok(());
        }
        let src = self.source.as_str();
        let ids = &self.ca_ids;
        let ranks = ids.ranks();
        let tx = self.conn.transaction()?;
        flush::endpoints(&tx, src, ids, &self.fresh_eps, &p.ep)?;
        flush::cas(&tx, ids, &p.ca)?;
        flush::ca_endpoints(&tx, src, ids, &ranks, &p.ca_ep)?;
        flush::ca_clients(&tx, src, ids, &ranks, &p.cl)?;
        flush::ca_days(&tx, src, ids, &ranks, &p.day)?;
        flush::client_algos(&tx, src, &p.client_algo)?;
        flush::ca_signals(&tx, src, ids, &p.signal)?;
        flush::auth_outcomes(&tx, src, ids, &p.auth)?;
        tx.commit()?;
        self.stats.flushes += 1;
        if let Some(f) = &mut self.fresh_eps {
            if f.len() + p.ep.len() > MAX_FRESH_EPS {
                self.fresh_eps = None;
            } else {
                f.extend(p.ep.keys().copied());
            }
        }
        if self.ca_ids.shas.len() >= MAX_CA_IDS {
            self.ca_ids = CaIds::default();
            self.clear_chain_cache();
        }
        Ok(())
    }

    /// Merges the inventories `inputs` (of one or several sensors) into `out` (created if needed).
    ///
    /// Rows are keyed by the source id of the database that recorded them; per key the row with the
    /// larger count wins (one source's counts only grow), so merging the same input twice, or an
    /// older snapshot of a sensor after a newer one, is a no-op. Set-valued data (names, segments,
    /// stores, removals) is a union. An input of a newer schema is refused.
    pub fn merge<P: AsRef<Path>>(inputs: &[P], out: &Path) -> Result<MergeSummary> {
        let out_s = out.to_string_lossy().into_owned();
        let mut inv = Inventory::open(&out_s)?;
        inv.flush()?;
        let mut summary = MergeSummary::default();
        let mut sources = BTreeSet::new();
        let out_canon = std::fs::canonicalize(out).ok();
        for input in inputs {
            let input = input.as_ref();
            // Merging an inventory into itself is a no-op (and attaching it twice is not safe).
            if out_canon.is_some() && std::fs::canonicalize(input).ok() == out_canon {
                summary.inputs += 1;
                continue;
            }
            if !input.exists() {
                return Err(InventoryError::Schema(format!(
                    "{}: no such inventory",
                    input.display()
                )));
            }
            inv.conn.execute(
                "ATTACH DATABASE ?1 AS src",
                params![input.to_string_lossy()],
            )?;
            // Inputs are only read: their schema is checked, never upgraded.
            let r = inv
                .conn
                .query_row("PRAGMA src.user_version", [], |r| r.get::<_, i64>(0))
                .map_err(InventoryError::from)
                .and_then(|v| {
                    if v == SCHEMA_VERSION {
                        Ok(())
                    } else {
                        Err(InventoryError::Schema(format!(
                            "{}: schema version {v}, expected {SCHEMA_VERSION}",
                            input.display()
                        )))
                    }
                })
                .and_then(|()| inv.merge_attached(&mut sources));
            let d = inv.conn.execute_batch("DETACH DATABASE src");
            r?;
            d?;
            summary.inputs += 1;
        }
        summary.sources = sources.into_iter().collect();
        Ok(summary)
    }

    fn merge_attached(&mut self, sources: &mut BTreeSet<String>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            // Columns added after the first schema: an older input's read as empty.
            let mut added = Vec::new();
            for (col, _) in ENDPOINT_ADDED_COLUMNS {
                let has: bool = tx.query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info('endpoint', 'src') WHERE name = ?1",
                    [col],
                    |r| r.get(0),
                )?;
                added.push(if has {
                    col
                } else if col == "evidence" {
                    "0"
                } else {
                    "NULL"
                });
            }
            let added = added.join(", ");
            tx.execute_batch(&format!(
                "INSERT INTO main.endpoint(source, ip, port, first_seen, last_seen, handshakes,
                   last_visible, last_chain_seen, last_chain, evidence, algo_seen, kx_group,
                   leaf_key, leaf_sig)
                 SELECT source, ip, port, first_seen, last_seen, handshakes,
                   last_visible, last_chain_seen, last_chain, {added} FROM src.endpoint WHERE true
                   ON CONFLICT(source, ip, port) DO UPDATE SET
                     first_seen=excluded.first_seen, last_seen=excluded.last_seen,
                     handshakes=excluded.handshakes, last_visible=excluded.last_visible,
                     last_chain_seen=excluded.last_chain_seen, last_chain=excluded.last_chain,
                     evidence=evidence | excluded.evidence, algo_seen=excluded.algo_seen,
                     kx_group=excluded.kx_group, leaf_key=excluded.leaf_key,
                     leaf_sig=excluded.leaf_sig
                   WHERE excluded.handshakes>=handshakes;"
            ))?;
            // Tables added after the first schema: copied when the input has them.
            for (table, copy) in ADDED_TABLES_MERGE {
                let has: bool = tx.query_row(
                    "SELECT count(*) > 0 FROM src.sqlite_master WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )?;
                if has {
                    tx.execute_batch(copy)?;
                }
            }
            let mut st = tx.prepare("SELECT DISTINCT source FROM src.endpoint")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            for s in rows {
                sources.insert(s?);
            }
        }
        tx.execute_batch(
            "INSERT OR IGNORE INTO main.endpoint_name SELECT * FROM src.endpoint_name;
             INSERT OR IGNORE INTO main.endpoint_segment SELECT * FROM src.endpoint_segment;
             INSERT OR IGNORE INTO main.client_auth SELECT * FROM src.client_auth;
             INSERT INTO main.ca_endpoint SELECT * FROM src.ca_endpoint WHERE true
               ON CONFLICT(source, ca, ip, port) DO UPDATE SET
                 first_seen=excluded.first_seen, last_seen=excluded.last_seen,
                 handshakes=excluded.handshakes, resumed=excluded.resumed, inferred=excluded.inferred
               WHERE excluded.handshakes>=handshakes;
             INSERT INTO main.ca_client SELECT * FROM src.ca_client WHERE true
               ON CONFLICT(source, ca, ip, port, client) DO UPDATE SET
                 first_seen=excluded.first_seen, last_seen=excluded.last_seen,
                 last_outcome=excluded.last_outcome, accepted=excluded.accepted,
                 rejected=excluded.rejected, unknown=excluded.unknown, resumed=excluded.resumed
               WHERE excluded.accepted+excluded.rejected+excluded.unknown>=accepted+rejected+unknown;
             INSERT INTO main.ca_day SELECT * FROM src.ca_day WHERE true
               ON CONFLICT(source, ca, ip, port, client, day) DO UPDATE SET
                 accepted=excluded.accepted, rejected=excluded.rejected,
                 unknown=excluded.unknown, resumed=excluded.resumed
               WHERE excluded.accepted+excluded.rejected+excluded.unknown>=accepted+rejected+unknown;",
        )?;
        let cas: Vec<(String, CaAgg)> = {
            let mut st =
                tx.prepare("SELECT sha256, subject, role, stores, removals FROM src.ca")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    CaAgg {
                        subject: r.get(1)?,
                        root: r.get::<_, String>(2)? == "root",
                        stores: json_set(&r.get::<_, String>(3)?).into_iter().collect(),
                        removals: json_set(&r.get::<_, String>(4)?).into_iter().collect(),
                    },
                ))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (sha, c) in &cas {
            upsert_ca(&tx, sha, c)?;
        }
        tx.commit()?;
        // Chains cached from before the merge may be stale now, and endpoints were added.
        self.clear_chain_cache();
        self.fresh_eps = None;
        Ok(())
    }

    /// The §6 inventory, optionally filtered by `--ca` (SHA-256 prefix or case-insensitive subject
    /// substring). Pending records are not included: call [`Self::flush`] first.
    pub fn query(&self, ca_filter: Option<&str>) -> Result<Vec<CaEntry>> {
        query::query(&self.conn, ca_filter)
    }

    /// Endpoints never seen with a visible chain (TLS 1.3 only): no CA to file them under.
    /// The post-quantum migration map (`inventory --algorithms`).
    pub fn algorithms(&self) -> Result<algorithms::AlgorithmMap> {
        algorithms::load(&self.conn)
    }

    pub fn opaque_endpoints(&self) -> Result<Vec<EndpointEntry>> {
        query::opaque_endpoints(&self.conn)
    }

    /// Builds the [`RemovalInfo`] of rule `id` from the loaded rules. Built-in distrust events
    /// repeat an id over several entries (per program and stage): their CAs are united and the
    /// earliest `announced`/`removed` taken (filter by program before calling to pick one).
    /// Selectors by SHA-256 are used as they are; selectors by subject are resolved against the CAs
    /// in the inventory; SPKI selectors rely on the analyzer having tagged matching CAs with the
    /// rule id (`CaRef::removals`), which [`Self::removal_status`] also follows.
    pub fn removal_info(&self, rules: &[rules::Removal], id: &str) -> Result<Option<RemovalInfo>> {
        let matching: Vec<&rules::Removal> = rules.iter().filter(|r| r.id == id).collect();
        let Some(first) = matching.first() else {
            return Ok(None);
        };
        let mut shas: BTreeSet<String> = BTreeSet::new();
        let mut subjects: BTreeSet<String> = BTreeSet::new();
        for r in &matching {
            for sel in &r.cas {
                if let Some(h) = &sel.sha256 {
                    shas.insert(rules::digest::to_hex(h));
                }
                if let Some(s) = &sel.subject {
                    subjects.insert(rules::removal::normalize_dn(s));
                }
            }
        }
        if !subjects.is_empty() {
            for c in query::load_cas(&self.conn)? {
                if subjects.contains(&rules::removal::normalize_dn(&c.subject)) {
                    shas.insert(c.sha256);
                }
            }
        }
        Ok(Some(RemovalInfo {
            id: id.to_string(),
            name: first.name.clone(),
            ca_sha256s: shas.into_iter().collect(),
            announced: matching.iter().filter_map(|r| r.announced).min(),
            removed: matching
                .iter()
                .map(|r| r.removed)
                .min()
                .unwrap_or(first.removed),
        }))
    }

    /// Progress of one removal at `instant` (Unix seconds; capture time or `--as-of`).
    pub fn removal_status(&self, rule: &RemovalInfo, instant: i64) -> Result<RemovalStatus> {
        removal::removal_status(&self.conn, rule, instant)
    }
}

impl Drop for Inventory {
    fn drop(&mut self) {
        // Best effort: an explicit flush reports errors; this keeps a forgotten one from losing data.
        let _ = self.flush();
    }
}

/// Adds `values` to a per-endpoint set table (`endpoint_name`, ...) that holds at most `cap` rows
/// per endpoint, whatever their source: `n` (the table's `count(*)` for the endpoint) says how
/// many are there; `insert` returns 1 for a new row and 0 for one already present (no room taken).
fn add_capped(
    n: i64,
    cap: usize,
    values: &[String],
    mut insert: impl FnMut(&str) -> rusqlite::Result<usize>,
) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let mut room = cap.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
    for v in values {
        if room == 0 {
            break;
        }
        room = room.saturating_sub(insert(v)?);
    }
    Ok(())
}

fn insert_capped(set: &mut SmallSet, v: &str, cap: usize, truncated: &mut u64) {
    let find = |set: &SmallSet, v: &str| set.binary_search_by(|x| x.as_str().cmp(v));
    if find(set, v).is_ok() {
        return;
    }
    if set.len() >= cap {
        *truncated += 1;
        return;
    }
    let v = cap_slice(v, truncated);
    if let Err(at) = find(set, v) {
        set.insert(at, v.to_string());
    }
}

fn upsert_ca(tx: &rusqlite::Transaction<'_>, sha: &str, c: &CaAgg) -> Result<()> {
    let old: Option<(String, String, String, String)> = tx
        .query_row(
            "SELECT subject, role, stores, removals FROM ca WHERE sha256=?1",
            params![sha],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (subject, root, mut stores, mut removals) = match old {
        Some((s, r, st, rm)) => (
            if s.is_empty() { c.subject.clone() } else { s },
            r == "root" || c.root,
            json_set(&st),
            json_set(&rm),
        ),
        None => (c.subject.clone(), c.root, BTreeSet::new(), BTreeSet::new()),
    };
    stores.extend(c.stores.iter().cloned());
    removals.extend(c.removals.iter().cloned());
    tx.execute(
        "INSERT OR REPLACE INTO ca(sha256, subject, role, stores, removals) VALUES(?1,?2,?3,?4,?5)",
        params![
            sha,
            subject,
            if root { "root" } else { "intermediate" },
            set_json(&stores),
            set_json(&removals)
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
