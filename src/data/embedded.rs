//! The default dataset compiled into the binary: a class-balanced Fashion-MNIST subset (fashion-mini).

use std::path::Path;

use super::dataset::{DataError, Dataset};
use super::idx;

const TRAIN_IMAGES: &[u8] = include_bytes!("../../assets/fashion-mini/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../assets/fashion-mini/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../assets/fashion-mini/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../assets/fashion-mini/t10k-labels-idx1-ubyte.gz");

/// Bytes of the embedded files together, so callers can report what the binary carries.
pub const EMBEDDED_BYTES: usize =
    TRAIN_IMAGES.len() + TRAIN_LABELS.len() + TEST_IMAGES.len() + TEST_LABELS.len();

/// Decodes the embedded train and test splits (500 and 100 images per class).
pub fn load() -> Result<(Dataset, Dataset), DataError> {
    let names: Vec<String> = idx::FASHION_CLASSES.iter().map(|s| s.to_string()).collect();
    let split = |images: &[u8], labels: &[u8], name: &str| {
        idx::split_from_bytes(
            images,
            &Path::new("<embedded fashion-mini>").join(format!("{name}-images-idx3-ubyte.gz")),
            labels,
            &Path::new("<embedded fashion-mini>").join(format!("{name}-labels-idx1-ubyte.gz")),
            &names,
        )
    };
    let train = split(TRAIN_IMAGES, TRAIN_LABELS, "train")?;
    let test = split(TEST_IMAGES, TEST_LABELS, "t10k")?;
    Ok((train, test))
}
