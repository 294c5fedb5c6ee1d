//! A sequence of items, each made on a thread of its own one ahead of its use: while the caller
//! works on item k, the thread makes item k + 1. The training batches, the few-shot episodes and the
//! evaluation batches are all made this way, so none of their loops waits for its data.
//!
//! Why a thread and not a rayon task: the kernels fill rayon's pool, and a task queued there would
//! run inside their parallel loops, on their threads. A thread of its own runs beside them; on a
//! machine with idle cores the data work costs the loop nothing, and on a machine whose cores the
//! loop keeps busy it costs what it did before, now out of the loop's critical path. The items must
//! not depend on the order the threads run in: each is a pure function of its index.
//!
//! The channel is a rendezvous: the thread makes item k + 1 and hands it over when the caller asks,
//! so one item waits at most.

use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Items `make(k)` for the indices of a range, in order, made one ahead on their own thread.
/// Dropping it stops the thread (after the item it is making, if any) and joins it.
pub struct Ahead<T> {
    /// What an item is, for the error when none is left ("batch", "episode").
    what: &'static str,
    receiver: Option<Receiver<candle_core::Result<T>>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Ahead<T> {
    /// Starts making the items of `indices` in order on a thread named `thread_name`. The thread
    /// stops after the first error, which the caller receives in that item's place.
    pub fn spawn(
        what: &'static str,
        thread_name: &str,
        indices: Range<u64>,
        mut make: impl FnMut(u64) -> candle_core::Result<T> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(0);
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                for index in indices {
                    if !hand_over(&sender, make(index)) {
                        return;
                    }
                }
            })?;
        Ok(Self {
            what,
            receiver: Some(receiver),
            thread: Some(thread),
        })
    }

    /// The next item, and how long the caller waited for it: what of its making the caller's work
    /// on the item before did not hide.
    pub fn take(&mut self) -> candle_core::Result<(T, Duration)> {
        let Some(receiver) = &self.receiver else {
            candle_core::bail!("the {} builder was stopped", self.what);
        };
        let asked = Instant::now();
        let received = receiver.recv();
        let waited = asked.elapsed();
        match received {
            Ok(item) => Ok((item?, waited)),
            Err(_) => candle_core::bail!(
                "no {} left: the {} builder finished its work or stopped unexpectedly",
                self.what,
                self.what
            ),
        }
    }
}

impl<T> Drop for Ahead<T> {
    fn drop(&mut self) {
        // Closing the channel first makes the thread's next hand-over fail, which ends its loop.
        self.receiver = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the {} builder thread panicked", self.what);
        }
    }
}

/// Hand an item (or the error that stopped it) to the caller; whether to go on: false once the
/// receiving end is gone, or after an error (the caller stops there).
fn hand_over<T>(sender: &SyncSender<candle_core::Result<T>>, item: candle_core::Result<T>) -> bool {
    let failed = item.is_err();
    sender.send(item).is_ok() && !failed
}
