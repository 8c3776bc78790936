//! The reader thread: `read` calls (the kernel's copy, the work `cat` does), gzip inflation and,
//! for classic pcap, the walk over the records and the decode of each TCP frame
//! ([`PreTcp::decode`]), all on another core while the caller runs the flow engine.
//!
//! Memory is bounded: batches of [`CHUNK`] bytes (one record larger than that grows its batch, up
//! to [`super::MAX_READ_BUFFER`]) are recycled; at most [`QUEUED`] wait in the channel.
use crate::decode::PreTcp;
use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Bytes per batch: few enough handoffs (each can cost a thread wakeup) that they are noise.
pub const CHUNK: usize = 512 * 1024;
/// Largest single `read`. The reader walks what each read brought in right after it, while it is
/// still in this core's cache, so a read is kept well below the L2 size.
pub const READ_STEP: usize = 256 * 1024;
/// Batches queued between the reader and the parser.
pub const QUEUED: usize = 4;
/// Buffers kept for reuse.
const POOL: usize = QUEUED + 3;
/// A read step gathers at least this much new data (or reaches end of input), so a pipe that
/// delivers a few KiB per `read` neither makes tiny steps nor waits for a full batch.
pub(super) const MIN_FILL: usize = super::FILL_TARGET;

/// One record of a classic pcap batch: where its bytes are in the batch, and its decode.
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    pub ts_ns: u64,
    pub off: u32,
    pub len: u32,
    pub orig_len: u32,
    pub pre: Option<PreTcp>,
}

/// Bytes read, and (classic pcap) the whole records they hold.
#[derive(Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    pub len: usize,
    pub recs: Vec<Rec>,
    pub linktype: u32,
}

impl Batch {
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }
}

pub enum Msg {
    /// Raw bytes (pcapng, or not a capture): the caller parses them.
    Raw(Batch),
    /// Whole classic pcap records.
    Records(Batch),
    /// A read error before or between raw batches; nothing follows.
    Failed(std::io::Error),
    /// End of a classic pcap: a partial record was left over, and the error that ended it.
    End {
        truncated: bool,
        error: Option<String>,
    },
}

/// The caller's end of the reader thread.
pub struct Reader {
    rx: Receiver<Msg>,
    free: Pool,
}

/// The reader thread's end.
pub(super) struct Feed {
    tx: SyncSender<Msg>,
    free: Pool,
}

/// Used batches for reuse, last in first out: the buffer reused next is the one most recently
/// written, still in cache (a FIFO would cycle through all of them, and the kernel's copy into a
/// cold buffer costs about twice as much).
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<Vec<Batch>>>);

impl Pool {
    fn take(&self) -> Option<Batch> {
        self.0.lock().ok()?.pop()
    }
    fn put(&self, b: Batch) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() < POOL {
                v.push(b);
            }
        }
    }
}

/// `b` emptied and sized for at least `size` bytes (at least [`CHUNK`]).
fn ready(mut b: Batch, size: usize) -> Batch {
    b.recs.clear();
    b.len = 0;
    let size = size.max(CHUNK);
    if b.buf.len() > size {
        // A batch grown for one huge record goes back to the normal size.
        b.buf.truncate(size);
        b.buf.shrink_to_fit();
    }
    if b.buf.len() < size {
        b.buf.resize(size, 0);
    }
    b
}

impl Feed {
    /// A recycled batch (or a new one) with room for at least `size` bytes.
    pub(super) fn batch(&mut self, size: usize) -> Batch {
        ready(self.free.take().unwrap_or_default(), size)
    }

    /// False once the caller is gone.
    pub(super) fn send(&mut self, m: Msg) -> bool {
        self.tx.send(m).is_ok()
    }
}

/// How a [`fill`] ended.
pub(super) struct Filled {
    pub eof: bool,
    pub failed: Option<std::io::Error>,
}

/// Reads into `b.buf[b.len..]` until `b.len >= want` (capped at the buffer), end of input, or an
/// error; one `read` asks for at most [`READ_STEP`] bytes.
pub(super) fn fill<R: Read>(r: &mut R, b: &mut Batch, want: usize) -> Filled {
    let want = want.min(b.buf.len());
    while b.len < want {
        let end = b.len.saturating_add(READ_STEP).min(b.buf.len());
        let Some(space) = b.buf.get_mut(b.len..end) else {
            break;
        };
        match r.read(space) {
            Ok(0) => {
                return Filled {
                    eof: true,
                    failed: None,
                }
            }
            Ok(n) => b.len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Filled {
                    eof: true,
                    failed: Some(e),
                }
            }
        }
    }
    Filled {
        eof: false,
        failed: None,
    }
}

impl Reader {
    /// Starts the reader thread on `r`. It ends at end of input, after a read error, or at its
    /// next batch once this end is dropped. `predecode`: decode classic pcap TCP frames there.
    pub fn spawn<R: Read + Send + 'static>(r: R, predecode: bool) -> Reader {
        let (tx, rx) = sync_channel::<Msg>(QUEUED);
        let free = Pool::default();
        let feed = Feed {
            tx,
            free: free.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("pcap reader".into())
            .spawn(move || run(r, feed, predecode));
        let rx = match spawned {
            Ok(_) => rx,
            Err(e) => {
                // No thread: report it as the input's read error.
                let (tx, rx) = sync_channel::<Msg>(1);
                let _ = tx.send(Msg::Failed(e));
                rx
            }
        };
        Reader { rx, free }
    }

    /// The next message; `None` once the reader thread has ended.
    pub fn next(&mut self) -> Option<Msg> {
        self.rx.recv().ok()
    }

    /// Hands a used batch back for reuse.
    pub fn recycle(&self, b: Batch) {
        self.free.put(b);
    }
}

fn run<R: Read>(mut r: R, mut feed: Feed, predecode: bool) {
    let mut b = feed.batch(CHUNK);
    let mut f = fill(&mut r, &mut b, MIN_FILL);
    if let Ok((_, header)) = pcap_parser::pcap::parse_pcap_header(b.bytes()) {
        return super::legacy::walk(r, b, f, header, &mut feed, predecode);
    }
    loop {
        if b.len > 0 && !feed.send(Msg::Raw(b)) {
            return;
        }
        if let Some(e) = f.failed {
            feed.send(Msg::Failed(e));
            return;
        }
        if f.eof {
            return;
        }
        b = feed.batch(CHUNK);
        f = fill(&mut r, &mut b, MIN_FILL);
    }
}

/// `Read` over raw batches, for pcap-parser's streaming reader (pcapng): one copy into its buffer.
pub struct RawRead {
    cur: Option<Batch>,
    pos: usize,
    reader: Reader,
}

impl RawRead {
    pub fn new(first: Batch, reader: Reader) -> Self {
        RawRead {
            cur: Some(first),
            pos: 0,
            reader,
        }
    }
}

impl Read for RawRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(c) = &self.cur {
                let rest = c.bytes().get(self.pos..).unwrap_or_default();
                if !rest.is_empty() {
                    let n = rest.len().min(out.len());
                    if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    self.pos += n;
                    return Ok(n);
                }
            }
            if let Some(c) = self.cur.take() {
                self.reader.recycle(c);
            }
            self.pos = 0;
            match self.reader.next() {
                Some(Msg::Raw(c)) => self.cur = Some(c),
                Some(Msg::Failed(e)) => return Err(e),
                _ => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `step` bytes per read, then fails (if `err`) at the end.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        err: bool,
    }
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.at >= self.data.len() {
                return if self.err {
                    Err(std::io::Error::other("boom"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(self.step).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn drain(mut c: Reader) -> (Vec<u8>, Vec<usize>, Option<String>) {
        let (mut all, mut sizes, mut err) = (Vec::new(), Vec::new(), None);
        while let Some(m) = c.next() {
            match m {
                Msg::Raw(ch) => {
                    all.extend_from_slice(ch.bytes());
                    sizes.push(ch.len);
                    c.recycle(ch);
                }
                Msg::Failed(e) => err = Some(e.to_string()),
                _ => panic!("not a pcap"),
            }
        }
        (all, sizes, err)
    }

    #[test]
    fn every_byte_in_order_with_bounded_batches() {
        let data: Vec<u8> = (0..3 * CHUNK + 1234)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for step in [1usize << 20, 4096, 777] {
            let t = Trickle {
                data: data.clone(),
                at: 0,
                step,
                err: false,
            };
            let (all, sizes, err) = drain(Reader::spawn(t, false));
            assert_eq!(all, data, "step {step}");
            assert!(err.is_none());
            // Small reads are gathered to at least MIN_FILL per batch (but the last).
            let (last, body) = sizes.split_last().unwrap();
            assert!(
                body.iter().all(|&n| (MIN_FILL..=CHUNK).contains(&n)),
                "{sizes:?}"
            );
            assert!(*last > 0);
        }
    }

    #[test]
    fn error_after_data_keeps_the_data() {
        let t = Trickle {
            data: vec![7; 100_000],
            at: 0,
            step: 3000,
            err: true,
        };
        let (all, _, err) = drain(Reader::spawn(t, false));
        assert_eq!(all.len(), 100_000);
        assert_eq!(err.as_deref(), Some("boom"));
    }

    #[test]
    fn dropping_the_callers_end_stops_the_reader() {
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf.fill(1);
                Ok(buf.len())
            }
        }
        let (tx, rx) = sync_channel::<Msg>(QUEUED);
        let free = Pool::default();
        let free_rx = free.clone();
        let h = std::thread::spawn(move || run(Endless, Feed { tx, free: free_rx }, false));
        let mut c = Reader { rx, free };
        assert!(matches!(c.next(), Some(Msg::Raw(_))));
        drop(c);
        // Bounded: the thread notices the dropped receiver at its next send.
        h.join().unwrap();
    }
}
