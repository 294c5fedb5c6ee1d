//! Reader for the IDX format of MNIST and Fashion-MNIST (plain or gzip): idx1 labels, idx3 images.

use std::io::{self, Read};
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

/// The most data bytes (pixels, or labels) one IDX file may promise: 2 GiB. The largest IDX sets in
/// use are far below it (MNIST: 47 MB of pixels, EMNIST ByClass: 547 MB), and a header promising
/// more is corrupt or hostile, so it is refused before anything is read or allocated.
pub const MAX_IDX_DATA_BYTES: u64 = 1 << 31;

fn format_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// An IDX file being read: its bytes, inflated on the way when it is gzip.
struct Stream<'a> {
    reader: Box<dyn Read + 'a>,
    gzip: bool,
}

impl<'a> Stream<'a> {
    /// Wraps `reader` in a gzip decoder when its first bytes are the gzip magic (the extension is
    /// not trusted either way). Only those two bytes are read here, so the callers bound how much
    /// of the (inflated) stream is ever taken.
    fn new<R: Read + 'a>(mut reader: R, path: &Path) -> Result<Self, DataError> {
        let mut magic = [0u8; 2];
        let mut got = 0;
        while got < magic.len() {
            match reader.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DataError::Io {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        let head = io::Cursor::new(magic).take(got as u64).chain(reader);
        let gzip = got == 2 && magic == [0x1f, 0x8b];
        let reader: Box<dyn Read + 'a> = if gzip {
            Box::new(flate2::read::GzDecoder::new(head))
        } else {
            Box::new(head)
        };
        Ok(Stream { reader, gzip })
    }

    /// A read failure: broken compressed data when inflating, else the file's own I/O error.
    fn error(&self, path: &Path, source: io::Error) -> DataError {
        if self.gzip {
            format_error(path, format!("corrupt or truncated gzip data: {source}"))
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// Fills `buf`; returns how many bytes came before the end of the stream.
    fn read_up_to(&mut self, buf: &mut [u8], path: &Path) -> Result<usize, DataError> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(path, e)),
            }
        }
        Ok(got)
    }

    /// Reads exactly `expected` data bytes and checks that nothing follows them. At most
    /// `expected + 1` bytes are ever taken from the stream, whatever it holds.
    fn read_payload(&mut self, expected: u64, path: &Path) -> Result<Vec<u8>, DataError> {
        if expected > MAX_IDX_DATA_BYTES {
            return Err(format_error(
                path,
                format!(
                    "the header promises {expected} data bytes, more than the {MAX_IDX_DATA_BYTES} \
                     any real IDX file holds: corrupt or not an IDX file"
                ),
            ));
        }
        let mut data = Vec::new();
        // Capacity is not taken from the header: a lying header on a small file allocates nothing.
        if let Err(e) = (&mut self.reader).take(expected + 1).read_to_end(&mut data) {
            return Err(self.error(path, e));
        }
        let len = data.len() as u64;
        if len < expected {
            return Err(format_error(
                path,
                format!(
                    "truncated: the header promises {expected} data bytes but only {len} follow"
                ),
            ));
        }
        if len > expected {
            return Err(format_error(
                path,
                format!(
                    "trailing data: more bytes follow the {expected} data bytes the header promises"
                ),
            ));
        }
        Ok(data)
    }
}

/// Reads and checks the header of an IDX file of bytes with `DIMS` dimensions from the (inflated)
/// stream, leaving the stream at the first data byte.
fn read_header<const DIMS: usize>(
    stream: &mut Stream<'_>,
    path: &Path,
    magic: u32,
    what: &str,
) -> Result<[u64; DIMS], DataError> {
    let header_len = 4 + 4 * DIMS;
    let mut bytes = [0u8; 16];
    let bytes = &mut bytes[..header_len];
    let got = stream.read_up_to(bytes, path)?;
    let truncated = || {
        format_error(
            path,
            format!(
                "truncated: {got} bytes, too short for the {header_len}-byte header of an IDX {what} file"
            ),
        )
    };
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if got < 4 {
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
    if got < header_len {
        return Err(truncated());
    }
    Ok(std::array::from_fn(|d| u64::from(word(4 + 4 * d))))
}

/// Reads an idx1 label file (plain or gzip) from `reader`, taking no more of it than the header
/// promises plus one byte. `path` only names the source in errors.
pub fn read_labels<R: Read>(reader: R, path: &Path) -> Result<Vec<u32>, DataError> {
    let mut stream = Stream::new(reader, path)?;
    let [count] = read_header::<1>(&mut stream, path, LABELS_MAGIC, "label")?;
    let data = stream.read_payload(count, path)?;
    Ok(data.into_iter().map(u32::from).collect())
}

/// Reads an idx3 image file (plain or gzip) from `reader` into its shape (one channel) and pixel
/// bytes, taking no more of it than the header promises plus one byte. A file of no images is an
/// error: it would only surface much later as an empty training set or a 0 % accuracy.
pub fn read_images<R: Read>(reader: R, path: &Path) -> Result<(ImageShape, Vec<u8>), DataError> {
    let mut stream = Stream::new(reader, path)?;
    let [count, height, width] = read_header::<3>(&mut stream, path, IMAGES_MAGIC, "image")?;
    // Each dimension came from a u32, so the product of two fits in a u64.
    let image_len = height * width;
    if image_len == 0 {
        return Err(format_error(
            path,
            format!("images of size {height}x{width} hold no pixels"),
        ));
    }
    if count == 0 {
        return Err(format_error(
            path,
            "holds no images (the header's count is 0)",
        ));
    }
    let expected = count
        .checked_mul(image_len)
        .ok_or_else(|| format_error(path, "image dimensions overflow"))?;
    let (Ok(height), Ok(width)) = (usize::try_from(height), usize::try_from(width)) else {
        return Err(format_error(path, "image dimensions overflow"));
    };
    let data = stream.read_payload(expected, path)?;
    let shape = ImageShape {
        channels: 1,
        height,
        width,
    };
    Ok((shape, data))
}

/// Parses an idx1 label file held in memory (plain or gzip). `path` only names the source in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>, DataError> {
    read_labels(bytes, path)
}

/// Parses an idx3 image file held in memory (plain or gzip) into its shape (one channel) and pixel
/// bytes.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<(ImageShape, Vec<u8>), DataError> {
    read_images(bytes, path)
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, DataError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads one split (images + labels, plain or gzip) into a dataset, checking that the counts match
/// and every label names one of `class_names`. Neither file is read further than its header
/// promises, so a gzip bomb costs no more memory than an honest file.
pub fn read_split(
    images_path: &Path,
    labels_path: &Path,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    let labels = read_labels(open(labels_path)?, labels_path)?;
    let (shape, images) = read_images(open(images_path)?, images_path)?;
    assemble(shape, images, images_path, labels, labels_path, class_names)
}

/// Builds one split from the bytes of its image and label files (plain or gzip); the paths only
/// name the sources in errors.
pub fn split_from_bytes(
    images: &[u8],
    images_path: &Path,
    labels: &[u8],
    labels_path: &Path,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    let labels = read_labels(labels, labels_path)?;
    let (shape, images) = read_images(images, images_path)?;
    assemble(shape, images, images_path, labels, labels_path, class_names)
}

fn assemble(
    shape: ImageShape,
    images: Vec<u8>,
    images_path: &Path,
    labels: Vec<u32>,
    labels_path: &Path,
    class_names: &[String],
) -> Result<Dataset, DataError> {
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
