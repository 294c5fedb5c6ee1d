//! Progress reports shared by the command-line bar and the GUI: what stage, how many bytes, how fast.

use std::time::{Duration, Instant};

/// What the manager is doing when it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Receiving bytes; `bytes` counts over all files of the set, including bytes resumed from an
    /// earlier run.
    Download,
    /// Hashing a finished file against its published checksums.
    Verify,
    /// Unpacking an archive; `bytes` counts compressed bytes read.
    Extract,
}

/// One progress report. `total` is known when the sizes are published or the server sends them.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    /// The file being worked on.
    pub file: String,
    pub bytes: u64,
    pub total: Option<u64>,
    /// Bytes per second in this stage so far (resumed bytes excluded).
    pub rate: f64,
}

impl Progress {
    /// Time left at the current rate, once there is a rate and a total.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.total?;
        if self.rate <= 0.0 {
            return None;
        }
        let left = total.saturating_sub(self.bytes) as f64;
        Some(Duration::from_secs_f64(left / self.rate))
    }
}

/// Turns byte counts into [`Progress`] reports, at most every `interval` (always for the last one),
/// so a fast local copy does not flood a GUI channel.
pub(crate) struct Meter {
    stage: Stage,
    total: Option<u64>,
    started: Instant,
    start_bytes: Option<u64>,
    last_emit: Option<Instant>,
    interval: Duration,
}

impl Meter {
    pub(crate) fn new(stage: Stage, total: Option<u64>) -> Self {
        Meter {
            stage,
            total,
            started: Instant::now(),
            start_bytes: None,
            last_emit: None,
            interval: Duration::from_millis(100),
        }
    }

    /// A report for `bytes` done on `file`, or `None` when the last one is too recent. `force`
    /// reports regardless (file boundaries, the end).
    pub(crate) fn update(&mut self, file: &str, bytes: u64, force: bool) -> Option<Progress> {
        let now = Instant::now();
        let start = *self.start_bytes.get_or_insert(bytes);
        if !force
            && self
                .last_emit
                .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            return None;
        }
        self.last_emit = Some(now);
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = if elapsed > 0.0 {
            bytes.saturating_sub(start) as f64 / elapsed
        } else {
            0.0
        };
        Some(Progress {
            stage: self.stage,
            file: file.to_owned(),
            bytes,
            total: self.total,
            rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_bytes_left_over_rate() {
        let p = Progress {
            stage: Stage::Download,
            file: "f".to_owned(),
            bytes: 250,
            total: Some(1250),
            rate: 100.0,
        };
        assert_eq!(p.eta(), Some(Duration::from_secs(10)));
        assert_eq!(
            Progress {
                total: None,
                ..p.clone()
            }
            .eta(),
            None
        );
        assert_eq!(Progress { rate: 0.0, ..p }.eta(), None);
    }

    #[test]
    fn meter_throttles_but_always_reports_forced_updates() {
        let mut meter = Meter::new(Stage::Verify, Some(10));
        // An interval no test run reaches, so the throttling does not depend on timing.
        meter.interval = Duration::from_secs(3600);
        assert!(meter.update("f", 1, false).is_some());
        assert!(meter.update("f", 2, false).is_none());
        let last = meter.update("f", 10, true).expect("forced report");
        assert_eq!(
            (last.bytes, last.total, last.stage),
            (10, Some(10), Stage::Verify)
        );
    }
}
