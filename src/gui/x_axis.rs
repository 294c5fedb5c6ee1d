//! What the charts' x axis counts (steps, epochs or wall-clock time) and the map between a step
//! and the axis's data x. Every chart point is placed through `x_of`, and the hover read-out and
//! zoom go back through `step_of`, so the three units share one definition.

use serde::{Deserialize, Serialize};

/// The unit of the charts' x axis, as the user picks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum XUnit {
    #[default]
    Steps,
    Epochs,
    /// Seconds since the run began (time stopped between a checkpoint and its resume excluded).
    WallTime,
}

impl XUnit {
    pub const ALL: [XUnit; 3] = [XUnit::Steps, XUnit::Epochs, XUnit::WallTime];

    pub fn name(self) -> &'static str {
        match self {
            Self::Steps => "steps",
            Self::Epochs => "epochs",
            Self::WallTime => "wall time (s)",
        }
    }
}

/// The step ↔ data x map of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct XAxis<'a> {
    pub unit: XUnit,
    pub steps_per_epoch: Option<u64>,
    /// (step, seconds) of the steps whose time is known, in step order.
    pub seconds: &'a [(f32, f64)],
}

impl XAxis<'_> {
    /// The unit shown: the chosen one when the run has what it needs (steps per epoch, recorded
    /// times), else steps.
    pub fn shown_unit(&self) -> XUnit {
        match self.unit {
            XUnit::Epochs if self.per_epoch().is_some() => XUnit::Epochs,
            XUnit::WallTime if !self.seconds.is_empty() => XUnit::WallTime,
            _ => XUnit::Steps,
        }
    }

    /// Whether `unit` can be shown for this run, or why not.
    pub fn unavailable(&self, unit: XUnit) -> Option<&'static str> {
        match unit {
            XUnit::Steps => None,
            XUnit::Epochs => self
                .per_epoch()
                .is_none()
                .then_some("the run's steps per epoch are not known yet"),
            XUnit::WallTime => self.seconds.is_empty().then_some(
                "no step times yet (runs logged before steps.csv had a seconds column have none)",
            ),
        }
    }

    fn per_epoch(&self) -> Option<u64> {
        self.steps_per_epoch.filter(|&s| s > 0)
    }

    /// Data x of `step` (fractional steps allowed).
    pub fn x_of(&self, step: f64) -> f64 {
        match self.shown_unit() {
            XUnit::Steps => step,
            XUnit::Epochs => step / self.per_epoch().map_or(1.0, |p| p as f64),
            XUnit::WallTime => interpolate(self.seconds, step, |&(s, t)| (f64::from(s), t)),
        }
    }

    /// The step at data x (the inverse of `x_of`).
    pub fn step_of(&self, x: f64) -> f64 {
        match self.shown_unit() {
            XUnit::Steps => x,
            XUnit::Epochs => x * self.per_epoch().map_or(1.0, |p| p as f64),
            XUnit::WallTime => interpolate(self.seconds, x, |&(s, t)| (t, f64::from(s))),
        }
    }

    /// Data x of one step, on average over the run (the narrowest zoom is a few steps wide).
    pub fn per_step(&self) -> f64 {
        match self.seconds.last() {
            Some(&(step, seconds)) if self.shown_unit() == XUnit::WallTime && step > 0.0 => {
                seconds / f64::from(step)
            }
            _ => self.x_of(1.0),
        }
    }

    /// The read-out's header for a point at data x: what the axis counts first, then the others.
    pub fn describe(&self, x: f64) -> String {
        let step = self.step_of(x).round().max(0.0);
        // Step s (counted from 1) falls in epoch ceil(s / steps per epoch).
        let epoch = self.per_epoch().map(|p| (step.max(1.0) as u64).div_ceil(p));
        match (self.shown_unit(), epoch) {
            (XUnit::Epochs, _) => format!("epoch {x:.2} (step {step:.0})"),
            (XUnit::WallTime, Some(epoch)) => {
                format!("{} (step {step:.0}, epoch {epoch})", duration(x))
            }
            (XUnit::WallTime, None) => format!("{} (step {step:.0})", duration(x)),
            (XUnit::Steps, Some(epoch)) => format!("step {step:.0} (epoch {epoch})"),
            (XUnit::Steps, None) => format!("step {step:.0}"),
        }
    }
}

/// Piecewise-linear `y` at `x` through `points` (sorted by x, as `key` reads them), starting from
/// (0, 0) and extended past the last point along the last segment's slope.
fn interpolate<T>(points: &[T], x: f64, key: impl Fn(&T) -> (f64, f64)) -> f64 {
    let after = points.partition_point(|p| key(p).0 < x);
    let (x0, y0) = match after.checked_sub(1) {
        Some(i) => key(&points[i]),
        None => (0.0, 0.0),
    };
    let (x1, y1) = match points.get(after) {
        Some(p) => key(p),
        // Past the end: continue the last segment.
        None if after >= 2 => {
            let (xa, ya) = key(&points[after - 2]);
            (x0 + (x0 - xa), y0 + (y0 - ya))
        }
        None => return if x0 > 0.0 { y0 * x / x0 } else { y0 },
    };
    if x1 == x0 {
        return y1;
    }
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

/// 42.5 → "42.5 s", 725 → "12 min 05 s", 3720 → "1 h 02 min".
pub fn duration(seconds: f64) -> String {
    let whole = seconds.max(0.0).round() as u64;
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two steps of 0.5 s, an evaluation of 3 s, then a step of 0.5 s.
    const TIMES: [(f32, f64); 3] = [(1.0, 0.5), (2.0, 1.0), (3.0, 4.5)];

    fn wall_time() -> XAxis<'static> {
        XAxis {
            unit: XUnit::WallTime,
            steps_per_epoch: Some(2),
            seconds: &TIMES,
        }
    }

    #[test]
    fn wall_time_places_each_step_at_its_recorded_time() {
        let axis = wall_time();
        assert_eq!(axis.x_of(2.0), 1.0);
        assert_eq!(axis.x_of(3.0), 4.5);
        assert_eq!(axis.x_of(0.5), 0.25);
        assert_eq!(axis.x_of(2.5), 2.75);
        // Past the last step: the last segment's slope (3.5 s a step).
        assert_eq!(axis.x_of(4.0), 8.0);
        for step in [0.0, 0.5, 1.0, 2.0, 2.5, 3.0] {
            assert_eq!(axis.step_of(axis.x_of(step)), step, "step {step}");
        }
        assert_eq!(axis.per_step(), 1.5);
    }

    #[test]
    fn steps_and_epochs_are_linear() {
        let epochs = XAxis {
            unit: XUnit::Epochs,
            steps_per_epoch: Some(4),
            seconds: &[],
        };
        assert_eq!(epochs.x_of(3.0), 0.75);
        assert_eq!(epochs.step_of(0.75), 3.0);
        assert_eq!(epochs.per_step(), 0.25);
        let steps = XAxis::default();
        assert_eq!(steps.x_of(3.0), 3.0);
        assert_eq!(steps.per_step(), 1.0);
    }

    #[test]
    fn a_unit_the_run_cannot_show_falls_back_to_steps_and_says_why() {
        let axis = XAxis {
            unit: XUnit::WallTime,
            steps_per_epoch: None,
            seconds: &[],
        };
        assert_eq!(axis.shown_unit(), XUnit::Steps);
        assert_eq!(axis.x_of(7.0), 7.0);
        assert!(axis.unavailable(XUnit::WallTime).is_some());
        assert!(axis.unavailable(XUnit::Epochs).is_some());
        assert!(wall_time().unavailable(XUnit::WallTime).is_none());
    }

    #[test]
    fn the_header_names_time_step_and_epoch() {
        assert_eq!(wall_time().describe(4.5), "4.5 s (step 3, epoch 2)");
        assert_eq!(duration(725.0), "12 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
    }
}
