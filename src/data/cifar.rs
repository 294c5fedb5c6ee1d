//! Reader for the binary CIFAR-10 and CIFAR-100 formats (one label byte or two, then 3072 CHW pixels).

use std::path::{Path, PathBuf};

use super::dataset::{DataError, Dataset, ImageShape};
use super::idx::read_file;

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

/// Which CIFAR-100 label becomes the dataset's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 100 classes (the usual benchmark).
    Fine,
    /// The 20 superclasses.
    Coarse,
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
    let bytes = read_file(path)?;
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

/// Parses one binary file of records `[label_bytes labels, 3072 pixels]` into `out`: leading byte `b`
/// must be below `class_counts[b]`, and byte `label_byte` becomes the label.
fn parse_records(
    bytes: &[u8],
    path: &Path,
    label_bytes: usize,
    label_byte: usize,
    class_counts: &[usize],
    out: &mut Dataset,
) -> Result<(), DataError> {
    let record = label_bytes + SHAPE.image_len();
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
        out.labels.push(u32::from(chunk[label_byte]));
        out.images.extend_from_slice(&chunk[label_bytes..]);
    }
    Ok(())
}

fn read_files(
    paths: &[PathBuf],
    label_bytes: usize,
    label_byte: usize,
    class_counts: &[usize],
    class_names: &[String],
) -> Result<Dataset, DataError> {
    let mut ds = Dataset {
        shape: SHAPE,
        images: Vec::new(),
        labels: Vec::new(),
        class_names: class_names.to_vec(),
    };
    for path in paths {
        let bytes = read_file(path)?;
        parse_records(&bytes, path, label_bytes, label_byte, class_counts, &mut ds)?;
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
    let train = read_files(&train_paths, 1, 0, &[names.len()], &names)?;
    let test = read_files(&[root.join("test_batch.bin")], 1, 0, &[names.len()], &names)?;
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
    let (label_byte, names) = match labels {
        Cifar100Labels::Coarse => (0, coarse),
        Cifar100Labels::Fine => (1, fine),
    };
    let counts = [CIFAR100_COARSE_CLASSES.len(), CIFAR100_FINE_CLASSES.len()];
    let train = read_files(&[train_path], 2, label_byte, &counts, &names)?;
    let test = read_files(&[root.join("test.bin")], 2, label_byte, &counts, &names)?;
    log::info!(
        "loaded CIFAR-100: {} training and {} test images from {}",
        train.len(),
        test.len(),
        root.display()
    );
    Ok((train, test))
}
