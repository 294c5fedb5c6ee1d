//! tiny-ImageNet end to end on a small tree in the published layout: the reader (labels, names,
//! order, pixels, errors), the ZIP extractor's bounds, `sla data import` of the archive or the
//! extracted folder, and a one-epoch `sla train` on the imported copy.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use sla::data::{DataSplits, DatasetKind, DatasetSource, load};
use sla::download::{self, DownloadError, Limits};
use zip::write::SimpleFileOptions;

/// The class order of the tree: the file order of wnids.txt, deliberately not sorted.
const WNIDS: [&str; 3] = ["n03", "n01", "n02"];

/// Distinct solid colours; JPEG keeps a solid colour within a few levels.
const COLOURS: [[u8; 3]; 8] = [
    [200, 40, 40],
    [40, 200, 40],
    [40, 40, 200],
    [200, 200, 40],
    [40, 200, 200],
    [200, 40, 200],
    [150, 90, 30],
    [30, 90, 150],
];

/// The grey training image (stored as a one-channel JPEG) and its level.
const GREY_FILE: &str = "n02_2.JPEG";
const GREY: u8 = 90;

/// How far a decoded pixel of a solid-colour JPEG may be from the colour written (quantised DC
/// coefficients and the YCbCr round trip; measured at most 2 here).
const JPEG_TOLERANCE: i32 = 3;

/// Validation images in annotation order: (file, class index), not in file-name order.
const VAL: [(&str, usize); 4] = [
    ("val_3.JPEG", 1),
    ("val_0.JPEG", 0),
    ("val_2.JPEG", 2),
    ("val_1.JPEG", 1),
];

fn train_count(class: usize) -> usize {
    if class == 0 { 3 } else { 2 }
}

fn train_colour(class: usize, k: usize) -> [u8; 3] {
    COLOURS[(class * 3 + k) % COLOURS.len()]
}

fn val_colour(i: usize) -> [u8; 3] {
    COLOURS[(i + 5) % COLOURS.len()]
}

fn write_jpeg(path: &Path, colour: [u8; 3]) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    RgbImage::from_pixel(64, 64, Rgb(colour))
        .save_with_format(path, ImageFormat::Jpeg)
        .expect("write jpeg");
}

/// A tiny-ImageNet tree at `root/tiny-imagenet-200` in the published layout; returns its folder.
fn build_tree(root: &Path) -> PathBuf {
    let set = root.join("tiny-imagenet-200");
    fs::create_dir_all(&set).expect("mkdir");
    fs::write(set.join("wnids.txt"), WNIDS.join("\n") + "\n").expect("wnids");
    // n03 has no line: its name falls back to the wnid.
    fs::write(
        set.join("words.txt"),
        "n00\tentity\nn01\tgoldfish, Carassius auratus\nn02\tcrane, derrick\nn99\tother, thing\n",
    )
    .expect("words");
    for (class, wnid) in WNIDS.iter().enumerate() {
        let dir = set.join("train").join(wnid);
        // Written last first, so that only sorting gives the expected order.
        for k in (0..train_count(class)).rev() {
            write_jpeg(
                &dir.join("images").join(format!("{wnid}_{k}.JPEG")),
                train_colour(class, k),
            );
        }
        fs::write(dir.join(format!("{wnid}_boxes.txt")), "x\t0\t0\t63\t63\n").expect("boxes");
    }
    GrayImage::from_pixel(64, 64, Luma([GREY]))
        .save_with_format(
            set.join("train/n02/images").join(GREY_FILE),
            ImageFormat::Jpeg,
        )
        .expect("grey jpeg");
    let mut annotations = String::new();
    for (i, (file, class)) in VAL.iter().enumerate() {
        write_jpeg(&set.join("val/images").join(file), val_colour(i));
        annotations.push_str(&format!("{file}\t{}\t0\t0\t63\t63\n", WNIDS[*class]));
    }
    fs::write(set.join("val/val_annotations.txt"), annotations).expect("annotations");
    // The unlabelled test images, which the reader ignores.
    write_jpeg(&set.join("test/images/test_0.JPEG"), [0, 0, 0]);
    set
}

fn source(dir: &Path, image_size: usize) -> DatasetSource {
    DatasetSource {
        kind: DatasetKind::TinyImagenet,
        dir: Some(dir.to_path_buf()),
        image_size,
    }
}

fn expected_train() -> Vec<(u32, [u8; 3])> {
    let mut out = Vec::new();
    for (class, wnid) in WNIDS.iter().enumerate() {
        for k in 0..train_count(class) {
            out.push((class as u32, train_colour(class, k)));
        }
        if *wnid == "n02" {
            out.push((class as u32, [GREY; 3]));
        }
    }
    out
}

fn expected_test() -> Vec<(u32, [u8; 3])> {
    VAL.iter()
        .enumerate()
        .map(|(i, (_, class))| (*class as u32, val_colour(i)))
        .collect()
}

/// Every label as expected and every pixel within the JPEG tolerance of its expected colour.
fn assert_solid(set: &sla::data::Dataset, expected: &[(u32, [u8; 3])], side: usize) {
    assert_eq!(set.shape.channels, 3);
    assert_eq!((set.shape.height, set.shape.width), (side, side));
    assert_eq!(set.len(), expected.len());
    for (i, (label, colour)) in expected.iter().enumerate() {
        assert_eq!(set.labels[i], *label, "label of image {i}");
        let image = set.image(i);
        for (c, plane) in image.chunks_exact(side * side).enumerate() {
            for &v in plane {
                let diff = (i32::from(v) - i32::from(colour[c])).abs();
                assert!(
                    diff <= JPEG_TOLERANCE,
                    "image {i} channel {c}: {v} instead of {}",
                    colour[c]
                );
            }
        }
    }
}

fn assert_is_the_tree(splits: &DataSplits, side: usize) {
    let names = ["n03", "goldfish", "crane"];
    assert_eq!(splits.train.class_names, names);
    assert_eq!(splits.test.class_names, names);
    assert_solid(&splits.train, &expected_train(), side);
    assert_solid(&splits.test, &expected_test(), side);
}

#[test]
fn the_published_layout_loads_with_its_labels_names_order_and_colours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let set = build_tree(dir.path());
    let splits = load(&source(&set, 64)).expect("loads");
    assert_is_the_tree(&splits, 64);
    // The grey JPEG became three equal planes.
    let grey = splits.train.image(train_count(0) + train_count(1) + 2);
    assert!(grey.iter().all(|&v| v.abs_diff(GREY) <= 1), "{grey:?}");

    // The parent of tiny-imagenet-200/ is accepted, and images are resized to the image size
    // (a solid colour stays that colour).
    let splits = load(&source(dir.path(), 32)).expect("loads from the parent");
    assert_is_the_tree(&splits, 32);
}

fn load_error(dir: &Path) -> String {
    match load(&source(dir, 64)) {
        Ok(_) => panic!("{} should not load", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
}

#[test]
fn broken_trees_are_refused_naming_the_file_and_the_fault() {
    // Each case starts from a good tree and breaks one thing.
    type Break = fn(&Path) -> PathBuf;
    let cases: [(Break, &[&str]); 6] = [
        (
            |set| {
                fs::remove_file(set.join("wnids.txt")).expect("rm");
                set.to_path_buf()
            },
            &["no wnids.txt here or in tiny-imagenet-200/"],
        ),
        (
            |set| {
                let path = set.join("val/val_annotations.txt");
                let text = fs::read_to_string(&path).expect("read");
                fs::write(&path, text + "val_0.JPEG\tn77\t0\t0\t1\t1\n").expect("write");
                path
            },
            &["line 5: class \"n77\" is not in wnids.txt"],
        ),
        (
            |set| {
                let path = set.join("val/val_annotations.txt");
                let text = fs::read_to_string(&path).expect("read");
                fs::write(&path, text + "val_9.JPEG\tn01\t0\t0\t1\t1\n").expect("write");
                set.join("val/images/val_9.JPEG")
            },
            &["missing; val_annotations.txt names it on line 5"],
        ),
        (
            |set| {
                let path = set.join("train/n01/images/n01_1.JPEG");
                fs::write(&path, b"not a jpeg at all").expect("write");
                path
            },
            &["unreadable image"],
        ),
        (
            |set| {
                let dir = set.join("train/n02/images");
                for entry in fs::read_dir(&dir).expect("list") {
                    fs::remove_file(entry.expect("entry").path()).expect("rm");
                }
                dir
            },
            &["empty class n02: no .JPEG images"],
        ),
        (
            |set| {
                let dir = set.join("train/n01/images");
                fs::remove_dir_all(&dir).expect("rm");
                dir
            },
            &["no such folder; class n01 of wnids.txt"],
        ),
    ];
    for (index, (breaking, needles)) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let set = build_tree(dir.path());
        let named = breaking(&set);
        let message = load_error(&set);
        assert_mentions(&message, needles);
        assert!(
            message.starts_with(&named.display().to_string()),
            "case {index}: {message}"
        );
    }
}

/// A ZIP of `set` (its folder name first, as the published archive has it), deflated.
fn zip_tree(set: &Path) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let base = set.parent().expect("a parent");
    let mut stack = vec![set.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let name = dir
            .strip_prefix(base)
            .expect("inside")
            .to_str()
            .expect("utf-8");
        writer
            .add_directory(format!("{name}/"), options)
            .expect("dir");
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(base)
                    .expect("inside")
                    .to_str()
                    .expect("utf-8");
                writer.start_file(name, options).expect("file");
                writer
                    .write_all(&fs::read(&path).expect("read"))
                    .expect("write");
            }
        }
    }
    writer.finish().expect("finish").into_inner()
}

fn sla(args: &[&str], data_dir: Option<&Path>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sla"));
    command.args(args).env_remove(download::DATA_DIR_ENV);
    if let Some(dir) = data_dir {
        command.env(download::DATA_DIR_ENV, dir);
    }
    let out = command.output().expect("run sla");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn sla_data_import_takes_the_zip_the_folder_or_its_parent_and_sla_train_uses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let set = build_tree(&dir.path().join("extracted"));
    let archive = dir.path().join("tiny-imagenet-200.zip");
    fs::write(&archive, zip_tree(&set)).expect("write zip");

    // The real catalogue entry checks the published MD5, which this archive does not have.
    let cache = dir.path().join("cache");
    let import = |source: &Path, verify: bool| {
        let mut args = vec![
            "data",
            "--dir",
            path_str(&cache),
            "import",
            "tiny-imagenet",
            path_str(source),
        ];
        if !verify {
            args.push("--no-verify");
        }
        sla(&args, None)
    };
    let (ok, _, stderr) = import(&archive, true);
    assert!(!ok);
    assert_mentions(
        &stderr,
        &[
            "MD5 checksum mismatch",
            "90528d7ca1a48142e341f4ef8d21d0de",
            "--no-verify",
        ],
    );
    assert!(!cache.join("tiny-imagenet").exists(), "nothing installed");

    let installed = cache.join("tiny-imagenet/tiny-imagenet-200");
    for source in [
        archive.clone(),
        set.clone(),
        set.parent().expect("parent").to_path_buf(),
    ] {
        fs::remove_dir_all(&cache).ok();
        let (ok, stdout, stderr) = import(&source, false);
        assert!(ok, "{}: {stderr}", source.display());
        assert!(stdout.contains(path_str(&installed)), "{stdout}");
        let splits = load(&source_of(&installed)).expect("the installed copy loads");
        assert_is_the_tree(&splits, 64);
        assert!(cache.join("tiny-imagenet/.sla-complete").is_file());
    }

    // Without --data-dir, training finds the installed copy through the dataset cache.
    let run = dir.path().join("run");
    let (ok, stdout, stderr) = sla(
        &[
            "train",
            "--model",
            "cnn",
            "--dataset",
            "tiny-imagenet",
            "--image-size",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--out",
            path_str(&run),
        ],
        Some(&cache),
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("single"), "{stdout}");
    let config = fs::read_to_string(run.join("config.json")).expect("config");
    assert!(config.contains("\"tiny-imagenet\""), "{config}");
}

fn source_of(dir: &Path) -> DatasetSource {
    source(dir, 64)
}

/// A ZIP holding `files` (name, bytes) and the extra entries `extra` adds.
fn zip_of(
    files: &[(&str, &[u8])],
    extra: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>),
) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    for (name, bytes) in files {
        writer.start_file(*name, options).expect("file");
        writer.write_all(bytes).expect("write");
    }
    extra(&mut writer);
    writer.finish().expect("finish").into_inner()
}

fn unpack(archive: Vec<u8>, dest: &Path, limits: Limits) -> Result<usize, DownloadError> {
    download::unpack_zip(
        Cursor::new(archive),
        "test.zip",
        dest,
        limits,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
}

const ROOMY: Limits = Limits {
    entries: 100,
    bytes: 1 << 20,
};

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .expect("inside")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn zip_members_outside_the_folder_links_and_oversized_archives_are_refused() {
    let outer = tempfile::tempdir().expect("temp dir");
    let dest = outer.path().join("dest");
    fs::create_dir(&dest).expect("mkdir");

    let good = zip_of(&[("a/b.txt", b"bee"), ("c.txt", b"sea")], |_| {});
    assert_eq!(unpack(good, &dest, ROOMY).expect("unpacks"), 2);
    assert_eq!(files_under(&dest), ["a/b.txt", "c.txt"]);
    assert_eq!(fs::read(dest.join("a/b.txt")).expect("read"), b"bee");
    fs::remove_dir_all(&dest).expect("rm");
    fs::create_dir(&dest).expect("mkdir");

    let climbing = [
        zip_of(&[("ok.txt", b"1"), ("../evil.txt", b"2")], |_| {}),
        zip_of(&[("a/../../evil.txt", b"2")], |_| {}),
        zip_of(&[("a/../inside.txt", b"2")], |_| {}),
        zip_of(&[("/abs/evil.txt", b"2")], |_| {}),
    ];
    for archive in climbing {
        let error = unpack(archive, &dest, ROOMY).expect_err("outside");
        assert!(
            error.to_string().contains("points outside the folder"),
            "{error}"
        );
    }
    assert!(!outer.path().join("evil.txt").exists());

    let link = zip_of(&[], |w| {
        w.add_symlink("passwd", "/etc/passwd", SimpleFileOptions::default())
            .expect("symlink");
    });
    let error = unpack(link, &dest, ROOMY).expect_err("a link");
    assert!(
        error
            .to_string()
            .contains("member passwd is a symbolic link"),
        "{error}"
    );
    assert!(fs::symlink_metadata(dest.join("passwd")).is_err());

    fs::remove_dir_all(&dest).expect("rm");
    fs::create_dir(&dest).expect("mkdir");
    let many: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("{i}.txt"), vec![b'x'])).collect();
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let limits = Limits {
        entries: 4,
        bytes: 1 << 20,
    };
    let error = unpack(zip_of(&many, |_| {}), &dest, limits).expect_err("too many");
    assert!(
        error.to_string().contains("5 entries, more than the 4"),
        "{error}"
    );
    assert!(
        files_under(&dest).is_empty(),
        "refused before anything is written"
    );

    // A deflate bomb: 64 MiB of zeros in a few tens of kilobytes, against a 1 MiB bound.
    let zeros = vec![0u8; 64 << 20];
    let bomb = zip_of(&[("small.txt", b"fine"), ("bomb.bin", &zeros)], |_| {});
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let error = unpack(bomb, &dest, ROOMY).expect_err("a bomb");
    assert!(
        error.to_string().contains("more than the 1048576 bytes"),
        "{error}"
    );
    assert!(
        !dest.join("bomb.bin").exists(),
        "stopped before the entry was written"
    );

    let error = unpack(b"PK\x03\x04 not really".to_vec(), &dest, ROOMY).expect_err("broken");
    assert!(
        error
            .to_string()
            .starts_with("test.zip is not a valid archive"),
        "{error}"
    );
}

#[test]
fn importing_a_zip_with_a_climbing_member_or_a_folder_with_a_link_installs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("evil.zip");
    fs::write(
        &archive,
        zip_of(
            &[
                ("tiny-imagenet-200/wnids.txt", b"n1\n"),
                ("../escaped.txt", b"x"),
            ],
            |_| {},
        ),
    )
    .expect("write");
    let (ok, _, stderr) = sla(
        &[
            "data",
            "--dir",
            path_str(&cache),
            "import",
            "tiny-imagenet",
            path_str(&archive),
            "--no-verify",
        ],
        None,
    );
    assert!(!ok);
    assert_mentions(
        &stderr,
        &[
            "evil.zip is not a valid archive",
            "../escaped.txt points outside",
        ],
    );
    assert!(!dir.path().join("escaped.txt").exists());
    assert!(!cache.join("escaped.txt").exists());
    assert!(!cache.join("tiny-imagenet").exists());

    #[cfg(unix)]
    {
        let set = build_tree(&dir.path().join("extracted"));
        std::os::unix::fs::symlink("/etc/passwd", set.join("train/n01/images/link.JPEG"))
            .expect("symlink");
        let manager = download::Manager::new(Some(&cache)).expect("manager");
        let spec = download::spec("tiny-imagenet").expect("in the catalogue");
        let error = manager
            .import(&spec, &set, true, &mut |_| {})
            .expect_err("a link");
        assert!(
            error
                .to_string()
                .contains("link.JPEG: a symbolic link or special file"),
            "{error}"
        );
        assert!(!cache.join("tiny-imagenet").exists());
    }
}
