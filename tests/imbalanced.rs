//! The imbalanced setting end to end: long-tailed training sets, their validation split, the
//! per-class and many / medium / few metrics of a real run, and `sla experiment`'s group table.

use sla::config::TrainConfig;
use sla::data::{ImbalanceProfile, class_counts};
use sla::run::{self, Group, GroupRule};
use sla::sla::{ClassWeighting, Mode};
use sla::train::setup::load_data;
use sla::train::{RunStart, trainer};

use crate::support::sla as sla_cli;

#[test]
fn the_embedded_set_made_long_tailed_keeps_the_first_images_and_a_validation_image_per_class() {
    // fashion-mini has 500 training images per class: 500 · 100^(−c/9), truncated.
    let config = TrainConfig {
        imbalance: 100.0,
        ..Default::default()
    };
    let data = load_data(&config).expect("data");
    let counts = class_counts(&data.train);
    assert_eq!(counts, [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]);
    let full = load_data(&TrainConfig::default()).expect("full data");
    // The kept images of class 9 are its first five, in file order.
    let first_of_class_9: Vec<&[u8]> = (0..full.train.len())
        .filter(|&i| full.train.labels[i] == 9)
        .take(5)
        .map(|i| full.train.image(i))
        .collect();
    let kept_of_class_9: Vec<&[u8]> = (0..data.train.len())
        .filter(|&i| data.train.labels[i] == 9)
        .map(|i| data.train.image(i))
        .collect();
    assert_eq!(kept_of_class_9, first_of_class_9);
    // The test set stays balanced.
    assert_eq!(class_counts(&data.test), class_counts(&full.test));

    // A validation split of all but 10 images leaves exactly one training image in each class.
    let total: usize = counts.iter().sum();
    let split = load_data(&TrainConfig {
        validation: total - 10,
        ..config.clone()
    })
    .expect("split");
    assert_eq!(class_counts(&split.train), [1; 10]);
    let error = load_data(&TrainConfig {
        validation: total - 9,
        ..config.clone()
    })
    .err()
    .expect("one class would be emptied");
    assert!(
        error.to_string().contains("every class must keep one"),
        "{error}"
    );

    let step = load_data(&TrainConfig {
        imbalance: 10.0,
        imbalance_profile: ImbalanceProfile::Step,
        ..Default::default()
    })
    .expect("step");
    assert_eq!(
        class_counts(&step.train),
        [500, 500, 500, 500, 500, 50, 50, 50, 50, 50]
    );
    let error = load_data(&TrainConfig {
        imbalance: 501.0,
        ..Default::default()
    })
    .err()
    .expect("class 9 emptied");
    assert!(
        error.to_string().contains("\"Ankle boot\"")
            && error.to_string().contains("largest usable ratio is 500"),
        "{error}"
    );
}

#[test]
fn a_long_tailed_run_records_per_class_and_group_accuracies_that_agree_with_its_confusion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = TrainConfig {
        imbalance: 10.0,
        mode: Mode::SlaSd,
        class_weights: ClassWeighting::Effective,
        limit_test: Some(300),
        batch_size: 64,
        epochs: 1,
        model: sla::model::ModelKind::Cnn,
        ..Default::default()
    };
    let (_commands, inbox) = std::sync::mpsc::channel();
    trainer::run(
        RunStart::New {
            config: Box::new(config),
            run_dir: dir.path().join("run"),
        },
        &inbox,
        &mut |_| true,
    )
    .expect("trained");
    let run_dir = dir.path().join("run");
    let snapshot = run::read_snapshot(&run_dir).expect("snapshot");
    assert_eq!(
        snapshot.train_class_counts,
        [500, 387, 299, 232, 179, 139, 107, 83, 64, 50]
    );
    let metrics = run::read_metrics(&run_dir).expect("metrics").records;
    let last = metrics.last().expect("an evaluation");
    let per_class = last.per_class_acc.as_ref().expect("per-class accuracy");
    assert_eq!(per_class.single.len(), 10);
    assert_eq!(per_class.aggregated.len(), 10);
    // The class confusion matrix is the self-distilled head's: its diagonal over its rows is that
    // head's per-class accuracy.
    let n = 10;
    for c in 0..n {
        let row = &snapshot.class_confusion[c * n..(c + 1) * n];
        let expected = row[c] as f64 / row.iter().sum::<u32>() as f64;
        assert!(
            (per_class.self_distilled[c] - expected).abs() < 1e-12,
            "class {c}: {} vs {expected}",
            per_class.self_distilled[c]
        );
    }
    // The test set's first 300 images hold every class; the per-class mean weighted by the class
    // sizes is the overall accuracy.
    let sizes: Vec<u32> = (0..n)
        .map(|c| snapshot.class_confusion[c * n..(c + 1) * n].iter().sum())
        .collect();
    let weighted: f64 = (0..n)
        .map(|c| per_class.self_distilled[c] * sizes[c] as f64)
        .sum::<f64>()
        / 300.0;
    assert!((weighted - last.sd_acc.expect("sd")).abs() < 1e-12);
    // Groups: thirds of the ten classes by count: 0–2 many, 3–6 medium, 7–9 few.
    assert_eq!(last.group_rule, Some(GroupRule::Thirds));
    let few = last.group_acc(Group::Few).expect("few");
    let expected_few = (7..10).map(|c| per_class.single[c]).sum::<f64>() / 3.0;
    assert!((few.single - expected_few).abs() < 1e-12);
    let expected_many_sd = (0..3).map(|c| per_class.self_distilled[c]).sum::<f64>() / 3.0;
    assert!(
        (last.many_acc.expect("many").self_distilled.expect("sd") - expected_many_sd).abs() < 1e-12
    );
}

#[test]
fn an_imbalanced_experiment_adds_group_columns_and_a_per_class_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = dir.path().join("exp");
    let exp_str = exp.to_str().expect("utf-8 path");
    let (ok, stdout, stderr) = sla_cli(&[
        "experiment",
        "--model",
        "cnn",
        "--modes",
        "baseline+cb,sla",
        "--imbalances",
        "10,4",
        "--epochs",
        "1",
        "--limit-train",
        "1000",
        "--limit-test",
        "100",
        "--batch-size",
        "100",
        "--out",
        exp_str,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("results in"), "{stdout}");
    let table = std::fs::read_to_string(exp.join("results.md")).expect("results.md");
    assert!(
        table.contains("| ρ | mode | single | aggregated | self-distilled |"),
        "{table}"
    );
    assert!(
        table.contains("| ρ | mode | inference | many | medium | few |"),
        "{table}"
    );
    assert!(table.contains("thirds of the classes"), "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exp.join("results.json")).expect("results.json"))
            .expect("json");
    let modes = json["modes"].as_array().expect("modes");
    assert_eq!(modes.len(), 4, "two ratios × two arms");
    assert_eq!(modes[0]["mode"], "baseline+cb");
    assert_eq!(modes[0]["imbalance"], 10.0);
    assert_eq!(modes[3]["imbalance"], 4.0);
    // The +cb arm trained with effective-number weights, the other with none.
    let config = run::read_config(&exp.join("rho10").join("baseline+cb-seed0")).expect("config");
    assert_eq!(config.class_weights, ClassWeighting::Effective);
    assert_eq!(config.imbalance, 10.0);
    let config = run::read_config(&exp.join("rho4").join("sla-seed0")).expect("config");
    assert_eq!(config.class_weights, ClassWeighting::None);
    // Each group row of the table is the one results.json holds, in percent.
    let sla_groups = modes[1]["groups"].as_array().expect("groups");
    assert_eq!(sla_groups.len(), 2, "single and aggregated");
    let few = sla_groups[1]["few"]["mean"].as_f64().expect("few mean");
    let row = "| 10 | sla | aggregated |";
    let line = table
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row} in {table}"));
    assert!(
        line.contains(&format!("{:.2} ± 0.00 |", 100.0 * few)),
        "{line} vs {few}"
    );
    // `sla eval` on one of the runs prints every class with its count and the group accuracies.
    let run = exp.join("rho10").join("sla-seed0");
    let (ok, stdout, stderr) = sla_cli(&["eval", "--run", run.to_str().expect("utf-8")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Ankle boot"), "{stdout}");
    assert!(stdout.contains("thirds of the classes"), "{stdout}");
    assert!(
        stdout.contains("many / medium / few  single ") && stdout.contains("aggregated "),
        "{stdout}"
    );
    for ratio in ["10", "4"] {
        let figure = exp
            .join("figures")
            .join(format!("per-class-rho{ratio}.png"));
        let image = image::open(&figure).expect("figure").to_rgba8();
        let first = *image.get_pixel(0, 0);
        assert!(image.pixels().any(|p| *p != first), "{ratio}: blank");
    }
}

#[test]
fn sla_data_counts_shows_what_an_imbalance_leaves_without_training() {
    let (ok, stdout, stderr) = sla_cli(&[
        "data",
        "counts",
        "--imbalance",
        "10",
        "--imbalance-profile",
        "step",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("500 500 500 500 500 50 50 50 50 50 (total 2750)"),
        "{stdout}"
    );
    assert!(stdout.contains("Ankle boot"), "{stdout}");
    let (ok, _, stderr) = sla_cli(&["data", "counts", "--imbalance", "900"]);
    assert!(!ok);
    assert!(stderr.contains("largest usable ratio is 500"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
