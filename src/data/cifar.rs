//! Reader for the binary CIFAR-10 and CIFAR-100 formats (one label byte or two, then 3072 CHW pixels).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::{DataError, Dataset, ImageShape};

/// CIFAR images: 3 × 32 × 32, stored as 1024 red, then 1024 green, then 1024 blue bytes.
pub const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};

/// The class names of CIFAR-10, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The 20 CIFAR-100 superclasses, used when `coarse_label_names.txt` is absent.
pub const CIFAR100_COARSE_CLASSES: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

/// The 100 CIFAR-100 classes, used when `fine_label_names.txt` is absent.
pub const CIFAR100_FINE_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// Records one binary file may hold: the largest published file (CIFAR-100's train.bin) holds
/// 50 000. A file beyond this is refused before it is read, so a wrong or hostile file cannot make
/// the reader take all memory.
pub const MAX_RECORDS: usize = 60_000;

/// Bytes a class-names file may hold (the real ones hold about a kilobyte).
const MAX_NAMES_BYTES: u64 = 1 << 20;

/// Which CIFAR-100 label becomes the dataset's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 100 classes (the usual benchmark).
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// The record layout of one binary file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One label byte (0..10), then the pixels.
    Cifar10,
    /// A coarse (0..20) and a fine (0..100) label byte, then the pixels; both are checked, the
    /// chosen one becomes the label.
    Cifar100(Cifar100Labels),
}

impl Format {
    /// How many classes each leading label byte counts.
    fn class_counts(self) -> &'static [usize] {
        const CIFAR10: usize = CIFAR10_CLASSES.len();
        const COARSE: usize = CIFAR100_COARSE_CLASSES.len();
        const FINE: usize = CIFAR100_FINE_CLASSES.len();
        match self {
            Format::Cifar10 => &[CIFAR10],
            Format::Cifar100(_) => &[COARSE, FINE],
        }
    }

    /// The label byte that becomes the label.
    fn label_byte(self) -> usize {
        match self {
            Format::Cifar10 | Format::Cifar100(Cifar100Labels::Coarse) => 0,
            Format::Cifar100(Cifar100Labels::Fine) => 1,
        }
    }

    /// Bytes of one record.
    pub fn record_len(self) -> usize {
        self.class_counts().len() + SHAPE.image_len()
    }
}

const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

fn format_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The folder holding `marker`: `dir` itself or its usual subfolder.
fn resolve(
    dir: &Path,
    subfolder: &str,
    marker: &str,
    expected: &str,
) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(format_error(
            dir,
            format!(
                "no such folder; expected a folder with {expected} (or its {subfolder}/ subfolder)"
            ),
        ));
    }
    for candidate in [dir.to_path_buf(), dir.join(subfolder)] {
        if candidate.join(marker).is_file() {
            return Ok(candidate);
        }
    }
    Err(format_error(
        dir,
        format!("no {marker} here or in {subfolder}/; expected {expected}"),
    ))
}

/// One label per line, blank lines ignored; `None` when the file is absent.
fn read_names(path: &Path, expected: usize) -> Result<Option<Vec<String>>, DataError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = read_bounded(path, MAX_NAMES_BYTES, "a class-names file")?;
    let text = String::from_utf8(bytes).map_err(|_| format_error(path, "not UTF-8 text"))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != expected {
        return Err(format_error(
            path,
            format!("lists {} class names, expected {expected}", names.len()),
        ));
    }
    Ok(Some(names))
}

fn names_or(path: &Path, defaults: &[&str]) -> Result<Vec<String>, DataError> {
    Ok(read_names(path, defaults.len())?
        .unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect()))
}

/// The bytes of `path`, refusing a file longer than `max` without reading past it (a size from
/// the metadata could lie for special files; the bound on the read cannot).
pub(super) fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let too_large = || {
        format_error(
            path,
            format!("more than {max} bytes, larger than {what} can be"),
        )
    };
    // Refused without reading when the size says so; the bounded read covers files whose size
    // does not (pipes, devices, files still growing).
    if file.metadata().map_err(io_error)?.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Parses the bytes of one binary CIFAR file of `format` into its labels and pixels (CHW, one
/// image after the other), checking every label byte. `path` only names the source in errors.
pub fn parse_batch(
    bytes: &[u8],
    path: &Path,
    format: Format,
) -> Result<(Vec<u32>, Vec<u8>), DataError> {
    let record = format.record_len();
    let class_counts = format.class_counts();
    if bytes.is_empty() {
        return Err(format_error(path, "empty file: no records"));
    }
    if !bytes.len().is_multiple_of(record) {
        return Err(format_error(
            path,
            format!(
                "truncated or not a CIFAR file: {} bytes is not a whole number of {record}-byte records",
                bytes.len()
            ),
        ));
    }
    let records = bytes.len() / record;
    if records > MAX_RECORDS {
        return Err(format_error(
            path,
            format!("{records} records, more than the {MAX_RECORDS} any CIFAR file holds"),
        ));
    }
    let mut labels = Vec::with_capacity(records);
    let mut images = Vec::with_capacity(records * SHAPE.image_len());
    for (r, chunk) in bytes.chunks_exact(record).enumerate() {
        for (b, &count) in class_counts.iter().enumerate() {
            if chunk[b] as usize >= count {
                return Err(format_error(
                    path,
                    format!(
                        "label {} of record {r} is out of range: there are {count} classes (0..={})",
                        chunk[b],
                        count - 1
                    ),
                ));
            }
        }
        labels.push(u32::from(chunk[format.label_byte()]));
        images.extend_from_slice(&chunk[class_counts.len()..]);
    }
    Ok((labels, images))
}

fn read_files(
    paths: &[PathBuf],
    format: Format,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    let mut ds = Dataset {
        shape: SHAPE,
        images: Vec::new(),
        labels: Vec::new(),
        class_names: class_names.to_vec(),
    };
    let max = (MAX_RECORDS * format.record_len()) as u64;
    for path in paths {
        let bytes = read_bounded(path, max, "a CIFAR file")?;
        let (labels, images) = parse_batch(&bytes, path, format)?;
        ds.labels.extend(labels);
        ds.images.extend(images);
    }
    Ok(ds)
}

const CIFAR10_EXPECTED: &str = "data_batch_1.bin … data_batch_5.bin and test_batch.bin";

/// Loads CIFAR-10 from `dir` or `dir/cifar-10-batches-bin`: returns (train, test).
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let root = resolve(
        dir,
        "cifar-10-batches-bin",
        "test_batch.bin",
        CIFAR10_EXPECTED,
    )?;
    let names = names_or(&root.join("batches.meta.txt"), &CIFAR10_CLASSES)?;
    let mut train_paths = Vec::new();
    for name in CIFAR10_TRAIN {
        let path = root.join(name);
        if !path.is_file() {
            return Err(format_error(
                &path,
                format!("missing; expected {CIFAR10_EXPECTED} in {}", root.display()),
            ));
        }
        train_paths.push(path);
    }
    let train = read_files(&train_paths, Format::Cifar10, &names)?;
    let test = read_files(&[root.join("test_batch.bin")], Format::Cifar10, &names)?;
    log::info!(
        "loaded CIFAR-10: {} training and {} test images from {}",
        train.len(),
        test.len(),
        root.display()
    );
    Ok((train, test))
}

/// Loads CIFAR-100 from `dir` or `dir/cifar-100-binary`, labelled with its fine or coarse labels
/// (both are checked): returns (train, test).
pub fn load_cifar100(dir: &Path, labels: Cifar100Labels) -> Result<(Dataset, Dataset), DataError> {
    let expected = "train.bin and test.bin";
    let root = resolve(dir, "cifar-100-binary", "test.bin", expected)?;
    let train_path = root.join("train.bin");
    if !train_path.is_file() {
        return Err(format_error(
            &train_path,
            format!("missing; expected {expected} in {}", root.display()),
        ));
    }
    let coarse = names_or(
        &root.join("coarse_label_names.txt"),
        &CIFAR100_COARSE_CLASSES,
    )?;
    let fine = names_or(&root.join("fine_label_names.txt"), &CIFAR100_FINE_CLASSES)?;
    let names = match labels {
        Cifar100Labels::Coarse => coarse,
        Cifar100Labels::Fine => fine,
    };
    let format = Format::Cifar100(labels);
    let train = read_files(&[train_path], format, &names)?;
    let test = read_files(&[root.join("test.bin")], format, &names)?;
    log::info!(
        "loaded CIFAR-100: {} training and {} test images from {}",
        train.len(),
        test.len(),
        root.display()
    );
    Ok((train, test))
}
