//! The dataset manager against a real HTTP server on 127.0.0.1 serving generated archives in the real
//! formats (CIFAR binary tar.gz, gzipped IDX), with faults: 404s, truncated bodies, HTML pages, wrong
//! checksums and sizes. Every case must end in a complete verified set or a clear error with no
//! partial set left behind.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use md5::Md5;
use sha2::{Digest, Sha256};

use sla::download::{
    self, Checksum, DatasetSpec, DownloadError, DownloadOptions, Layout, MARKER, Manager, Member,
    Presence, Progress, RemoteFile, Stage,
};

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server: one connection at a time, `Connection: close`, Range support, faults.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// 404 Not Found.
    Missing,
    /// Announces the full length but never sends a byte at or past this file offset.
    CutAt(usize),
    /// Like `CutAt`, for the first request only.
    CutFirstAt(usize),
    /// No Content-Length: the body, then zeros for as long as the client reads.
    Endless,
    /// The body in 64 pieces 20 ms apart, so concurrent transfers overlap.
    Slow,
    /// `302 Found` to this Location (taken as it is: absolute, relative or another scheme).
    Redirect(&'static str),
}

struct Route {
    body: Vec<u8>,
    content_type: &'static str,
    fault: Fault,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    range: Option<String>,
    status: u16,
    body_bytes: usize,
}

struct Server {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn empty() -> Server {
        Server::start(Vec::<(String, Route)>::new())
    }

    fn start<S: Into<String>>(routes: Vec<(S, Route)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let routes: HashMap<String, Route> =
            routes.into_iter().map(|(p, r)| (p.into(), r)).collect();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_hits, thread_stop) = (Arc::clone(&hits), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("test-http".to_owned())
            .spawn(move || serve(listener, routes, thread_hits, thread_stop))
            .expect("spawn server thread");
        Server {
            base,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits lock").clone()
    }

    /// (path, status) of every request so far, in order.
    fn path_statuses(&self) -> Vec<(String, u16)> {
        self.hits()
            .into_iter()
            .map(|h| (h.path, h.status))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    routes: HashMap<String, Route>,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
) {
    // Bounded: the server stops by itself even if a test forgets it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut served: HashMap<String, usize> = HashMap::new();
    let mut slow_writers = Vec::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(hit) = answer(stream, &routes, &mut served, &hits, &mut slow_writers) {
                    hits.lock().expect("hits lock").push(hit);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    for writer in slow_writers {
        let _ = writer.join();
    }
}

/// Answers one request. Every answer is written before the next connection is accepted (so hits
/// keep the clients' order), except `Fault::Slow` bodies: those go out on their own thread, so
/// that concurrent clients really overlap. A hit whose size is known before its body is sent is
/// recorded then, since the client may finish before this thread runs again; the rest (an
/// endless body) are returned for the caller to record.
fn answer(
    stream: TcpStream,
    routes: &HashMap<String, Route>,
    served: &mut HashMap<String, usize>,
    hits: &Arc<Mutex<Vec<Hit>>>,
    slow_writers: &mut Vec<JoinHandle<()>>,
) -> Option<Hit> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut range = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    let mut out = stream;
    let count = served.entry(path.clone()).or_insert(0);
    *count += 1;
    let count = *count;
    let Some(route) = routes.get(&path).filter(|r| r.fault != Fault::Missing) else {
        let body = b"<html><body>404 Not Found</body></html>";
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        hits.lock().expect("hits lock").push(Hit {
            path,
            range,
            status: 404,
            body_bytes: 0,
        });
        out.write_all(head.as_bytes()).ok()?;
        out.write_all(body).ok()?;
        return None;
    };
    if let Fault::Redirect(location) = route.fault {
        let head = format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        hits.lock().expect("hits lock").push(Hit {
            path,
            range,
            status: 302,
            body_bytes: 0,
        });
        out.write_all(head.as_bytes()).ok()?;
        return None;
    }
    if route.fault == Fault::Endless {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
            route.content_type
        );
        out.write_all(head.as_bytes()).ok()?;
        let mut sent = 0;
        if out.write_all(&route.body).is_ok() {
            sent = route.body.len();
            let zeros = vec![0u8; 64 * 1024];
            // Until the client hangs up; the 120 s server deadline is the backstop.
            while sent < 1 << 34 && out.write_all(&zeros).is_ok() {
                sent += zeros.len();
            }
        }
        return Some(Hit {
            path,
            range,
            status: 200,
            body_bytes: sent,
        });
    }
    let len = route.body.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, from, head) = match start {
        Some(from) if from >= len => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            (416, len, head)
        }
        Some(from) => (
            206,
            from,
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: {}\r\nContent-Range: bytes {from}-{}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                route.content_type,
                len - 1,
                len - from
            ),
        ),
        None => (
            200,
            0,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                route.content_type
            ),
        ),
    };
    let end = match route.fault {
        Fault::CutAt(cut) => cut.min(len),
        Fault::CutFirstAt(cut) if count == 1 => cut.min(len),
        _ => len,
    }
    .max(from);
    out.write_all(head.as_bytes()).ok()?;
    if route.fault == Fault::Slow {
        let body = route.body[from..end].to_vec();
        let hits = Arc::clone(hits);
        let writer = std::thread::Builder::new()
            .name("test-http-slow".to_owned())
            .spawn(move || {
                // Recorded first: the client may be done before this thread runs again.
                hits.lock().expect("hits lock").push(Hit {
                    path,
                    range,
                    status,
                    body_bytes: body.len(),
                });
                let piece = body.len().div_ceil(64).max(1);
                for chunk in body.chunks(piece) {
                    if out.write_all(chunk).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .expect("spawn slow writer");
        slow_writers.push(writer);
        return None;
    }
    // Recorded before the body goes out: the transfer ends when this function drops the stream,
    // and the client (and the test reading the hits) may be done before this thread runs again.
    hits.lock().expect("hits lock").push(Hit {
        path,
        range,
        status,
        body_bytes: end - from,
    });
    out.write_all(&route.body[from..end]).ok()?;
    out.flush().ok()?;
    None
}

// ---------------------------------------------------------------------------------------------
// Generated data in the real formats.

/// Deterministic bytes that gzip cannot shrink, so archives span many read chunks.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;
const CIFAR_RECORDS: usize = 12;

/// The members of a small CIFAR-10 binary set: five training batches, a test batch, class names.
fn cifar_members() -> Vec<(String, Vec<u8>)> {
    let mut members: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|i| {
            (
                format!("data_batch_{i}.bin"),
                noise(i, CIFAR_RECORDS * CIFAR_RECORD),
            )
        })
        .collect();
    members.push((
        "test_batch.bin".to_owned(),
        noise(9, CIFAR_RECORDS * CIFAR_RECORD),
    ));
    members.push((
        "batches.meta.txt".to_owned(),
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".to_vec(),
    ));
    members
}

/// `cifar-10-binary.tar.gz` as the authors ship it: everything under `cifar-10-batches-bin/`.
fn cifar_archive(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "cifar-10-batches-bin/", std::io::empty())
        .expect("tar dir");
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}"),
            bytes.as_slice(),
        )
        .expect("tar member");
    }
    tar.into_inner()
        .expect("tar finish")
        .finish()
        .expect("gzip finish")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip write");
    encoder.finish().expect("gzip finish")
}

/// The four gzipped IDX files of a small MNIST-style set (3 train, 2 test images of 28×28).
fn idx_files() -> Vec<(String, Vec<u8>)> {
    let images = |magic_count: u32, seed: u64| {
        let mut bytes = Vec::new();
        for v in [2051u32, magic_count, 28, 28] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend(noise(seed, magic_count as usize * 28 * 28));
        gzip(&bytes)
    };
    let labels = |count: u32| {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&2049u32.to_be_bytes());
        bytes.extend_from_slice(&count.to_be_bytes());
        bytes.extend((0..count).map(|i| (i % 10) as u8));
        gzip(&bytes)
    };
    vec![
        ("train-images-idx3-ubyte.gz".to_owned(), images(3, 1)),
        ("train-labels-idx1-ubyte.gz".to_owned(), labels(3)),
        ("t10k-images-idx3-ubyte.gz".to_owned(), images(2, 2)),
        ("t10k-labels-idx1-ubyte.gz".to_owned(), labels(2)),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// A CIFAR-10-style spec whose archive is `archive`, served from `urls`.
fn cifar_spec(urls: Vec<String>, archive: &[u8], members: &[(String, Vec<u8>)]) -> DatasetSpec {
    DatasetSpec {
        name: "cifar10".to_owned(),
        title: "CIFAR-10 (test)".to_owned(),
        files: vec![RemoteFile {
            name: "cifar-10-binary.tar.gz".to_owned(),
            urls,
            size: Some(archive.len() as u64),
            checksums: vec![
                Checksum::Md5(md5_hex(archive)),
                Checksum::Sha256(sha256_hex(archive)),
            ],
        }],
        layout: Layout::TarGz {
            root: "cifar-10-batches-bin".to_owned(),
        },
        members: members
            .iter()
            .map(|(name, bytes)| Member {
                path: name.clone(),
                size: Some(bytes.len() as u64),
            })
            .collect(),
        system_dirs: Vec::new(),
    }
}

fn idx_spec(server: &Server, files: &[(String, Vec<u8>)]) -> DatasetSpec {
    DatasetSpec {
        name: "mnist".to_owned(),
        title: "MNIST (test)".to_owned(),
        files: files
            .iter()
            .map(|(name, bytes)| RemoteFile {
                name: name.clone(),
                urls: vec![server.url(&format!("/mnist/{name}"))],
                size: Some(bytes.len() as u64),
                checksums: vec![Checksum::Sha256(sha256_hex(bytes))],
            })
            .collect(),
        layout: Layout::Files,
        members: files
            .iter()
            .map(|(name, _)| Member {
                path: name.clone(),
                size: None,
            })
            .collect(),
        system_dirs: Vec::new(),
    }
}

fn archive_route(body: Vec<u8>, fault: Fault) -> Route {
    Route {
        body,
        content_type: "application/x-gzip",
        fault,
    }
}

fn manager(root: &Path) -> Manager {
    Manager::with_options(
        root.to_path_buf(),
        DownloadOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            retry_delay: Duration::ZERO,
            stalled_attempts: 3,
            use_env_proxy: false,
        },
    )
}

/// Every report, in order.
fn recorder() -> (Arc<Mutex<Vec<Progress>>>, impl FnMut(&Progress)) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    (log, move |p: &Progress| {
        sink.lock().expect("progress lock").push(p.clone())
    })
}

/// Names in `root` other than the installed set folders: staging or replaced folders must not stay.
fn leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".staging-") || n.contains(".old-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that no set, staging folder or marker exists for `name` under `root`.
fn assert_nothing_installed(root: &Path, spec: &DatasetSpec) {
    assert!(
        !root.join(&spec.name).exists(),
        "a partial set was left in {}",
        root.join(&spec.name).display()
    );
    assert_eq!(leftovers(root), Vec::<String>::new());
    assert_eq!(download::locate_spec(spec, Some(root)), None);
}

fn assert_cifar_installed(root: &Path, spec: &DatasetSpec, members: &[(String, Vec<u8>)]) {
    let data = root.join("cifar10").join("cifar-10-batches-bin");
    for (name, bytes) in members {
        let got = fs::read(data.join(name)).expect("member present");
        assert!(got == *bytes, "{name} differs from the archive's member");
    }
    assert!(root.join("cifar10").join(MARKER).is_file());
    assert_eq!(download::locate_spec(spec, Some(root)), Some(data));
    assert_eq!(leftovers(root), Vec::<String>::new());
}

fn part_file(root: &Path) -> PathBuf {
    root.join(".downloads/cifar10/cifar-10-binary.tar.gz.part")
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_good_download_installs_a_verified_cifar_set_with_progress() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![(
        "/cifar-10-binary.tar.gz",
        archive_route(archive.clone(), Fault::None),
    )]);
    let spec = cifar_spec(
        vec![server.url("/cifar-10-binary.tar.gz")],
        &archive,
        &members,
    );
    let root = tempfile::tempdir().expect("temp dir");
    let manager = manager(root.path());
    assert_eq!(manager.presence(&spec), Presence::Missing);

    let (log, mut sink) = recorder();
    let path = manager.fetch(&spec, &mut sink).expect("download succeeds");

    assert_eq!(path, root.path().join("cifar10/cifar-10-batches-bin"));
    assert_cifar_installed(root.path(), &spec, &members);
    assert!(
        !root.path().join(".downloads").exists(),
        "verified downloads are removed once installed"
    );
    let Presence::Installed {
        path: listed,
        bytes,
    } = manager.presence(&spec)
    else {
        panic!("the set is listed as installed");
    };
    assert_eq!(listed, path);
    let member_bytes: usize = members.iter().map(|(_, b)| b.len()).sum();
    assert!(bytes >= member_bytes as u64);

    let log = log.lock().expect("progress lock");
    let downloads: Vec<&Progress> = log.iter().filter(|p| p.stage == Stage::Download).collect();
    assert!(downloads.windows(2).all(|w| w[0].bytes <= w[1].bytes));
    let last = downloads.last().expect("download progress reported");
    assert_eq!(
        (last.bytes, last.total),
        (archive.len() as u64, Some(archive.len() as u64))
    );
    assert_eq!(last.file, "cifar-10-binary.tar.gz");
    let verified = log
        .iter()
        .rfind(|p| p.stage == Stage::Verify)
        .expect("verify reported");
    assert_eq!(verified.bytes, archive.len() as u64);
    let extracted = log
        .iter()
        .rfind(|p| p.stage == Stage::Extract)
        .expect("extract reported");
    assert_eq!(extracted.bytes, archive.len() as u64);
    assert_eq!(server.hits().len(), 1);
}

#[test]
fn idx_files_arrive_gzipped_in_the_dataset_folder() {
    let files = idx_files();
    let server = Server::start(
        files
            .iter()
            .map(|(name, bytes)| {
                (
                    format!("/mnist/{name}"),
                    archive_route(bytes.clone(), Fault::None),
                )
            })
            .collect(),
    );
    let spec = idx_spec(&server, &files);
    let root = tempfile::tempdir().expect("temp dir");
    let (log, mut sink) = recorder();
    let path = manager(root.path())
        .fetch(&spec, &mut sink)
        .expect("download succeeds");
    assert_eq!(path, root.path().join("mnist"));
    for (name, bytes) in &files {
        let got = fs::read(path.join(name)).expect("file present");
        assert!(got == *bytes, "{name} is stored exactly as served");
    }
    // Still gzip, and the IDX header inside is intact.
    let mut header = [0u8; 8];
    flate2::read::GzDecoder::new(
        fs::File::open(path.join("train-images-idx3-ubyte.gz")).expect("open"),
    )
    .read_exact(&mut header)
    .expect("gunzip");
    assert_eq!(header, [0, 0, 8, 3, 0, 0, 0, 3]);
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let log = log.lock().expect("progress lock");
    let last = log
        .iter()
        .rfind(|p| p.stage == Stage::Download)
        .expect("progress");
    assert_eq!(
        (last.bytes, last.total),
        (total, Some(total)),
        "progress spans the whole set"
    );
    assert_eq!(download::locate_spec(&spec, Some(root.path())), Some(path));
}

#[test]
fn a_broken_transfer_resumes_in_the_same_run_and_after_a_restart() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let cut = archive.len() / 3;
    let server = Server::start(vec![
        (
            "/flaky.tar.gz",
            archive_route(archive.clone(), Fault::CutFirstAt(cut)),
        ),
        ("/good.tar.gz", archive_route(archive.clone(), Fault::None)),
    ]);

    // The connection drops after a third: the same run continues from there with a Range request.
    let root = tempfile::tempdir().expect("temp dir");
    let spec = cifar_spec(vec![server.url("/flaky.tar.gz")], &archive, &members);
    manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect("resumed download succeeds");
    assert_cifar_installed(root.path(), &spec, &members);
    let hits: Vec<Hit> = server
        .hits()
        .into_iter()
        .filter(|h| h.path == "/flaky.tar.gz")
        .collect();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!((hits[0].status, hits[0].range.as_deref()), (200, None));
    assert_eq!(hits[0].body_bytes, cut);
    assert_eq!(hits[1].status, 206);
    assert_eq!(hits[1].range, Some(format!("bytes={cut}-")));
    assert_eq!(
        hits[1].body_bytes,
        archive.len() - cut,
        "only the rest is sent again"
    );

    // An earlier run left the first 1000 bytes; a new run asks only for the rest.
    let root = tempfile::tempdir().expect("temp dir");
    let spec = cifar_spec(vec![server.url("/good.tar.gz")], &archive, &members);
    let part = part_file(root.path());
    fs::create_dir_all(part.parent().expect("parent")).expect("mkdir");
    fs::write(&part, &archive[..1000]).expect("write part");
    assert_eq!(
        manager(root.path()).presence(&spec),
        Presence::Partial { bytes: 1000 }
    );
    manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect("resumed download succeeds");
    assert_cifar_installed(root.path(), &spec, &members);
    let hit = server
        .hits()
        .into_iter()
        .find(|h| h.path == "/good.tar.gz")
        .expect("requested");
    assert_eq!(hit.range.as_deref(), Some("bytes=1000-"));
    assert_eq!(hit.body_bytes, archive.len() - 1000);
}

#[test]
fn cancelling_keeps_the_partial_download_for_later_and_installs_nothing() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![(
        "/c.tar.gz",
        archive_route(archive.clone(), Fault::None),
    )]);
    let spec = cifar_spec(vec![server.url("/c.tar.gz")], &archive, &members);
    let root = tempfile::tempdir().expect("temp dir");
    let manager = manager(root.path());
    let cancel = manager.cancel_flag();
    let result = manager.fetch(&spec, &mut |p| {
        if p.stage == Stage::Download && p.bytes > 0 {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert!(
        matches!(result, Err(DownloadError::Cancelled)),
        "{result:?}"
    );
    assert_nothing_installed(root.path(), &spec);
    let kept = fs::read(part_file(root.path())).expect("partial download kept");
    assert!(!kept.is_empty() && kept.len() < archive.len());
    assert!(archive.starts_with(&kept));

    cancel.store(false, Ordering::Relaxed);
    manager
        .fetch(&spec, &mut |_| {})
        .expect("resumed download succeeds");
    assert_cifar_installed(root.path(), &spec, &members);
    let last = server.hits().pop().expect("second request");
    assert_eq!(last.range, Some(format!("bytes={}-", kept.len())));
}

#[test]
fn a_wrong_checksum_is_reported_and_nothing_is_kept() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![(
        "/c.tar.gz",
        archive_route(archive.clone(), Fault::None),
    )]);
    let mut spec = cifar_spec(vec![server.url("/c.tar.gz")], &archive, &members);
    let published = sha256_hex(b"the real archive");
    spec.files[0].checksums = vec![Checksum::Sha256(published.clone())];
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("the checksum does not match");
    match &error {
        DownloadError::ChecksumMismatch {
            file,
            algorithm,
            expected,
            actual,
        } => {
            assert_eq!(file, "cifar-10-binary.tar.gz");
            assert_eq!(*algorithm, "SHA-256");
            assert_eq!(expected, &published);
            assert_eq!(actual, &sha256_hex(&archive));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(
        error.to_string().contains("SHA-256 checksum mismatch"),
        "{error}"
    );
    assert_nothing_installed(root.path(), &spec);
    assert!(
        !part_file(root.path()).exists(),
        "bad bytes are not kept for resuming"
    );
}

#[test]
fn a_404_falls_back_to_the_next_mirror_and_all_failures_are_listed() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![
        (
            "/mirror2/c.tar.gz",
            archive_route(archive.clone(), Fault::None),
        ),
        (
            "/gone/c.tar.gz",
            archive_route(archive.clone(), Fault::Missing),
        ),
    ]);
    let root = tempfile::tempdir().expect("temp dir");
    let spec = cifar_spec(
        vec![
            server.url("/gone/c.tar.gz"),
            server.url("/mirror2/c.tar.gz"),
        ],
        &archive,
        &members,
    );
    manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect("the second mirror delivers");
    assert_cifar_installed(root.path(), &spec, &members);
    let order = server.path_statuses();
    assert_eq!(
        order,
        vec![
            ("/gone/c.tar.gz".to_owned(), 404),
            ("/mirror2/c.tar.gz".to_owned(), 200)
        ]
    );

    let root = tempfile::tempdir().expect("temp dir");
    let spec = cifar_spec(
        vec![
            server.url("/gone/c.tar.gz"),
            server.url("/nowhere/c.tar.gz"),
        ],
        &archive,
        &members,
    );
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("no mirror works");
    let DownloadError::AllMirrorsFailed { attempts, .. } = &error else {
        panic!("expected every mirror to be listed, got {error:?}");
    };
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| matches!(a.error, DownloadError::HttpStatus { status: 404, .. }))
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "{}: server answered HTTP 404 Not Found",
            server.url("/gone/c.tar.gz")
        )),
        "{text}"
    );
    assert!(text.contains("/nowhere/c.tar.gz"), "{text}");
    assert_nothing_installed(root.path(), &spec);
}

#[test]
fn a_body_that_keeps_breaking_off_ends_in_a_clear_error() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let cut = archive.len() / 2;
    let server = Server::start(vec![(
        "/c.tar.gz",
        archive_route(archive.clone(), Fault::CutAt(cut)),
    )]);
    let spec = cifar_spec(vec![server.url("/c.tar.gz")], &archive, &members);
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("the body never completes");
    match &error {
        DownloadError::Truncated {
            received, expected, ..
        } => assert_eq!((*received, *expected), (cut as u64, archive.len() as u64)),
        other => panic!("expected a truncated transfer, got {other:?}"),
    }
    assert!(
        error.to_string().contains(&format!(
            "transfer ended early after {cut} of {} bytes",
            archive.len()
        )),
        "{error}"
    );
    assert_nothing_installed(root.path(), &spec);
    // What did arrive is a true prefix, kept so a later run can resume.
    let kept = fs::read(part_file(root.path())).expect("partial download kept");
    assert!(kept == archive[..cut]);
    // One full try, then resumes that brought nothing, up to the stall limit.
    let hits = server.hits();
    assert_eq!(hits.len(), 1 + 3, "{hits:?}");
    assert!(
        hits[1..]
            .iter()
            .all(|h| h.range == Some(format!("bytes={cut}-")))
    );
}

#[test]
fn html_pages_are_refused_whatever_their_content_type() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let page = b"<!DOCTYPE html>\n<html><head><title>Moved</title></head><body>Please log in</body></html>\n"
        .to_vec();
    let server = Server::start(vec![
        (
            "/page.tar.gz",
            Route {
                body: page.clone(),
                content_type: "text/html; charset=utf-8",
                fault: Fault::None,
            },
        ),
        (
            "/disguised.tar.gz",
            Route {
                body: page,
                content_type: "application/octet-stream",
                fault: Fault::None,
            },
        ),
    ]);
    let mut spec = cifar_spec(
        vec![server.url("/page.tar.gz"), server.url("/disguised.tar.gz")],
        &archive,
        &members,
    );
    // An unpublished size, so only the content can give the page away.
    spec.files[0].size = None;
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("no archive was served");
    let DownloadError::AllMirrorsFailed { attempts, .. } = &error else {
        panic!("expected both mirrors to fail, got {error:?}");
    };
    let details: Vec<String> = attempts.iter().map(|a| a.error.to_string()).collect();
    assert!(matches!(
        attempts[0].error,
        DownloadError::NotAnArchive { .. }
    ));
    assert!(
        details[0].contains("the server sent an HTML page"),
        "{details:?}"
    );
    assert!(matches!(
        attempts[1].error,
        DownloadError::NotAnArchive { .. }
    ));
    assert!(
        details[1].contains("received an HTML page instead of gzip data"),
        "{details:?}"
    );
    assert_nothing_installed(root.path(), &spec);
    assert!(
        !part_file(root.path()).exists(),
        "the page was not saved as the archive"
    );
}

#[test]
fn a_mirror_serving_a_different_size_is_skipped_before_downloading() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let mut longer = archive.clone();
    longer.extend_from_slice(&[0u8; 100]);
    let server = Server::start(vec![
        ("/old/c.tar.gz", archive_route(longer, Fault::None)),
        ("/new/c.tar.gz", archive_route(archive.clone(), Fault::None)),
    ]);
    let spec = cifar_spec(
        vec![server.url("/old/c.tar.gz"), server.url("/new/c.tar.gz")],
        &archive,
        &members,
    );
    let root = tempfile::tempdir().expect("temp dir");
    manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect("the second mirror delivers");
    assert_cifar_installed(root.path(), &spec, &members);

    let spec = cifar_spec(vec![server.url("/old/c.tar.gz")], &archive, &members);
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("wrong size");
    assert!(
        matches!(error, DownloadError::WrongSize { expected, actual, .. }
            if expected == archive.len() as u64 && actual == archive.len() as u64 + 100),
        "{error:?}"
    );
    assert_nothing_installed(root.path(), &spec);
}

#[test]
fn a_verified_file_that_is_not_a_tar_archive_leaves_no_half_extracted_set() {
    let members = cifar_members();
    // Gzip, and the checksums match, but inside is not tar: extraction must fail cleanly.
    let bogus = gzip(&noise(7, 50_000));
    let server = Server::start(vec![(
        "/c.tar.gz",
        archive_route(bogus.clone(), Fault::None),
    )]);
    let spec = cifar_spec(vec![server.url("/c.tar.gz")], &bogus, &members);
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("not a tar archive");
    assert!(
        matches!(error, DownloadError::NotAnArchive { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("cifar-10-binary.tar.gz is not a valid archive"),
        "{error}"
    );
    assert_nothing_installed(root.path(), &spec);

    // A tar archive that lacks members is refused just as cleanly.
    let archive = cifar_archive(&members[..3]);
    let server = Server::start(vec![(
        "/c.tar.gz",
        archive_route(archive.clone(), Fault::None),
    )]);
    let spec = cifar_spec(vec![server.url("/c.tar.gz")], &archive, &members);
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("members are missing");
    let DownloadError::MissingFiles { missing, .. } = &error else {
        panic!("expected missing members, got {error:?}");
    };
    assert_eq!(
        missing,
        &[
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
            "batches.meta.txt"
        ]
    );
    assert_nothing_installed(root.path(), &spec);
}

#[test]
fn an_unmarked_folder_is_not_taken_for_a_complete_set_and_gets_replaced() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let spec = cifar_spec(
        vec!["http://127.0.0.1:9/unused".to_owned()],
        &archive,
        &members,
    );
    let root = tempfile::tempdir().expect("temp dir");
    // What an interrupted extraction without staging would leave: every file, no marker.
    let data = root.path().join("cifar10/cifar-10-batches-bin");
    fs::create_dir_all(&data).expect("mkdir");
    for (name, bytes) in &members {
        fs::write(data.join(name), bytes).expect("write member");
    }
    let manager_ = manager(root.path());
    assert_eq!(manager_.locate(&spec), None);
    assert_eq!(manager_.presence(&spec), Presence::Missing);

    let server = Server::start(vec![(
        "/c.tar.gz",
        archive_route(archive.clone(), Fault::None),
    )]);
    let spec = cifar_spec(vec![server.url("/c.tar.gz")], &archive, &members);
    // Stale staging from a crashed run is cleaned up too.
    fs::create_dir_all(root.path().join(".cifar10.staging-1")).expect("mkdir");
    let path = manager_
        .ensure(&spec, &mut |_| {})
        .expect("ensure downloads the set");
    assert_eq!(path, data);
    assert_cifar_installed(root.path(), &spec, &members);
    // Now present: ensure does not download again.
    let before = server.hits().len();
    assert_eq!(manager_.ensure(&spec, &mut |_| {}).expect("present"), data);
    assert_eq!(server.hits().len(), before);
}

#[test]
fn import_takes_an_archive_an_extracted_folder_or_downloaded_idx_files() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let spec = cifar_spec(
        vec!["http://127.0.0.1:9/unused".to_owned()],
        &archive,
        &members,
    );
    let source = tempfile::tempdir().expect("temp dir");
    let archive_path = source.path().join("cifar-10-binary.tar.gz");
    fs::write(&archive_path, &archive).expect("write archive");

    // The archive file.
    let root = tempfile::tempdir().expect("temp dir");
    let (log, mut sink) = recorder();
    let path = manager(root.path())
        .import(&spec, &archive_path, true, &mut sink)
        .expect("archive imports");
    assert_eq!(path, root.path().join("cifar10/cifar-10-batches-bin"));
    assert_cifar_installed(root.path(), &spec, &members);
    assert!(archive_path.is_file(), "the user's file stays");
    assert!(
        log.lock()
            .expect("lock")
            .iter()
            .any(|p| p.stage == Stage::Verify)
    );

    // The extracted folder, given as its parent or as itself.
    let extracted = root.path().join("cifar10");
    for source in [extracted.clone(), extracted.join("cifar-10-batches-bin")] {
        let root = tempfile::tempdir().expect("temp dir");
        manager(root.path())
            .import(&spec, &source, true, &mut |_| {})
            .expect("folder imports");
        assert_cifar_installed(root.path(), &spec, &members);
    }

    // A wrong archive is refused unless the user says not to verify.
    let mut other = spec.clone();
    other.files[0].checksums = vec![Checksum::Md5(md5_hex(b"published"))];
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .import(&other, &archive_path, true, &mut |_| {})
        .expect_err("checksum differs");
    assert!(
        matches!(
            error,
            DownloadError::ChecksumMismatch {
                algorithm: "MD5",
                ..
            }
        ),
        "{error:?}"
    );
    assert_nothing_installed(root.path(), &other);
    manager(root.path())
        .import(&other, &archive_path, false, &mut |_| {})
        .expect("imports without verification");
    assert_cifar_installed(root.path(), &other, &members);

    // A folder of downloaded IDX files.
    let files = idx_files();
    let server = Server::empty();
    let idx = idx_spec(&server, &files);
    let folder = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in &files[..3] {
        fs::write(folder.path().join(name), bytes).expect("write idx");
    }
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .import(&idx, folder.path(), true, &mut |_| {})
        .expect_err("a file is missing");
    assert!(
        error
            .to_string()
            .ends_with("missing t10k-labels-idx1-ubyte.gz"),
        "{error}"
    );
    fs::write(folder.path().join(&files[3].0), &files[3].1).expect("write idx");
    let path = manager(root.path())
        .import(&idx, folder.path(), true, &mut |_| {})
        .expect("idx folder imports");
    for (name, bytes) in &files {
        assert!(fs::read(path.join(name)).expect("read") == *bytes);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let links = fs::metadata(folder.path().join(&files[0].0))
            .expect("stat")
            .nlink();
        assert_eq!(links, 1, "the user's file is copied, not linked");
    }
    assert!(server.hits().is_empty(), "import never downloads");
}

#[test]
fn a_system_copy_is_found_without_a_download() {
    let files = idx_files();
    let server = Server::empty();
    let system = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in &files {
        fs::write(system.path().join(name), bytes).expect("write idx");
    }
    let mut spec = idx_spec(&server, &files);
    spec.system_dirs = vec![
        PathBuf::from("/nonexistent/sla"),
        system.path().to_path_buf(),
    ];
    let root = tempfile::tempdir().expect("temp dir");
    let manager = manager(root.path());
    assert_eq!(manager.locate(&spec), Some(system.path().to_path_buf()));
    assert!(
        matches!(manager.presence(&spec), Presence::System { ref path, .. } if path == system.path())
    );
    assert_eq!(
        manager.ensure(&spec, &mut |_| {}).expect("found"),
        system.path()
    );
    assert!(server.hits().is_empty());

    // A file that is not gzip makes the system copy unusable rather than half-read.
    fs::write(system.path().join(&files[0].0), b"<html>").expect("overwrite");
    assert_eq!(manager.locate(&spec), None);
}

#[test]
fn debian_fashion_mnist_is_located_from_the_real_catalogue() {
    let system = Path::new("/usr/share/datasets/fashion-mnist");
    assert!(
        system.join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST is missing from {}: install the Debian package dataset-fashion-mnist",
        system.display()
    );
    let empty = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        download::locate("fashion-mnist", Some(empty.path())),
        Some(system.to_path_buf())
    );
    assert_eq!(
        download::locate("Fashion_MNIST", Some(empty.path())),
        Some(system.to_path_buf())
    );
    assert_eq!(download::locate("cifar10", Some(empty.path())), None);
    assert_eq!(download::locate("no-such-set", Some(empty.path())), None);
}

/// The hits of `path`, waiting (up to the server's own deadline) for `count` of them: a handler
/// records its hit only when it is done, which may be after the client gave up.
fn wait_for_hits(server: &Server, path: &str, count: usize) -> Vec<Hit> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hits: Vec<Hit> = server
            .hits()
            .into_iter()
            .filter(|h| h.path == path)
            .collect();
        if hits.len() >= count || Instant::now() > deadline {
            return hits;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_endless_body_stops_at_the_published_size_and_leaves_nothing() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![(
        "/endless.tar.gz",
        archive_route(archive.clone(), Fault::Endless),
    )]);
    let url = server.url("/endless.tar.gz");
    let spec = cifar_spec(vec![url.clone()], &archive, &members);
    let root = tempfile::tempdir().expect("temp dir");
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("a body longer than the file is refused");
    assert!(
        matches!(&error, DownloadError::TooLarge { limit, .. } if *limit == archive.len() as u64),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{url}: the server sent more than the expected {} bytes; stopped there",
            archive.len()
        )
    );
    assert_nothing_installed(root.path(), &spec);
    assert!(
        !part_file(root.path()).exists(),
        "a prefix of an oversized body is not kept for resuming"
    );
    // The client hung up at the first chunk past the size: the server could push no more than
    // the socket buffers hold after that (it would go on for 16 GiB otherwise).
    let hits = wait_for_hits(&server, "/endless.tar.gz", 1);
    assert_eq!(hits.len(), 1, "one request, no retry: {hits:?}");
    assert!(
        hits[0].body_bytes < archive.len() + (64 << 20),
        "the server sent {} bytes",
        hits[0].body_bytes
    );
}

#[test]
fn redirects_are_followed_by_hand_and_only_to_http_or_https() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![
        (
            "/moved.tar.gz",
            archive_route(Vec::new(), Fault::Redirect("/real/c.tar.gz")),
        ),
        (
            "/real/c.tar.gz",
            archive_route(archive.clone(), Fault::None),
        ),
        (
            "/ftp.tar.gz",
            archive_route(Vec::new(), Fault::Redirect("ftp://127.0.0.1/c.tar.gz")),
        ),
        (
            "/file.tar.gz",
            archive_route(Vec::new(), Fault::Redirect("file:///etc/passwd")),
        ),
        (
            "/loop.tar.gz",
            archive_route(Vec::new(), Fault::Redirect("loop.tar.gz")),
        ),
    ]);

    // A redirect within plain HTTP is followed, and the set arrives whole.
    let root = tempfile::tempdir().expect("temp dir");
    let spec = cifar_spec(vec![server.url("/moved.tar.gz")], &archive, &members);
    manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect("the redirect is followed");
    assert_cifar_installed(root.path(), &spec, &members);
    let order = server.path_statuses();
    assert_eq!(
        order,
        vec![
            ("/moved.tar.gz".to_owned(), 302),
            ("/real/c.tar.gz".to_owned(), 200)
        ]
    );

    // Other schemes and loops are refused, each with its reason.
    let root = tempfile::tempdir().expect("temp dir");
    let urls = ["/ftp.tar.gz", "/file.tar.gz", "/loop.tar.gz"].map(|p| server.url(p));
    let spec = cifar_spec(urls.to_vec(), &archive, &members);
    let error = manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect_err("no mirror delivers");
    let DownloadError::AllMirrorsFailed { attempts, .. } = &error else {
        panic!("expected every mirror to fail, got {error:?}");
    };
    let details: Vec<String> = attempts.iter().map(|a| a.error.to_string()).collect();
    assert_eq!(
        details,
        vec![
            format!(
                "{}: refused redirect to ftp://127.0.0.1/c.tar.gz: only http and https are followed, not \"ftp\"",
                urls[0]
            ),
            format!(
                "{}: refused redirect to file:///etc/passwd: only http and https are followed, not \"file\"",
                urls[1]
            ),
            format!("{}: more than 10 redirects", urls[2]),
        ]
    );
    assert!(matches!(
        attempts[0].error,
        DownloadError::InsecureRedirect { .. }
    ));
    assert_eq!(wait_for_hits(&server, "/loop.tar.gz", 11).len(), 11);
    assert_nothing_installed(root.path(), &spec);
}

#[test]
fn two_concurrent_fetches_of_one_set_do_not_interfere() {
    let members = cifar_members();
    let archive = cifar_archive(&members);
    let server = Server::start(vec![(
        "/slow.tar.gz",
        archive_route(archive.clone(), Fault::Slow),
    )]);
    let spec = cifar_spec(vec![server.url("/slow.tar.gz")], &archive, &members);
    let root = tempfile::tempdir().expect("temp dir");
    // The second fetch starts once the first is downloading (so holds whatever it needs), and the
    // slow body keeps the first busy for over a second after that.
    let (started, wait_for_first) = std::sync::mpsc::channel::<()>();
    let first = {
        let (spec, root) = (spec.clone(), root.path().to_path_buf());
        std::thread::Builder::new()
            .name("fetch-first".to_owned())
            .spawn(move || {
                let mut started = Some(started);
                // Separate managers, as two processes would have.
                manager(&root).fetch(&spec, &mut |p| {
                    if p.stage == Stage::Download
                        && let Some(started) = started.take()
                    {
                        let _ = started.send(());
                    }
                })
            })
            .expect("spawn first fetcher")
    };
    let second = {
        let (spec, root) = (spec.clone(), root.path().to_path_buf());
        std::thread::Builder::new()
            .name("fetch-second".to_owned())
            .spawn(move || {
                wait_for_first
                    .recv()
                    .expect("the first fetch starts downloading");
                manager(&root).fetch(&spec, &mut |_| {})
            })
            .expect("spawn second fetcher")
    };
    let fetchers = [first, second];
    let results: Vec<Result<PathBuf, DownloadError>> = fetchers
        .into_iter()
        .map(|f| f.join().expect("fetcher ran"))
        .collect();
    let data = root.path().join("cifar10/cifar-10-batches-bin");
    for result in results {
        assert_eq!(result.expect("both fetches succeed"), data);
    }
    assert_cifar_installed(root.path(), &spec, &members);
    // One download: the second fetch waited for the first and found the set installed.
    assert_eq!(wait_for_hits(&server, "/slow.tar.gz", 1).len(), 1);
    assert!(!root.path().join(".downloads").exists());

    // Once the set is there, a fetch on its own downloads again (it replaces the set).
    manager(root.path())
        .fetch(&spec, &mut |_| {})
        .expect("a later fetch succeeds");
    assert_eq!(wait_for_hits(&server, "/slow.tar.gz", 2).len(), 2);
    assert_cifar_installed(root.path(), &spec, &members);
}
