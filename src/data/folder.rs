//! Reader for image folders `ROOT/{train,test}/<class>/*.png|jpg`, resized to a square size, and
//! for class-disjoint trees `DIR/<class>/*.png|jpg` (few-shot base, validation and novel classes).

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

/// The image files of each class folder, failing on an empty one; `layout` is the expected layout
/// the error names.
fn class_files(classes: &[PathBuf], layout: &str) -> Result<Vec<Vec<PathBuf>>, DataError> {
    classes
        .iter()
        .map(|dir| {
            let files = image_file::list(dir, false)?;
            if files.is_empty() {
                return Err(DataError::format(
                    dir,
                    format!("empty class folder: no .png or .jpg images; expected {layout}"),
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

/// The decoded images of one set as a dataset of `image_size`-sided squares: grey when `grey`,
/// which the caller decides once for all the sets it reads, so that they share one shape.
fn finish(decoded: Decoded, class_names: Vec<String>, grey: bool, image_size: usize) -> Dataset {
    let plane = image_size * image_size;
    Dataset {
        shape: ImageShape {
            channels: if grey { 1 } else { 3 },
            height: image_size,
            width: image_size,
        },
        images: if grey {
            to_grey(&decoded.images, plane)
        } else {
            decoded.images
        },
        labels: decoded.labels,
        class_names,
    }
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
    let train_files = class_files(&train_classes, LAYOUT)?;
    let test_files = class_files(&test_classes, LAYOUT)?;
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
    let train = finish(train, class_names.clone(), grey, image_size);
    let test = finish(test, class_names, grey, image_size);
    log::info!(
        "loaded {} training and {} test images ({} classes, {}) from {}",
        train.len(),
        test.len(),
        train.num_classes(),
        if grey { "grey" } else { "RGB" },
        root.display()
    );
    Ok((train, test))
}

/// Loads class trees `DIR/<class>/*.png|jpg`, one dataset per tree, in the order given, for sets
/// that must not share a class (few-shot base, validation and novel classes): each tree's classes
/// are its own sorted folder names, labelled from 0, and a class folder name found in two trees is
/// refused, naming both folders. Every image is resized to `image_size × image_size`; the sets are
/// grey (1 channel) when every image of every tree is stored grey, otherwise RGB: the rule of
/// [`load_folder`], taken over all the trees so that they share one shape.
pub fn load_class_trees(trees: &[&Path], image_size: usize) -> Result<Vec<Dataset>, DataError> {
    let side = image_file::square_side(image_size)?;
    let layout = |tree: &Path| format!("{}/<class>/*.png|jpg", tree.display());
    // Every tree is listed and checked before any image is decoded: a misplaced class folder is
    // reported at once, not after minutes of decoding.
    let mut listed: Vec<(Vec<PathBuf>, Vec<String>)> = Vec::with_capacity(trees.len());
    for &tree in trees {
        if !tree.is_dir() {
            return Err(DataError::format(
                tree,
                format!("no such folder; expected {}", layout(tree)),
            ));
        }
        let classes = image_file::list(tree, true)?;
        if classes.is_empty() {
            return Err(DataError::format(
                tree,
                format!("no class folders; expected {}", layout(tree)),
            ));
        }
        let names = class_names(&classes)?;
        for (dir, name) in classes.iter().zip(&names) {
            // Matched on the names as the file system has them, as load_folder matches them.
            let earlier = listed
                .iter()
                .flat_map(|(earlier, _)| earlier)
                .find(|e| e.file_name() == dir.file_name());
            if let Some(earlier) = earlier {
                return Err(DataError::format(
                    dir,
                    format!(
                        "class {name:?} has folders in both {} and {}; these sets must not share \
                         a class (novel classes are never seen in training): remove or rename one",
                        earlier.display(),
                        dir.display()
                    ),
                ));
            }
        }
        listed.push((classes, names));
    }
    let mut files = Vec::with_capacity(listed.len());
    for ((classes, _), &tree) in listed.iter().zip(trees) {
        files.push(class_files(classes, &layout(tree))?);
    }
    let mut decoded = Vec::with_capacity(files.len());
    for (tree_files, (classes, _)) in files.iter().zip(&listed) {
        let labels: Vec<u32> = (0..classes.len() as u32).collect();
        let mut out = Decoded {
            images: Vec::new(),
            labels: Vec::new(),
            all_grey: true,
        };
        decode(tree_files, &labels, side, &mut out)?;
        decoded.push(out);
    }
    let grey = decoded.iter().all(|d| d.all_grey);
    Ok(decoded
        .into_iter()
        .zip(listed)
        .map(|(d, (_, names))| finish(d, names, grey, image_size))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save_grey(path: &Path, value: u8) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        image::GrayImage::from_pixel(4, 4, image::Luma([value]))
            .save(path)
            .expect("save");
    }

    fn save_rgb(path: &Path, value: [u8; 3]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        image::RgbImage::from_pixel(4, 4, image::Rgb(value))
            .save(path)
            .expect("save");
    }

    fn error_text<T>(result: Result<T, DataError>) -> String {
        match result {
            Ok(_) => panic!("should fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn class_trees_have_their_own_classes_one_grey_rule_and_no_shared_class() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        save_grey(&a.join("y/1.png"), 20);
        save_grey(&a.join("x/1.png"), 10);
        save_grey(&a.join("x/2.png"), 11);
        save_grey(&b.join("z/1.png"), 30);
        let sets = load_class_trees(&[&a, &b], 4).expect("grey trees");
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].class_names, ["x", "y"]);
        assert_eq!(sets[0].labels, [0, 0, 1]);
        assert_eq!(sets[1].class_names, ["z"]);
        assert_eq!(sets[1].labels, [0]);
        assert!(sets.iter().all(|s| s.shape.channels == 1));
        assert_eq!(sets[0].image(2), [20; 16]);

        // One colour image in the second tree makes both RGB.
        save_rgb(&b.join("w/1.png"), [1, 2, 3]);
        let sets = load_class_trees(&[&a, &b], 4).expect("mixed trees");
        assert!(sets.iter().all(|s| s.shape.channels == 3));
        assert_eq!(sets[0].image(0), [10; 48]);
        assert_eq!(sets[1].image(0), [[1; 16], [2; 16], [3; 16]].concat());

        save_grey(&b.join("x/1.png"), 40);
        let text = error_text(load_class_trees(&[&a, &b], 4));
        for part in [
            "class \"x\"",
            &a.join("x").display().to_string(),
            &b.join("x").display().to_string(),
        ] {
            assert!(text.contains(part), "{text:?} should mention {part:?}");
        }
        std::fs::remove_dir_all(b.join("x")).expect("rm");

        std::fs::create_dir_all(b.join("v")).expect("mkdir");
        let text = error_text(load_class_trees(&[&a, &b], 4));
        assert!(text.contains("empty class folder"), "{text}");
        assert!(
            text.contains(&format!("{}/<class>/", b.display())),
            "{text}"
        );

        let missing = dir.path().join("c");
        let text = error_text(load_class_trees(&[&a, &missing], 4));
        assert!(text.contains("no such folder"), "{text}");
    }

    #[test]
    fn load_folder_reads_test_classes_by_their_train_label() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = dir.path();
        save_grey(&r.join("train/a/1.png"), 10);
        save_rgb(&r.join("train/b/1.png"), [1, 2, 3]);
        save_grey(&r.join("test/b/1.png"), 50);
        let (train, test) = load_folder(r, 4).expect("folder");
        assert_eq!(train.class_names, ["a", "b"]);
        assert_eq!(test.class_names, ["a", "b"]);
        assert_eq!(
            (train.labels.as_slice(), test.labels.as_slice()),
            (&[0, 1][..], &[1][..])
        );
        assert_eq!((train.shape.channels, test.shape.channels), (3, 3));
        assert_eq!(test.image(0), [50; 48]);
        std::fs::create_dir_all(r.join("test/a")).expect("mkdir");
        let text = error_text(load_folder(r, 4));
        assert!(text.contains("empty class folder"), "{text}");
        assert!(text.contains(LAYOUT), "{text}");
    }
}
