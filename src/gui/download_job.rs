//! A dataset download started from the app: runs the dataset manager on a named thread, shares its
//! progress with the panel, and can be cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

use crate::download::{self, Manager, Progress, Stage};

pub struct DownloadJob {
    pub title: String,
    progress: Arc<Mutex<Option<Progress>>>,
    cancel: Arc<AtomicBool>,
    done: Receiver<Result<(), String>>,
}

impl DownloadJob {
    /// Start downloading the named dataset into the cache.
    pub fn start(name: &str, waker: impl Fn() + Send + 'static) -> Result<Self, String> {
        let spec = download::spec(name).map_err(|e| e.to_string())?;
        let manager = Manager::new(None).map_err(|e| e.to_string())?;
        let progress = Arc::new(Mutex::new(None));
        let cancel = manager.cancel_flag();
        let (sender, done) = mpsc::channel();
        let shared = progress.clone();
        let title = spec.title.clone();
        crate::worker::spawn("dataset-download", move || {
            let result = crate::worker::catch_panic(|| {
                let mut report = |p: &Progress| {
                    if let Ok(mut slot) = shared.lock() {
                        *slot = Some(p.clone());
                    }
                    waker();
                };
                manager
                    .fetch(&spec, &mut report)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|panic| Err(format!("the download failed unexpectedly: {panic}")));
            let _ = sender.send(result);
            waker();
        })
        .map_err(|e| format!("cannot start the download: {e}"))?;
        Ok(Self {
            title,
            progress,
            cancel,
            done,
        })
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The outcome once the download ended.
    pub fn finished(&self) -> Option<Result<(), String>> {
        self.done.try_recv().ok()
    }

    /// "Downloading cifar-10-binary.tar.gz: 12.0 / 162.2 MiB, 3.1 MiB/s, 48 s left" and a fraction.
    pub fn status(&self) -> (String, Option<f32>) {
        let Some(p) = self.progress.lock().ok().and_then(|slot| slot.clone()) else {
            return (format!("Connecting for {}…", self.title), None);
        };
        let stage = match p.stage {
            Stage::Download => "Downloading",
            Stage::Verify => "Verifying",
            Stage::Extract => "Extracting",
        };
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let mut text = format!("{stage} {}: {:.1}", p.file, mib(p.bytes));
        if let Some(total) = p.total {
            text += &format!(" / {:.1}", mib(total));
        }
        text += &format!(" MiB, {:.1} MiB/s", mib(p.rate as u64));
        if let Some(eta) = p.eta() {
            text += &format!(", {} s left", eta.as_secs());
        }
        let fraction = p.total.map(|t| (p.bytes as f64 / t.max(1) as f64) as f32);
        (text, fraction)
    }
}
