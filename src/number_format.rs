//! Numbers as the app prints them: tick labels whose precision follows the tick step, so that
//! neighbouring ticks never read the same, and short significant-digit values for the status bar.

/// Labels for axis ticks at `values` (ascending). On a linear axis the ticks are evenly spaced and
/// share one precision, the one their step needs; on a log axis (decades, or a narrow range's
/// linear ticks) each tick gets its own.
pub fn tick_labels(values: &[f64], log_axis: bool) -> Vec<String> {
    if log_axis {
        return values.iter().map(|&v| significant(v, 3)).collect();
    }
    let step = values
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs())
        .filter(|gap| *gap > 0.0)
        .fold(f64::INFINITY, f64::min);
    let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !step.is_finite() {
        return values.iter().map(|&v| significant(v, 3)).collect();
    }
    if largest >= 10_000.0 && step >= 1_000.0 {
        let decimals = decimals_for(step / 1_000.0);
        return values
            .iter()
            .map(|v| format!("{:.*}k", decimals, v / 1_000.0))
            .collect();
    }
    if step < 1e-4 {
        // Four or more decimals are unreadable at tick size: the exponent form keeps them apart.
        let digits = (largest / step).log10().ceil().max(1.0) as usize;
        return values
            .iter()
            .map(|v| format!("{:.*e}", digits.saturating_sub(1), v))
            .collect();
    }
    let decimals = decimals_for(step);
    values
        .iter()
        // Adding 0 turns -0 into 0, which would print as "-0.0".
        .map(|v| format!("{:.*}", decimals, v + 0.0))
        .collect()
}

/// The fewest decimals that print multiples of `step` exactly (a 1, 2 or 5 × 10^k step needs −k,
/// a 2.5 step one).
fn decimals_for(step: f64) -> usize {
    (0..=6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() <= 1e-6 * scaled
        })
        .unwrap_or(6) as usize
}

/// `value` with `digits` significant digits, in plain notation from 0.001 up and without trailing
/// zeros; smaller magnitudes in exponent form.
pub fn significant(value: f64, digits: usize) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor();
    if magnitude < -3.0 {
        return format!("{:.*e}", digits.saturating_sub(1), value);
    }
    let decimals = (digits as f64 - 1.0 - magnitude).max(0.0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrow_accuracy_range_gets_labels_that_differ() {
        // The ticks of a 0.18-0.20 range: two decimals would print 0.18 0.18 0.19 0.19 0.20.
        let labels = tick_labels(&[0.180, 0.185, 0.190, 0.195, 0.200], false);
        assert_eq!(labels, ["0.180", "0.185", "0.190", "0.195", "0.200"]);
    }

    #[test]
    fn steps_choose_their_decimals() {
        assert_eq!(tick_labels(&[0.0, 0.2, 0.4], false), ["0.0", "0.2", "0.4"]);
        assert_eq!(
            tick_labels(&[0.0, 500.0, 1000.0], false),
            ["0", "500", "1000"]
        );
        assert_eq!(
            tick_labels(&[10_000.0, 20_000.0, 30_000.0], false),
            ["10k", "20k", "30k"]
        );
        assert_eq!(
            tick_labels(&[10_000.0, 12_500.0, 15_000.0], false),
            ["10.0k", "12.5k", "15.0k"]
        );
        assert_eq!(
            tick_labels(&[1.00001, 1.00002, 1.00003], false),
            ["1.00001e0", "1.00002e0", "1.00003e0"]
        );
        assert_eq!(
            tick_labels(&[-0.1, 0.0, 0.1], false),
            ["-0.1", "0.0", "0.1"]
        );
    }

    #[test]
    fn log_ticks_and_single_ticks_are_labelled_one_by_one() {
        assert_eq!(
            tick_labels(&[0.001, 0.01, 0.1, 1.0, 10.0], true),
            ["0.001", "0.01", "0.1", "1", "10"]
        );
        assert_eq!(tick_labels(&[0.25], false), ["0.25"]);
    }

    #[test]
    fn significant_digits_trim_zeros_and_switch_to_exponents() {
        assert_eq!(significant(0.1, 3), "0.1");
        assert_eq!(significant(0.07345, 3), "0.0735");
        assert_eq!(significant(0.001, 3), "0.001");
        assert_eq!(significant(0.0001, 3), "1.00e-4");
        assert_eq!(significant(2.5, 3), "2.5");
        assert_eq!(significant(1234.4, 3), "1234");
    }
}
