//! This process's resident memory and its peak, as the kernel counts them (Linux
//! `/proc/self/status`), for `sla bench`, the app's step estimate and its status bar. Other systems
//! report nothing rather than a guess.

use std::sync::atomic::{AtomicU64, Ordering};

/// The highest peak (KiB) seen before the kernel's mark was last reset, so the process's peak
/// over its whole life stays known after a measurement restarts the mark.
static PEAK_BEFORE_RESET_KB: AtomicU64 = AtomicU64::new(0);

/// Restart the kernel's peak-RSS mark (Linux: writing "5" to `clear_refs`), so that the next
/// `peak_rss_mb` covers only what follows.
pub fn reset_peak_rss() {
    if let Some(kb) = status_kb("VmHWM:") {
        PEAK_BEFORE_RESET_KB.fetch_max(kb as u64, Ordering::Relaxed);
    }
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        log::debug!("cannot reset the peak RSS mark: {error}");
    }
}

/// VmHWM of this process in MiB (the peak since the last `reset_peak_rss`), if readable.
pub fn peak_rss_mb() -> Option<f64> {
    status_kb("VmHWM:").map(|kb| kb / 1024.0)
}

/// The process's peak resident memory over its whole life, in MiB.
pub fn lifetime_peak_rss_mb() -> Option<f64> {
    let before = PEAK_BEFORE_RESET_KB.load(Ordering::Relaxed) as f64;
    status_kb("VmHWM:").map(|kb| kb.max(before) / 1024.0)
}

/// VmRSS of this process in MiB: what is resident now.
pub fn resident_mb() -> Option<f64> {
    status_kb("VmRSS:").map(|kb| kb / 1024.0)
}

/// A `/proc/self/status` field in KiB.
fn status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_peak_covers_a_buffer_this_process_touched() {
        // Other tests reset the mark meanwhile; the lifetime peak only grows.
        let before = super::lifetime_peak_rss_mb().expect("VmHWM on Linux");
        let buffer = vec![1u8; 64 << 20];
        std::hint::black_box(&buffer);
        let after = super::lifetime_peak_rss_mb().expect("VmHWM on Linux");
        assert!(after >= before.max(64.0), "{before} MiB then {after} MiB");
        assert!(super::peak_rss_mb().expect("VmHWM") >= 64.0);
    }

    #[test]
    fn a_reset_keeps_the_lifetime_peak() {
        let buffer = vec![1u8; 96 << 20];
        std::hint::black_box(&buffer);
        let resident = super::resident_mb().expect("VmRSS on Linux");
        assert!(resident >= 96.0, "{resident} MiB resident");
        drop(buffer);
        super::reset_peak_rss();
        let lifetime = super::lifetime_peak_rss_mb().expect("VmHWM on Linux");
        assert!(lifetime >= 96.0, "lifetime peak {lifetime} MiB");
    }
}
