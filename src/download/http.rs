//! Fetching one file over HTTP(S): resume into `<file>.part` with Range requests, reject error pages
//! and wrong sizes early, fall back to the next mirror, and stop when the cancel flag is raised.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::catalogue::RemoteFile;
use super::error::{DownloadError, MirrorFailure};
use super::progress::{Meter, Progress};
use super::verify;

const CHUNK: usize = 64 * 1024;

/// Resumes of one file from one mirror in one run, even while each brings bytes: a connection that
/// breaks this often is better left for a later run or another mirror.
const MAX_ATTEMPTS: u32 = 50;

/// Redirects followed for one request: mirrors use one or two; more is a loop or a trap.
const MAX_REDIRECTS: u32 = 10;

/// The most a file whose size neither the catalogue nor the server states may grow to (8 GiB, far
/// above any set in the catalogue), so an endless body cannot fill the disk.
pub const MAX_UNKNOWN_SIZE: u64 = 8 << 30;

/// Network behaviour of a [`Downloader`]. The defaults suit real mirrors; tests shorten the waits.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    pub connect_timeout: Duration,
    /// A transfer that receives nothing for this long counts as broken (and is resumed).
    pub read_timeout: Duration,
    /// Wait before resuming a broken transfer; doubles with each attempt that brought no bytes.
    pub retry_delay: Duration,
    /// Attempts in a row that bring no new byte before a mirror is given up.
    pub stalled_attempts: u32,
    /// Honour `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`.
    pub use_env_proxy: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_secs(1),
            stalled_attempts: 3,
            use_env_proxy: true,
        }
    }
}

/// A blocking HTTP client with a shared cancel flag. Cloning shares the connection pool and flag.
#[derive(Clone)]
pub struct Downloader {
    agent: ureq::Agent,
    options: DownloadOptions,
    cancel: Arc<AtomicBool>,
}

/// Where one file's bytes sit within the whole set, so progress covers the set, not one file.
pub(crate) struct SetProgress<'a> {
    pub meter: &'a mut Meter,
    /// Bytes of the files before this one.
    pub base: u64,
    pub sink: &'a mut dyn FnMut(&Progress),
}

impl SetProgress<'_> {
    fn report(&mut self, file: &str, bytes_in_file: u64, force: bool) {
        if let Some(p) = self.meter.update(file, self.base + bytes_in_file, force) {
            (self.sink)(&p);
        }
    }
}

/// How one attempt at one mirror ended when it did not deliver the whole file.
enum Attempt {
    /// Bytes may still come: resume after a pause.
    Retry {
        error: DownloadError,
        progressed: bool,
    },
    /// This mirror will not deliver; try the next one.
    Fail(DownloadError),
}

impl Downloader {
    pub fn new(options: DownloadOptions, cancel: Arc<AtomicBool>) -> Self {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are followed by `get`, which refuses to leave HTTPS for plain HTTP; ureq
            // itself would follow any of them.
            .max_redirects(0)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_per_read(Some(options.read_timeout))
            .user_agent(concat!(
                "sla/",
                env!("CARGO_PKG_VERSION"),
                " (dataset manager)"
            ));
        if !options.use_env_proxy {
            config = config.proxy(None);
        }
        #[cfg(target_os = "macos")]
        {
            // See Cargo.toml: macOS builds carry native-tls instead of rustls.
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .build(),
            );
        }
        Downloader {
            agent: config.build().into(),
            options,
            cancel,
        }
    }

    /// The flag that stops every transfer, verification and extraction of this downloader.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn check_cancel(&self) -> Result<(), DownloadError> {
        if self.cancelled() {
            Err(DownloadError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Downloads `file` to `dest`, going through `dest.part` (kept across runs for resuming) and
    /// renaming only once every published checksum matches. A `dest` left verified by an earlier
    /// run is checked again and kept.
    pub(crate) fn fetch_file(
        &self,
        file: &RemoteFile,
        dest: &Path,
        progress: &mut SetProgress<'_>,
    ) -> Result<(), DownloadError> {
        if file.urls.is_empty() {
            return Err(DownloadError::InvalidSpec(format!(
                "{} has no URL to download from",
                file.name
            )));
        }
        if dest.is_file() {
            match self.verify(file, dest, progress) {
                Ok(()) => return Ok(()),
                Err(DownloadError::ChecksumMismatch { .. } | DownloadError::WrongSize { .. }) => {
                    remove_file(dest)?
                }
                Err(e) => return Err(e),
            }
        }
        let part = part_path(dest);
        let mut failures = Vec::new();
        for url in &file.urls {
            // A resumed file whose checksum fails may owe it to its old prefix: one fresh try.
            let mut fresh_retry_left = true;
            loop {
                let resumed = file_len(&part) > 0;
                match self.fetch_from(url, file, &part, progress) {
                    Ok(()) => {}
                    Err(e) if e.is_remote() => {
                        log::warn!("{url}: {e}");
                        failures.push(MirrorFailure {
                            url: url.clone(),
                            error: e,
                        });
                        break;
                    }
                    Err(e) => return Err(e),
                }
                match self.verify(file, &part, progress) {
                    Ok(()) => {
                        fs::rename(&part, dest).map_err(|e| DownloadError::io(dest, e))?;
                        log::info!("{} verified from {url}", file.name);
                        return Ok(());
                    }
                    Err(
                        e @ (DownloadError::ChecksumMismatch { .. }
                        | DownloadError::WrongSize { .. }),
                    ) => {
                        remove_file(&part)?;
                        if resumed && fresh_retry_left {
                            log::warn!("{e}; downloading {} again from the start", file.name);
                            fresh_retry_left = false;
                            continue;
                        }
                        failures.push(MirrorFailure {
                            url: url.clone(),
                            error: e,
                        });
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if failures.len() == 1 {
            // One URL: its own error says it all.
            Err(failures.remove(0).error)
        } else {
            Err(DownloadError::AllMirrorsFailed {
                file: file.name.clone(),
                attempts: failures,
            })
        }
    }

    fn verify(
        &self,
        file: &RemoteFile,
        path: &Path,
        progress: &mut SetProgress<'_>,
    ) -> Result<(), DownloadError> {
        let len = file_len(path);
        if let Some(size) = file.size
            && len != size
        {
            return Err(DownloadError::WrongSize {
                what: file.name.clone(),
                expected: size,
                actual: len,
            });
        }
        verify::verify_reporting(path, file, &self.cancel, &mut *progress.sink)
    }

    /// Brings `part` to the full file from one URL, resuming broken transfers while they progress.
    fn fetch_from(
        &self,
        url: &str,
        file: &RemoteFile,
        part: &Path,
        progress: &mut SetProgress<'_>,
    ) -> Result<(), DownloadError> {
        let mut stalled = 0u32;
        let mut attempts = 0u32;
        loop {
            self.check_cancel()?;
            attempts += 1;
            match self.attempt(url, file, part, progress) {
                Ok(()) => return Ok(()),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { error, progressed }) => {
                    stalled = if progressed { 0 } else { stalled + 1 };
                    if stalled >= self.options.stalled_attempts || attempts >= MAX_ATTEMPTS {
                        return Err(error);
                    }
                    log::info!("{error}; resuming");
                    let pause = self.options.retry_delay * 2u32.saturating_pow(stalled);
                    self.sleep(pause)?;
                }
            }
        }
    }

    /// Waits in short steps so a cancel does not have to wait for the whole pause.
    fn sleep(&self, pause: Duration) -> Result<(), DownloadError> {
        let step = Duration::from_millis(50);
        let mut left = pause;
        while !left.is_zero() {
            self.check_cancel()?;
            let nap = left.min(step);
            std::thread::sleep(nap);
            left -= nap;
        }
        Ok(())
    }

    /// GET `url` (from byte `offset` when resuming), following redirects by hand: each hop is
    /// checked by [`redirect_target`], so a mirror cannot move the transfer off HTTPS.
    fn get(&self, url: &str, offset: u64) -> Result<ureq::http::Response<ureq::Body>, Attempt> {
        let mut current = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(&current);
            if offset > 0 {
                request = request.header("Range", format!("bytes={offset}-"));
            }
            let response = request.call().map_err(|e| Attempt::Retry {
                error: network_error(&current, &e),
                progressed: false,
            })?;
            if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Attempt::Fail(DownloadError::Network {
                        url: current.clone(),
                        message: format!(
                            "redirect (HTTP {}) without a usable Location header",
                            response.status().as_u16()
                        ),
                    })
                })?;
            let next = redirect_target(&current, location).map_err(Attempt::Fail)?;
            log::info!("{current} redirects to {next}");
            current = next;
        }
        Err(Attempt::Fail(DownloadError::Network {
            url: url.to_owned(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    /// One GET, appending to `part` from its current length.
    fn attempt(
        &self,
        url: &str,
        file: &RemoteFile,
        part: &Path,
        progress: &mut SetProgress<'_>,
    ) -> Result<(), Attempt> {
        let fail = Attempt::Fail;
        let mut offset = file_len(part);
        if let Some(size) = file.size {
            if offset == size {
                return Ok(());
            }
            if offset > size {
                // Longer than the real file: not a prefix of it.
                remove_file(part).map_err(fail)?;
                offset = 0;
            }
        }
        let response = self.get(url, offset)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let content_range = header("content-range");
        let length = response.body().content_length();
        // Where this response's body starts in the file, and the whole file's size if told.
        let (start, total) = match status {
            200 => (0, length),
            206 => {
                match content_range.as_deref().and_then(parse_content_range) {
                    Some((first, total)) if first == offset => (first, total),
                    // A range we did not ask for: start again from zero without Range.
                    _ => {
                        remove_file(part).map_err(fail)?;
                        return Err(Attempt::Retry {
                            error: DownloadError::Network {
                                url: url.to_owned(),
                                message: format!(
                                    "server answered range {} to a request from byte {offset}",
                                    content_range.unwrap_or_default()
                                ),
                            },
                            progressed: false,
                        });
                    }
                }
            }
            416 if offset > 0 => {
                // Our part is not a prefix the server can continue: start over.
                remove_file(part).map_err(fail)?;
                return Err(Attempt::Retry {
                    error: DownloadError::HttpStatus {
                        url: url.to_owned(),
                        status,
                        reason: "(range not satisfiable; restarting from the beginning)".to_owned(),
                    },
                    progressed: false,
                });
            }
            _ => {
                let reason = response
                    .status()
                    .canonical_reason()
                    .unwrap_or_default()
                    .to_owned();
                return Err(fail(DownloadError::HttpStatus {
                    url: url.to_owned(),
                    status,
                    reason,
                }));
            }
        };
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("text/html")
        {
            return Err(fail(DownloadError::NotAnArchive {
                what: url.to_owned(),
                detail: format!("the server sent an HTML page (Content-Type: {content_type})"),
            }));
        }
        if let (Some(size), Some(total)) = (file.size, total)
            && size != total
        {
            return Err(fail(DownloadError::WrongSize {
                what: url.to_owned(),
                expected: size,
                actual: total,
            }));
        }
        if start == 0 && offset > 0 {
            log::info!("{url} does not resume transfers; starting again from byte 0");
        }
        let expected = file.size.or(total);
        let mut reader = response.into_body().into_reader();
        let mut buffer = vec![0u8; CHUNK];
        // The head is read before .part is touched, so an error page never lands in it.
        let mut head = Vec::new();
        if start == 0 {
            while head.len() < 64 {
                match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                    Err(e) => {
                        return Err(Attempt::Retry {
                            error: truncated_or(url, 0, expected, &e),
                            progressed: false,
                        });
                    }
                }
            }
            verify::check_head(&head, url, verify::Container::of(&file.name)).map_err(fail)?;
        }
        let mut out = open_part(part, start).map_err(fail)?;
        out.write_all(&head)
            .map_err(|e| fail(DownloadError::io(part, e)))?;
        let mut written = start + head.len() as u64;
        progress.report(&file.name, written, true);
        // Checked before each write, so an endless or oversized body stops at the first chunk past
        // the size and never lands on disk beyond it.
        let limit = expected.unwrap_or(MAX_UNKNOWN_SIZE);
        let ended = loop {
            if self.cancelled() {
                break Err(Attempt::Fail(DownloadError::Cancelled));
            }
            match reader.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) if written + n as u64 > limit => {
                    break Err(Attempt::Fail(DownloadError::TooLarge {
                        url: url.to_owned(),
                        limit,
                    }));
                }
                Ok(n) => {
                    if let Err(e) = out.write_all(&buffer[..n]) {
                        break Err(fail(DownloadError::io(part, e)));
                    }
                    written += n as u64;
                    progress.report(&file.name, written, false);
                }
                Err(e) => {
                    break Err(Attempt::Retry {
                        error: truncated_or(url, written, expected, &e),
                        progressed: written > offset,
                    });
                }
            }
        };
        out.flush()
            .and_then(|()| out.sync_all())
            .map_err(|e| fail(DownloadError::io(part, e)))?;
        progress.report(&file.name, written, true);
        if let Err(Attempt::Fail(DownloadError::TooLarge { .. })) = &ended {
            // What was kept is a prefix of something that is not the file: useless for resuming.
            drop(out);
            remove_file(part).map_err(fail)?;
        }
        ended?;
        match expected {
            Some(expected) if written < expected => Err(Attempt::Retry {
                error: DownloadError::Truncated {
                    url: url.to_owned(),
                    received: written,
                    expected,
                },
                progressed: written > offset,
            }),
            Some(expected) if written > expected => {
                remove_file(part).map_err(fail)?;
                Err(fail(DownloadError::WrongSize {
                    what: url.to_owned(),
                    expected,
                    actual: written,
                }))
            }
            _ => Ok(()),
        }
    }
}

/// `<dest>.part`: where a transfer lives until its checksums match.
pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn remove_file(path: &Path) -> Result<(), DownloadError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DownloadError::io(path, e)),
        _ => Ok(()),
    }
}

/// Opens `part` for writing at `start`: appending to what is there, or truncating for a restart.
fn open_part(part: &Path, start: u64) -> Result<File, DownloadError> {
    let file = if start == 0 {
        File::create(part)
    } else {
        OpenOptions::new().append(true).open(part)
    };
    file.map_err(|e| DownloadError::io(part, e))
}

/// The URL a redirect from `from` to `location` (absolute, scheme-relative, absolute-path or
/// relative) leads to. Only http and https targets are followed, and never from https to http:
/// a downgrade would hand the transfer to anyone on the path (the checksums would catch altered
/// bytes, but not an endless or hostile body, and the request itself would leak).
pub(crate) fn redirect_target(from: &str, location: &str) -> Result<String, DownloadError> {
    let refuse = |message: String| DownloadError::InsecureRedirect {
        from: from.to_owned(),
        to: location.to_owned(),
        message,
    };
    let base: ureq::http::Uri = from
        .parse()
        .map_err(|e| refuse(format!("the URL itself does not parse: {e}")))?;
    let from_scheme = base.scheme_str().unwrap_or("").to_ascii_lowercase();
    let origin = format!(
        "{from_scheme}://{}",
        base.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let location = location.trim();
    let scheme_len = location.find(':').filter(|&i| {
        i > 0
            && location[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let target = if scheme_len.is_some() {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{from_scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{origin}{dir}{location}")
    };
    let to_scheme = target
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match (from_scheme.as_str(), to_scheme.as_str()) {
        ("https", "https") | ("http", "http" | "https") => Ok(target),
        ("https", "http") => Err(refuse("it would leave HTTPS for plain HTTP".to_owned())),
        (_, other) => Err(refuse(format!(
            "only http and https are followed, not {other:?}"
        ))),
    }
}

/// `bytes 100-199/1000` → (100, Some(1000)); `bytes 100-199/*` → (100, None).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, _last) = range.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first, total))
}

fn network_error(url: &str, error: &ureq::Error) -> DownloadError {
    DownloadError::Network {
        url: url.to_owned(),
        message: error.to_string(),
    }
}

/// A read error mid-body: a short transfer when the size is known, else the error as it came.
fn truncated_or(
    url: &str,
    received: u64,
    expected: Option<u64>,
    error: &std::io::Error,
) -> DownloadError {
    match expected {
        Some(expected) if received < expected => DownloadError::Truncated {
            url: url.to_owned(),
            received,
            expected,
        },
        _ => DownloadError::Network {
            url: url.to_owned(),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes */1000"), None);
    }

    #[test]
    fn redirects_resolve_like_a_browser_and_never_leave_https() {
        let ok = |from: &str, to: &str| redirect_target(from, to).expect("followed");
        assert_eq!(
            ok("https://a.org/x/file.gz", "https://b.org/y.gz"),
            "https://b.org/y.gz"
        );
        assert_eq!(
            ok("https://a.org/x/file.gz", "/z/file.gz"),
            "https://a.org/z/file.gz"
        );
        assert_eq!(
            ok("https://a.org/x/file.gz?v=1", "other.gz"),
            "https://a.org/x/other.gz"
        );
        assert_eq!(ok("https://a.org:8443/f", "//c.org/f"), "https://c.org/f");
        assert_eq!(ok("http://a.org/f", "HTTPS://a.org/f"), "HTTPS://a.org/f");
        assert_eq!(ok("http://a.org/f", "http://b.org/f"), "http://b.org/f");
        for (from, to) in [
            ("https://a.org/f", "http://a.org/f"),
            ("https://a.org/f", "HTTP://evil.example/f"),
            ("HTTPS://a.org/f", "http://a.org/f"),
        ] {
            let error = redirect_target(from, to).expect_err("a downgrade is refused");
            assert_eq!(
                error.to_string(),
                format!("{from}: refused redirect to {to}: it would leave HTTPS for plain HTTP")
            );
        }
        let error = redirect_target("http://a.org/f", "file:///etc/passwd").expect_err("file:");
        assert!(error.to_string().contains("not \"file\""), "{error}");
        let error = redirect_target("https://a.org/f", "ftp://a.org/f").expect_err("ftp:");
        assert!(error.to_string().contains("not \"ftp\""), "{error}");
    }

    #[test]
    fn part_files_sit_beside_their_destination() {
        assert_eq!(
            part_path(Path::new("/d/a.tar.gz")),
            PathBuf::from("/d/a.tar.gz.part")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_reported_as_such() {
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let path = Path::new("/dev/full");
        let mut out = OpenOptions::new()
            .write(true)
            .open(path)
            .expect("/dev/full opens");
        let error = out
            .write_all(&[0u8; 16])
            .and_then(|()| out.flush())
            .map_err(|e| DownloadError::io(path, e))
            .expect_err("writing to /dev/full fails");
        assert!(matches!(error, DownloadError::DiskFull { .. }), "{error:?}");
        assert_eq!(error.to_string(), "disk full while writing /dev/full");
    }
}
