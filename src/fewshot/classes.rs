//! Class-disjoint base / validation / novel splits for few-shot learning.
//!
//! A few-shot model is meta-trained on base classes and tested on novel classes it has never seen,
//! so the split is by class, not by image. For the built-in datasets a class's training and test
//! images are merged first and then go, all of them, to the one set the class belongs to (the
//! usual practice: CIFAR-FS and FC100 use all 600 images of each CIFAR-100 class); image folders
//! carry the split in their layout.

use std::path::Path;

use crate::data::folder;
use crate::data::{DataError, Dataset, DatasetKind, DatasetSource};

/// Which classes are base (meta-training), validation and novel (meta-test).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClassSplit {
    /// The dataset's usual split: image folders use their train/ val/ test/ folders; the 10-class sets (fashion-mini, fashion-mnist, mnist, cifar10) use classes 0–4 as base and 5–9 as novel; cifar100 uses CIFAR-FS; tiny-imagenet has no usual split (clear error asking for explicit lists).
    Usual,
    /// CIFAR-FS (Bertinetto et al., ICLR 2019): 64 / 16 / 20 CIFAR-100 classes.
    CifarFs,
    /// FC100 (Oreshkin et al., NeurIPS 2018, TADAM): CIFAR-100 split by superclass, 12 / 4 / 4 superclasses (60 / 20 / 20 classes).
    Fc100,
    /// Explicit class indices of the dataset (validation may be empty).
    Lists {
        base: Vec<u32>,
        validation: Vec<u32>,
        novel: Vec<u32>,
    },
}

/// The three class-disjoint sets: each keeps only its classes, relabelled 0..n in the order given, with `class_names` the original names of those classes.
#[derive(Clone, Debug)]
pub struct ClassSplits {
    pub base: Dataset,
    pub validation: Option<Dataset>,
    pub novel: Dataset,
}

// CIFAR-FS, as class names in CIFAR-100 label order (the order the classes are relabelled in).
// The published lists are R2-D2's split files data/cifar/splits/bertinetto/{train,val,test}.txt
// (github.com/bertinetto/r2d2); taken from their copy in Torchmeta,
// tristandeleu/pytorch-meta: torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json
// ([superclass, class] pairs; the same 64 / 16 / 20 classes as a second public copy of R2-D2's
// files in their original order).

/// CIFAR-FS meta-training classes (R2-D2's train.txt).
pub const CIFAR_FS_BASE: [&str; 64] = [
    "apple",
    "aquarium_fish",
    "bear",
    "bee",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "can",
    "castle",
    "caterpillar",
    "chair",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "forest",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lawn_mower",
    "lion",
    "lizard",
    "lobster",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "palm_tree",
    "pear",
    "pine_tree",
    "plate",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "seal",
    "shrew",
    "skunk",
    "skyscraper",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "tank",
    "tiger",
    "train",
    "trout",
    "tulip",
    "turtle",
    "willow_tree",
    "wolf",
];

/// CIFAR-FS meta-validation classes (R2-D2's val.txt).
pub const CIFAR_FS_VALIDATION: [&str; 16] = [
    "beaver",
    "beetle",
    "butterfly",
    "camel",
    "cattle",
    "crab",
    "crocodile",
    "flatfish",
    "lamp",
    "maple_tree",
    "motorcycle",
    "otter",
    "sea",
    "shark",
    "television",
    "tractor",
];

/// CIFAR-FS meta-test classes (R2-D2's test.txt).
pub const CIFAR_FS_NOVEL: [&str; 20] = [
    "baby",
    "bed",
    "bicycle",
    "chimpanzee",
    "fox",
    "leopard",
    "man",
    "pickup_truck",
    "plain",
    "poppy",
    "rocket",
    "rose",
    "snail",
    "sweet_pepper",
    "table",
    "telephone",
    "wardrobe",
    "whale",
    "woman",
    "worm",
];

// FC100 splits CIFAR-100 by superclass so that base and novel classes are also far apart in
// meaning. The superclasses of each split are TADAM's own:
// ServiceNow/TADAM (formerly ElementAI/TADAM): datasets/create_dataset_cifar100.py,
// `class_split = {'train': {1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19}, 'val': {8, 11, 13, 16},
// 'test': {0, 7, 12, 14}}` (CIFAR-100 coarse labels); the same as Torchmeta's
// tristandeleu/pytorch-meta: torchmeta/datasets/assets/cifar100/fc100/{train,test}.json and
// torchmeta/datasets/assets/cifar100/val.json. The classes are the five of each superclass in
// CIFAR-100 (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html), listed superclass by
// superclass in coarse-label order, each in fine-label order: the order they are relabelled in.

/// FC100 meta-training superclasses (CIFAR-100 coarse labels 1–6, 9, 10, 15, 17–19).
pub const FC100_BASE_SUPERCLASSES: [&str; 12] = [
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "reptiles",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

/// FC100 meta-validation superclasses (coarse labels 8, 11, 13, 16).
pub const FC100_VALIDATION_SUPERCLASSES: [&str; 4] = [
    "large_carnivores",
    "large_omnivores_and_herbivores",
    "non-insect_invertebrates",
    "small_mammals",
];

/// FC100 meta-test superclasses (coarse labels 0, 7, 12, 14).
pub const FC100_NOVEL_SUPERCLASSES: [&str; 4] =
    ["aquatic_mammals", "insects", "medium_mammals", "people"];

/// FC100 meta-training classes: the classes of [`FC100_BASE_SUPERCLASSES`].
pub const FC100_BASE: [&str; 60] = [
    // fish
    "aquarium_fish",
    "flatfish",
    "ray",
    "shark",
    "trout",
    // flowers
    "orchid",
    "poppy",
    "rose",
    "sunflower",
    "tulip",
    // food_containers
    "bottle",
    "bowl",
    "can",
    "cup",
    "plate",
    // fruit_and_vegetables
    "apple",
    "mushroom",
    "orange",
    "pear",
    "sweet_pepper",
    // household_electrical_devices
    "clock",
    "keyboard",
    "lamp",
    "telephone",
    "television",
    // household_furniture
    "bed",
    "chair",
    "couch",
    "table",
    "wardrobe",
    // large_man-made_outdoor_things
    "bridge",
    "castle",
    "house",
    "road",
    "skyscraper",
    // large_natural_outdoor_scenes
    "cloud",
    "forest",
    "mountain",
    "plain",
    "sea",
    // reptiles
    "crocodile",
    "dinosaur",
    "lizard",
    "snake",
    "turtle",
    // trees
    "maple_tree",
    "oak_tree",
    "palm_tree",
    "pine_tree",
    "willow_tree",
    // vehicles_1
    "bicycle",
    "bus",
    "motorcycle",
    "pickup_truck",
    "train",
    // vehicles_2
    "lawn_mower",
    "rocket",
    "streetcar",
    "tank",
    "tractor",
];

/// FC100 meta-validation classes: the classes of [`FC100_VALIDATION_SUPERCLASSES`].
pub const FC100_VALIDATION: [&str; 20] = [
    // large_carnivores
    "bear",
    "leopard",
    "lion",
    "tiger",
    "wolf",
    // large_omnivores_and_herbivores
    "camel",
    "cattle",
    "chimpanzee",
    "elephant",
    "kangaroo",
    // non-insect_invertebrates
    "crab",
    "lobster",
    "snail",
    "spider",
    "worm",
    // small_mammals
    "hamster",
    "mouse",
    "rabbit",
    "shrew",
    "squirrel",
];

/// FC100 meta-test classes: the classes of [`FC100_NOVEL_SUPERCLASSES`].
pub const FC100_NOVEL: [&str; 20] = [
    // aquatic_mammals
    "beaver",
    "dolphin",
    "otter",
    "seal",
    "whale",
    // insects
    "bee",
    "beetle",
    "butterfly",
    "caterpillar",
    "cockroach",
    // medium_mammals
    "fox",
    "porcupine",
    "possum",
    "raccoon",
    "skunk",
    // people
    "baby",
    "boy",
    "girl",
    "man",
    "woman",
];

/// The three class lists of a published split, by class name.
struct NamedSplit {
    name: &'static str,
    base: &'static [&'static str],
    validation: &'static [&'static str],
    novel: &'static [&'static str],
}

const CIFAR_FS: NamedSplit = NamedSplit {
    name: "CIFAR-FS",
    base: &CIFAR_FS_BASE,
    validation: &CIFAR_FS_VALIDATION,
    novel: &CIFAR_FS_NOVEL,
};

const FC100: NamedSplit = NamedSplit {
    name: "FC100",
    base: &FC100_BASE,
    validation: &FC100_VALIDATION,
    novel: &FC100_NOVEL,
};

/// The classes of the usual split of the 10-class sets: 0–4 base, 5–9 novel.
const TEN_CLASS_BASE: [u32; 5] = [0, 1, 2, 3, 4];
const TEN_CLASS_NOVEL: [u32; 5] = [5, 6, 7, 8, 9];

/// What a split comes to before any data is read: the layout of image folders, class indices, or
/// class names to be found among the names the data carries (a CIFAR-100 folder may name its
/// classes in fine_label_names.txt).
enum Plan<'a> {
    Folders,
    Indices {
        base: &'a [u32],
        validation: &'a [u32],
        novel: &'a [u32],
    },
    Named(&'static NamedSplit),
}

/// The three roles, for messages.
const ROLES: [&str; 3] = ["base", "validation", "novel"];

impl ClassSplit {
    /// What the split is, in words, for the docs and the command-line help.
    pub fn describe(&self, kind: DatasetKind) -> String {
        let cifar_fs = "CIFAR-FS (Bertinetto et al., 2019): 64 base, 16 validation and 20 novel \
                        CIFAR-100 classes";
        let needs_cifar100 = |text: &str| {
            if kind == DatasetKind::Cifar100 {
                text.to_string()
            } else {
                format!("{text} (cifar100 only)")
            }
        };
        match self {
            ClassSplit::Usual => match kind {
                DatasetKind::FashionMini
                | DatasetKind::FashionMnist
                | DatasetKind::Mnist
                | DatasetKind::Cifar10 => "base classes 0–4, novel 5–9".to_string(),
                DatasetKind::Cifar100 => cifar_fs.to_string(),
                DatasetKind::TinyImagenet => {
                    "none: tiny-imagenet has no usual class split; give explicit class lists"
                        .to_string()
                }
                DatasetKind::Folder => {
                    "base classes in ROOT/train, validation in ROOT/val (optional), novel in \
                     ROOT/test"
                        .to_string()
                }
            },
            ClassSplit::CifarFs => needs_cifar100(cifar_fs),
            ClassSplit::Fc100 => needs_cifar100(
                "FC100 (Oreshkin et al., 2018): CIFAR-100 by superclass, 12 / 4 / 4 superclasses \
                 (60 base, 20 validation and 20 novel classes)",
            ),
            ClassSplit::Lists {
                base,
                validation,
                novel,
            } => {
                let validation = if validation.is_empty() {
                    "no validation".to_string()
                } else {
                    format!("validation {}", index_ranges(validation))
                };
                let text = format!(
                    "base classes {}, {validation}, novel {}",
                    index_ranges(base),
                    index_ranges(novel)
                );
                if kind == DatasetKind::Folder {
                    format!("{text} (not for image folders: their folders are the split)")
                } else {
                    text
                }
            }
        }
    }

    /// How `kind` is divided by this split, refusing a split the dataset does not have before
    /// anything is read.
    fn plan(&self, kind: DatasetKind) -> Result<Plan<'_>, DataError> {
        let needs_cifar100 = |name: &str| {
            DataError::Invalid(format!(
                "the {name} class split is made of CIFAR-100 classes, so it needs the cifar100 \
                 dataset, not {kind}; for {kind} use the usual split{}",
                if kind == DatasetKind::Folder {
                    " (the train/, val/ and test/ folders)"
                } else {
                    " or explicit class lists"
                }
            ))
        };
        match (self, kind) {
            (ClassSplit::Usual, DatasetKind::Folder) => Ok(Plan::Folders),
            (
                ClassSplit::Usual,
                DatasetKind::FashionMini
                | DatasetKind::FashionMnist
                | DatasetKind::Mnist
                | DatasetKind::Cifar10,
            ) => Ok(Plan::Indices {
                base: &TEN_CLASS_BASE,
                validation: &[],
                novel: &TEN_CLASS_NOVEL,
            }),
            (ClassSplit::Usual | ClassSplit::CifarFs, DatasetKind::Cifar100) => {
                Ok(Plan::Named(&CIFAR_FS))
            }
            (ClassSplit::Usual, DatasetKind::TinyImagenet) => Err(DataError::Invalid(
                "tiny-imagenet has no usual few-shot class split: give explicit class lists \
                 (base, validation, novel) of class indices 0–199, numbered in the order of its \
                 wnids.txt"
                    .to_string(),
            )),
            (ClassSplit::CifarFs, _) => Err(needs_cifar100(CIFAR_FS.name)),
            (ClassSplit::Fc100, DatasetKind::Cifar100) => Ok(Plan::Named(&FC100)),
            (ClassSplit::Fc100, _) => Err(needs_cifar100(FC100.name)),
            (ClassSplit::Lists { .. }, DatasetKind::Folder) => Err(DataError::Invalid(
                "explicit class lists do not apply to image folders: their train/, val/ and \
                 test/ folders already are the class split (each class a folder in one of \
                 them); use the usual split"
                    .to_string(),
            )),
            (
                ClassSplit::Lists {
                    base,
                    validation,
                    novel,
                },
                _,
            ) => {
                // Emptiness is checked before the data is read; the indices need its class names.
                for (role, list) in [("base", base), ("novel", novel)] {
                    if list.is_empty() {
                        return Err(DataError::Invalid(format!(
                            "the {role} class list is empty: a few-shot split needs at least one \
                             {role} class"
                        )));
                    }
                }
                Ok(Plan::Indices {
                    base,
                    validation,
                    novel,
                })
            }
        }
    }
}

/// `indices` as text with runs shortened: `[0, 1, 2, 3, 7]` reads "0–3, 7".
fn index_ranges(indices: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j].checked_add(1) == Some(indices[j + 1]) {
            j += 1;
        }
        parts.push(if j - i >= 2 {
            format!("{}–{}", indices[i], indices[j])
        } else {
            indices[i..=j]
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// Checks three lists of class indices against the dataset's `class_names`: every index in range,
/// none repeated, none in two lists.
fn check_lists(
    lists: [&[u32]; 3],
    class_names: &[String],
    kind: DatasetKind,
) -> Result<(), DataError> {
    // The role each class was first listed in.
    let mut listed: Vec<Option<usize>> = vec![None; class_names.len()];
    for (role, list) in lists.iter().enumerate() {
        for &index in *list {
            let Some(slot) = listed.get_mut(index as usize) else {
                return Err(DataError::Invalid(format!(
                    "class index {index} in the {} list is out of range: the {kind} dataset has \
                     {} classes (0–{})",
                    ROLES[role],
                    class_names.len(),
                    class_names.len().saturating_sub(1)
                )));
            };
            let name = &class_names[index as usize];
            match *slot {
                Some(first) if first == role => {
                    return Err(DataError::Invalid(format!(
                        "class {name:?} (index {index}) is listed twice in the {} list",
                        ROLES[role]
                    )));
                }
                Some(first) => {
                    return Err(DataError::Invalid(format!(
                        "class {name:?} (index {index}) is in both the {} and the {} list: the \
                         class sets must be disjoint (novel classes are never seen in \
                         meta-training)",
                        ROLES[first], ROLES[role]
                    )));
                }
                None => *slot = Some(role),
            }
        }
    }
    Ok(())
}

/// The indices of `names` among the dataset's `class_names`.
fn find_names(
    split: &NamedSplit,
    names: &[&str],
    class_names: &[String],
) -> Result<Vec<u32>, DataError> {
    names
        .iter()
        .map(|name| {
            class_names
                .iter()
                .position(|c| c == name)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    DataError::Invalid(format!(
                        "{} uses the CIFAR-100 class {name:?}, which this CIFAR-100 does not \
                         name: its fine_label_names.txt is not CIFAR-100's",
                        split.name
                    ))
                })
        })
        .collect()
}

/// The images of `sets` (in order, each in file order) whose class is in `classes`, relabelled by
/// their class's position in `classes`, with the names of those classes. `classes` must be checked
/// (in range, no repeats); a class without any image is refused, naming it.
fn take_classes(
    sets: &[&Dataset],
    classes: &[u32],
    role: &str,
    kind: DatasetKind,
) -> Result<Dataset, DataError> {
    let Some(first) = sets.first() else {
        return Err(DataError::Invalid(format!(
            "the {kind} dataset has no images"
        )));
    };
    let class_names = &first.class_names;
    let mut relabel: Vec<Option<u32>> = vec![None; class_names.len()];
    for (new, &old) in classes.iter().enumerate() {
        if let Some(slot) = relabel.get_mut(old as usize) {
            *slot = Some(new as u32);
        }
    }
    let mut out = Dataset {
        shape: first.shape,
        images: Vec::new(),
        labels: Vec::new(),
        class_names: classes
            .iter()
            .filter_map(|&c| class_names.get(c as usize).cloned())
            .collect(),
    };
    let mut counts = vec![0usize; classes.len()];
    for set in sets {
        for (i, &label) in set.labels.iter().enumerate() {
            if let Some(Some(new)) = relabel.get(label as usize) {
                out.images.extend_from_slice(set.image(i));
                out.labels.push(*new);
                counts[*new as usize] += 1;
            }
        }
    }
    if let Some(empty) = counts.iter().position(|&n| n == 0) {
        let index = classes[empty];
        return Err(DataError::Invalid(format!(
            "the {role} class {:?} (index {index}) has no images in the {kind} dataset",
            out.class_names[empty]
        )));
    }
    Ok(out)
}

/// Loads the base, validation and novel sets of `source` as `split` divides its classes.
///
/// The built-in datasets merge their training and test images (training first, each in file
/// order) before dividing them by class; image folders read `ROOT/train/<class>/*` (base),
/// `ROOT/val/<class>/*` (validation, optional) and `ROOT/test/<class>/*` (novel), which must not
/// share a class.
pub fn load_class_splits(
    source: &DatasetSource,
    split: &ClassSplit,
) -> Result<ClassSplits, DataError> {
    let kind = source.kind;
    let (base, validation, novel, data) = match split.plan(kind)? {
        Plan::Folders => return load_folder_splits(source),
        Plan::Indices {
            base,
            validation,
            novel,
        } => (
            base.to_vec(),
            validation.to_vec(),
            novel.to_vec(),
            crate::data::load(source)?,
        ),
        Plan::Named(named) => {
            let data = crate::data::load(source)?;
            let names = &data.train.class_names;
            (
                find_names(named, named.base, names)?,
                find_names(named, named.validation, names)?,
                find_names(named, named.novel, names)?,
                data,
            )
        }
    };
    check_lists([&base, &validation, &novel], &data.train.class_names, kind)?;
    let sets = [&data.train, &data.test];
    let splits = ClassSplits {
        base: take_classes(&sets, &base, "base", kind)?,
        validation: if validation.is_empty() {
            None
        } else {
            Some(take_classes(&sets, &validation, "validation", kind)?)
        },
        novel: take_classes(&sets, &novel, "novel", kind)?,
    };
    log_splits(&splits, &split.describe(kind));
    Ok(splits)
}

/// The layout [`load_folder_splits`] reads, for its messages.
const FOLDER_LAYOUT: &str = "ROOT/train/<class>/*.png|jpg (base classes), optionally \
                             ROOT/val/<class>/*.png|jpg (validation) and ROOT/test/<class>/*.png|jpg \
                             (novel classes), no class in two of them";

/// The usual split of image folders: `ROOT/train` (base), `ROOT/val` when present (validation)
/// and `ROOT/test` (novel), each with its own classes, resized to `source.image_size`.
fn load_folder_splits(source: &DatasetSource) -> Result<ClassSplits, DataError> {
    let Some(root) = source.dir.as_deref() else {
        return Err(DataError::Invalid(format!(
            "the folder dataset needs a folder: pass --data-dir ROOT, where ROOT holds \
             {FOLDER_LAYOUT}"
        )));
    };
    let missing = |dir: &Path| DataError::Format {
        path: dir.to_path_buf(),
        message: format!("no such folder; expected {FOLDER_LAYOUT}"),
    };
    if !root.is_dir() {
        return Err(missing(root));
    }
    let (train, val, test) = (root.join("train"), root.join("val"), root.join("test"));
    for dir in [&train, &test] {
        if !dir.is_dir() {
            return Err(missing(dir));
        }
    }
    let has_validation = val.is_dir();
    let trees: Vec<&Path> = if has_validation {
        vec![&train, &val, &test]
    } else {
        vec![&train, &test]
    };
    // One dataset per tree, in order: the novel set last, the validation set (if any) before it.
    let mut sets = folder::load_class_trees(&trees, source.image_size)?;
    let novel = sets.pop();
    let validation = if has_validation { sets.pop() } else { None };
    let (Some(base), Some(novel)) = (sets.pop(), novel) else {
        return Err(DataError::Invalid(format!(
            "reading {} gave fewer sets than folders",
            root.display()
        )));
    };
    let splits = ClassSplits {
        base,
        validation,
        novel,
    };
    log_splits(&splits, &format!("the folders of {}", root.display()));
    Ok(splits)
}

fn log_splits(splits: &ClassSplits, how: &str) {
    let count = |set: &Dataset| format!("{} classes, {} images", set.num_classes(), set.len());
    log::info!(
        "few-shot classes, {how}: base {}; validation {}; novel {}",
        count(&splits.base),
        splits
            .validation
            .as_ref()
            .map_or_else(|| "none".to_string(), count),
        count(&splits.novel)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar::{
        self, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, Cifar100Labels,
    };
    use crate::data::idx::FASHION_CLASSES;

    /// The five classes of each CIFAR-100 superclass, in the order of [`CIFAR100_COARSE_CLASSES`]:
    /// CIFAR-100's published grouping (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html),
    /// the same as the [superclass, class] pairs of Torchmeta's CIFAR-FS files.
    const SUPERCLASS_MEMBERS: [[&str; 5]; 20] = [
        ["beaver", "dolphin", "otter", "seal", "whale"],
        ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
        ["orchid", "poppy", "rose", "sunflower", "tulip"],
        ["bottle", "bowl", "can", "cup", "plate"],
        ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
        ["clock", "keyboard", "lamp", "telephone", "television"],
        ["bed", "chair", "couch", "table", "wardrobe"],
        ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
        ["bear", "leopard", "lion", "tiger", "wolf"],
        ["bridge", "castle", "house", "road", "skyscraper"],
        ["cloud", "forest", "mountain", "plain", "sea"],
        ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
        ["fox", "porcupine", "possum", "raccoon", "skunk"],
        ["crab", "lobster", "snail", "spider", "worm"],
        ["baby", "boy", "girl", "man", "woman"],
        ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
        ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
        [
            "maple_tree",
            "oak_tree",
            "palm_tree",
            "pine_tree",
            "willow_tree",
        ],
        ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
        ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
    ];

    /// The coarse label of a CIFAR-100 class.
    fn superclass_of(class: &str) -> usize {
        SUPERCLASS_MEMBERS
            .iter()
            .position(|members| members.contains(&class))
            .unwrap_or_else(|| panic!("{class:?} is in no superclass"))
    }

    fn fine_index(class: &str) -> usize {
        CIFAR100_FINE_CLASSES
            .iter()
            .position(|c| *c == class)
            .unwrap_or_else(|| panic!("{class:?} is not a CIFAR-100 class"))
    }

    fn source(kind: DatasetKind, dir: Option<&Path>) -> DatasetSource {
        DatasetSource {
            kind,
            dir: dir.map(Path::to_path_buf),
            image_size: 4,
        }
    }

    fn load_error(source: &DatasetSource, split: &ClassSplit) -> String {
        match load_class_splits(source, split) {
            Ok(_) => panic!("{split:?} on {source:?} should fail"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_mentions(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(
                message.contains(part),
                "error {message:?} should mention {part:?}"
            );
        }
    }

    fn counts(set: &Dataset) -> Vec<usize> {
        let mut counts = vec![0; set.num_classes()];
        for &label in &set.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    fn lists(base: &[u32], validation: &[u32], novel: &[u32]) -> ClassSplit {
        ClassSplit::Lists {
            base: base.to_vec(),
            validation: validation.to_vec(),
            novel: novel.to_vec(),
        }
    }

    #[test]
    fn the_grouping_covers_every_cifar100_class_once() {
        let mut seen = [false; 100];
        for members in SUPERCLASS_MEMBERS {
            for class in members {
                let i = fine_index(class);
                assert!(!seen[i], "{class:?} twice");
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn cifar_fs_lists_are_disjoint_cifar100_classes_of_the_published_sizes() {
        assert_eq!(
            (
                CIFAR_FS_BASE.len(),
                CIFAR_FS_VALIDATION.len(),
                CIFAR_FS_NOVEL.len()
            ),
            (64, 16, 20)
        );
        let mut seen = [false; 100];
        for list in [&CIFAR_FS_BASE[..], &CIFAR_FS_VALIDATION, &CIFAR_FS_NOVEL] {
            let indices: Vec<usize> = list.iter().map(|c| fine_index(c)).collect();
            // Written in CIFAR-100 label order, the order they are relabelled in.
            assert!(indices.windows(2).all(|w| w[0] < w[1]), "{list:?}");
            for (class, i) in list.iter().zip(indices) {
                assert!(!seen[i], "{class:?} in two lists");
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "64 + 16 + 20 cover CIFAR-100");
        // Spot checks against R2-D2's files.
        assert!(CIFAR_FS_NOVEL.contains(&"whale") && CIFAR_FS_NOVEL.contains(&"bed"));
        assert!(CIFAR_FS_VALIDATION.contains(&"otter"));
        assert!(CIFAR_FS_BASE.contains(&"dolphin"));
    }

    #[test]
    fn fc100_lists_are_whole_superclasses_of_the_published_split() {
        assert_eq!(
            (FC100_BASE.len(), FC100_VALIDATION.len(), FC100_NOVEL.len()),
            (60, 20, 20)
        );
        let coarse = |names: &[&str]| -> Vec<usize> {
            names
                .iter()
                .map(|n| {
                    CIFAR100_COARSE_CLASSES
                        .iter()
                        .position(|c| c == n)
                        .unwrap_or_else(|| panic!("{n:?} is not a CIFAR-100 superclass"))
                })
                .collect()
        };
        // TADAM's class_split, by coarse label.
        let superclasses = [
            coarse(&FC100_BASE_SUPERCLASSES),
            coarse(&FC100_VALIDATION_SUPERCLASSES),
            coarse(&FC100_NOVEL_SUPERCLASSES),
        ];
        assert_eq!(superclasses[0], [1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19]);
        assert_eq!(superclasses[1], [8, 11, 13, 16]);
        assert_eq!(superclasses[2], [0, 7, 12, 14]);
        let mut seen = [false; 100];
        for (list, superclasses) in [&FC100_BASE[..], &FC100_VALIDATION, &FC100_NOVEL]
            .into_iter()
            .zip(&superclasses)
        {
            for class in list {
                let i = fine_index(class);
                assert!(!seen[i], "{class:?} twice");
                seen[i] = true;
                assert!(
                    superclasses.contains(&superclass_of(class)),
                    "{class:?} is of superclass {}, not in its split's",
                    CIFAR100_COARSE_CLASSES[superclass_of(class)]
                );
            }
            // Five classes per superclass and no repeats: each superclass is there whole.
            assert_eq!(list.len(), 5 * superclasses.len());
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn usual_split_of_fashion_mini_is_classes_0_to_4_then_5_to_9() {
        let splits = load_class_splits(&source(DatasetKind::FashionMini, None), &ClassSplit::Usual)
            .expect("usual split");
        let (train, test) = crate::data::embedded::load().expect("embedded set");
        assert_eq!(splits.base.class_names, FASHION_CLASSES[..5]);
        assert_eq!(splits.novel.class_names, FASHION_CLASSES[5..]);
        assert!(splits.validation.is_none());
        // 500 training and 100 test images of each class, merged.
        assert_eq!(counts(&splits.base), [600; 5]);
        assert_eq!(counts(&splits.novel), [600; 5]);
        assert_eq!(splits.novel.shape, train.shape);
        // Training images first, then test images, each in file order, labels moved down by 5.
        let novel_train: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] >= 5).collect();
        let novel_test: Vec<usize> = (0..test.len()).filter(|&i| test.labels[i] >= 5).collect();
        assert_eq!(novel_train.len(), 2500);
        for (k, &i) in novel_train.iter().enumerate().step_by(97) {
            assert_eq!(splits.novel.image(k), train.image(i));
            assert_eq!(splits.novel.labels[k], train.labels[i] - 5);
        }
        for (k, &i) in novel_test.iter().enumerate().step_by(31) {
            assert_eq!(splits.novel.image(2500 + k), test.image(i));
            assert_eq!(splits.novel.labels[2500 + k], test.labels[i] - 5);
        }
        let first_base = (0..train.len())
            .find(|&i| train.labels[i] < 5)
            .expect("a base image");
        assert_eq!(splits.base.image(0), train.image(first_base));
        assert_eq!(splits.base.labels[0], train.labels[first_base]);
    }

    #[test]
    fn explicit_lists_relabel_in_the_order_given() {
        let splits = load_class_splits(
            &source(DatasetKind::FashionMini, None),
            &lists(&[7, 1], &[3], &[9, 0]),
        )
        .expect("lists");
        assert_eq!(splits.base.class_names, ["Sneaker", "Trouser"]);
        assert_eq!(
            splits.validation.as_ref().map(|v| v.class_names.clone()),
            Some(vec!["Dress".to_string()])
        );
        assert_eq!(splits.novel.class_names, ["Ankle boot", "T-shirt/top"]);
        for set in [&splits.base, &splits.novel] {
            assert_eq!(counts(set), [600, 600]);
        }
        let (train, _) = crate::data::embedded::load().expect("embedded set");
        let expected: Vec<u32> = train
            .labels
            .iter()
            .filter_map(|&l| match l {
                7 => Some(0),
                1 => Some(1),
                _ => None,
            })
            .collect();
        assert_eq!(splits.base.labels[..1000], expected);
    }

    #[test]
    fn bad_lists_are_refused_saying_which_class() {
        let fashion = source(DatasetKind::FashionMini, None);
        let message = load_error(&fashion, &lists(&[0], &[], &[5, 10]));
        assert_mentions(
            &message,
            &[
                "class index 10",
                "novel list",
                "out of range",
                "10 classes (0–9)",
            ],
        );
        let message = load_error(&fashion, &lists(&[1, 2, 1], &[], &[5]));
        assert_mentions(
            &message,
            &["\"Trouser\" (index 1)", "listed twice in the base list"],
        );
        let message = load_error(&fashion, &lists(&[0, 1], &[3], &[5, 3]));
        assert_mentions(
            &message,
            &[
                "\"Dress\" (index 3)",
                "both the validation and the novel list",
                "disjoint",
            ],
        );
        let message = load_error(&fashion, &lists(&[], &[1], &[5]));
        assert_mentions(&message, &["base class list is empty"]);
        let message = load_error(&fashion, &lists(&[0], &[1], &[]));
        assert_mentions(&message, &["novel class list is empty"]);
    }

    #[test]
    fn splits_a_dataset_does_not_have_are_refused_before_reading_it() {
        // No folder is given: these would fail on the missing folder if anything were read.
        let message = load_error(&source(DatasetKind::Mnist, None), &ClassSplit::CifarFs);
        assert_mentions(&message, &["CIFAR-FS", "cifar100", "not mnist"]);
        let message = load_error(&source(DatasetKind::Cifar10, None), &ClassSplit::Fc100);
        assert_mentions(&message, &["FC100", "cifar100", "not cifar10"]);
        let message = load_error(&source(DatasetKind::TinyImagenet, None), &ClassSplit::Usual);
        assert_mentions(
            &message,
            &["tiny-imagenet has no usual", "explicit class lists"],
        );
        let message = load_error(&source(DatasetKind::Folder, None), &lists(&[0], &[], &[1]));
        assert_mentions(&message, &["image folders", "already are the class split"]);
        let message = load_error(&source(DatasetKind::Folder, None), &ClassSplit::CifarFs);
        assert_mentions(&message, &["cifar100", "not folder"]);
        let message = load_error(&source(DatasetKind::Folder, None), &ClassSplit::Usual);
        assert_mentions(&message, &["--data-dir ROOT", "ROOT/val/<class>"]);
    }

    fn save_grey(path: &Path, value: u8) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        image::GrayImage::from_pixel(4, 4, image::Luma([value]))
            .save(path)
            .expect("save");
    }

    /// ROOT/train/{ant: 2, bee: 1}, ROOT/test/{dog: 1, eel: 2}, grey images of distinct values.
    fn few_shot_folders() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = dir.path();
        save_grey(&r.join("train/ant/1.png"), 10);
        save_grey(&r.join("train/ant/2.png"), 20);
        save_grey(&r.join("train/bee/1.png"), 30);
        save_grey(&r.join("test/dog/1.png"), 40);
        save_grey(&r.join("test/eel/1.png"), 50);
        save_grey(&r.join("test/eel/2.png"), 60);
        dir
    }

    #[test]
    fn image_folders_split_by_their_train_val_and_test_folders() {
        let dir = few_shot_folders();
        let r = dir.path();
        let folder = source(DatasetKind::Folder, Some(r));
        let splits = load_class_splits(&folder, &ClassSplit::Usual).expect("without val");
        assert!(splits.validation.is_none());
        assert_eq!(splits.base.class_names, ["ant", "bee"]);
        assert_eq!(splits.base.labels, [0, 0, 1]);
        assert_eq!(splits.novel.class_names, ["dog", "eel"]);
        assert_eq!(splits.novel.labels, [0, 1, 1]);
        assert_eq!(splits.base.shape.channels, 1);
        assert_eq!(splits.base.image(1), [20; 16]);
        assert_eq!(splits.novel.image(2), [60; 16]);

        // One colour image in val/ makes all three sets RGB: one grey/RGB rule for the split.
        std::fs::create_dir_all(r.join("val/cat")).expect("mkdir");
        image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]))
            .save(r.join("val/cat/1.png"))
            .expect("save");
        let splits = load_class_splits(&folder, &ClassSplit::Usual).expect("with val");
        let validation = splits.validation.expect("val/ is read");
        assert_eq!(validation.class_names, ["cat"]);
        assert_eq!(validation.labels, [0]);
        assert_eq!(validation.image(0), [[1; 16], [2; 16], [3; 16]].concat());
        for set in [&splits.base, &validation, &splits.novel] {
            assert_eq!(set.shape.channels, 3);
        }
        assert_eq!(splits.base.image(0), [10; 48]);
        assert_eq!(splits.novel.labels, [0, 1, 1]);
    }

    #[test]
    fn a_class_in_two_folders_is_refused_naming_both() {
        let dir = few_shot_folders();
        let r = dir.path();
        let folder = source(DatasetKind::Folder, Some(r));
        save_grey(&r.join("test/ant/1.png"), 70);
        let message = load_error(&folder, &ClassSplit::Usual);
        assert_mentions(
            &message,
            &[
                "class \"ant\"",
                &r.join("train/ant").display().to_string(),
                &r.join("test/ant").display().to_string(),
                "must not share a class",
            ],
        );
        std::fs::remove_dir_all(r.join("test/ant")).expect("rm");
        save_grey(&r.join("val/eel/1.png"), 80);
        let message = load_error(&folder, &ClassSplit::Usual);
        assert_mentions(
            &message,
            &[
                "class \"eel\"",
                &r.join("val/eel").display().to_string(),
                &r.join("test/eel").display().to_string(),
            ],
        );
        std::fs::remove_dir_all(r.join("test")).expect("rm");
        let message = load_error(&folder, &ClassSplit::Usual);
        assert_mentions(
            &message,
            &[
                &r.join("test").display().to_string(),
                "no such folder",
                "ROOT/test/<class>",
            ],
        );
    }

    /// A small CIFAR-100 in its binary format: train.bin holds one image of each class, classes
    /// from 99 down to 0 so that file order is not class order, test.bin one of each from 0 up.
    /// Every pixel of an image is its fine label (+ 100 in test.bin); the coarse label byte is
    /// the class's superclass.
    fn small_cifar100() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = |fine: usize, shade: usize| {
            let mut r = vec![superclass_of(CIFAR100_FINE_CLASSES[fine]) as u8, fine as u8];
            r.extend(std::iter::repeat_n((fine + shade) as u8, 3072));
            r
        };
        let train: Vec<u8> = (0..100).rev().flat_map(|f| record(f, 0)).collect();
        let test: Vec<u8> = (0..100).flat_map(|f| record(f, 100)).collect();
        std::fs::write(dir.path().join("train.bin"), train).expect("write");
        std::fs::write(dir.path().join("test.bin"), test).expect("write");
        dir
    }

    /// The fine label each image of `set` was written with.
    fn written_classes(set: &Dataset) -> Vec<usize> {
        (0..set.len())
            .map(|i| set.image(i)[0] as usize % 100)
            .collect()
    }

    #[test]
    fn cifar_fs_and_fc100_divide_a_small_cifar100_by_class_name() {
        let dir = small_cifar100();
        let cifar100 = source(DatasetKind::Cifar100, Some(dir.path()));
        let splits = load_class_splits(&cifar100, &ClassSplit::CifarFs).expect("CIFAR-FS");
        let validation = splits
            .validation
            .as_ref()
            .expect("CIFAR-FS has validation classes");
        assert_eq!(splits.base.class_names, CIFAR_FS_BASE);
        assert_eq!(validation.class_names, CIFAR_FS_VALIDATION);
        assert_eq!(splits.novel.class_names, CIFAR_FS_NOVEL);
        assert_eq!(counts(&splits.base), [2; 64]);
        assert_eq!(counts(validation), [2; 16]);
        assert_eq!(counts(&splits.novel), [2; 20]);
        // Every image sits under its own class's new label.
        for set in [&splits.base, validation, &splits.novel] {
            for (i, class) in written_classes(set).into_iter().enumerate() {
                assert_eq!(
                    set.class_names[set.labels[i] as usize],
                    CIFAR100_FINE_CLASSES[class]
                );
            }
        }
        // Whale is a CIFAR-FS test class: its two images are novel.
        let whale = fine_index("whale");
        let whales: Vec<usize> = (0..splits.novel.len())
            .filter(|&i| splits.novel.labels[i] == 17)
            .collect();
        assert_eq!(splits.novel.class_names[17], "whale");
        assert_eq!(
            whales
                .iter()
                .map(|&i| splits.novel.image(i)[0])
                .collect::<Vec<_>>(),
            [whale as u8, whale as u8 + 100]
        );
        // Training images first (written 99 down to 0), then test images (0 up to 99).
        let mut expected: Vec<usize> = CIFAR_FS_NOVEL.iter().rev().map(|c| fine_index(c)).collect();
        expected.extend(CIFAR_FS_NOVEL.iter().map(|c| fine_index(c)));
        assert_eq!(written_classes(&splits.novel), expected);
        assert!(splits.novel.images[..20 * 3072].iter().all(|&v| v < 100));
        // The usual split of cifar100 is CIFAR-FS.
        let usual = load_class_splits(&cifar100, &ClassSplit::Usual).expect("usual");
        assert_eq!(usual.novel.images, splits.novel.images);
        assert_eq!(usual.base.labels, splits.base.labels);

        let splits = load_class_splits(&cifar100, &ClassSplit::Fc100).expect("FC100");
        let validation = splits
            .validation
            .as_ref()
            .expect("FC100 has validation classes");
        assert_eq!(splits.base.class_names, FC100_BASE);
        assert_eq!(validation.class_names, FC100_VALIDATION);
        assert_eq!(splits.novel.class_names, FC100_NOVEL);
        assert_eq!(counts(&splits.base), [2; 60]);
        assert_eq!(counts(validation), [2; 20]);
        assert_eq!(counts(&splits.novel), [2; 20]);
        // Bed is CIFAR-FS novel but FC100 base (household_furniture); whale stays novel.
        assert!(splits.base.class_names.iter().any(|c| c == "bed"));
        assert!(splits.novel.class_names.iter().any(|c| c == "whale"));
        assert!(validation.class_names.iter().any(|c| c == "bear"));
        // The reader's coarse labels put every image of each set in one of its superclasses.
        let (train, test) =
            cifar::load_cifar100(dir.path(), Cifar100Labels::Coarse).expect("coarse labels");
        let mut coarse_of = [usize::MAX; 100];
        for set in [&train, &test] {
            for i in 0..set.len() {
                coarse_of[set.image(i)[0] as usize % 100] = set.labels[i] as usize;
            }
        }
        for (set, superclasses) in [
            (&splits.base, &FC100_BASE_SUPERCLASSES[..]),
            (validation, &FC100_VALIDATION_SUPERCLASSES),
            (&splits.novel, &FC100_NOVEL_SUPERCLASSES),
        ] {
            for class in written_classes(set) {
                let superclass = &train.class_names[coarse_of[class]];
                assert!(
                    superclasses.contains(&superclass.as_str()),
                    "{} of {superclass}",
                    CIFAR100_FINE_CLASSES[class]
                );
            }
        }
    }

    #[test]
    fn cifar100_with_other_class_names_is_refused_naming_the_class() {
        let dir = small_cifar100();
        let names: String = (0..100).map(|i| format!("class{i}\n")).collect();
        std::fs::write(dir.path().join("fine_label_names.txt"), names).expect("write");
        let cifar100 = source(DatasetKind::Cifar100, Some(dir.path()));
        let message = load_error(&cifar100, &ClassSplit::CifarFs);
        assert_mentions(&message, &["CIFAR-FS", "\"apple\"", "fine_label_names.txt"]);
        // Explicit lists need no names.
        let splits = load_class_splits(&cifar100, &lists(&[99, 0], &[], &[50])).expect("lists");
        assert_eq!(splits.base.class_names, ["class99", "class0"]);
        // class99 is the first record of train.bin, class0 the last; then test.bin from 0 up.
        assert_eq!(splits.base.labels, [0, 1, 1, 0]);
    }

    #[test]
    fn class_split_reads_and_writes_its_config_names() {
        let cases = [
            (ClassSplit::Usual, r#""usual""#),
            (ClassSplit::CifarFs, r#""cifar-fs""#),
            (ClassSplit::Fc100, r#""fc100""#),
            (
                lists(&[0, 1], &[], &[5]),
                r#"{"lists":{"base":[0,1],"validation":[],"novel":[5]}}"#,
            ),
        ];
        for (split, json) in cases {
            assert_eq!(serde_json::to_string(&split).expect("write"), json);
            assert_eq!(
                serde_json::from_str::<ClassSplit>(json).expect("read"),
                split
            );
        }
        let extra = r#"{"lists":{"base":[0],"validation":[],"novel":[5],"other":[1]}}"#;
        assert!(serde_json::from_str::<ClassSplit>(extra).is_err());
        assert!(serde_json::from_str::<ClassSplit>(r#""cifarfs""#).is_err());
    }

    #[test]
    fn descriptions_say_which_classes_go_where() {
        assert_eq!(
            ClassSplit::Usual.describe(DatasetKind::FashionMini),
            "base classes 0–4, novel 5–9"
        );
        assert_eq!(
            lists(&[0, 1, 2, 3, 7], &[], &[5, 6]).describe(DatasetKind::Cifar10),
            "base classes 0–3, 7, no validation, novel 5, 6"
        );
        assert!(
            ClassSplit::Usual
                .describe(DatasetKind::Cifar100)
                .starts_with("CIFAR-FS")
        );
        assert!(
            ClassSplit::Fc100
                .describe(DatasetKind::Mnist)
                .ends_with("(cifar100 only)")
        );
        assert!(
            ClassSplit::Usual
                .describe(DatasetKind::TinyImagenet)
                .contains("explicit class lists")
        );
        assert!(
            ClassSplit::Usual
                .describe(DatasetKind::Folder)
                .contains("ROOT/val")
        );
    }
}
