//! The training options users of the reference code expect, as a user runs them: `--iterations`,
//! `--train-per-class`, `--crop-padding`, `--no-flip`, `--keep-best`, and `sla experiment`'s paired
//! differences to the baseline.

use candle_core::Device;
use rand::SeedableRng;
use sla::config::TrainConfig;
use sla::data::{Augmentation, class_counts, make_batch};
use sla::gpu::style::category_colour;
use sla::run::{self, EvalMetrics};
use sla::train::best;
use sla::train::setup::{fingerprint, load_data};

use crate::support::sla as sla_cli;

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn iterations_replace_epochs_and_put_the_milestones_at_half_and_three_quarters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    // 100 images in batches of 25: 4 steps an epoch, so 10 iterations end inside the third epoch.
    let (ok, stdout, stderr) = sla_cli(&[
        "train",
        "--model",
        "cnn",
        "--mode",
        "baseline",
        "--iterations",
        "10",
        "--epochs",
        "50",
        "--limit-train",
        "100",
        "--limit-test",
        "20",
        "--batch-size",
        "25",
        "--schedule",
        "multi-step",
        "--out",
        path_str(&run),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("done: 10 steps"), "{stdout}");
    // The steps took their batches from the builder thread, and the summary says how long they
    // waited for them.
    assert!(stdout.contains("s of it waiting for batches"), "{stdout}");
    assert_eq!(run::read_config(&run).expect("config").iterations, Some(10));
    let steps = run::read_steps(&run).expect("steps").records;
    let rates: Vec<(u64, f64)> = steps.iter().map(|s| (s.step, s.lr)).collect();
    let expected: Vec<(u64, f64)> = (1..=10)
        .map(|step| {
            // Step k (from 1) trains at the rate of 0-based step k − 1: ×0.1 from 5 = 10/2,
            // ×0.01 from 7 = 3·10/4.
            let lr = match step - 1 {
                0..5 => 0.1,
                5..7 => 0.01,
                _ => 0.001,
            };
            (step, lr)
        })
        .collect();
    assert_eq!(rates.len(), expected.len());
    for ((step, lr), (_, want)) in rates.iter().zip(&expected) {
        assert!(
            (lr - want).abs() < 1e-12,
            "step {step}: lr {lr}, expected {want}"
        );
    }
    // Evaluations at the two whole epochs and after the last step.
    let evaluated: Vec<u64> = run::read_metrics(&run)
        .expect("metrics")
        .records
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(evaluated, [4, 8, 10]);
}

#[test]
fn train_per_class_keeps_the_first_k_images_of_every_class_in_file_order() {
    let full = load_data(&TrainConfig::default()).expect("full data");
    let config = TrainConfig {
        train_per_class: Some(7),
        ..Default::default()
    };
    let data = load_data(&config).expect("data");
    assert_eq!(class_counts(&data.train), [7; 10]);
    for class in 0..10u32 {
        let first: Vec<&[u8]> = (0..full.train.len())
            .filter(|&i| full.train.labels[i] == class)
            .take(7)
            .map(|i| full.train.image(i))
            .collect();
        let kept: Vec<&[u8]> = (0..data.train.len())
            .filter(|&i| data.train.labels[i] == class)
            .map(|i| data.train.image(i))
            .collect();
        assert_eq!(kept, first, "class {class}");
    }
    // The file's order across classes is kept too.
    let order: Vec<u32> = (0..full.train.len())
        .filter(|&i| {
            let class = full.train.labels[i];
            (0..=i).filter(|&j| full.train.labels[j] == class).count() <= 7
        })
        .map(|i| full.train.labels[i])
        .collect();
    assert_eq!(data.train.labels, order);
    // More than a class has: all of it.
    let all = load_data(&TrainConfig {
        train_per_class: Some(100_000),
        ..Default::default()
    })
    .expect("all");
    assert_eq!(all.train.images, full.train.images);
    let error = TrainConfig {
        train_per_class: Some(0),
        ..Default::default()
    }
    .validate()
    .expect_err("zero");
    assert_eq!(error.field, "train per class");
}

#[test]
fn crop_padding_and_no_flip_reach_the_training_batches_and_fix_what_a_step_means() {
    let usual = load_data(&TrainConfig::default()).expect("data");
    assert_eq!(
        usual.augmentation,
        Augmentation {
            crop_padding: 2,
            horizontal_flip: true
        }
    );
    let padded = load_data(&TrainConfig {
        crop_padding: Some(4),
        horizontal_flip: Some(false),
        ..Default::default()
    })
    .expect("data");
    assert_eq!(
        padded.augmentation,
        Augmentation {
            crop_padding: 4,
            horizontal_flip: false
        }
    );
    // No crop and no flip: the training batch is, pixel for pixel, the un-augmented batch.
    let plain = load_data(&TrainConfig {
        crop_padding: Some(0),
        horizontal_flip: Some(false),
        ..Default::default()
    })
    .expect("data");
    let indices: Vec<usize> = (0..64).collect();
    let batch = |data: &sla::train::setup::RunData, augmentation: &Augmentation| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (images, _) = make_batch(
            &data.train,
            &indices,
            augmentation,
            &data.normalization,
            &mut rng,
            &Device::Cpu,
        )
        .expect("batch");
        images
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("values")
    };
    let untouched = batch(&plain, &Augmentation::none());
    assert_eq!(batch(&plain, &plain.augmentation), untouched);
    assert_ne!(batch(&usual, &usual.augmentation), untouched);
    // A padding wider than the image is refused; `--no-augment` still turns both off.
    let error = load_data(&TrainConfig {
        crop_padding: Some(29),
        ..Default::default()
    })
    .err()
    .expect("too wide");
    assert!(error.to_string().contains("crop padding"), "{error}");
    let off = load_data(&TrainConfig {
        augment: false,
        crop_padding: Some(4),
        ..Default::default()
    })
    .expect("data");
    assert_eq!(off.augmentation, Augmentation::none());
    // A resume with another padding would continue a different run.
    let changes = fingerprint(
        &TrainConfig {
            crop_padding: Some(4),
            ..Default::default()
        },
        &padded.train,
        padded.validation.as_deref(),
    )
    .differences(&fingerprint(
        &TrainConfig::default(),
        &usual.train,
        usual.validation.as_deref(),
    ));
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("crop_padding is now 4")),
        "{changes:?}"
    );
}

#[test]
fn keep_best_keeps_the_best_validation_weights_and_eval_reports_their_test_accuracy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let mut args = vec![
        "train",
        "--model",
        "cnn",
        "--mode",
        "sla",
        "--epochs",
        "4",
        "--limit-train",
        "300",
        "--limit-test",
        "60",
        "--batch-size",
        "40",
        "--lr",
        "0.05",
        "--keep-best",
        "--out",
        path_str(&run),
    ];
    let (ok, _, stderr) = sla_cli(&args);
    assert!(!ok);
    assert!(
        stderr.contains("keep best") && stderr.contains("--validation"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    args.extend(["--validation", "60"]);
    let (ok, stdout, stderr) = sla_cli(&args);
    assert!(ok, "{stderr}");

    let records = run::read_metrics(&run).expect("metrics").records;
    assert_eq!(records.len(), 4);
    // The first evaluation with the highest validation accuracy.
    let mut expected: &EvalMetrics = &records[0];
    for record in &records {
        if record.validation_single_acc > expected.validation_single_acc {
            expected = record;
        }
    }
    let kept = best::find(&run).expect("read").expect("kept");
    assert_eq!(&kept.metrics, expected);
    assert!(
        stdout.contains(&format!("best validation at step {}", expected.step)),
        "{stdout}"
    );
    let percent = |v: f64| format!("{:.2}%", 100.0 * v);
    let (ok, stdout, stderr) = sla_cli(&["eval", "--run", path_str(&run), "--best"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("best weights: step {}", expected.step)),
        "{stdout}"
    );
    let single_line = stdout
        .lines()
        .find(|l| l.contains("single (SLA+SI)"))
        .expect("single line");
    assert!(
        single_line.contains(&percent(expected.single_acc)),
        "{single_line} vs {}",
        percent(expected.single_acc)
    );
    // Without --best, eval reads the last checkpoint: the last record's accuracy.
    let (ok, stdout, _) = sla_cli(&["eval", "--run", path_str(&run)]);
    assert!(ok);
    let last = records.last().expect("last");
    assert!(
        stdout.contains(&percent(last.single_acc)),
        "{stdout} vs {}",
        percent(last.single_acc)
    );
}

#[test]
fn an_experiment_reports_each_sla_inference_minus_the_baseline_paired_by_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = dir.path().join("exp");
    let (ok, _, stderr) = sla_cli(&[
        "experiment",
        "--modes",
        "baseline,sla,sla-sd",
        "--seeds",
        "1,2",
        "--iterations",
        "6",
        "--limit-train",
        "200",
        "--limit-test",
        "60",
        "--batch-size",
        "40",
        "--out",
        path_str(&exp),
    ]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exp.join("results.json")).expect("results.json"))
            .expect("json");
    let last = |run: &str| -> EvalMetrics {
        run::read_metrics(&exp.join(run))
            .expect("metrics")
            .records
            .last()
            .cloned()
            .expect("an evaluation")
    };
    let paired = json["paired"].as_array().expect("paired");
    let names: Vec<&str> = paired.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["SLA+SI", "SLA+AG", "SLA+SD"]);
    let accuracy = |name: &str, seed: u64| -> f64 {
        let metrics = match name {
            "SLA+SD" => last(&format!("sla-sd-seed{seed}")),
            _ => last(&format!("sla-seed{seed}")),
        };
        match name {
            "SLA+SI" => metrics.single_acc,
            "SLA+AG" => metrics.agg_acc.expect("aggregated"),
            _ => metrics.sd_acc.expect("self-distilled"),
        }
    };
    let table = std::fs::read_to_string(exp.join("results.md")).expect("results.md");
    assert!(table.contains("6 iterations"), "{table}");
    for p in paired {
        let name = p["name"].as_str().expect("name");
        let d: Vec<f64> = [1, 2]
            .iter()
            .map(|&seed| accuracy(name, seed) - last(&format!("baseline-seed{seed}")).single_acc)
            .collect();
        let mean = (d[0] + d[1]) / 2.0;
        // Two seeds: t(0.975, 1) = 12.706204736174698, s = |d0 − d1| / √2, half = t·s/√2.
        let half = 12.706_204_736_174_698 * (d[0] - d[1]).abs() / 2.0;
        let reported = &p["difference"];
        assert!(
            (reported["mean"].as_f64().expect("mean") - mean).abs() < 1e-12,
            "{name}: {reported} vs {mean}"
        );
        assert!(
            (reported["half_width"].as_f64().expect("half") - half).abs() < 1e-9,
            "{name}: {reported} vs {half}"
        );
        assert_eq!(reported["n"], 2);
        assert_eq!(p["against"], "baseline");
        let row = format!("| {name} | baseline | {:+.2} |", 100.0 * mean);
        assert!(table.contains(&row), "{row} missing from\n{table}");
    }
    // The modes overlaid in one figure: loss above, accuracy below, a colour per mode in order.
    let figure = image::open(exp.join("figures").join("curves-modes.png"))
        .expect("curves-modes.png")
        .to_rgba8();
    assert_eq!(figure.dimensions(), (1000, 800));
    for (mode, colour) in ["baseline", "sla", "sla-sd"].iter().zip(0..) {
        let [r, g, b, _] = category_colour(colour);
        // Below each chart's title and legend strip (one row of three names: under 40 pixels),
        // so the mode's legend swatch cannot stand in for its line.
        for (chart, rows) in [("loss", 40..400), ("accuracy", 440..800)] {
            let drawn = rows.clone().any(|y| {
                (0..1000).any(|x| {
                    let p = figure.get_pixel(x, y).0;
                    p[0].abs_diff(r) < 8 && p[1].abs_diff(g) < 8 && p[2].abs_diff(b) < 8
                })
            });
            assert!(drawn, "{mode}'s {chart} line (colour {colour}) is missing");
        }
    }
}
