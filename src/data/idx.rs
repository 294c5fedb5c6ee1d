//! Reader for the IDX format of MNIST and Fashion-MNIST (plain or gzip): idx1 labels, idx3 images.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::{DataError, Dataset, ImageShape};

/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// The class names of Fashion-MNIST, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The class names of MNIST, in label order.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The file names of one split: the usual dashed name and the dotted one some mirrors use.
const TRAIN_IMAGES: [&str; 2] = ["train-images-idx3-ubyte", "train-images.idx3-ubyte"];
const TRAIN_LABELS: [&str; 2] = ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"];
const TEST_IMAGES: [&str; 2] = ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"];
const TEST_LABELS: [&str; 2] = ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"];

/// What every IDX folder must hold, for error messages.
pub const EXPECTED_FILES: &str = "train-images-idx3-ubyte, train-labels-idx1-ubyte, \
     t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each plain or .gz)";

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn format_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Inflates `bytes` when they start with the gzip magic; the extension is not trusted either way.
pub fn decompress(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| format_error(path, format!("corrupt or truncated gzip data: {e}")))?;
    Ok(out)
}

/// Checks the header of an IDX file of bytes and returns its dimensions and the payload offset.
fn header(
    bytes: &[u8],
    path: &Path,
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, usize), DataError> {
    let dims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * dims;
    let truncated = || {
        format_error(
            path,
            format!(
                "truncated: {} bytes, too short for the {header_len}-byte header of an IDX {what} file",
                bytes.len()
            ),
        )
    };
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.len() < 4 {
        return Err(truncated());
    }
    // The magic comes first so that a file of the wrong kind is named as such, not as truncated.
    let found = word(0);
    if found != magic {
        return Err(format_error(
            path,
            format!(
                "wrong magic number {found:#010x}, expected {magic:#010x} (an IDX {what} file)"
            ),
        ));
    }
    if bytes.len() < header_len {
        return Err(truncated());
    }
    let sizes = (0..dims).map(|d| word(4 + 4 * d) as usize).collect();
    Ok((sizes, header_len))
}

/// Checks that the payload after the header has exactly `expected` bytes.
fn check_payload(len: usize, expected: usize, path: &Path) -> Result<(), DataError> {
    if len < expected {
        return Err(format_error(
            path,
            format!("truncated: the header promises {expected} data bytes but only {len} follow"),
        ));
    }
    if len > expected {
        return Err(format_error(
            path,
            format!(
                "{} unexpected bytes after the {expected} data bytes the header promises",
                len - expected
            ),
        ));
    }
    Ok(())
}

/// Parses an (already inflated) idx1 label file. `path` only names the source in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>, DataError> {
    let (dims, offset) = header(bytes, path, LABELS_MAGIC, "label")?;
    let count = dims[0];
    check_payload(bytes.len() - offset, count, path)?;
    Ok(bytes[offset..].iter().map(|&b| u32::from(b)).collect())
}

/// Parses an (already inflated) idx3 image file into its shape (one channel) and pixel bytes.
/// Takes the buffer by value so the pixels are moved, not copied.
pub fn parse_images(mut bytes: Vec<u8>, path: &Path) -> Result<(ImageShape, Vec<u8>), DataError> {
    let (dims, offset) = header(&bytes, path, IMAGES_MAGIC, "image")?;
    let shape = ImageShape {
        channels: 1,
        height: dims[1],
        width: dims[2],
    };
    if shape.image_len() == 0 {
        return Err(format_error(
            path,
            format!(
                "images of size {}x{} hold no pixels",
                shape.height, shape.width
            ),
        ));
    }
    let expected = dims[0]
        .checked_mul(shape.image_len())
        .ok_or_else(|| format_error(path, "image dimensions overflow"))?;
    check_payload(bytes.len() - offset, expected, path)?;
    bytes.drain(..offset);
    Ok((shape, bytes))
}

/// Reads one split (images + labels, plain or gzip) into a dataset, checking that the counts match
/// and every label names one of `class_names`.
pub fn read_split(
    images_path: &Path,
    labels_path: &Path,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    let labels = read_file(labels_path)?;
    let images = read_file(images_path)?;
    split_from_bytes(images, images_path, &labels, labels_path, class_names)
}

/// Builds one split from the bytes of its image and label files (plain or gzip); the paths only
/// name the sources in errors.
pub fn split_from_bytes(
    images: Vec<u8>,
    images_path: &Path,
    labels: &[u8],
    labels_path: &Path,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    let labels = if labels.starts_with(&[0x1f, 0x8b]) {
        parse_labels(&decompress(labels.to_vec(), labels_path)?, labels_path)?
    } else {
        parse_labels(labels, labels_path)?
    };
    let (shape, images) = parse_images(decompress(images, images_path)?, images_path)?;
    let count = images.len() / shape.image_len();
    if count != labels.len() {
        return Err(format_error(
            images_path,
            format!(
                "holds {count} images but {} has {} labels",
                labels_path.display(),
                labels.len()
            ),
        ));
    }
    check_labels(&labels, class_names.len(), labels_path)?;
    Ok(Dataset {
        shape,
        images,
        labels,
        class_names: class_names.to_vec(),
    })
}

/// Fails on the first label that is not below `num_classes`.
pub(crate) fn check_labels(
    labels: &[u32],
    num_classes: usize,
    path: &Path,
) -> Result<(), DataError> {
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(i) => Err(format_error(
            path,
            format!(
                "label {} of record {i} is out of range: there are {num_classes} classes (0..={})",
                labels[i],
                num_classes.saturating_sub(1)
            ),
        )),
        None => Ok(()),
    }
}

/// Finds one of `names` (plain or .gz) in `dir`.
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf, DataError> {
    for name in names {
        for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format_error(
        dir,
        format!(
            "no {0} or {0}.gz in this folder; expected {EXPECTED_FILES}",
            names[0]
        ),
    ))
}

/// Loads the train and test splits of an IDX folder (MNIST layout). The two splits must agree on
/// the image size.
pub fn load_dir(dir: &Path, class_names: &[&str]) -> Result<(Dataset, Dataset), DataError> {
    if !dir.is_dir() {
        return Err(format_error(
            dir,
            format!("no such folder; expected a folder with {EXPECTED_FILES}"),
        ));
    }
    let names: Vec<String> = class_names.iter().map(|s| s.to_string()).collect();
    let train = read_split(
        &find(dir, &TRAIN_IMAGES)?,
        &find(dir, &TRAIN_LABELS)?,
        &names,
    )?;
    let test_images = find(dir, &TEST_IMAGES)?;
    let test = read_split(&test_images, &find(dir, &TEST_LABELS)?, &names)?;
    if test.shape != train.shape {
        return Err(format_error(
            &test_images,
            format!(
                "image size mismatch: test images are {}x{} but training images are {}x{}",
                test.shape.height, test.shape.width, train.shape.height, train.shape.width
            ),
        ));
    }
    log::info!(
        "loaded {} training and {} test images from {}",
        train.len(),
        test.len(),
        dir.display()
    );
    Ok((train, test))
}
