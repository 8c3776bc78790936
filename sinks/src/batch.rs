//! A consumer on a thread of its own, fed in batches over a bounded channel: the event writer
//! and the inventory writer both run on one, so their I/O overlaps with analysis and a slow one
//! holds back the producer instead of growing memory.

/// Items handed to a stage thread per channel message.
const BATCH: usize = 64;
/// Batches in flight per stage thread (bounded memory; the producer waits when the stage lags).
const BATCHES_IN_FLIGHT: usize = 64;

/// A consumer on a thread of its own, fed in batches over a bounded channel. Its error (or panic)
/// is returned by the next `push` after it stopped, or by `finish`.
pub struct BatchThread<T: Send + 'static> {
    name: &'static str,
    tx: Option<crossbeam_channel::Sender<Vec<T>>>,
    batch: Vec<T>,
    handle: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl<T: Send + 'static> BatchThread<T> {
    /// Moves `state` to a new thread called `name`, runs `consume` on every item, then `end`.
    pub fn spawn<S: Send + 'static>(
        name: &'static str,
        mut state: S,
        consume: fn(&mut S, T) -> Result<(), String>,
        end: fn(&mut S) -> Result<(), String>,
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
    fn join(&mut self) -> Result<(), String> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(format!("{} panicked", self.name)),
        }
    }

    pub fn push(&mut self, item: T) -> Result<(), String> {
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
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(std::mem::take(&mut self.batch));
        }
        self.join()
    }
}
