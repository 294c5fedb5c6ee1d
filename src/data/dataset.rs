//! The in-memory dataset: u8 images in CHW order plus class labels, and the errors of every reader.

use std::path::{Path, PathBuf};

/// Channels, height and width of every image of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// Bytes one image takes (one byte per channel and pixel).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A labelled image set kept as bytes: image `i` is `images[i * len .. (i + 1) * len]` in CHW order
/// with `len = shape.image_len()`. Whole sets are never copied to f32; batches are.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub shape: ImageShape,
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub class_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The bytes of image `index` (CHW).
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.shape.image_len();
        &self.images[index * len..(index + 1) * len]
    }
}

/// Everything that can go wrong while reading a dataset. Each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// A [`DataError::Format`]: `path` does not hold what the reader expects.
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// Wraps the I/O errors of operations on `path`, for `map_err`.
    pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
