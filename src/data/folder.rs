//! Reader for image folders `ROOT/{train,test}/<class>/*.png|jpg`, resized to a square size.

use std::path::{Path, PathBuf};

use super::dataset::{DataError, Dataset, ImageShape};
use super::image_file;

const LAYOUT: &str = "ROOT/train/<class>/*.png|jpg and ROOT/test/<class>/*.png|jpg";

/// The folder's name as a class name: itself when it is UTF-8, else with every byte that is not
/// spelled `\xNN`. A lossy conversion would turn every such byte into U+FFFD, so that folders
/// differing only there would show as one class.
fn class_name(dir: &Path) -> String {
    let Some(name) = dir.file_name() else {
        return String::new();
    };
    if let Some(text) = name.to_str() {
        return text.to_owned();
    }
    let mut out = String::new();
    for chunk in name.as_encoded_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    out
}

/// The class names of `classes`, refusing two folders whose names read the same once escaped
/// (a non-UTF-8 `a<FF>` beside a folder really named `a\xFF`): one name per class, or the labels
/// of a saved run could not be told apart.
fn class_names(classes: &[PathBuf]) -> Result<Vec<String>, DataError> {
    let names: Vec<String> = classes.iter().map(|d| class_name(d)).collect();
    for (i, name) in names.iter().enumerate() {
        if let Some(j) = names[..i].iter().position(|n| n == name) {
            return Err(DataError::format(
                &classes[i],
                format!(
                    "class folders {} and {} both read as class {name:?}; rename one of them",
                    classes[j].display(),
                    classes[i].display()
                ),
            ));
        }
    }
    Ok(names)
}

/// The image files of each class folder, failing on an empty one.
fn class_files(classes: &[PathBuf]) -> Result<Vec<Vec<PathBuf>>, DataError> {
    classes
        .iter()
        .map(|dir| {
            let files = image_file::list(dir, false)?;
            if files.is_empty() {
                return Err(DataError::format(
                    dir,
                    format!("empty class folder: no .png or .jpg images; expected {LAYOUT}"),
                ));
            }
            Ok(files)
        })
        .collect()
}

/// Images decoded and resized, as RGB CHW bytes, plus whether every one of them was grey.
struct Decoded {
    images: Vec<u8>,
    labels: Vec<u32>,
    all_grey: bool,
}

fn decode(
    files: &[Vec<PathBuf>],
    labels: &[u32],
    side: u32,
    out: &mut Decoded,
) -> Result<(), DataError> {
    let image_len = 3 * side as usize * side as usize;
    for (class_files, &label) in files.iter().zip(labels) {
        for path in class_files {
            let start = out.images.len();
            out.images.resize(start + image_len, 0);
            out.all_grey &= image_file::decode_into(path, side, &mut out.images[start..])?;
            out.labels.push(label);
        }
    }
    Ok(())
}

/// Keeps only the first plane of each RGB CHW image (all planes are equal for grey images).
fn to_grey(images: &[u8], plane: usize) -> Vec<u8> {
    images
        .chunks_exact(3 * plane)
        .flat_map(|image| image[..plane].iter().copied())
        .collect()
}

/// Loads `root/train` and `root/test`; classes are the sorted folder names of `root/train`, and
/// every image is resized to `image_size × image_size`. The images are grey (1 channel) when all
/// of them, train and test, are stored as grey, otherwise RGB.
pub fn load_folder(root: &Path, image_size: usize) -> Result<(Dataset, Dataset), DataError> {
    let side = image_file::square_side(image_size)?;
    if !root.is_dir() {
        return Err(DataError::format(
            root,
            format!("no such folder; expected {LAYOUT}"),
        ));
    }
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    for dir in [&train_dir, &test_dir] {
        if !dir.is_dir() {
            return Err(DataError::format(
                dir,
                format!("no such folder; expected {LAYOUT}"),
            ));
        }
    }
    let train_classes = image_file::list(&train_dir, true)?;
    if train_classes.is_empty() {
        return Err(DataError::format(
            &train_dir,
            format!("no class folders; expected {LAYOUT}"),
        ));
    }
    let class_names = class_names(&train_classes)?;
    let test_classes = image_file::list(&test_dir, true)?;
    let mut test_labels = Vec::with_capacity(test_classes.len());
    for dir in &test_classes {
        // Matched on the names as the file system has them, not on their text form.
        match train_classes
            .iter()
            .position(|t| t.file_name() == dir.file_name())
        {
            Some(label) => test_labels.push(label as u32),
            None => {
                return Err(DataError::format(
                    dir,
                    format!(
                        "class {:?} has no folder in {}",
                        class_name(dir),
                        train_dir.display()
                    ),
                ));
            }
        }
    }
    let train_files = class_files(&train_classes)?;
    let test_files = class_files(&test_classes)?;
    if test_files.is_empty() {
        return Err(DataError::format(
            &test_dir,
            format!("no class folders; expected {LAYOUT}"),
        ));
    }
    let train_labels: Vec<u32> = (0..train_classes.len() as u32).collect();
    let mut train = Decoded {
        images: Vec::new(),
        labels: Vec::new(),
        all_grey: true,
    };
    decode(&train_files, &train_labels, side, &mut train)?;
    let mut test = Decoded {
        images: Vec::new(),
        labels: Vec::new(),
        all_grey: true,
    };
    decode(&test_files, &test_labels, side, &mut test)?;
    let grey = train.all_grey && test.all_grey;
    let plane = image_size * image_size;
    let shape = ImageShape {
        channels: if grey { 1 } else { 3 },
        height: image_size,
        width: image_size,
    };
    let finish = |decoded: Decoded| Dataset {
        shape,
        images: if grey {
            to_grey(&decoded.images, plane)
        } else {
            decoded.images
        },
        labels: decoded.labels,
        class_names: class_names.clone(),
    };
    let (train, test) = (finish(train), finish(test));
    log::info!(
        "loaded {} training and {} test images ({} classes, {}) from {}",
        train.len(),
        test.len(),
        class_names.len(),
        if grey { "grey" } else { "RGB" },
        root.display()
    );
    Ok((train, test))
}
