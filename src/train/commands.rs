//! What a training loop does with the front end's commands between two steps: shared by the
//! standard and the episodic trainer, so pause, stop and "save now" mean the same in both.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use super::events::{TrainerCommand, TrainerEvent};
use super::trainer::TrainError;

/// Whether the loop goes on after the commands were obeyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obeyed {
    Continue,
    /// Stopped, with a checkpoint saved: the loop returns.
    Stop,
}

/// Drain the commands without blocking; while paused, wait for the next one. `save_checkpoint`
/// is called for a stop (before the loop returns) and for "save now".
pub fn obey(
    commands: &Receiver<TrainerCommand>,
    stop: &AtomicBool,
    paused: &mut bool,
    emit: &mut dyn FnMut(TrainerEvent) -> bool,
    save_checkpoint: &mut dyn FnMut() -> Result<std::path::PathBuf, TrainError>,
) -> Result<Obeyed, TrainError> {
    loop {
        if stop.load(Ordering::SeqCst) {
            save_checkpoint()?;
            return Ok(Obeyed::Stop);
        }
        let command = if *paused {
            commands.recv().map_err(|_| TrainError::Disconnected)?
        } else {
            match commands.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Empty) => return Ok(Obeyed::Continue),
                Err(TryRecvError::Disconnected) => return Err(TrainError::Disconnected),
            }
        };
        match command {
            TrainerCommand::Pause if !*paused => {
                *paused = true;
                emit(TrainerEvent::Paused);
            }
            TrainerCommand::Resume if *paused => {
                *paused = false;
                emit(TrainerEvent::Resumed);
            }
            TrainerCommand::SaveCheckpoint => {
                let folder = save_checkpoint()?;
                emit(TrainerEvent::CheckpointSaved(folder));
            }
            TrainerCommand::Stop => {
                save_checkpoint()?;
                return Ok(Obeyed::Stop);
            }
            _ => {}
        }
    }
}
