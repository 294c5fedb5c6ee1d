//! Hostile and broken input for the readers: gzip bombs, lying headers, empty sets, oversized and
//! garbage files, class folders whose names are not UTF-8. Each must end in a clear error (or a
//! correct result) without reading, allocating or extracting more than the input honestly needs.

use std::io::{Read, Write};
use std::path::Path;

use sla::data::{DataError, DatasetKind, DatasetSource, idx, load};

/// Counts the bytes its reader hands out, to show how far a parser read into a stream.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip write");
    enc.finish().expect("gzip finish")
}

fn format_message(error: DataError) -> String {
    match error {
        DataError::Format { message, .. } => message,
        other => panic!("expected a format error, got {other:?}"),
    }
}

fn mnist(dir: &Path) -> DatasetSource {
    DatasetSource {
        kind: DatasetKind::Mnist,
        dir: Some(dir.to_path_buf()),
        image_size: 4,
    }
}

/// A gzip bomb: the header of 2 images of 28×28, their pixels, then 512 MiB of zeros, written by
/// streaming so the test itself never holds the inflated bytes. About half a megabyte on disk.
const BOMB_ZEROS: usize = 512 << 20;

fn write_bomb(path: &Path) {
    let file = std::fs::File::create(path).expect("create bomb");
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    enc.write_all(&idx_header(idx::IMAGES_MAGIC, &[2, 28, 28]))
        .expect("bomb header");
    enc.write_all(&[7u8; 2 * 28 * 28]).expect("bomb pixels");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB_ZEROS / zeros.len() {
        enc.write_all(&zeros).expect("bomb zeros");
    }
    enc.finish().expect("bomb finish");
}

#[test]
fn an_idx_gzip_bomb_is_refused_after_reading_only_what_the_header_promises() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t10k-images-idx3-ubyte.gz");
    write_bomb(&path);
    let on_disk = std::fs::metadata(&path).expect("bomb metadata").len();
    assert!(
        on_disk < 2 << 20 && on_disk as usize * 100 < BOMB_ZEROS,
        "the bomb compresses well: {on_disk} bytes"
    );

    let mut file = Counting {
        inner: std::fs::File::open(&path).expect("open bomb"),
        read: 0,
    };
    let error = idx::read_images(&mut file, &path).expect_err("trailing data is an error");
    let message = format_message(error);
    assert!(
        message.contains("trailing data") && message.contains("1568 data bytes"),
        "{message}"
    );
    // Inflating header + promise + one byte needs the first buffer or two of compressed input; the
    // old reader inflated the whole file (and held 512 MiB) before looking at the header.
    assert!(
        file.read <= 128 << 10 && file.read * 4 < on_disk,
        "read {} of {on_disk} compressed bytes",
        file.read
    );

    // The same through the loader, by file name, as a user would meet it.
    let labels = gzip(&[idx_header(idx::LABELS_MAGIC, &[2]), vec![1, 2]].concat());
    for name in ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::write(dir.path().join(name), &labels).expect("labels");
    }
    let images = gzip(&[idx_header(idx::IMAGES_MAGIC, &[2, 28, 28]), vec![1; 1568]].concat());
    std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), images).expect("images");
    let message = load(&mnist(dir.path()))
        .expect_err("the bomb is refused")
        .to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("trailing data"),
        "{message}"
    );
}

#[test]
fn absurd_idx_dimensions_are_refused_before_anything_is_read() {
    let path = Path::new("images");
    // count × rows × cols overflows u64.
    let mut bytes = idx_header(idx::IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]);
    bytes.extend_from_slice(&[0; 64]);
    let message = format_message(idx::parse_images(&bytes, path).expect_err("overflow"));
    assert_eq!(message, "image dimensions overflow");

    // Fits in u64 but far beyond any real dataset: 65536 images of 4096×4096 (1 TiB).
    let bytes = [
        idx_header(idx::IMAGES_MAGIC, &[65_536, 4096, 4096]),
        vec![0; 4096],
    ]
    .concat();
    let mut reader = Counting {
        inner: bytes.as_slice(),
        read: 0,
    };
    let message = format_message(idx::read_images(&mut reader, path).expect_err("absurd size"));
    assert!(
        message.contains("promises 1099511627776 data bytes")
            && message.contains(&idx::MAX_IDX_DATA_BYTES.to_string()),
        "{message}"
    );
    assert_eq!(reader.read, 16, "only the header is read");

    // Labels too.
    let bytes = idx_header(idx::LABELS_MAGIC, &[u32::MAX]);
    let message = format_message(idx::parse_labels(&bytes, path).expect_err("absurd count"));
    assert!(
        message.contains("promises 4294967295 data bytes"),
        "{message}"
    );
}

#[test]
fn an_idx_split_without_images_is_a_clear_error() {
    for (split, gz) in [("t10k", false), ("train", true), ("t10k", true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        for prefix in ["train", "t10k"] {
            let (count, pixels) = if prefix == split { (0, 0) } else { (2, 2 * 9) };
            let images = [
                idx_header(idx::IMAGES_MAGIC, &[count, 3, 3]),
                vec![5; pixels],
            ]
            .concat();
            let labels = [
                idx_header(idx::LABELS_MAGIC, &[count]),
                vec![1; count as usize],
            ]
            .concat();
            let (suffix, images, labels) = if gz {
                (".gz", gzip(&images), gzip(&labels))
            } else {
                ("", images, labels)
            };
            std::fs::write(
                dir.path()
                    .join(format!("{prefix}-images-idx3-ubyte{suffix}")),
                images,
            )
            .expect("images");
            std::fs::write(
                dir.path()
                    .join(format!("{prefix}-labels-idx1-ubyte{suffix}")),
                labels,
            )
            .expect("labels");
        }
        let message = load(&mnist(dir.path()))
            .expect_err("an empty split is refused")
            .to_string();
        let suffix = if gz { ".gz" } else { "" };
        assert!(
            message.contains(&format!("{split}-images-idx3-ubyte{suffix}"))
                && message.contains("holds no images"),
            "{message}"
        );
    }
}

#[test]
fn idx_readers_stop_at_the_promise_on_plain_files_too() {
    // A plain file with trailing bytes: exactly header + promise + 1 byte are read.
    let mut bytes = idx_header(idx::LABELS_MAGIC, &[3]);
    bytes.extend_from_slice(&[1, 2, 3]);
    bytes.extend(std::iter::repeat_n(9u8, 1 << 20));
    let mut reader = Counting {
        inner: bytes.as_slice(),
        read: 0,
    };
    let message = format_message(
        idx::read_labels(&mut reader, Path::new("labels")).expect_err("trailing data"),
    );
    assert!(message.contains("trailing data"), "{message}");
    assert_eq!(reader.read, 8 + 3 + 1);

    // And an honest file is read whole, with nothing lost at the start (the gzip sniffing).
    let labels = idx::parse_labels(&bytes[..11], Path::new("labels")).expect("honest labels");
    assert_eq!(labels, vec![1, 2, 3]);
    let labels = idx::parse_labels(&gzip(&bytes[..11]), Path::new("labels")).expect("gz labels");
    assert_eq!(labels, vec![1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// Image folders whose names are not UTF-8.

#[cfg(unix)]
fn save_grey(path: &Path, value: u8) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(2, 2, image::Luma([value])))
        .save(path)
        .expect("save png");
}

#[cfg(unix)]
#[test]
fn class_folders_that_are_not_utf8_stay_separate_classes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    // Lossy conversion turns both into "a\u{FFFD}".
    let (fe, ff) = (OsStr::from_bytes(b"a\xfe"), OsStr::from_bytes(b"a\xff"));
    for split in ["train", "test"] {
        save_grey(&root.join(split).join(fe).join("1.png"), 10);
        save_grey(&root.join(split).join(ff).join("1.png"), 200);
        save_grey(&root.join(split).join("b").join("1.png"), 90);
    }
    let source = DatasetSource {
        kind: DatasetKind::Folder,
        dir: Some(root.to_path_buf()),
        image_size: 2,
    };
    let splits = load(&source).expect("the folders load");
    assert_eq!(
        splits.train.class_names,
        vec!["a\\xFE".to_owned(), "a\\xFF".to_owned(), "b".to_owned()]
    );
    for set in [&splits.train, &splits.test] {
        assert_eq!(set.labels, vec![0, 1, 2]);
        // Each label carries its own folder's pixels: nothing was merged or swapped.
        assert_eq!(
            set.images,
            vec![10, 10, 10, 10, 200, 200, 200, 200, 90, 90, 90, 90]
        );
    }

    // A real folder named with the escape itself cannot be told apart by name: refused.
    save_grey(&root.join("train").join("a\\xFF").join("1.png"), 50);
    let message = load(&source).expect_err("ambiguous names").to_string();
    assert!(
        message.contains("both read as class \"a\\\\xFF\"") && message.contains("rename one"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// CIFAR binary files.

use sla::data::cifar;

fn cifar10(dir: &Path) -> DatasetSource {
    DatasetSource {
        kind: DatasetKind::Cifar10,
        dir: Some(dir.to_path_buf()),
        image_size: 32,
    }
}

/// A CIFAR-10 folder of one-record batches.
fn write_cifar10(dir: &Path) {
    let record = [vec![3u8], vec![9u8; 3072]].concat();
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &record).expect("batch");
    }
    std::fs::write(dir.join("test_batch.bin"), &record).expect("test batch");
}

#[test]
fn an_oversized_cifar_file_is_refused_without_being_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_cifar10(dir.path());
    // Sparse: one record more than any CIFAR file holds, all zeros, so every label is valid and
    // only the size is wrong. The old reader loaded all 184 MB of it.
    let path = dir.path().join("data_batch_2.bin");
    let file = std::fs::File::create(&path).expect("create");
    let len = (cifar::MAX_RECORDS + 1) * cifar::Format::Cifar10.record_len();
    file.set_len(len as u64).expect("sparse file");
    let message = load(&cifar10(dir.path()))
        .expect_err("too large")
        .to_string();
    let max = cifar::MAX_RECORDS * 3073;
    assert!(
        message.contains(&path.display().to_string())
            && message.contains(&format!(
                "more than {max} bytes, larger than a CIFAR file can be"
            )),
        "{message}"
    );

    // A class-names file of a megabyte and more is no list of ten names.
    write_cifar10(dir.path());
    let names = dir.path().join("batches.meta.txt");
    std::fs::write(&names, vec![b'x'; (1 << 20) + 1]).expect("names");
    let message = load(&cifar10(dir.path()))
        .expect_err("too large")
        .to_string();
    assert!(
        message.contains("batches.meta.txt") && message.contains("larger than a class-names file"),
        "{message}"
    );
}

#[test]
fn cifar_batches_parse_exactly_or_fail_cleanly() {
    let path = Path::new("batch");
    let record = |coarse: u8, fine: u8, pixel: u8| [vec![coarse, fine], vec![pixel; 3072]].concat();
    let bytes = [record(19, 99, 1), record(0, 5, 2)].concat();
    let fine = cifar::parse_batch(
        &bytes,
        path,
        cifar::Format::Cifar100(cifar::Cifar100Labels::Fine),
    )
    .expect("fine labels");
    assert_eq!(fine.0, vec![99, 5]);
    assert_eq!(fine.1, [vec![1u8; 3072], vec![2u8; 3072]].concat());
    let coarse = cifar::parse_batch(
        &bytes,
        path,
        cifar::Format::Cifar100(cifar::Cifar100Labels::Coarse),
    )
    .expect("coarse labels");
    assert_eq!(coarse.0, vec![19, 0]);
    // The same bytes read as CIFAR-10 records (3073 bytes each) do not divide evenly.
    let message = format_message(
        cifar::parse_batch(&bytes, path, cifar::Format::Cifar10).expect_err("not CIFAR-10"),
    );
    assert!(
        message.contains("not a whole number of 3073-byte records"),
        "{message}"
    );
    let message =
        format_message(cifar::parse_batch(&[], path, cifar::Format::Cifar10).expect_err("empty"));
    assert_eq!(message, "empty file: no records");
}

// ---------------------------------------------------------------------------------------------
// The tar extractor.

use std::sync::atomic::AtomicBool;

use sla::download::{self, DownloadError};

/// A tar header for `path` (written raw, so `..` and absolute names get in as a hostile archive
/// would have them), followed by `data` padded to whole blocks.
fn raw_entry(path: &[u8], kind: tar::EntryType, size: u64, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path);
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn unpack(tar: &[u8], dest: &Path, limit: u64) -> Result<usize, DownloadError> {
    download::unpack_tar(tar, "test.tar", dest, limit, &AtomicBool::new(false))
}

fn not_an_archive(result: Result<usize, DownloadError>) -> String {
    match result {
        Err(DownloadError::NotAnArchive { detail, .. }) => detail,
        other => panic!("expected the archive to be refused, got {other:?}"),
    }
}

/// Every path under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string(),
            );
            if entry.file_type().expect("file type").is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn tar_members_never_land_outside_the_folder() {
    let outer = tempfile::tempdir().expect("temp dir");
    let dest = outer.path().join("dest");
    for name in [
        &b"../escaped"[..],
        b"a/../../escaped",
        b"/tmp/escaped-absolute",
    ] {
        std::fs::create_dir_all(&dest).expect("dest");
        let archive = [
            raw_entry(b"ok.bin", tar::EntryType::Regular, 2, b"ok"),
            raw_entry(name, tar::EntryType::Regular, 4, b"evil"),
            vec![0; 1024],
        ]
        .concat();
        let detail = not_an_archive(unpack(&archive, &dest, 1 << 20));
        assert!(detail.contains("points outside the folder"), "{detail}");
        assert!(!outer.path().join("escaped").exists());
        assert!(!Path::new("/tmp/escaped-absolute").exists());
        std::fs::remove_dir_all(&dest).expect("clean");
    }

    // Links are skipped, so nothing can be written through one either.
    std::fs::create_dir_all(&dest).expect("dest");
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_link_name(outer.path()).expect("link name");
    link.set_path("out").expect("link path");
    link.set_cksum();
    let archive = [
        link.as_bytes().to_vec(),
        raw_entry(b"out/x.bin", tar::EntryType::Regular, 1, b"x"),
        vec![0; 1024],
    ]
    .concat();
    assert_eq!(unpack(&archive, &dest, 1 << 20).expect("unpacks"), 1);
    assert_eq!(tree(&dest), vec!["out", "out/x.bin"]);
    assert!(
        std::fs::symlink_metadata(dest.join("out"))
            .expect("out")
            .is_dir()
    );
    assert!(!outer.path().join("x.bin").exists());
}

#[test]
fn tar_bombs_and_empty_archives_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A header claiming a huge file is refused before a byte of it is written.
    let archive = [
        raw_entry(b"small.bin", tar::EntryType::Regular, 3, b"abc"),
        raw_entry(b"huge.bin", tar::EntryType::Regular, 1 << 40, b""),
    ]
    .concat();
    let dest = dir.path().join("bomb");
    std::fs::create_dir(&dest).expect("dest");
    let detail = not_an_archive(unpack(&archive, &dest, 1000));
    assert_eq!(
        detail,
        "its files unpack to more than the 1000 bytes the set can take"
    );
    assert_eq!(tree(&dest), vec!["small.bin"]);

    // Too many entries, even empty ones.
    let mut archive: Vec<u8> = (0..=download::MAX_ENTRIES)
        .flat_map(|i| {
            raw_entry(
                format!("d{i}/").as_bytes(),
                tar::EntryType::Directory,
                0,
                b"",
            )
        })
        .collect();
    archive.extend_from_slice(&[0; 1024]);
    let dest = dir.path().join("many");
    std::fs::create_dir(&dest).expect("dest");
    let detail = not_an_archive(unpack(&archive, &dest, 1 << 20));
    assert_eq!(
        detail,
        format!("more than {} entries", download::MAX_ENTRIES)
    );

    // No files at all, truncated, or garbage.
    let dest = dir.path().join("empty");
    std::fs::create_dir(&dest).expect("dest");
    let detail = not_an_archive(unpack(&[0; 1024], &dest, 1 << 20));
    assert_eq!(detail, "the archive holds no files");
    let truncated = raw_entry(b"a.bin", tar::EntryType::Regular, 100, b"only ten b");
    let detail = not_an_archive(unpack(&truncated[..522], &dest, 1 << 20));
    assert!(!detail.is_empty());
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert!(matches!(
        unpack(&garbage, &dest, 1 << 20),
        Err(DownloadError::NotAnArchive { .. })
    ));
}
