//! Ctrl-C and SIGTERM for the training commands: the first finishes the current step, saves a
//! checkpoint and ends the command with a line saying how to resume; a second exits at once.
//!
//! Exiting at once is safe because a checkpoint is committed by one atomic rename (see
//! `train::checkpoint`): whatever the moment, the last complete checkpoint stays usable.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

/// The exit status of a process ended by SIGINT, by shell convention (128 + 2).
pub const INTERRUPTED_EXIT: i32 = 130;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static STOP: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Route Ctrl-C and SIGTERM to `stop` (the flag of the run in progress) from now on.
pub fn stop_on_interrupt(stop: Arc<AtomicBool>) {
    if let Ok(mut slot) = STOP.lock() {
        *slot = Some(stop);
    }
    INSTALL.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
                if let Ok(slot) = STOP.lock()
                    && let Some(stop) = slot.as_ref()
                {
                    stop.store(true, Ordering::SeqCst);
                }
                eprintln!(
                    "\nstopping after this step and saving a checkpoint (press Ctrl-C again to quit at once)"
                );
            } else {
                eprintln!("\nquitting now; the last complete checkpoint is kept");
                std::process::exit(INTERRUPTED_EXIT);
            }
        });
        if let Err(error) = installed {
            log::warn!("Ctrl-C will end training without a checkpoint: {error}");
        }
    });
}

/// Whether a signal asked this process to stop.
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

/// The error a command ends with after a graceful stop; `main` exits with `INTERRUPTED_EXIT` for it.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Interrupted(pub String);
