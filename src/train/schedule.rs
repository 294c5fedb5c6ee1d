//! Learning-rate schedules over a run of `total` steps.

use crate::config::ScheduleKind;

/// The learning rate at `step` (0-based) of `total` steps.
pub fn learning_rate(kind: ScheduleKind, base: f64, step: u64, total: u64) -> f64 {
    let total = total.max(1);
    match kind {
        ScheduleKind::MultiStep => {
            // MultiStepLR([total/2, 3·total/4], gamma=0.1), stepped every iteration.
            let milestones = [total / 2, 3 * total / 4];
            let passed = milestones.iter().filter(|&&m| step >= m).count();
            base * 0.1f64.powi(passed as i32)
        }
        ScheduleKind::Cosine => {
            let progress = step.min(total) as f64 / total as f64;
            0.5 * base * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_divides_by_ten_at_half_and_three_quarters() {
        let lr = |s| learning_rate(ScheduleKind::MultiStep, 0.1, s, 80_000);
        assert_eq!(lr(0), 0.1);
        assert_eq!(lr(39_999), 0.1);
        assert!((lr(40_000) - 0.01).abs() < 1e-15);
        assert!((lr(60_000) - 0.001).abs() < 1e-15);
    }

    #[test]
    fn cosine_goes_from_base_to_zero_through_half() {
        let lr = |s| learning_rate(ScheduleKind::Cosine, 0.2, s, 100);
        assert_eq!(lr(0), 0.2);
        assert!((lr(50) - 0.1).abs() < 1e-12);
        assert!(lr(100).abs() < 1e-12);
    }
}
