//! The `sla` binary as a user runs it: errors are one clear line, eval reads a run folder.

use std::process::Command;

use crate::support::sla;

#[test]
fn user_mistakes_exit_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let out = out.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 4] = [
        (
            &["train", "--dataset", "cifar10", "--out", out],
            "--data-dir",
        ),
        (
            &["train", "--transforms", "color-perm", "--out", out],
            "colour permutations need 3-channel",
        ),
        (&["train", "--lr=-1", "--out", out], "learning rate"),
        (&["eval", "--run", "/nonexistent/run"], "not a run folder"),
    ];
    for (args, needle) in cases {
        let (ok, _, stderr) = sla(args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn train_then_eval_reports_every_inference_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let run = run.to_str().expect("utf-8 path");
    let (ok, stdout, stderr) = sla(&[
        "train",
        "--model",
        "cnn",
        "--mode",
        "sla-sd",
        "--epochs",
        "1",
        "--limit-train",
        "200",
        "--limit-test",
        "40",
        "--batch-size",
        "40",
        "--out",
        run,
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("single")
            && stdout.contains("aggregated")
            && stdout.contains("self-distilled"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = sla(&["eval", "--run", run]);
    assert!(ok, "{stderr}");
    for needle in [
        "single (SLA+SI)",
        "aggregated (SLA+AG)",
        "self-distilled (SLA+SD)",
        "view rot90",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from {stdout}");
    }
    // The same run's views, drawn headless by the GPU renderers.
    let views = dir.path().join("views");
    let (ok, stdout, stderr) = sla(&[
        "render",
        "--run",
        run,
        "--out",
        views.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rendered on"), "{stdout}");
    for (name, min_side) in [
        ("inputs.png", 100),
        ("confusion.png", 40),
        ("confusion_classes.png", 10),
        ("curves.png", 200),
    ] {
        let image = image::open(views.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_rgba8();
        assert!(
            image.width() >= min_side && image.height() >= min_side,
            "{name} is {:?}",
            image.dimensions()
        );
        let first = image.get_pixel(0, 0);
        assert!(image.pixels().any(|p| p != first), "{name} is blank");
    }
    // The run folder is not overwritten by a second `train --out`.
    let (ok, _, stderr) = sla(&["train", "--epochs", "1", "--out", run]);
    assert!(!ok);
    assert!(stderr.contains("already holds a run"), "{stderr}");
}

#[test]
fn a_tiny_experiment_writes_its_table_json_and_figures_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = dir.path().join("exp");
    let exp_str = exp.to_str().expect("utf-8 path");
    let args = [
        "experiment",
        "--modes",
        "baseline,sla",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "200",
        "--limit-test",
        "40",
        "--batch-size",
        "40",
        "--model",
        "cnn",
        "--out",
        exp_str,
    ];
    let (ok, stdout, stderr) = sla(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("results in"), "{stdout}");
    let table = std::fs::read_to_string(exp.join("results.md")).expect("results.md");
    assert!(
        table.contains("| mode | single | aggregated | self-distilled |"),
        "{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| baseline") || l.starts_with("| sla"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    // Baseline has no aggregated accuracy; SLA has one.
    assert!(rows[0].contains("| – |"), "{}", rows[0]);
    assert!(!rows[1].contains("| – | – |"), "{}", rows[1]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exp.join("results.json")).expect("results.json"))
            .expect("json");
    let modes = json["modes"].as_array().expect("modes");
    assert_eq!(modes.len(), 2);
    assert_eq!(modes[1]["mode"], "sla");
    let single = modes[1]["single_acc"]["mean"].as_f64().expect("mean");
    assert!((0.0..=1.0).contains(&single));
    assert_eq!(modes[1]["single_acc"]["n"], 1);
    for run in ["baseline-seed1", "sla-seed1"] {
        assert!(exp.join(run).join("metrics.jsonl").exists(), "{run}");
        for figure in ["curves.png", "confusion.png", "inputs.png"] {
            assert!(
                exp.join("figures").join(run).join(figure).exists(),
                "{run}/{figure}"
            );
        }
    }
    // Run again: every run is complete, nothing is retrained; also when a run's weights were left
    // out (an archive of the logs).
    for entry in std::fs::read_dir(exp.join("sla-seed1")).expect("run folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".safetensors") || name == "checkpoint.json" {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    let (ok, stdout, stderr) = sla(&args);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("already complete").count(), 2, "{stdout}");
    // Run again with other flags: the runs are not relabelled with them, nor deleted.
    let mut other = args.to_vec();
    other[6] = "2";
    assert_eq!(args[5], "--epochs");
    let (ok, _, stderr) = sla(&other);
    assert!(!ok);
    assert!(
        stderr.contains("was trained with other settings: epochs 1 (asked: 2)"),
        "{stderr}"
    );
    assert!(exp.join("baseline-seed1").join("checkpoint.json").exists());
}

/// Final (train loss, single accuracy, aggregated accuracy) of a run folder.
fn final_metrics(run: &std::path::Path) -> (f64, f64, f64) {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let last: serde_json::Value =
        serde_json::from_str(metrics.lines().last().expect("a line")).expect("json");
    let number = |key: &str| last[key].as_f64().unwrap_or(f64::NAN);
    (
        number("train_loss"),
        number("single_acc"),
        number("agg_acc"),
    )
}

/// The same short SLA run on the fast CPU ops and on candle's stock ops (`SLA_OPS=stock`): same
/// seed, same data, so they differ only by f32 rounding in the ops' order of summation.
#[test]
fn a_short_run_on_the_fast_ops_matches_the_stock_ops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    for ops in ["fast", "stock"] {
        let run = dir.path().join(ops);
        let mut command = Command::new(env!("CARGO_BIN_EXE_sla"));
        command.args([
            "train",
            "--model",
            "cnn",
            "--mode",
            "sla",
            "--epochs",
            "1",
            "--batch-size",
            "20",
            "--limit-train",
            "400",
            "--limit-test",
            "200",
            "--seed",
            "3",
            "--out",
            run.to_str().expect("utf-8 path"),
        ]);
        if ops == "stock" {
            command.env("SLA_OPS", "stock");
        } else {
            command.env_remove("SLA_OPS");
        }
        let out = command.output().expect("run sla");
        assert!(
            out.status.success(),
            "{ops}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        results.push(final_metrics(&run));
    }
    let ((fast_loss, fast_single, fast_agg), (stock_loss, stock_single, stock_agg)) =
        (results[0], results[1]);
    assert!(
        (fast_loss - stock_loss).abs() < 0.02 * stock_loss,
        "train loss {fast_loss} vs {stock_loss}"
    );
    // 200 test images: 0.05 is 10 images, well inside the noise of a one-epoch run.
    assert!(
        (fast_single - stock_single).abs() <= 0.05,
        "single {fast_single} vs {stock_single}"
    );
    assert!(
        (fast_agg - stock_agg).abs() <= 0.05,
        "aggregated {fast_agg} vs {stock_agg}"
    );
}
