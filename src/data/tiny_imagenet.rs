//! Reader for tiny-ImageNet in its published layout: classes from `wnids.txt`, names from
//! `words.txt`, training images in `train/<wnid>/images/`, and the labelled validation images
//! (`val/images/` with `val/val_annotations.txt`) as the test split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::cifar::read_bounded;
use super::dataset::{DataError, Dataset, ImageShape};
use super::image_file;

/// The folder the published archive unpacks to; a reader given its parent looks inside.
pub const FOLDER: &str = "tiny-imagenet-200";

/// What a tiny-ImageNet folder holds, for error messages.
pub const EXPECTED: &str = "wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt";

/// Images one set may hold, training and test together. The published set has 100 000 training
/// and 10 000 validation images; a tree with more is refused once listed, before any image is
/// decoded, so a wrong or hostile folder cannot keep the reader decoding or take all memory.
pub const MAX_IMAGES: usize = 120_000;

/// Bytes a text file of the set may hold: the published `words.txt`, the largest, has 2.6 MB
/// (every ImageNet synset, not only the 200 classes).
const MAX_TEXT_BYTES: u64 = 16 << 20;

/// An image file and its label.
type Labelled = (PathBuf, u32);

/// The folder holding `wnids.txt`: `dir` itself or its [`FOLDER`] subfolder.
fn resolve(dir: &Path) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(DataError::format(
            dir,
            format!(
                "no such folder; expected a folder with {EXPECTED} (or its {FOLDER}/ subfolder)"
            ),
        ));
    }
    for candidate in [dir.to_path_buf(), dir.join(FOLDER)] {
        if candidate.join("wnids.txt").is_file() {
            return Ok(candidate);
        }
    }
    Err(DataError::format(
        dir,
        format!("no wnids.txt here or in {FOLDER}/; expected {EXPECTED}"),
    ))
}

fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = read_bounded(path, MAX_TEXT_BYTES, "a tiny-ImageNet text file")?;
    String::from_utf8(bytes).map_err(|_| DataError::format(path, "not UTF-8 text"))
}

/// Whether `name` is one plain path component. Wnids and file names from the set's text files
/// become paths; `..` or a slash there would make the reader open files outside the set.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The wnids of `wnids.txt`, one per line in file order (the class order); blank lines ignored.
fn read_wnids(path: &Path) -> Result<Vec<String>, DataError> {
    let text = read_text(path)?;
    let mut wnids: Vec<String> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let wnid = line.trim();
        if wnid.is_empty() {
            continue;
        }
        let line_no = index + 1;
        if !is_plain_name(wnid) {
            return Err(DataError::format(
                path,
                format!(
                    "line {line_no}: {wnid:?} is not a WordNet id (a folder name such as n01443537)"
                ),
            ));
        }
        if wnids.iter().any(|w| w == wnid) {
            return Err(DataError::format(
                path,
                format!("line {line_no}: {wnid} is listed twice"),
            ));
        }
        wnids.push(wnid.to_owned());
    }
    if wnids.is_empty() {
        return Err(DataError::format(path, "lists no classes"));
    }
    Ok(wnids)
}

/// The class names: from `words.txt` (`wnid<TAB>name, synonym, …`), the text before the first
/// comma; the wnid itself where the file or its line is missing. Classes whose names read the
/// same get their wnid appended: every class needs its own name, or the labels of a saved run
/// could not be told apart.
fn class_names(path: &Path, wnids: &[String]) -> Result<Vec<String>, DataError> {
    let mut names: Vec<Option<String>> = vec![None; wnids.len()];
    if path.is_file() {
        let index: HashMap<&str, usize> = wnids
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i))
            .collect();
        let text = read_text(path)?;
        for line in text.lines() {
            let Some((wnid, words)) = line.split_once('\t') else {
                continue;
            };
            let Some(&class) = index.get(wnid.trim()) else {
                continue;
            };
            let name = words.split(',').next().unwrap_or_default().trim();
            if names[class].is_none() && !name.is_empty() {
                names[class] = Some(name.to_owned());
            }
        }
    }
    let names: Vec<String> = names
        .into_iter()
        .zip(wnids)
        .map(|(name, wnid)| name.unwrap_or_else(|| wnid.clone()))
        .collect();
    Ok(names
        .iter()
        .zip(wnids)
        .map(|(name, wnid)| {
            if names.iter().filter(|n| *n == name).count() > 1 {
                format!("{name} ({wnid})")
            } else {
                name.clone()
            }
        })
        .collect())
}

fn too_many(root: &Path, max_images: usize) -> DataError {
    DataError::format(
        root,
        format!(
            "more than {max_images} images, more than tiny-ImageNet holds; is this the right folder?"
        ),
    )
}

/// The training images of every class, class after class in wnid order, each class's files in
/// sorted name order (so the order, and every seeded run, does not depend on the file system).
/// At most `budget` images.
fn train_files(root: &Path, wnids: &[String], budget: usize) -> Result<Vec<Labelled>, DataError> {
    let mut files = Vec::new();
    for (label, wnid) in (0u32..).zip(wnids) {
        let dir = root.join("train").join(wnid).join("images");
        if !dir.is_dir() {
            return Err(DataError::format(
                &dir,
                format!("no such folder; class {wnid} of wnids.txt needs its training images here"),
            ));
        }
        let images = image_file::list(&dir, false)?;
        if images.is_empty() {
            return Err(DataError::format(
                &dir,
                format!("empty class {wnid}: no .JPEG images"),
            ));
        }
        if files.len() + images.len() > budget {
            return Err(too_many(root, budget));
        }
        files.extend(images.into_iter().map(|path| (path, label)));
    }
    Ok(files)
}

/// The validation images in the order of `val/val_annotations.txt` (`file<TAB>wnid<TAB>box…`),
/// labelled by their wnid. At most `budget` images (what `max_images` leaves after training).
fn val_files(
    root: &Path,
    wnids: &[String],
    budget: usize,
    max_images: usize,
) -> Result<Vec<Labelled>, DataError> {
    let path = root.join("val").join("val_annotations.txt");
    if !path.is_file() {
        return Err(DataError::format(
            &path,
            "missing; it labels the validation images, which are the test split",
        ));
    }
    let labels: HashMap<&str, u32> = wnids.iter().map(String::as_str).zip(0u32..).collect();
    let images = root.join("val").join("images");
    let mut files = Vec::new();
    for (index, line) in read_text(&path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let mut fields = line.split('\t').map(str::trim);
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(DataError::format(
                &path,
                format!("line {line_no}: expected file<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h"),
            ));
        };
        if !is_plain_name(file) {
            return Err(DataError::format(
                &path,
                format!("line {line_no}: {file:?} is not a file name in val/images"),
            ));
        }
        let Some(&label) = labels.get(wnid) else {
            return Err(DataError::format(
                &path,
                format!("line {line_no}: class {wnid:?} is not in wnids.txt"),
            ));
        };
        let image = images.join(file);
        if !image.is_file() {
            return Err(DataError::format(
                &image,
                format!("missing; val_annotations.txt names it on line {line_no}"),
            ));
        }
        if files.len() >= budget {
            return Err(too_many(root, max_images));
        }
        files.push((image, label));
    }
    if files.is_empty() {
        return Err(DataError::format(&path, "annotates no images"));
    }
    Ok(files)
}

/// Decodes `files` in parallel into one RGB CHW buffer, in their order. Of several unreadable
/// files the first is reported, so the error does not depend on thread timing.
fn decode(files: &[Labelled], side: u32, class_names: &[String]) -> Result<Dataset, DataError> {
    let image_len = 3 * side as usize * side as usize;
    let mut images = vec![0u8; files.len() * image_len];
    let first_error = images
        .par_chunks_mut(image_len)
        .zip(files.par_iter())
        .enumerate()
        .filter_map(|(i, (out, (path, _)))| {
            image_file::decode_into(path, side, out)
                .err()
                .map(|e| (i, e))
        })
        .min_by_key(|(i, _)| *i);
    if let Some((_, error)) = first_error {
        return Err(error);
    }
    Ok(Dataset {
        shape: ImageShape {
            channels: 3,
            height: side as usize,
            width: side as usize,
        },
        images,
        labels: files.iter().map(|(_, label)| *label).collect(),
        class_names: class_names.to_vec(),
    })
}

/// Loads tiny-ImageNet from `dir` or `dir/tiny-imagenet-200`: returns (train, test), the test
/// split being the labelled validation set (the published test images have no labels). Every
/// image becomes RGB (a few published ones are grey) at `image_size × image_size`.
pub fn load(dir: &Path, image_size: usize) -> Result<(Dataset, Dataset), DataError> {
    load_within(dir, image_size, MAX_IMAGES)
}

/// [`load`] with at most `max_images` images, training and test together (tests use a small
/// bound: a tree past the real one would take a test minutes to write).
fn load_within(
    dir: &Path,
    image_size: usize,
    max_images: usize,
) -> Result<(Dataset, Dataset), DataError> {
    let side = image_file::square_side(image_size)?;
    let root = resolve(dir)?;
    let wnids = read_wnids(&root.join("wnids.txt"))?;
    let names = class_names(&root.join("words.txt"), &wnids)?;
    let train_files = train_files(&root, &wnids, max_images)?;
    let val_budget = max_images - train_files.len();
    let val_files = val_files(&root, &wnids, val_budget, max_images)?;
    let train = decode(&train_files, side, &names)?;
    let test = decode(&val_files, side, &names)?;
    log::info!(
        "loaded tiny-ImageNet: {} training and {} test images ({} classes) from {}",
        train.len(),
        test.len(),
        names.len(),
        root.display()
    );
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_past_the_image_bound_is_refused_before_any_image_is_decoded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::write(root.join("wnids.txt"), "n1\nn2\n").expect("wnids");
        // Empty files: decoding any of them would fail, so the errors below show none was.
        for (wnid, count) in [("n1", 2), ("n2", 1)] {
            let images = root.join("train").join(wnid).join("images");
            std::fs::create_dir_all(&images).expect("mkdir");
            for i in 0..count {
                std::fs::write(images.join(format!("{i}.JPEG")), b"").expect("write");
            }
        }
        std::fs::create_dir_all(root.join("val/images")).expect("mkdir");
        let mut annotations = String::new();
        for i in 0..2 {
            std::fs::write(root.join(format!("val/images/v{i}.JPEG")), b"").expect("write");
            annotations.push_str(&format!("v{i}.JPEG\tn1\t0\t0\t1\t1\n"));
        }
        std::fs::write(root.join("val/val_annotations.txt"), annotations).expect("write");
        // 3 training images against 2; then 3 + 2 against 4, the bound reached in val.
        for max in [2, 4] {
            let error = load_within(root, 8, max).expect_err("too many").to_string();
            assert!(
                error.contains(&format!("more than {max} images")),
                "{max}: {error}"
            );
        }
        // Within the bound the listing passes and decoding is what fails.
        let error = load_within(root, 8, 5)
            .expect_err("empty files")
            .to_string();
        assert!(error.contains("unreadable image"), "{error}");
    }

    #[test]
    fn only_plain_names_become_paths() {
        for good in ["n01443537", "val_0.JPEG", "a b"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "/etc", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_come_from_words_before_the_first_comma_with_the_wnid_as_fallback() {
        let dir = tempfile::tempdir().expect("temp dir");
        let words = dir.path().join("words.txt");
        std::fs::write(
            &words,
            "n01443537\tgoldfish, Carassius auratus\nn0000\tunused\nn02\t  crane\nn03\tcrane, derrick\nn04\t\n",
        )
        .expect("write");
        let wnids: Vec<String> = ["n01443537", "n02", "n03", "n04", "n05"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            class_names(&words, &wnids).expect("names"),
            ["goldfish", "crane (n02)", "crane (n03)", "n04", "n05"]
        );
        assert_eq!(
            class_names(&dir.path().join("absent.txt"), &wnids[..2]).expect("fallback"),
            ["n01443537", "n02"]
        );
    }

    #[test]
    fn wnids_keep_file_order_and_refuse_paths_and_repeats() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wnids.txt");
        std::fs::write(&path, "n2\r\n\nn1\nn3\n").expect("write");
        assert_eq!(read_wnids(&path).expect("wnids"), ["n2", "n1", "n3"]);
        std::fs::write(&path, "n1\n../../etc\n").expect("write");
        let error = read_wnids(&path).expect_err("a path").to_string();
        assert!(
            error.contains("line 2") && error.contains("not a WordNet id"),
            "{error}"
        );
        std::fs::write(&path, "n1\nn2\nn1\n").expect("write");
        let error = read_wnids(&path).expect_err("a repeat").to_string();
        assert!(error.contains("line 3: n1 is listed twice"), "{error}");
        std::fs::write(&path, "\n\n").expect("write");
        let error = read_wnids(&path).expect_err("empty").to_string();
        assert!(error.contains("lists no classes"), "{error}");
    }
}
