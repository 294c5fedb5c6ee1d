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
