//! Dataset layer: every reader on real-format files, bad input, batching, augmentation and splits.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sla::data::{
    Augmentation, DataError, DataSplits, Dataset, DatasetKind, DatasetSource, ImageShape,
    Normalization, cifar, load, make_batch, split_validation, subset,
};

fn source(kind: DatasetKind, dir: &Path) -> DatasetSource {
    DatasetSource {
        kind,
        dir: Some(dir.to_path_buf()),
        image_size: 4,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Writes an IDX file, gzip-compressed (with a `.gz` suffix) when `gz`; returns its path.
fn write_idx(
    dir: &Path,
    name: &str,
    magic: u32,
    dims: &[u32],
    payload: &[u8],
    gz: bool,
) -> PathBuf {
    let bytes = idx_bytes(magic, dims, payload);
    let (path, bytes) = if gz {
        (dir.join(format!("{name}.gz")), gzip(&bytes))
    } else {
        (dir.join(name), bytes)
    };
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Pixel `p` of image `i` in the generated IDX sets.
fn idx_pixel(i: usize, p: usize) -> u8 {
    (i * 31 + p * 7 + 3) as u8
}

/// Writes an MNIST-style folder: `n_train`/`n_test` images of `h`×`w`, labels `i % 10`.
fn write_idx_set(dir: &Path, n_train: usize, n_test: usize, h: u32, w: u32, gz: bool) {
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let pixels: Vec<u8> = (0..n)
            .flat_map(|i| (0..(h * w) as usize).map(move |p| idx_pixel(i, p)))
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            dir,
            &format!("{prefix}-images-idx3-ubyte"),
            0x803,
            &[n as u32, h, w],
            &pixels,
            gz,
        );
        write_idx(
            dir,
            &format!("{prefix}-labels-idx1-ubyte"),
            0x801,
            &[n as u32],
            &labels,
            gz,
        );
    }
}

fn check_idx_set(splits: &DataSplits, n_train: usize, n_test: usize, h: usize, w: usize) {
    for (ds, n) in [(&splits.train, n_train), (&splits.test, n_test)] {
        assert_eq!(
            ds.shape,
            ImageShape {
                channels: 1,
                height: h,
                width: w
            }
        );
        assert_eq!(ds.len(), n);
        assert_eq!(
            ds.class_names,
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        );
        for i in 0..n {
            assert_eq!(ds.labels[i], (i % 10) as u32);
            let expected: Vec<u8> = (0..h * w).map(|p| idx_pixel(i, p)).collect();
            assert_eq!(ds.image(i), expected.as_slice(), "image {i}");
        }
    }
}

#[test]
fn idx_plain_and_gzip_load_pixel_exact() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_idx_set(dir.path(), 13, 4, 3, 5, gz);
        let splits = load(&source(DatasetKind::Mnist, dir.path())).unwrap();
        check_idx_set(&splits, 13, 4, 3, 5);
    }
}

#[test]
fn idx_accepts_dotted_names_and_mixed_compression() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 6, 3, 2, 2, false);
    std::fs::rename(
        dir.path().join("train-images-idx3-ubyte"),
        dir.path().join("train-images.idx3-ubyte"),
    )
    .unwrap();
    let labels = std::fs::read(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    let splits = load(&source(DatasetKind::Mnist, dir.path())).unwrap();
    check_idx_set(&splits, 6, 3, 2, 2);
}

fn gunzip(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut out,
    )
    .unwrap();
    out
}

const DEBIAN: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn debian_fashion_mnist_loads_by_default() {
    let splits = load(&DatasetSource {
        kind: DatasetKind::FashionMnist,
        dir: None,
        image_size: 0,
    })
    .unwrap();
    let shape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    assert_eq!(splits.train.shape, shape);
    assert_eq!(splits.test.shape, shape);
    assert_eq!(splits.train.len(), 60000);
    assert_eq!(splits.test.len(), 10000);
    assert_eq!(splits.train.num_classes(), 10);
    assert_eq!(splits.train.class_names[0], "T-shirt/top");
    assert_eq!(splits.train.class_names[9], "Ankle boot");
    // Independent read of the raw bytes: labels start at byte 8, pixels at byte 16.
    let labels = gunzip(&format!("{DEBIAN}/train-labels-idx1-ubyte.gz"));
    let first: Vec<u32> = labels[8..28].iter().map(|&b| u32::from(b)).collect();
    assert_eq!(&splits.train.labels[..20], first.as_slice());
    // The well-known start of the training labels: ankle boot, T-shirt, T-shirt, dress.
    assert_eq!(&splits.train.labels[..4], &[9, 0, 0, 3]);
    let test_labels = gunzip(&format!("{DEBIAN}/t10k-labels-idx1-ubyte.gz"));
    assert_eq!(splits.test.labels[9999], u32::from(test_labels[8 + 9999]));
    let images = gunzip(&format!("{DEBIAN}/train-images-idx3-ubyte.gz"));
    assert_eq!(splits.train.image(0), &images[16..16 + 784]);
    assert_eq!(splits.train.image(59999), &images[16 + 59999 * 784..]);
}

#[test]
fn embedded_set_is_the_first_images_of_each_class() {
    let splits = load(&DatasetSource::default()).unwrap();
    assert_eq!(splits.train.num_classes(), 10);
    for (ds, per_class) in [(&splits.train, 500), (&splits.test, 100)] {
        let mut counts = [0usize; 10];
        for &l in &ds.labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
        assert_eq!(ds.shape.image_len(), 784);
    }
    // Rebuild the subset from the Debian files: the first 500 / 100 of each class, in order.
    let full = load(&DatasetSource {
        kind: DatasetKind::FashionMnist,
        dir: Some(DEBIAN.into()),
        image_size: 0,
    })
    .unwrap();
    for (mini, full, per_class) in [
        (&splits.train, &full.train, 500),
        (&splits.test, &full.test, 100),
    ] {
        let mut taken = [0usize; 10];
        let mut expected = Vec::new();
        for (i, &l) in full.labels.iter().enumerate() {
            if taken[l as usize] < per_class {
                taken[l as usize] += 1;
                expected.push(i);
            }
        }
        assert_eq!(expected.len(), mini.len());
        for (j, &i) in expected.iter().enumerate() {
            assert_eq!(mini.labels[j], full.labels[i]);
            assert_eq!(
                mini.image(j),
                full.image(i),
                "embedded image {j} = full image {i}"
            );
        }
    }
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mini");
    let total: u64 = std::fs::read_dir(&assets)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 4 * 1024 * 1024, "assets take {total} bytes");
    assert_eq!(
        sla::data::embedded::EMBEDDED_BYTES as u64
            + std::fs::metadata(assets.join("README.md")).unwrap().len(),
        total
    );
}

/// CIFAR pixel `p` (0..3072, CHW) of record `r` in file `f`.
fn cifar_pixel(f: usize, r: usize, p: usize) -> u8 {
    (f * 53 + r * 17 + p * 5 + p / 1024) as u8
}

fn cifar_records(f: usize, labels: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (r, l) in labels.iter().enumerate() {
        out.extend_from_slice(l);
        out.extend((0..3072).map(|p| cifar_pixel(f, r, p)));
    }
    out
}

#[test]
fn cifar10_loads_pixel_and_label_exact_from_its_subfolder() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    for f in 0..5 {
        let labels: Vec<[u8; 1]> = (0..f + 1).map(|r| [((f + r) % 10) as u8]).collect();
        let refs: Vec<&[u8]> = labels.iter().map(|l| l.as_slice()).collect();
        std::fs::write(
            dir.join(format!("data_batch_{}.bin", f + 1)),
            cifar_records(f, &refs),
        )
        .unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_records(7, &[&[9], &[4]])).unwrap();
    let names = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
    let splits = load(&source(DatasetKind::Cifar10, root.path())).unwrap();
    assert_eq!(splits.train.shape, cifar::SHAPE);
    assert_eq!(splits.train.len(), 15);
    assert_eq!(
        splits.train.class_names,
        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    );
    let mut i = 0;
    for f in 0..5 {
        for r in 0..f + 1 {
            assert_eq!(splits.train.labels[i], ((f + r) % 10) as u32);
            let expected: Vec<u8> = (0..3072).map(|p| cifar_pixel(f, r, p)).collect();
            assert_eq!(splits.train.image(i), expected.as_slice());
            i += 1;
        }
    }
    assert_eq!(splits.test.labels, [9, 4]);
    // CHW as in the format: green (plane 1) row 2 column 3 of the second test image through a batch.
    let (x, y) = make_batch(
        &splits.test,
        &[1],
        &Augmentation::none(),
        &Normalization::uniform(0.0, 1.0, 3),
        &mut ChaCha8Rng::seed_from_u64(0),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(x.dims(), &[1, 3, 32, 32]);
    let v: f32 = x
        .get(0)
        .unwrap()
        .get(1)
        .unwrap()
        .get(2)
        .unwrap()
        .get(3)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(v, f32::from(cifar_pixel(7, 1, 1024 + 2 * 32 + 3)) / 255.0);
    assert_eq!(y.to_vec1::<u32>().unwrap(), [4]);
}

#[test]
fn cifar10_folder_itself_without_names_uses_default_names() {
    let dir = tempfile::tempdir().unwrap();
    for f in 1..=5 {
        std::fs::write(
            dir.path().join(format!("data_batch_{f}.bin")),
            cifar_records(f, &[&[1]]),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("test_batch.bin"), cifar_records(0, &[&[0]])).unwrap();
    let splits = load(&source(DatasetKind::Cifar10, dir.path())).unwrap();
    assert_eq!(splits.train.len(), 5);
    assert_eq!(splits.train.class_names[0], "airplane");
    assert_eq!(splits.train.class_names[9], "truck");
}

#[test]
fn cifar100_loads_fine_and_coarse_labels() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar-100-binary");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("train.bin"),
        cifar_records(1, &[&[3, 99], &[19, 0], &[0, 42]]),
    )
    .unwrap();
    std::fs::write(dir.join("test.bin"), cifar_records(2, &[&[7, 55]])).unwrap();
    let fine_names: String = (0..100).map(|i| format!("fine{i}\n")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), fine_names).unwrap();
    let splits = load(&source(DatasetKind::Cifar100, root.path())).unwrap();
    assert_eq!(splits.train.labels, [99, 0, 42]);
    assert_eq!(splits.test.labels, [55]);
    assert_eq!(splits.train.num_classes(), 100);
    assert_eq!(splits.train.class_names[42], "fine42");
    for r in 0..3 {
        let expected: Vec<u8> = (0..3072).map(|p| cifar_pixel(1, r, p)).collect();
        assert_eq!(splits.train.image(r), expected.as_slice());
    }
    let (train, test) = cifar::load_cifar100(&dir, cifar::Cifar100Labels::Coarse).unwrap();
    assert_eq!(train.labels, [3, 19, 0]);
    assert_eq!(test.labels, [7]);
    assert_eq!(train.class_names.len(), 20);
    assert_eq!(train.class_names[19], "vehicles_2");
    assert_eq!(cifar::CIFAR100_FINE_CLASSES.len(), 100);
}

fn save(path: &Path, image: image::DynamicImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save(path).unwrap();
}

fn grey(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> image::DynamicImage {
    image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([f(x, y)])
    }))
}

fn rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y))))
}

#[test]
fn grey_image_folder_loads_resized_with_sorted_classes() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let pattern = |x: u32, y: u32| (x * 10 + y * 50) as u8;
    save(&r.join("train/cat/b.png"), grey(4, 4, pattern));
    save(&r.join("train/cat/a.png"), grey(8, 6, |_, _| 200));
    save(&r.join("train/ant/x.jpg"), grey(5, 5, |_, _| 90));
    std::fs::write(r.join("train/ant/notes.txt"), "not an image").unwrap();
    save(&r.join("test/cat/c.png"), grey(4, 4, pattern));
    let splits = load(&source(DatasetKind::Folder, r)).unwrap();
    assert_eq!(splits.train.class_names, ["ant", "cat"]);
    assert_eq!(
        splits.train.shape,
        ImageShape {
            channels: 1,
            height: 4,
            width: 4
        }
    );
    assert_eq!(splits.train.labels, [0, 1, 1]);
    assert_eq!(splits.test.labels, [1]);
    // jpeg is lossy: a flat grey stays within a step or two.
    assert!(
        splits.train.image(0).iter().all(|&v| v.abs_diff(90) <= 2),
        "{:?}",
        splits.train.image(0)
    );
    // a.png was 8×6 of a flat 200: resizing keeps a flat image flat.
    assert_eq!(splits.train.image(1), &[200; 16]);
    // b.png is already 4×4: stored pixel for pixel, row-major.
    let expected: Vec<u8> = (0..4)
        .flat_map(|y| (0..4).map(move |x| pattern(x, y)))
        .collect();
    assert_eq!(splits.train.image(2), expected.as_slice());
    assert_eq!(splits.test.image(0), expected.as_slice());
}

#[test]
fn one_colour_image_makes_the_folder_rgb() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    save(&r.join("train/a/1.png"), grey(4, 4, |x, _| x as u8));
    save(
        &r.join("train/b/1.png"),
        rgb(4, 4, |x, y| [x as u8, y as u8, 7]),
    );
    save(&r.join("test/b/1.jpg"), rgb(16, 16, |_, _| [250, 10, 120]));
    let splits = load(&source(DatasetKind::Folder, r)).unwrap();
    assert_eq!(splits.train.shape.channels, 3);
    // The grey image is repeated in all three planes.
    let row: Vec<u8> = (0..4).flat_map(|_| 0..4u8).collect();
    assert_eq!(
        splits.train.image(0),
        [row.clone(), row.clone(), row].concat().as_slice()
    );
    let red: Vec<u8> = (0..4).flat_map(|_| 0..4u8).collect();
    let green: Vec<u8> = (0..4u8).flat_map(|y| [y; 4]).collect();
    assert_eq!(
        splits.train.image(1),
        [red, green, vec![7; 16]].concat().as_slice()
    );
    let test = splits.test.image(0);
    for (c, want) in [250u8, 10, 120].iter().enumerate() {
        assert!(
            test[c * 16..(c + 1) * 16]
                .iter()
                .all(|v| v.abs_diff(*want) <= 4),
            "{test:?}"
        );
    }
}

/// Loads and returns the error message, failing the test if the load succeeds.
fn load_error(source: &DatasetSource) -> String {
    match load(source) {
        Ok(_) => panic!("loading {source:?} should fail"),
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

#[test]
fn bad_idx_files_are_named_in_errors() {
    // Truncated image data.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, false);
    let path = dir.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "truncated",
            "36 data bytes",
            "31",
        ],
    );
    // A file shorter than its header.
    std::fs::write(&path, &bytes[..10]).unwrap();
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(&msg, &[&path.display().to_string(), "truncated", "header"]);

    // Truncated gzip stream.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, true);
    let path = dir.path().join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[&path.display().to_string(), "corrupt or truncated gzip"],
    );

    // Wrong magic number: a label file where images belong.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, false);
    let path = dir.path().join("train-images-idx3-ubyte");
    std::fs::copy(dir.path().join("train-labels-idx1-ubyte"), &path).unwrap();
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "wrong magic number 0x00000801",
            "0x00000803",
        ],
    );

    // Label out of range.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, false);
    let path = write_idx(
        dir.path(),
        "t10k-labels-idx1-ubyte",
        0x801,
        &[2],
        &[3, 10],
        false,
    );
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "label 10 of record 1 is out of range",
            "10 classes",
        ],
    );

    // Image size mismatch between the splits.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, false);
    let path = write_idx(
        dir.path(),
        "t10k-images-idx3-ubyte",
        0x803,
        &[2, 2, 2],
        &[0; 8],
        false,
    );
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "image size mismatch",
            "2x2",
            "3x3",
        ],
    );

    // Image and label counts disagree.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, false);
    let path = write_idx(
        dir.path(),
        "train-labels-idx1-ubyte",
        0x801,
        &[3],
        &[1, 2, 3],
        false,
    );
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "holds 4 images",
            &path.display().to_string(),
            "3 labels",
        ],
    );

    // A missing file.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 4, 2, 3, 3, false);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let msg = load_error(&source(DatasetKind::Mnist, dir.path()));
    assert_mentions(
        &msg,
        &[
            &dir.path().display().to_string(),
            "no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz",
        ],
    );
}

#[test]
fn missing_folders_say_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    for (kind, expected) in [
        (DatasetKind::FashionMnist, "train-images-idx3-ubyte"),
        (DatasetKind::Mnist, "t10k-labels-idx1-ubyte"),
        (DatasetKind::Cifar10, "data_batch_1.bin"),
        (DatasetKind::Cifar100, "train.bin"),
        (DatasetKind::TinyImagenet, "wnids.txt"),
        (DatasetKind::Folder, "ROOT/train/<class>/*.png|jpg"),
    ] {
        let msg = load_error(&source(kind, &missing));
        assert_mentions(
            &msg,
            &[&missing.display().to_string(), "no such folder", expected],
        );
    }
    for kind in [
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::TinyImagenet,
        DatasetKind::Folder,
    ] {
        let msg = load_error(&DatasetSource {
            kind,
            dir: None,
            image_size: 32,
        });
        assert_mentions(&msg, &[kind.name(), "--data-dir"]);
    }
    // A folder that exists but holds no CIFAR files.
    let msg = load_error(&source(DatasetKind::Cifar10, dir.path()));
    assert_mentions(
        &msg,
        &[
            &dir.path().display().to_string(),
            "no test_batch.bin",
            "cifar-10-batches-bin",
        ],
    );
    // Image folders need both splits.
    std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
    let msg = load_error(&source(DatasetKind::Folder, dir.path()));
    assert_mentions(
        &msg,
        &[
            &dir.path().join("test").display().to_string(),
            "no such folder",
        ],
    );
}

#[test]
fn bad_cifar_files_are_named_in_errors() {
    let make = || {
        let dir = tempfile::tempdir().unwrap();
        for f in 1..=5 {
            std::fs::write(
                dir.path().join(format!("data_batch_{f}.bin")),
                cifar_records(f, &[&[1], &[2]]),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("test_batch.bin"), cifar_records(0, &[&[0]])).unwrap();
        dir
    };
    let dir = make();
    let path = dir.path().join("data_batch_3.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let msg = load_error(&source(DatasetKind::Cifar10, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "truncated",
            "6141 bytes",
            "3073-byte records",
        ],
    );

    let dir = make();
    let path = dir.path().join("test_batch.bin");
    std::fs::write(&path, cifar_records(0, &[&[3], &[10]])).unwrap();
    let msg = load_error(&source(DatasetKind::Cifar10, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "label 10 of record 1 is out of range",
        ],
    );

    let dir = make();
    let path = dir.path().join("data_batch_4.bin");
    std::fs::remove_file(&path).unwrap();
    let msg = load_error(&source(DatasetKind::Cifar10, dir.path()));
    assert_mentions(&msg, &[&path.display().to_string(), "missing"]);

    let dir = make();
    let path = dir.path().join("batches.meta.txt");
    std::fs::write(&path, "cat\ndog\nfrog\n").unwrap();
    let msg = load_error(&source(DatasetKind::Cifar10, dir.path()));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "lists 3 class names, expected 10",
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.bin"), cifar_records(0, &[&[1, 100]])).unwrap();
    std::fs::write(dir.path().join("test.bin"), cifar_records(0, &[&[1, 2]])).unwrap();
    let msg = load_error(&source(DatasetKind::Cifar100, dir.path()));
    assert_mentions(
        &msg,
        &[
            "train.bin",
            "label 100 of record 0 is out of range",
            "100 classes",
        ],
    );
    std::fs::write(dir.path().join("train.bin"), cifar_records(0, &[&[20, 1]])).unwrap();
    let msg = load_error(&source(DatasetKind::Cifar100, dir.path()));
    assert_mentions(
        &msg,
        &[
            "train.bin",
            "label 20 of record 0 is out of range",
            "20 classes",
        ],
    );
}

#[test]
fn bad_image_folders_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    save(&r.join("train/a/1.png"), grey(2, 2, |_, _| 1));
    save(&r.join("test/a/1.png"), grey(2, 2, |_, _| 1));
    std::fs::create_dir_all(r.join("train/b")).unwrap();
    let msg = load_error(&source(DatasetKind::Folder, r));
    assert_mentions(
        &msg,
        &[
            &r.join("train/b").display().to_string(),
            "empty class folder",
        ],
    );

    save(&r.join("train/b/1.png"), grey(2, 2, |_, _| 1));
    let broken = r.join("test/a/2.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let msg = load_error(&source(DatasetKind::Folder, r));
    assert_mentions(&msg, &[&broken.display().to_string(), "unreadable image"]);

    std::fs::remove_file(&broken).unwrap();
    save(&r.join("test/zebra/1.png"), grey(2, 2, |_, _| 1));
    let msg = load_error(&source(DatasetKind::Folder, r));
    assert_mentions(
        &msg,
        &[
            &r.join("test/zebra").display().to_string(),
            "\"zebra\"",
            "train",
        ],
    );
}

/// A 1-channel 3×3 image holding 1..=9 row by row, plus a second image.
fn three_by_three() -> Dataset {
    Dataset {
        shape: ImageShape {
            channels: 1,
            height: 3,
            width: 3,
        },
        images: (1..=9).chain(11..=19).collect(),
        labels: vec![4, 2],
        class_names: (0..5).map(|i| i.to_string()).collect(),
    }
}

/// The first seed whose draws (dy, dx in 0..=2, then a flip coin) are `(dy, dx, flip)`.
fn seed_for(dy: usize, dx: usize, flip: bool) -> u64 {
    use rand::Rng;
    (0..10_000)
        .find(|&s| {
            let mut rng = ChaCha8Rng::seed_from_u64(s);
            let y = rng.random_range(0..=2usize);
            let x = rng.random_range(0..=2usize);
            (y, x, rng.random_bool(0.5)) == (dy, dx, flip)
        })
        .unwrap()
}

fn batch_values(
    ds: &Dataset,
    indices: &[usize],
    aug: &Augmentation,
    norm: &Normalization,
    seed: u64,
) -> Vec<f32> {
    let (x, _) = make_batch(
        ds,
        indices,
        aug,
        norm,
        &mut ChaCha8Rng::seed_from_u64(seed),
        &Device::Cpu,
    )
    .unwrap();
    x.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn crop_and_flip_move_pixels_as_computed_by_hand() {
    let ds = three_by_three();
    // mean 0, std 1/255: normalised values are the raw bytes, so expectations read as pixels.
    let raw = Normalization::uniform(0.0, 1.0 / 255.0, 1);
    let aug = Augmentation {
        crop_padding: 1,
        horizontal_flip: true,
    };
    let cases: [((usize, usize, bool), [f32; 9]); 4] = [
        // Offset (0, 2) in the padded image: shifted down one row and left one column.
        ((0, 2, false), [0., 0., 0., 2., 3., 0., 5., 6., 0.]),
        ((0, 2, true), [0., 0., 0., 0., 3., 2., 0., 6., 5.]),
        // Offset (1, 1): the image itself, and its mirror.
        ((1, 1, false), [1., 2., 3., 4., 5., 6., 7., 8., 9.]),
        ((1, 1, true), [3., 2., 1., 6., 5., 4., 9., 8., 7.]),
    ];
    for ((dy, dx, flip), expected) in cases {
        let got = batch_values(&ds, &[0], &aug, &raw, seed_for(dy, dx, flip));
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() < 1e-4,
                "offset ({dy}, {dx}) flip {flip}: {got:?} != {expected:?}"
            );
        }
    }
    // Offset (2, 0) without flipping: up one row, right one column.
    let no_flip = Augmentation {
        crop_padding: 1,
        horizontal_flip: false,
    };
    let seed = (0..10_000)
        .find(|&s| {
            use rand::Rng;
            let mut rng = ChaCha8Rng::seed_from_u64(s);
            (rng.random_range(0..=2usize), rng.random_range(0..=2usize)) == (2, 0)
        })
        .unwrap();
    let got = batch_values(&ds, &[0], &no_flip, &raw, seed);
    let expected = [0., 4., 5., 0., 7., 8., 0., 0., 0.];
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-4, "{got:?} != {expected:?}");
    }
    // Without augmentation the batch is the images in the order asked for.
    let got = batch_values(&ds, &[1, 0], &Augmentation::none(), &raw, 0);
    let expected: Vec<f32> = (11..=19).chain(1..=9).map(|v| v as f32).collect();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-4, "{got:?} != {expected:?}");
    }
}

#[test]
fn random_crops_cover_every_offset_and_both_flips() {
    let ds = three_by_three();
    let raw = Normalization::uniform(0.0, 1.0 / 255.0, 1);
    let aug = Augmentation {
        crop_padding: 1,
        horizontal_flip: true,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..400 {
        let (x, _) = make_batch(&ds, &[0], &aug, &raw, &mut rng, &Device::Cpu).unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        seen.insert(v.iter().map(|f| f.round() as i32).collect::<Vec<_>>());
    }
    // 9 offsets × 2 flips, all distinct for this image.
    assert_eq!(seen.len(), 18);
}

#[test]
fn normalisation_values_in_the_batch() {
    let ds = Dataset {
        shape: ImageShape {
            channels: 3,
            height: 1,
            width: 2,
        },
        images: vec![0, 255, 128, 64, 51, 204],
        labels: vec![7],
        class_names: (0..10).map(|i| i.to_string()).collect(),
    };
    let cifar = Normalization::for_kind(DatasetKind::Cifar10, 3);
    let got = batch_values(&ds, &[0], &Augmentation::none(), &cifar, 0);
    // (v / 255 - 0.5) / 0.5 by hand.
    let expected = [-1.0, 1.0, 0.003_921_6, -0.498_039, -0.6, 0.6];
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} != {expected:?}");
    }
    let fashion = Normalization::for_kind(DatasetKind::FashionMnist, 1);
    let grey = Dataset {
        shape: ImageShape {
            channels: 1,
            height: 1,
            width: 3,
        },
        images: vec![0, 255, 51],
        labels: vec![0],
        class_names: vec!["x".into()],
    };
    let got = batch_values(&grey, &[0], &Augmentation::none(), &fashion, 0);
    // (0 - 0.2860) / 0.3530, (1 - 0.2860) / 0.3530, (0.2 - 0.2860) / 0.3530.
    let expected = [-0.810_198, 2.022_663, -0.243_626];
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} != {expected:?}");
    }
    // Zero padding is a zero pixel before normalisation: -mean/std after it.
    let aug = Augmentation {
        crop_padding: 1,
        horizontal_flip: false,
    };
    let seed = (0..10_000)
        .find(|&s| {
            use rand::Rng;
            let mut rng = ChaCha8Rng::seed_from_u64(s);
            (rng.random_range(0..=2usize), rng.random_range(0..=2usize)) == (0, 1)
        })
        .unwrap();
    let got = batch_values(&ds, &[0], &aug, &cifar, seed);
    assert!(got.iter().all(|&v| (v + 1.0).abs() < 1e-6), "{got:?}");
    let mnist = Normalization::for_kind(DatasetKind::Mnist, 1);
    assert_eq!((mnist.mean[0], mnist.std[0]), (0.1307, 0.3081));
}

#[test]
fn batch_rejects_bad_requests() {
    let ds = three_by_three();
    let norm = Normalization::uniform(0.5, 0.5, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let err = make_batch(
        &ds,
        &[0],
        &Augmentation::none(),
        &norm,
        &mut rng,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("1 channels"), "{err}");
    let norm = Normalization::uniform(0.5, 0.5, 1);
    let err = make_batch(
        &ds,
        &[2],
        &Augmentation::none(),
        &norm,
        &mut rng,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("index 2 is out of range"), "{err}");
}

/// A dataset whose image `i` holds `i` (two bytes, little end first) and label `labels[i]`.
fn numbered(labels: Vec<u32>, classes: usize) -> Dataset {
    Dataset {
        shape: ImageShape {
            channels: 1,
            height: 1,
            width: 2,
        },
        images: (0..labels.len())
            .flat_map(|i| [i as u8, (i >> 8) as u8])
            .collect(),
        labels,
        class_names: (0..classes).map(|i| i.to_string()).collect(),
    }
}

fn ids(ds: &Dataset) -> Vec<usize> {
    (0..ds.len())
        .map(|i| ds.image(i)[0] as usize + ((ds.image(i)[1] as usize) << 8))
        .collect()
}

#[test]
fn validation_split_is_stratified_disjoint_and_seeded() {
    // 60 of class 0, 30 of class 1, 10 of class 2, interleaved.
    let labels: Vec<u32> = (0..100)
        .map(|i| {
            if i % 10 == 0 {
                2
            } else if i % 3 == 0 {
                1
            } else {
                0
            }
        })
        .collect();
    let counts = |ls: &[u32]| {
        (0..3)
            .map(|c| ls.iter().filter(|&&l| l == c).count())
            .collect::<Vec<_>>()
    };
    let full = counts(&labels);
    let ds = numbered(labels.clone(), 3);
    let (train, valid) = split_validation(ds.clone(), 20, 5).unwrap();
    assert_eq!(valid.len(), 20);
    assert_eq!(train.len(), 80);
    let per_class = counts(&valid.labels);
    for c in 0..3 {
        let share = 20.0 * full[c] as f64 / 100.0;
        assert!(
            (per_class[c] as f64 - share).abs() < 1.0,
            "class {c}: {per_class:?} vs {full:?}"
        );
    }
    let (t, v) = (ids(&train), ids(&valid));
    assert!(
        t.windows(2).all(|w| w[0] < w[1]) && v.windows(2).all(|w| w[0] < w[1]),
        "order kept"
    );
    let mut all = [t.clone(), v.clone()].concat();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    for (i, &id) in v.iter().enumerate() {
        assert_eq!(valid.labels[i], labels[id]);
    }
    let (_, again) = split_validation(ds.clone(), 20, 5).unwrap();
    assert_eq!(ids(&again), v);
    let (_, other) = split_validation(ds.clone(), 20, 6).unwrap();
    assert_ne!(ids(&other), v);
    let err = split_validation(ds, 100, 5).unwrap_err();
    assert!(matches!(err, DataError::Invalid(_)));
    assert!(err.to_string().contains("100 validation images"), "{err}");
}

#[test]
fn subset_keeps_the_first_images_in_order() {
    let ds = numbered((0..10).map(|i| i % 3).collect(), 3);
    let small = subset(&ds, 4);
    assert_eq!(ids(&small), [0, 1, 2, 3]);
    assert_eq!(small.labels, [0, 1, 2, 0]);
    assert_eq!(small.class_names, ds.class_names);
    assert_eq!(subset(&ds, 50).len(), 10);
}

#[test]
fn dataset_kind_names_match_cli_and_config() {
    use clap::ValueEnum;
    for kind in DatasetKind::value_variants() {
        let cli = kind.to_possible_value().unwrap();
        assert_eq!(cli.get_name(), kind.name());
        assert_eq!(
            serde_json::to_string(kind).unwrap(),
            format!("\"{}\"", kind.name())
        );
    }
    let parsed: DatasetSource = serde_json::from_str(r#"{"kind": "cifar100"}"#).unwrap();
    assert_eq!(
        parsed,
        DatasetSource {
            kind: DatasetKind::Cifar100,
            dir: None,
            image_size: 32
        }
    );
    let names: Vec<&str> = DatasetKind::value_variants()
        .iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(
        names,
        [
            "fashion-mini",
            "fashion-mnist",
            "mnist",
            "cifar10",
            "cifar100",
            "tiny-imagenet",
            "folder"
        ]
    );
}
