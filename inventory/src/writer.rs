//! The inventory on a thread of its own, fed observations in batches over a bounded channel: the
//! SQLite work overlaps with analysis, and a slow disk holds back the producer instead of growing
//! memory.

use crate::{Inventory, InventoryError, Observation, RecordStats, SignalObservation};

/// Items handed to a stage thread per channel message.
const BATCH: usize = 64;
/// Batches in flight per stage thread (bounded memory; the producer waits when the stage lags).
const BATCHES_IN_FLIGHT: usize = 64;

/// A consumer on a thread of its own, fed in batches over a bounded channel. Its error (or panic)
/// is returned by the next `push` after it stopped, or by `finish`.
struct BatchThread<T: Send + 'static, R: Send + 'static> {
    name: &'static str,
    tx: Option<crossbeam_channel::Sender<Vec<T>>>,
    batch: Vec<T>,
    handle: Option<std::thread::JoinHandle<Result<R, String>>>,
}

impl<T: Send + 'static, R: Send + 'static> BatchThread<T, R> {
    /// Moves `state` to a new thread called `name`, runs `consume` on every item, then `end`.
    fn spawn<S: Send + 'static>(
        name: &'static str,
        mut state: S,
        consume: fn(&mut S, T) -> Result<(), String>,
        end: fn(&mut S) -> Result<R, String>,
    ) -> Result<Self, String> {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<T>>(BATCHES_IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for batch in rx {
                    for item in batch {
                        consume(&mut state, item)?;
                    }
                }
                end(&mut state)
            })
            .map_err(|e| format!("{name} thread: {e}"))?;
        Ok(BatchThread {
            name,
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH),
            handle: Some(handle),
        })
    }

    /// Stops the thread and returns how it ended.
    fn join(&mut self) -> Result<R, String> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            None => Err(format!("{} already stopped", self.name)),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(format!("{} panicked", self.name)),
        }
    }

    fn push(&mut self, item: T) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err(format!("{} stopped", self.name));
        };
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            if tx.send(b).is_err() {
                return Err(self
                    .join()
                    .err()
                    .unwrap_or_else(|| format!("{} stopped", self.name)));
            }
        }
        Ok(())
    }

    /// Hands over what is left and waits for the thread to end.
    fn finish(&mut self) -> Result<R, String> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(std::mem::take(&mut self.batch));
        }
        self.join()
    }
}

/// What the writer thread records.
pub enum Record {
    Handshake(Observation),
    Signal(SignalObservation),
}

/// Records inventory observations on a thread of its own.
pub struct InventoryWriter(BatchThread<Record, RecordStats>);

impl InventoryWriter {
    pub fn spawn(inv: Inventory) -> Result<Self, String> {
        fn ierr(e: InventoryError) -> String {
            format!("inventory: {e}")
        }
        Ok(InventoryWriter(BatchThread::spawn(
            "inventory writer",
            inv,
            |inv, r: Record| {
                match r {
                    Record::Handshake(o) => inv.record(&o),
                    Record::Signal(o) => inv.record_signal(&o),
                }
                .map_err(ierr)
            },
            |inv| inv.flush().map(|()| inv.stats()).map_err(ierr),
        )?))
    }

    pub fn record(&mut self, o: Observation) -> Result<(), String> {
        self.0.push(Record::Handshake(o))
    }

    pub fn record_signal(&mut self, o: SignalObservation) -> Result<(), String> {
        self.0.push(Record::Signal(o))
    }

    /// Records what is left, flushes, stops the thread and returns the recording counters.
    pub fn finish(&mut self) -> Result<RecordStats, String> {
        self.0.finish()
    }
}
