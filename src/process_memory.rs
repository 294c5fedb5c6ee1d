//! This process's peak resident memory, as the kernel counts it (Linux `/proc/self/status`), for
//! `sla bench` and the app's status bar. Other systems report nothing rather than a guess.

/// Restart the kernel's peak-RSS mark (Linux: writing "5" to `clear_refs`), so that the next
/// reading covers only what follows.
pub fn reset_peak_rss() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        log::debug!("cannot reset the peak RSS mark: {error}");
    }
}

/// VmHWM of this process in MiB, if readable.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_peak_covers_a_buffer_this_process_touched() {
        let before = super::peak_rss_mb().expect("VmHWM on Linux");
        let buffer = vec![1u8; 64 << 20];
        std::hint::black_box(&buffer);
        let after = super::peak_rss_mb().expect("VmHWM on Linux");
        assert!(after >= before.max(64.0), "{before} MiB then {after} MiB");
    }
}
