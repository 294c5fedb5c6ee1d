//! The catalogue of known datasets: canonical URLs with mirrors, sizes, published checksums, and the
//! layout each set has once installed (the layout the readers in `data` open).

use std::path::{Path, PathBuf};

/// A published digest of a downloadable file, as lowercase or uppercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    Md5(String),
    Sha256(String),
}

impl Checksum {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "MD5",
            Checksum::Sha256(_) => "SHA-256",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Checksum::Md5(hex) | Checksum::Sha256(hex) => hex,
        }
    }
}

/// One file to download: every URL serves the same bytes; the first that works wins.
#[derive(Clone, Debug)]
pub struct RemoteFile {
    /// File name in the download folder (and, for [`Layout::Files`], in the installed set).
    pub name: String,
    /// Full URLs, tried in order (the canonical one first, then mirrors).
    pub urls: Vec<String>,
    /// Exact size in bytes where it is published.
    pub size: Option<u64>,
    /// Every listed digest must match.
    pub checksums: Vec<Checksum>,
}

/// How the downloaded files become the installed set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One gzip-compressed tar archive; its members land under the folder `root` (e.g.
    /// `cifar-10-batches-bin`), which is the folder the reader opens.
    TarGz { root: String },
    /// One ZIP archive (stored or deflated members); its members land under the folder `root`,
    /// which is the folder the reader opens. The set has too many files to list as members, so
    /// unpacking it (or copying an extracted copy) is bounded by `limits` instead.
    Zip { root: String, limits: Limits },
    /// The files are kept as downloaded (gzip IDX files) straight in the dataset folder.
    Files,
}

/// The most a set may unpack to, from the counts of its published archive with some room: a
/// bomb or a wrong archive stops at the first entry past them, before that entry is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries (files, folders, anything else) of the archive or folder.
    pub entries: usize,
    /// Bytes of all files together.
    pub bytes: u64,
}

/// A file the reader needs, relative to the data folder.
#[derive(Clone, Debug)]
pub struct Member {
    pub path: String,
    /// Exact size where it is known; a shorter file means a broken extraction.
    pub size: Option<u64>,
}

/// Everything the manager knows about one dataset. Tests build their own, pointing at a local server.
#[derive(Clone, Debug)]
pub struct DatasetSpec {
    /// Short name used on the command line and as the cache folder name (`cifar10`).
    pub name: String,
    /// Human name (`CIFAR-10`).
    pub title: String,
    pub files: Vec<RemoteFile>,
    pub layout: Layout,
    /// The files that make the set complete, relative to the data folder.
    pub members: Vec<Member>,
    /// Folders outside the cache where a system package may already have put the set (holding the
    /// members directly).
    pub system_dirs: Vec<PathBuf>,
}

impl DatasetSpec {
    /// The folder the readers open, given the folder the set was installed into.
    pub fn data_dir(&self, dataset_dir: &Path) -> PathBuf {
        match &self.layout {
            Layout::TarGz { root } | Layout::Zip { root, .. } => dataset_dir.join(root),
            Layout::Files => dataset_dir.to_path_buf(),
        }
    }

    /// The sum of the published file sizes, when all of them are known.
    pub fn download_size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether `name` names this set, ignoring case, `-` and `_` (`Fashion_MNIST` is `fashion-mnist`).
    pub fn matches(&self, name: &str) -> bool {
        normalise(name) == normalise(&self.name)
    }
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The datasets the manager can fetch, in the order `sla data list` shows them.
pub fn catalogue() -> Vec<DatasetSpec> {
    vec![
        cifar("cifar10"),
        cifar("cifar100"),
        idx_set(
            "mnist",
            "MNIST",
            &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ],
            &MNIST_FILES,
            &[],
        ),
        idx_set(
            "fashion-mnist",
            "Fashion-MNIST",
            &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
            ],
            &FASHION_MNIST_FILES,
            // Debian's `dataset-fashion-mnist`. Its files are re-compressed without the original
            // gzip header name, so they differ from the published checksums; content is the same.
            &["/usr/share/datasets/fashion-mnist"],
        ),
        idx_set(
            "kmnist",
            "Kuzushiji-MNIST",
            &[
                "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
                "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            ],
            &KMNIST_FILES,
            &[],
        ),
        tiny_imagenet(),
    ]
}

/// The catalogue entry called `name` (see [`DatasetSpec::matches`]).
pub fn find(name: &str) -> Option<DatasetSpec> {
    catalogue().into_iter().find(|spec| spec.matches(name))
}

/// The catalogue's names, for error messages and help.
pub fn names() -> Vec<String> {
    catalogue().into_iter().map(|spec| spec.name).collect()
}

/// File name, size, MD5, SHA-256 of one published IDX file.
type IdxFile = (&'static str, u64, &'static str, &'static str);

// The MD5s are the ones the dataset authors publish (and torchvision checks); the sizes and
// SHA-256s match the same files as recorded by several independent projects.
const MNIST_FILES: [IdxFile; 4] = [
    (
        "train-images-idx3-ubyte.gz",
        9_912_422,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        28_881,
        "d53e105ee54ea40749a09fcbcd1e9432",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        1_648_877,
        "9fb629c4189551a2d022fa330f9573f3",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        4_542,
        "ec29112dd5afa0611ce80d1b7f02629c",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];

const FASHION_MNIST_FILES: [IdxFile; 4] = [
    (
        "train-images-idx3-ubyte.gz",
        26_421_880,
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        29_515,
        "25c81989df183df01b3e8a0aad5dffbe",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        4_422_102,
        "bef4ecab320f06d8554ea6380940ec79",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        5_148,
        "bb300cfdad3c16e7a12a480ee83cd310",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
];

const KMNIST_FILES: [IdxFile; 4] = [
    (
        "train-images-idx3-ubyte.gz",
        18_165_135,
        "bdb82020997e1d708af4cf47b453dcf7",
        "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        29_497,
        "e144d726b3acfaa3e44228e80efcd344",
        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        3_041_136,
        "5c965bf0a639b31b8f53240b1b52f4d7",
        "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        5_120,
        "7320c461ea6c1c855c0b718fb2a4b134",
        "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
    ),
];

fn idx_set(
    name: &str,
    title: &str,
    mirrors: &[&str],
    files: &[IdxFile],
    system_dirs: &[&str],
) -> DatasetSpec {
    DatasetSpec {
        name: name.to_owned(),
        title: title.to_owned(),
        files: files
            .iter()
            .map(|&(file, size, md5, sha256)| RemoteFile {
                name: file.to_owned(),
                urls: mirrors.iter().map(|base| format!("{base}{file}")).collect(),
                size: Some(size),
                checksums: vec![
                    Checksum::Md5(md5.to_owned()),
                    Checksum::Sha256(sha256.to_owned()),
                ],
            })
            .collect(),
        layout: Layout::Files,
        // Sizes are left open: a system copy may be compressed differently.
        members: files
            .iter()
            .map(|&(file, ..)| Member {
                path: file.to_owned(),
                size: None,
            })
            .collect(),
        system_dirs: system_dirs.iter().map(PathBuf::from).collect(),
    }
}

/// Bytes of one CIFAR image (3 × 32 × 32).
const CIFAR_IMAGE: u64 = 3 * 32 * 32;

fn cifar(name: &str) -> DatasetSpec {
    let member = |path: &str, size: Option<u64>| Member {
        path: path.to_owned(),
        size,
    };
    if name == "cifar10" {
        // One label byte per record.
        let batch = Some(10_000 * (1 + CIFAR_IMAGE));
        let mut members: Vec<Member> = (1..=5)
            .map(|i| member(&format!("data_batch_{i}.bin"), batch))
            .collect();
        members.push(member("test_batch.bin", batch));
        members.push(member("batches.meta.txt", None));
        DatasetSpec {
            name: name.to_owned(),
            title: "CIFAR-10".to_owned(),
            files: vec![RemoteFile {
                name: "cifar-10-binary.tar.gz".to_owned(),
                urls: vec!["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz".to_owned()],
                size: Some(170_052_171),
                checksums: vec![
                    Checksum::Md5("c32a1d4ab5d03f1284b67883e8d87530".to_owned()),
                    Checksum::Sha256(
                        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
                            .to_owned(),
                    ),
                ],
            }],
            layout: Layout::TarGz {
                root: "cifar-10-batches-bin".to_owned(),
            },
            members,
            system_dirs: Vec::new(),
        }
    } else {
        // Coarse and fine label bytes per record.
        let record = 2 + CIFAR_IMAGE;
        DatasetSpec {
            name: name.to_owned(),
            title: "CIFAR-100".to_owned(),
            files: vec![RemoteFile {
                name: "cifar-100-binary.tar.gz".to_owned(),
                urls: vec!["https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz".to_owned()],
                size: Some(168_513_733),
                checksums: vec![
                    Checksum::Md5("03b5dce01913d631647c71ecec9e9cb8".to_owned()),
                    Checksum::Sha256(
                        "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec"
                            .to_owned(),
                    ),
                ],
            }],
            layout: Layout::TarGz {
                root: "cifar-100-binary".to_owned(),
            },
            members: vec![
                member("train.bin", Some(50_000 * record)),
                member("test.bin", Some(10_000 * record)),
                member("fine_label_names.txt", None),
                member("coarse_label_names.txt", None),
            ],
            system_dirs: Vec::new(),
        }
    }
}

/// tiny-ImageNet: the course's own archive, 248 100 043 bytes (≈ 237 MiB). Its authors publish no
/// checksum. The MD5 is the one recorded for this file by several independent projects (dataset
/// loaders that check it before unpacking), as are the size; no SHA-256 of it could be checked
/// offline, so none is listed rather than one made up.
fn tiny_imagenet() -> DatasetSpec {
    let member = |path: &str| Member {
        path: path.to_owned(),
        size: None,
    };
    DatasetSpec {
        name: "tiny-imagenet".to_owned(),
        title: "tiny-ImageNet".to_owned(),
        files: vec![RemoteFile {
            name: "tiny-imagenet-200.zip".to_owned(),
            urls: vec!["http://cs231n.stanford.edu/tiny-imagenet-200.zip".to_owned()],
            size: Some(248_100_043),
            checksums: vec![Checksum::Md5("90528d7ca1a48142e341f4ef8d21d0de".to_owned())],
        }],
        layout: Layout::Zip {
            root: crate::data::tiny_imagenet::FOLDER.to_owned(),
            limits: Limits {
                // 120 000 images (train, val, test), 200 box files, 3 text files and about 400
                // folders: 120 610 entries or so.
                entries: 130_000,
                // Nearly all of it is JPEG, which deflate hardly shrinks: the files unpack to
                // little more than the 237 MiB archive. Twice that leaves room and still stops a
                // bomb early.
                bytes: 512 << 20,
            },
        },
        // What the reader needs besides the image folders; a staging folder is only renamed into
        // place once the whole archive unpacked, so these mark a complete set.
        members: vec![
            member("wnids.txt"),
            member("words.txt"),
            member("val/val_annotations.txt"),
        ],
        system_dirs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_complete_and_well_formed() {
        for spec in catalogue() {
            assert!(!spec.files.is_empty(), "{}", spec.name);
            assert!(!spec.members.is_empty(), "{}", spec.name);
            for file in &spec.files {
                assert!(!file.urls.is_empty(), "{}", file.name);
                assert!(file.urls.iter().all(|u| u.ends_with(&file.name)));
                assert!(file.size.is_some(), "{}", file.name);
                // Every file has an MD5; a SHA-256 where one could be checked (not tiny-ImageNet's).
                let md5 = file
                    .checksums
                    .iter()
                    .find(|c| matches!(c, Checksum::Md5(_)));
                assert_eq!(md5.map(|c| c.hex().len()), Some(32), "{}", file.name);
                for c in &file.checksums {
                    let len = match c {
                        Checksum::Md5(_) => 32,
                        Checksum::Sha256(_) => 64,
                    };
                    assert_eq!(c.hex().len(), len, "{}", file.name);
                    assert!(c.hex().bytes().all(|b| b.is_ascii_hexdigit()));
                }
            }
        }
    }

    #[test]
    fn names_match_loosely_and_data_dirs_follow_the_layout() {
        let spec = find("Fashion_MNIST").expect("fashion-mnist is in the catalogue");
        assert_eq!(spec.name, "fashion-mnist");
        assert!(find("CIFAR-10").is_some_and(|s| s.name == "cifar10"));
        assert!(find("imagenet").is_none());
        let cifar = find("cifar100").expect("cifar100 is in the catalogue");
        assert_eq!(
            cifar.data_dir(Path::new("/c/cifar100")),
            PathBuf::from("/c/cifar100/cifar-100-binary")
        );
        assert_eq!(cifar.download_size(), Some(168_513_733));
        assert_eq!(
            spec.data_dir(Path::new("/c/fashion-mnist")),
            PathBuf::from("/c/fashion-mnist")
        );
        let tiny = find("Tiny_ImageNet").expect("tiny-imagenet is in the catalogue");
        assert_eq!(
            tiny.data_dir(Path::new("/c/tiny-imagenet")),
            PathBuf::from("/c/tiny-imagenet/tiny-imagenet-200")
        );
        assert_eq!(tiny.download_size(), Some(248_100_043));
    }
}
