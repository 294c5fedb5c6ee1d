//! The real app driven through egui_kittest: choose a transformation set, start a run, watch it finish.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use sla::config::{TrainConfig, TransformChoice};
use sla::gui::run_state::Phase;
use sla::gui::{GuiOptions, SlaApp};
use sla::model::ModelKind;

#[test]
fn a_run_started_in_the_app_fills_the_curves_and_the_confusion_matrix() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 240 training and 60 test images in batches of 40: 6 steps an epoch.
    let options = tiny_run(dir.path(), (240, 60), 2);
    let mut harness = app_harness(options);
    wait_for_the_preview(&mut harness);
    // A custom set: identity and 180° only (M = 2).
    harness
        .get_by_label("Custom rotations × channel orders")
        .click();
    harness.step();
    harness.get_by_label("180°").click();
    harness.step();
    click_when_in_view(&mut harness, "Start");
    train_to_the_end(&mut harness);
    let state = harness.state().run_state();
    assert_eq!(state.history.losses.len(), 12, "one loss per step");
    assert_eq!(state.history.metrics.len(), 2, "one evaluation per epoch");
    let snapshot = state.history.snapshot.as_ref().expect("a snapshot");
    assert_eq!(snapshot.transform_names, ["identity", "rot180"]);
    assert_eq!(snapshot.joint_confusion.len(), 20 * 20);
    assert_eq!(snapshot.joint_confusion.iter().sum::<u32>(), 60 * 2);
    assert!(state.history.metrics[1].agg_acc.is_some());
    // `sla render` draws the charts of the run folder; they are the series the app drew live.
    let names = &snapshot.transform_names;
    let from_folder = sla::run::RunHistory::read(state.run_dir().expect("a folder"), u64::MAX);
    assert_eq!(from_folder.problems(), Vec::<String>::new());
    let (live, read) = (
        state.history.charts(names),
        from_folder.history.charts(names),
    );
    assert_eq!(live, read);
    let accuracy: Vec<&str> = live[1].series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        accuracy,
        [
            "single",
            "aggregated",
            "joint",
            "view identity",
            "view rot180"
        ]
    );
    // Click the joint confusion matrix's cell for (true: T-shirt/top · identity) in its row's most
    // frequent prediction: the images behind it open, as many as the cell counts (up to 32).
    let k = 20;
    let row = 0;
    let counts = &snapshot.joint_confusion[row * k..(row + 1) * k];
    let (col, &count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .expect("a row");
    assert!(count > 0);
    let (top, top_count) = (0..k * k)
        .filter(|i| i / k != i % k)
        .map(|i| (i, snapshot.joint_confusion[i]))
        .fold(
            (0, 0),
            |best, (i, c)| if c > best.1 { (i, c) } else { best },
        );
    let rect = harness
        .state()
        .confusion_rect()
        .expect("the matrix is shown");
    let cell = rect.width() / k as f32;
    let pos =
        rect.left_top() + eframe::egui::vec2((col as f32 + 0.5) * cell, (row as f32 + 0.5) * cell);
    click_at(&mut harness, pos);
    let (selected, shown) = harness.state().selected_cell().expect("a selected cell");
    assert_eq!(selected, (row, col));
    assert_eq!(shown, (count as usize).min(32));
    // The most confused pair, off the diagonal, heads the list under the matrix (first in reading
    // order among equal counts); choosing it opens its images.
    let entries: Vec<String> = harness
        .get_all_by_label_contains(" × true ")
        .map(|node| node.accesskit_node().label().unwrap_or_default())
        .collect();
    assert!(
        entries[0].starts_with(&format!("{top_count} × true ")),
        "{entries:?}"
    );
    harness
        .get_all_by_label_contains(" × true ")
        .next()
        .expect("an entry")
        .click_accesskit();
    harness.step();
    let (selected, shown) = harness.state().selected_cell().expect("a selected cell");
    assert_eq!(selected, (top / k, top % k));
    assert_eq!(shown, (top_count as usize).min(32));
    // The pointer over the loss chart reads out the step under it and each loss there.
    let chart = harness
        .state()
        .chart_rect(0)
        .expect("the loss chart is shown");
    let pointer = chart.center();
    let readout = hover_readout(&mut harness, pointer);
    let mut lines = readout.lines();
    let header = lines.next().expect("a header");
    let step: usize = header
        .strip_prefix("step ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{readout}"));
    assert!(
        header.ends_with(&format!("(epoch {})", step.div_ceil(6))),
        "{readout}"
    );
    assert_eq!(
        harness.state().run_state().history.losses[step - 1].0,
        step as f32
    );
    assert_train_loss_of_step(&harness, &readout, step);
    // The highest-loss test images, highest first, each loss the cross-entropy of its true class.
    let top = harness
        .state()
        .run_state()
        .history
        .snapshot
        .as_ref()
        .expect("a snapshot")
        .top_losses
        .clone();
    assert_eq!(top.len(), 32, "32 of the 60 test images are kept");
    assert!(top.windows(2).all(|w| w[0].loss >= w[1].loss));
    assert!(top.iter().all(|l| (l.loss + l.p_true.ln()).abs() < 1e-6));
    harness.get_by_label("Top losses").click_accesskit();
    // The section unfolds in an animation of several frames.
    for _ in 0..20 {
        harness.step();
    }
    let first = harness
        .get_all_by_label_contains(". true ")
        // A plain label's text is its accessible value.
        .filter_map(|node| node.accesskit_node().value())
        .find(|caption| caption.starts_with("1. true "))
        .expect("the first caption");
    assert!(
        first.ends_with(&format!("loss {:.2}", top[0].loss)),
        "{first}"
    );
    // The wheel over a chart zooms the shared x axis around the pointer; a double click shows the
    // whole run again.
    harness.event(eframe::egui::Event::MouseWheel {
        unit: eframe::egui::MouseWheelUnit::Point,
        delta: eframe::egui::vec2(0.0, 100.0),
        phase: eframe::egui::TouchPhase::Move,
        source: eframe::egui::MouseWheelSource::Wheel,
        modifiers: eframe::egui::Modifiers::NONE,
    });
    for _ in 0..20 {
        harness.step();
    }
    let (lo, hi) = harness.state().chart_x_view().expect("zoomed in");
    assert!(
        0.0 < lo && hi < 12.0 && (lo..=hi).contains(&(step as f64)),
        "{lo}..{hi}"
    );
    // (One click a frame: the harness steps 1/60 s, well inside a double click's 0.3 s.)
    for _ in 0..2 {
        for pressed in [true, false] {
            harness.event(eframe::egui::Event::PointerButton {
                pos: pointer,
                button: eframe::egui::PointerButton::Primary,
                pressed,
                modifiers: eframe::egui::Modifiers::NONE,
            });
        }
        harness.step();
    }
    harness.step();
    assert_eq!(harness.state().chart_x_view(), None);
    // With the x axis in epochs (6 steps each), the read-out names the fractional epoch first.
    harness.get_by_label("epochs").click_accesskit();
    let readout = hover_readout(&mut harness, pointer);
    assert!(readout.starts_with("epoch "), "{readout}");
    // In wall time each step sits at its recorded time (steps.csv's `seconds`): the read-out
    // names the time, the step and the epoch, and the loss shown is that step's.
    let seconds = harness.state().run_state().history.seconds.clone();
    assert_eq!(seconds.len(), 12, "every step's time is known");
    assert!(seconds.windows(2).all(|w| w[0].1 <= w[1].1), "{seconds:?}");
    let logged = sla::run::read_steps(&dir.path().join("run")).expect("steps.csv");
    let logged: Vec<(f32, f64)> = logged
        .records
        .iter()
        .map(|r| (r.step as f32, r.seconds.expect("a time")))
        .collect();
    assert_eq!(logged.len(), 12);
    assert!(
        logged
            .iter()
            .zip(&seconds)
            .all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-3)
    );
    harness.get_by_label("wall time (s)").click_accesskit();
    let readout = hover_readout(&mut harness, pointer);
    let mut lines = readout.lines();
    let header = lines.next().unwrap_or_default();
    let step: usize = header
        .split_once("(step ")
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{readout}"));
    assert!(
        header.contains(" s (step ") && header.ends_with(')'),
        "{header}"
    );
    assert_train_loss_of_step(&harness, &readout, step);
    harness.get_by_label("steps").click_accesskit();
    harness.step();
    // The window as a user sees it (the clicked cell's images open under the matrix), drawn by egui-wgpu with the compute views on lavapipe.
    harness.snapshot("app_after_training");
}

/// The hover `readout` shows the train loss the run recorded at `step`.
fn assert_train_loss_of_step(harness: &Harness<'_, SlaApp>, readout: &str, step: usize) {
    let shown: f32 = readout
        .lines()
        .find_map(|l| l.strip_prefix("train loss "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{readout}"));
    let recorded = harness.state().run_state().history.losses[step - 1];
    assert!(
        (shown - recorded.1).abs() < 1e-3,
        "{readout} vs {recorded:?}"
    );
}

/// A deterministic app whose run trains on the first (train, test) images of the embedded set in
/// batches of 40 for `epochs` epochs, into `dir/run`.
fn tiny_run(dir: &std::path::Path, (train, test): (usize, usize), epochs: usize) -> GuiOptions {
    GuiOptions {
        config: TrainConfig {
            limit_train: Some(train),
            limit_test: Some(test),
            batch_size: 40,
            epochs,
            model: ModelKind::Cnn,
            ..Default::default()
        },
        run_dir: Some(dir.join("run")),
        deterministic: true,
        ..Default::default()
    }
}

/// The real app in a 1100 × 760 window, its views on the wgpu device eframe would create.
fn app_harness(options: GuiOptions) -> Harness<'static, SlaApp> {
    Harness::builder()
        .with_size(eframe::egui::vec2(1100.0, 760.0))
        .with_step_dt(1.0 / 60.0)
        .wgpu_setup(sla::gpu::wgpu_setup_for_compute())
        .build_eframe(|cc| SlaApp::new(cc, options))
}

/// Step until the dataset preview has loaded. Until then the setup panel shows one more line ("the
/// dataset is still loading"), so a widget found before it loads may have moved by the time a click
/// lands: on a loaded CI machine the click then misses.
fn wait_for_the_preview(harness: &mut Harness<'_, SlaApp>) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while !harness.state().preview_loaded() {
        assert!(
            Instant::now() < deadline,
            "the dataset preview never loaded"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.step();
}

/// Step until the run started in the app ends, and check that it finished.
fn train_to_the_end(harness: &mut Harness<'_, SlaApp>) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while matches!(
        harness.state().run_state().phase,
        Phase::Idle | Phase::Loading | Phase::Training
    ) {
        assert!(Instant::now() < deadline, "training did not finish in time");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    harness.step();
    let state = harness.state().run_state();
    assert_eq!(
        state.phase,
        Phase::Finished {
            stopped_early: false
        },
        "{:?}",
        state.message
    );
}

/// Type a run folder into "Open run" and press Inspect, as a user does.
fn open_and_inspect(harness: &mut Harness<'_, SlaApp>, run: &std::path::Path) {
    harness.get_by_label("Open run").focus();
    harness.step();
    harness
        .get_by_label("Open run")
        .type_text(run.to_str().expect("utf-8 path"));
    harness.step();
    assert_eq!(
        harness.get_by_label("Open run").value().as_deref(),
        run.to_str()
    );
    click_when_in_view(harness, "Inspect");
}

/// Scroll the setup panel to a button and click it, as a user does. The run section sits low in
/// the scrolling panel, which scrolls in an animation of several frames: click only once the
/// button is in the window.
fn click_when_in_view(harness: &mut Harness<'_, SlaApp>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    for _ in 0..30 {
        harness.step();
    }
    let button = harness.get_by_label(label);
    assert!(button.rect().bottom() <= 760.0, "{:?}", button.rect());
    button.click();
    for _ in 0..5 {
        harness.step();
    }
}

/// Hold the pointer at `pos` over a chart and return the read-out it shows there.
fn hover_readout(harness: &mut Harness<'_, SlaApp>, pos: eframe::egui::Pos2) -> String {
    harness.event(eframe::egui::Event::PointerMoved(pos));
    for _ in 0..3 {
        harness.step();
    }
    harness
        .get_by_label_contains("train loss ")
        .accesskit_node()
        .label()
        .unwrap_or_default()
}

fn click_at(harness: &mut Harness<'_, SlaApp>, pos: eframe::egui::Pos2) {
    use eframe::egui::{Event, Modifiers, PointerButton};
    harness.event(Event::PointerMoved(pos));
    harness.step();
    for pressed in [true, false] {
        harness.event(Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        harness.step();
    }
    harness.step();
    harness.step();
}

#[test]
fn a_corrupt_run_folder_opened_in_the_app_shows_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("damaged");
    std::fs::create_dir(&run).expect("mkdir");
    std::fs::write(
        run.join("config.json"),
        serde_json::to_vec(&TrainConfig::default()).expect("json"),
    )
    .expect("config");
    // A snapshot whose joint matrix does not match its 10 classes × 4 transformations: drawing it
    // would index out of bounds.
    let snapshot = sla::run::TrainingSnapshot {
        class_names: (0..10).map(|i| format!("c{i}")).collect(),
        transform_names: (0..4).map(|j| format!("t{j}")).collect(),
        joint_confusion: vec![1; 7],
        class_confusion: vec![0; 100],
        ..Default::default()
    };
    std::fs::write(
        run.join("snapshot.json"),
        serde_json::to_vec(&snapshot).expect("json"),
    )
    .expect("snapshot");
    std::fs::write(run.join("metrics.jsonl"), "{\"epoch\":1,\"ste").expect("torn metrics");
    // Not deterministic: the status bar shows messages only then.
    let mut harness = app_harness(GuiOptions::default());
    wait_for_the_preview(&mut harness);
    open_and_inspect(&mut harness, &run);
    let state = harness.state().run_state();
    let message = state.message.clone().unwrap_or_default();
    assert!(
        message.contains("joint confusion matrix has 7 cells"),
        "{message}"
    );
    assert!(message.contains("is incomplete"), "{message}");
    assert!(state.history.snapshot.is_none());
    // The message is on screen, not only in the state.
    harness.get_by_label_contains("joint confusion matrix has 7 cells");
}

#[test]
fn an_imbalance_set_in_the_app_redraws_the_counts_and_a_run_shows_per_class_bars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GuiOptions {
        config: TrainConfig {
            limit_test: Some(100),
            batch_size: 100,
            epochs: 1,
            model: ModelKind::Cnn,
            ..Default::default()
        },
        run_dir: Some(dir.path().join("run")),
        deterministic: true,
        ..Default::default()
    };
    let mut harness = app_harness(options);
    wait_for_the_preview(&mut harness);
    // fashion-mini as it is: 500 training images in each class.
    harness.get_by_label_contains("500 500 500 500 500 500 500 500 500 500 (total 5000)");
    harness
        .get_by_label("Imbalance ρ")
        .set_value_accesskit(10.0);
    harness.step();
    harness.step();
    // 500 · 10^(−c/9), truncated; the chart and its summary follow at once.
    harness.get_by_label_contains("500 387 299 232 179 139 107 83 64 50 (total 2040)");
    // A ratio that empties a class is explained before any training: under the chart, and as the
    // reason Start is off.
    harness
        .get_by_label("Imbalance ρ")
        .set_value_accesskit(600.0);
    harness.step();
    harness.step();
    assert_eq!(
        harness
            .get_all_by_label_contains("the largest usable ratio is 500")
            .count(),
        2
    );
    assert!(harness.get_by_label("Start").accesskit_node().is_disabled());
    harness
        .get_by_label("Imbalance ρ")
        .set_value_accesskit(10.0);
    harness.step();
    click_when_in_view(&mut harness, "Start");
    train_to_the_end(&mut harness);
    let state = harness.state().run_state();
    let snapshot = state.history.snapshot.as_ref().expect("a snapshot");
    assert_eq!(
        snapshot.train_class_counts,
        [500, 387, 299, 232, 179, 139, 107, 83, 64, 50]
    );
    let metrics = state.history.metrics.last().expect("an evaluation");
    let per_class = metrics.per_class_acc.as_ref().expect("per-class accuracy");
    // The bars and the group accuracies are on screen, with the values the run recorded.
    harness.get_by_label("Per-class accuracy, classes by training count");
    let many = metrics.many_acc.expect("many");
    harness.get_by_label_contains(&format!("single: many {:.1}%", 100.0 * many.single));
    let aggregated = &per_class.aggregated;
    assert_eq!(aggregated.len(), 10);
    assert!(
        harness
            .get_all_by_label(&format!("{:.1}%", 100.0 * aggregated[9]))
            .count()
            >= 1
    );
}

#[test]
fn a_custom_set_given_at_start_up_or_opened_from_a_run_stays_custom() {
    // `sla gui --rotations 0,180` hands the app a custom set: the first frames must keep it.
    let custom = TransformChoice::custom_from_names(&[0, 180], &["RGB".into()]).expect("valid");
    let options = GuiOptions {
        config: TrainConfig {
            transforms: custom.clone(),
            ..Default::default()
        },
        deterministic: true,
        ..Default::default()
    };
    let mut harness = app_harness(options);
    wait_for_the_preview(&mut harness);
    harness.step();
    assert_eq!(harness.state().config().transforms, custom);
    harness.get_by_label("M = 2: identity, rot180");

    // A run trained on another custom set, opened for inspection, shows and keeps that set.
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("custom-run");
    let trained =
        TransformChoice::custom_from_names(&[0, 90, 270], &["RGB".into()]).expect("valid");
    let (_commands, inbox) = std::sync::mpsc::channel();
    sla::train::trainer::run(
        sla::train::RunStart::New {
            config: Box::new(TrainConfig {
                transforms: trained.clone(),
                limit_train: Some(100),
                limit_test: Some(20),
                batch_size: 50,
                epochs: 1,
                model: ModelKind::Cnn,
                ..Default::default()
            }),
            run_dir: run.clone(),
        },
        &inbox,
        &mut |_| true,
    )
    .expect("trained");
    open_and_inspect(&mut harness, &run);
    assert_eq!(harness.state().config().transforms, trained);
    harness.get_by_label("M = 3: identity, rot90, rot270");
    let snapshot = harness
        .state()
        .run_state()
        .history
        .snapshot
        .clone()
        .expect("the run's snapshot");
    assert_eq!(snapshot.transform_names, ["identity", "rot90", "rot270"]);
}

#[test]
fn every_setting_of_sla_train_is_reachable_in_the_app_by_its_name() {
    let options = GuiOptions {
        config: TrainConfig {
            mode: sla::sla::Mode::SlaSd,
            model: ModelKind::Cnn,
            ..Default::default()
        },
        deterministic: true,
        ..Default::default()
    };
    let mut harness = app_harness(options);
    wait_for_the_preview(&mut harness);
    assert!(
        harness.query_by_label("Images per class").is_none(),
        "folded"
    );
    // The model summary under the model choice, counted for 1×28×28 images and SLA+SD's heads
    // (N·M = 40 joint, N = 10 distilled): by hand in `model::summary`'s tests.
    harness.get_by_label(
        "26,658 parameters, heads 40 + 10\n1.9 M multiply-adds per image\nabout 3.0 G per step \
         (512 images, forward and backward)",
    );
    harness
        .get_by_label(sla::gui::more_settings::HEADER)
        .click_accesskit();
    harness.step();
    let set = |harness: &mut Harness<'_, SlaApp>, name: &str, value: f64| {
        harness.get_by_label(name).set_value_accesskit(value);
        harness.step();
    };
    let toggle = |harness: &mut Harness<'_, SlaApp>, name: &str| {
        harness.get_by_label(name).click_accesskit();
        harness.step();
    };
    set(&mut harness, "Images per class", 100.0);
    set(&mut harness, "Validation images", 50.0);
    toggle(&mut harness, "Keep best weights");
    set(&mut harness, "Crop padding", 4.0);
    toggle(&mut harness, "Horizontal flip");
    set(&mut harness, "Iterations", 300.0);
    toggle(&mut harness, "Nesterov");
    toggle(&mut harness, "Large loss");
    set(&mut harness, "Distillation β", 0.5);
    set(&mut harness, "Evaluate every", 2.0);
    set(&mut harness, "Checkpoint every", 50.0);
    harness.step();
    let config = harness.state().config().clone();
    assert_eq!(config.train_per_class, Some(100));
    assert_eq!(config.validation, 50);
    assert!(config.keep_best);
    // fashion-mini's usual augmentation is padding 2 with flips: both now differ from it.
    assert_eq!(config.crop_padding, Some(4));
    assert_eq!(config.horizontal_flip, Some(false));
    assert_eq!(config.iterations, Some(300));
    assert!(config.nesterov && config.large_loss);
    assert_eq!(config.beta, 0.5);
    assert_eq!(config.eval_every, 2);
    assert_eq!(config.checkpoint_every, 50);
    config.validate().expect("a valid configuration");
    // The per-class count chart follows the per-class subset at once.
    harness.get_by_label_contains("100 100 100 100 100 100 100 100 100 100 (total 1000)");
    // Back to the dataset's usual augmentation, then none at all: crop and flip disappear.
    toggle(&mut harness, "Dataset's usual");
    assert_eq!(harness.state().config().crop_padding, None);
    assert_eq!(harness.state().config().horizontal_flip, None);
    toggle(&mut harness, "Augment");
    assert!(!harness.state().config().augment);
    assert!(harness.query_by_label("Crop padding").is_none());
    // Without validation images there is nothing to pick the best weights by.
    set(&mut harness, "Validation images", 0.0);
    assert!(!harness.state().config().keep_best);
}

/// eframe's storage, in memory.
#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }

    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn flush(&mut self) {}
}

#[test]
fn settings_are_remembered_across_launches_and_reset_to_defaults() {
    use sla::gui::remembered::RememberedSettings;
    let options = GuiOptions {
        deterministic: true,
        ..Default::default()
    };
    let mut first = app_harness(options.clone());
    wait_for_the_preview(&mut first);
    first.get_by_label("Epochs").set_value_accesskit(7.0);
    first.step();
    first
        .get_by_label("Custom rotations × channel orders")
        .click_accesskit();
    first.step();
    first.get_by_label("90°").click_accesskit();
    first.step();
    first
        .get_by_label(sla::gui::more_settings::HEADER)
        .click_accesskit();
    first.step();
    first
        .get_by_label("Images per class")
        .set_value_accesskit(100.0);
    first.step();
    first.get_by_label("log y").click_accesskit();
    first.step();
    let chosen = first.state().config().clone();
    assert_eq!(chosen.epochs, 7);
    assert_eq!(chosen.train_per_class, Some(100));
    // eframe saves through the app's `save` when the window closes (and every 30 s).
    let mut storage = MemoryStorage::default();
    eframe::App::save(first.state_mut(), &mut storage);
    let stored = eframe::Storage::get_string(&storage, sla::gui::remembered::STORAGE_KEY)
        .expect("settings stored");
    assert!(stored.contains("epochs:7"), "{stored}");

    // The next launch starts where this one stopped, controls included.
    let remembered = RememberedSettings::load(&storage).expect("readable settings");
    let mut second = Harness::builder()
        .with_size(eframe::egui::vec2(1100.0, 760.0))
        .wgpu_setup(sla::gpu::wgpu_setup_for_compute())
        .build_eframe(|cc| SlaApp::with_settings(cc, options, Some(remembered)));
    wait_for_the_preview(&mut second);
    assert_eq!(second.state().config(), &chosen);
    assert_eq!(second.get_by_label("Epochs").value().as_deref(), Some("7"));
    // The custom set's ticks are on screen again, and so is the view toggle.
    second.get_by_label("90°");
    assert!(second.state().remembered().log_y);

    // Reset puts every setting back.
    second.get_by_label("Reset to defaults").click_accesskit();
    second.step();
    assert_eq!(second.state().config(), &TrainConfig::default());
    // (The theme stays dark: deterministic mode pins it for snapshots.)
    assert_eq!(
        second.state().remembered(),
        RememberedSettings {
            theme: eframe::egui::ThemePreference::Dark,
            ..Default::default()
        }
    );
}

#[test]
fn shortcuts_start_a_run_and_focus_open_run_and_a_banner_says_how_it_ended() {
    use eframe::egui::{Key, Modifiers};
    let dir = tempfile::tempdir().expect("tempdir");
    let options = tiny_run(dir.path(), (80, 40), 1);
    let mut harness = app_harness(options);
    wait_for_the_preview(&mut harness);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.step();
    assert_ne!(
        harness.state().run_state().phase,
        Phase::Idle,
        "Ctrl+Enter starts"
    );
    train_to_the_end(&mut harness);
    let metrics = harness
        .state()
        .run_state()
        .history
        .metrics
        .last()
        .cloned()
        .expect("an evaluation");
    let banner = format!(
        "Run finished: single {:.1}%, aggregated {:.1}%",
        100.0 * metrics.single_acc,
        100.0 * metrics.agg_acc.expect("sla aggregates")
    );
    harness.get_by_label(&banner);
    harness.get_by_label("Dismiss").click_accesskit();
    harness.step();
    harness.step();
    assert!(harness.query_by_label(&banner).is_none());
    harness.key_press_modifiers(Modifiers::COMMAND, Key::O);
    harness.step();
    assert!(harness.get_by_label("Open run").is_focused());
}

#[test]
fn folders_come_from_the_dialog_or_a_typed_path_confirmed_with_enter() {
    use eframe::egui::Key;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let mut harness = app_harness(tiny_run(dir.path(), (80, 40), 1));
    wait_for_the_preview(&mut harness);
    harness.key_press_modifiers(eframe::egui::Modifiers::COMMAND, Key::Enter);
    train_to_the_end(&mut harness);
    let evaluations = harness.state().run_state().history.metrics.len();

    // A typed run folder opens on Enter, without a click on Inspect.
    let mut harness = app_harness(tiny_run(dir.path(), (80, 40), 1));
    wait_for_the_preview(&mut harness);
    assert!(harness.state().run_state().history.metrics.is_empty());
    harness.get_by_label("Open run").focus();
    harness.step();
    harness
        .get_by_label("Open run")
        .type_text(run.to_str().expect("utf-8 path"));
    harness.step();
    harness.key_press(Key::Enter);
    harness.step();
    harness.step();
    assert_eq!(
        harness.state().run_state().history.metrics.len(),
        evaluations
    );

    // "Browse…" asks the folder dialog (here a stand-in: a test cannot click a system window)
    // and opens the chosen run.
    let mut harness = app_harness(tiny_run(dir.path(), (80, 40), 1));
    let chosen = run.clone();
    harness
        .state_mut()
        .set_folder_chooser(Box::new(move |field| {
            assert_eq!(field, sla::gui::FolderField::Open);
            Some(chosen.clone())
        }));
    wait_for_the_preview(&mut harness);
    click_when_in_view(&mut harness, "Browse…");
    assert_eq!(
        harness.get_by_label("Open run").value().as_deref(),
        run.to_str()
    );
    assert_eq!(
        harness.state().run_state().history.metrics.len(),
        evaluations
    );
    assert_eq!(
        harness.state().remembered().open_dir,
        run.display().to_string()
    );

    // The dataset's folder: the chosen one becomes the dataset's `dir`; a cancelled dialog changes
    // nothing.
    let data = dir.path().join("fashion");
    std::fs::create_dir(&data).expect("mkdir");
    let mut options = tiny_run(dir.path(), (80, 40), 1);
    options.config.dataset.kind = sla::data::DatasetKind::FashionMnist;
    let mut harness = app_harness(options);
    let answers = std::sync::Mutex::new(vec![None, Some(data.clone())]);
    harness
        .state_mut()
        .set_folder_chooser(Box::new(move |field| {
            assert_eq!(field, sla::gui::FolderField::Data);
            answers.lock().expect("answers").pop().flatten()
        }));
    harness.step();
    let browse = harness
        .get_all_by_label("Browse…")
        .next()
        .expect("a Browse button");
    browse.click();
    for _ in 0..3 {
        harness.step();
    }
    assert_eq!(
        harness.state().remembered().config.dataset.dir,
        Some(data.clone())
    );
    assert_eq!(
        harness.get_by_label("Folder").value().as_deref(),
        data.to_str()
    );
    let browse = harness
        .get_all_by_label("Browse…")
        .next()
        .expect("a Browse button");
    browse.click();
    for _ in 0..3 {
        harness.step();
    }
    assert_eq!(harness.state().remembered().config.dataset.dir, Some(data));
}

#[test]
fn a_step_is_timed_on_request_and_shown_as_an_estimate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = app_harness(tiny_run(dir.path(), (80, 40), 1));
    wait_for_the_preview(&mut harness);
    click_when_in_view(&mut harness, "Time a step");
    let deadline = Instant::now() + Duration::from_secs(240);
    let text = loop {
        if let Some(node) = harness.query_by_label_contains("estimate on cpu") {
            break node.accesskit_node().value().unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "the step was never timed");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains(" a step (median of 2, random images)"),
        "{text}"
    );
    assert!(text.contains("MiB of memory for the step"), "{text}");
    // Another batch size makes the measurement stale, and says so.
    harness.get_by_label("Batch size").set_value_accesskit(80.0);
    harness.step();
    harness.step();
    harness.get_by_label_contains("(for earlier settings: time again)");
}

#[test]
fn an_experiment_folder_opens_as_overlaid_curves_and_a_table_of_its_runs() {
    // A real experiment: baseline and SLA, two seeds, 4 steps each.
    let dir = tempfile::tempdir().expect("tempdir");
    let experiment = dir.path().join("experiment");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sla"))
        .args([
            "experiment",
            "--model",
            "cnn",
            "--modes",
            "baseline,sla",
            "--seeds",
            "0,1",
            "--epochs",
            "1",
        ])
        .args([
            "--limit-train",
            "160",
            "--limit-test",
            "40",
            "--batch-size",
            "40",
            "--out",
        ])
        .arg(&experiment)
        .output()
        .expect("sla experiment");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut harness = app_harness(GuiOptions {
        open: vec![experiment.clone()],
        deterministic: true,
        ..Default::default()
    });
    harness.step();
    let labels = compared_labels(&harness);
    assert_eq!(
        labels,
        ["baseline-seed0", "baseline-seed1", "sla-seed0", "sla-seed1"]
    );
    // The training losses overlaid by default, one line per run, as long as its steps.csv.
    let chart = harness.state().compare().chart();
    assert_eq!(chart.series.len(), 4);
    for (line, label) in chart.series.iter().zip(&labels) {
        assert_eq!(&line.name, label);
        let steps = sla::run::read_steps(&experiment.join(label)).expect("steps");
        assert_eq!(line.ys.len(), steps.records.len());
    }
    // Choose the single-view accuracy: each run's line holds its metrics.jsonl values, and the
    // table shows the final one in percent.
    curve_choice(&harness, "single").click_accesskit();
    harness.step();
    let chart = harness.state().compare().chart();
    for (line, label) in chart.series.iter().zip(&labels) {
        let metrics = sla::run::read_metrics(&experiment.join(label)).expect("metrics");
        let logged: Vec<f32> = metrics
            .records
            .iter()
            .map(|m| m.single_acc as f32)
            .collect();
        assert_eq!(line.ys, logged, "{label}");
        let last = metrics.records.last().expect("an evaluation");
        let shown = format!("{:.2}", 100.0 * last.single_acc);
        assert!(
            harness.get_all_by_label(&shown).next().is_some(),
            "{label}: {shown} not in the table"
        );
    }
    // The SLA run has an aggregated accuracy, the baseline none.
    let sla_run = sla::run::read_metrics(&experiment.join("sla-seed0")).expect("metrics");
    let aggregated = sla_run.records.last().and_then(|m| m.agg_acc).expect("AG");
    let shown = format!("{:.2}", 100.0 * aggregated);
    assert!(harness.get_all_by_label(&shown).next().is_some(), "{shown}");
    curve_choice(&harness, "aggregated").click_accesskit();
    harness.step();
    let chart = harness.state().compare().chart();
    let names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["sla-seed0", "sla-seed1"]);
    // Grouped by mode, the table's cells are results.md's, character for character.
    let results = std::fs::read_to_string(experiment.join("results.md")).expect("results.md");
    for mode in ["baseline", "sla"] {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| {mode} |")))
            .expect("a row per mode");
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 6, "{row}");
        for cell in &cells[1..5] {
            assert!(
                harness.get_all_by_label(cell).next().is_some(),
                "{mode}: {cell} of results.md is not in the app"
            );
        }
        let group = harness
            .state()
            .compare()
            .groups()
            .into_iter()
            .find(|g| g.name == mode)
            .expect("a group");
        assert_eq!(group.runs.to_string(), cells[5]);
        assert_eq!(sla::run::Spread::cell(group.single, true), cells[1]);
    }
    // The difference of confusion matrices, B − A: by default the second run minus the first,
    // the two baseline seeds' class matrices; each cell is their snapshots' difference and each
    // row (one true class's test images) sums to zero.
    let snapshot =
        |label: &str| sla::run::read_snapshot(&experiment.join(label)).expect("snapshot");
    let difference = |harness: &Harness<'_, SlaApp>| {
        let compare = harness.state().compare();
        compare
            .difference
            .matrix(&compare.runs)
            .expect("a difference")
    };
    let cell_differences = |b: &[u32], a: &[u32]| -> Vec<i64> {
        b.iter()
            .zip(a)
            .map(|(&b, &a)| i64::from(b) - i64::from(a))
            .collect()
    };
    let (base0, base1) = (snapshot("baseline-seed0"), snapshot("baseline-seed1"));
    let (n, cells) = difference(&harness);
    assert_eq!(n, base0.num_classes());
    assert_eq!(
        cells,
        cell_differences(&base1.class_confusion, &base0.class_confusion)
    );
    for row in cells.chunks_exact(n) {
        assert_eq!(row.iter().sum::<i64>(), 0, "{row:?}");
    }
    // A baseline predicts no joint labels: the joint level says so instead of drawing.
    harness.get_by_label("joint labels").click_accesskit();
    harness.step();
    assert!(
        harness
            .query_by_label_contains("only runs that predict joint labels")
            .is_some()
    );
    // Both SLA runs, picked in the two run menus: their joint matrices subtract cell by cell,
    // and the transformation level is the joint difference summed over classes.
    for (menu, run) in [("B", "sla-seed1"), ("minus A", "sla-seed0")] {
        harness
            .get_by_role_and_label(eframe::egui::accesskit::Role::ComboBox, menu)
            .click_accesskit();
        // The menu opens on the frame after the click.
        harness.step();
        harness.step();
        harness
            .get_by_role(eframe::egui::accesskit::Role::ListBox)
            .get_by_label(run)
            .click_accesskit();
        harness.step();
    }
    let (sla0, sla1) = (snapshot("sla-seed0"), snapshot("sla-seed1"));
    let (k, cells) = difference(&harness);
    let m = sla0.num_transforms();
    assert_eq!(k, sla0.num_classes() * m);
    assert_eq!(
        cells,
        cell_differences(&sla1.joint_confusion, &sla0.joint_confusion)
    );
    harness.get_by_label("transformations").click_accesskit();
    harness.step();
    let (side, by_transform) = difference(&harness);
    assert_eq!(side, m);
    for (cell, d) in by_transform.iter().enumerate() {
        let summed: i64 = (0..k * k)
            .filter(|joint| (joint / k) % m == cell / m && (joint % k) % m == cell % m)
            .map(|joint| cells[joint])
            .sum();
        assert_eq!(*d, summed, "transformation cell {cell}");
    }
    for row in by_transform.chunks_exact(m) {
        assert_eq!(row.iter().sum::<i64>(), 0, "{row:?}");
    }
    // Hiding a run takes its line away.
    curve_choice(&harness, "single").click_accesskit();
    harness
        .get_by_role_and_label(eframe::egui::accesskit::Role::CheckBox, "sla-seed0")
        .click_accesskit();
    harness.step();
    let chart = harness.state().compare().chart();
    let names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["baseline-seed0", "baseline-seed1", "sla-seed1"]);
    // In epochs each point sits at step / steps per epoch (4 here); in wall time at the step's
    // recorded seconds.
    curve_choice(&harness, "train loss").click_accesskit();
    harness.get_by_label("epochs").click_accesskit();
    harness.step();
    let by_steps = sla::run::read_steps(&experiment.join("baseline-seed0")).expect("steps");
    let chart = harness.state().compare().chart();
    let xs: Vec<f32> = by_steps
        .records
        .iter()
        .map(|r| r.step as f32 / 4.0)
        .collect();
    assert_eq!(chart.series[0].xs, xs);
    harness.get_by_label("wall time (s)").click_accesskit();
    harness.step();
    let chart = harness.state().compare().chart();
    let xs: Vec<f32> = by_steps
        .records
        .iter()
        .map(|r| r.seconds.expect("a time") as f32)
        .collect();
    assert_eq!(chart.series[0].xs, xs);
    // Cleared, then added again from the setup panel: the typed folder and Compare.
    harness.get_by_label("Clear").click_accesskit();
    harness.step();
    assert!(harness.state().compare().runs.is_empty());
    harness.get_by_label("Open run").focus();
    harness
        .get_by_label("Open run")
        .type_text(experiment.to_str().expect("utf-8 path"));
    harness.step();
    harness.get_by_label("Compare").click_accesskit();
    harness.step();
    assert_eq!(harness.state().compare().runs.len(), 4);
    // A folder with no run in it says so in the view.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    harness.get_by_label("Open run").focus();
    harness.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::A);
    harness
        .get_by_label("Open run")
        .type_text(empty.to_str().expect("utf-8 path"));
    harness.step();
    assert_eq!(
        harness.get_by_label("Open run").value().as_deref(),
        empty.to_str()
    );
    harness.get_by_label("Compare").click_accesskit();
    harness.step();
    assert_eq!(harness.state().compare().runs.len(), 4);
    assert!(
        harness
            .state()
            .compare()
            .problems
            .iter()
            .any(|p| p.contains("neither a run folder nor a folder of runs")),
        "{:?}",
        harness.state().compare().problems
    );
    // Folders compared or opened are remembered, newest first, and the empty one is not; the
    // list compares the experiment again in one click.
    let run = experiment.join("sla-seed0");
    harness.get_by_label("Open run").focus();
    harness.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::A);
    harness
        .get_by_label("Open run")
        .type_text(run.to_str().expect("utf-8 path"));
    harness.step();
    harness.get_by_label("Inspect").click_accesskit();
    harness.step();
    assert_eq!(
        harness.state().remembered().recent_runs.folders(),
        [run.clone(), experiment.clone()]
    );
    harness.get_by_label("Clear").click_accesskit();
    harness.step();
    harness.get_by_label("Recent runs (2)").click_accesskit();
    harness.step();
    let compare_buttons: Vec<_> = harness.get_all_by_label("Compare").collect();
    assert_eq!(
        compare_buttons.len(),
        3,
        "the setup panel's and one per recent run"
    );
    compare_buttons[2].click_accesskit();
    harness.step();
    assert_eq!(harness.state().compare().runs.len(), 4);
    assert_eq!(
        harness.state().remembered().recent_runs.folders(),
        [experiment.clone(), run]
    );
}

#[test]
fn baseline_vs_sla_from_the_window_trains_both_writes_the_tables_and_compares_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let experiment = dir.path().join("experiment");
    // 160 training and 40 test images in batches of 40: 4 steps per run.
    let options = GuiOptions {
        run_dir: Some(experiment.clone()),
        ..tiny_run(dir.path(), (160, 40), 1)
    };
    let mut harness = app_harness(options);
    wait_for_the_preview(&mut harness);
    harness.get_by_label("Experiment").click_accesskit();
    harness.step();
    harness.get_by_label("Baseline vs sla").click_accesskit();
    harness.step();
    finish_experiment(&mut harness);
    let queue = harness.state().experiment_queue().expect("a queue");
    assert_eq!(queue.results, Some(Ok(())));
    let names: Vec<&str> = queue.runs.iter().map(|r| r.run.name.as_str()).collect();
    assert_eq!(names, ["baseline-seed0", "sla-seed0"]);
    assert!(
        queue
            .runs
            .iter()
            .all(|r| r.status == sla::gui::experiment_queue::QueueStatus::Done)
    );
    // Both runs trained to their end on the window's settings, in the experiment folder.
    for name in names {
        let metrics = sla::run::read_metrics(&experiment.join(name)).expect("metrics");
        assert_eq!(metrics.records.last().map(|m| m.step), Some(4), "{name}");
    }
    // The tables are `sla experiment`'s, and the comparison, now shown, has both runs with
    // results.md's cells in its by-mode table.
    let results = std::fs::read_to_string(experiment.join("results.md")).expect("results.md");
    assert!(experiment.join("results.json").is_file());
    let labels = compared_labels(&harness);
    assert_eq!(labels, ["baseline-seed0", "sla-seed0"]);
    for group in harness.state().compare().groups() {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", group.name)))
            .expect("a row per mode");
        let cell = sla::run::Spread::cell(group.single, true);
        assert!(row.contains(&cell), "{cell} not in {row}");
    }
    assert!(
        harness.get_all_by_label("Compare (2)").next().is_some(),
        "the comparison view is offered"
    );
    // Again: both runs are complete, so nothing trains and the tables are written again.
    std::fs::remove_file(experiment.join("results.md")).expect("remove");
    harness.get_by_label("Baseline vs sla").click_accesskit();
    harness.step();
    finish_experiment(&mut harness);
    assert!(experiment.join("results.md").is_file());
    assert_eq!(harness.state().compare().runs.len(), 2);
    // Seeds typed in: the ticked modes (baseline and sla) at seeds 0 and 1, where seed 0's runs
    // are skipped and seed 1's trained; the tables then hold two runs per mode.
    harness.get_by_label("Seeds").focus();
    harness.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::A);
    harness.get_by_label("Seeds").type_text("0, 1");
    harness.step();
    harness.get_by_label("Run experiment").click_accesskit();
    harness.step();
    finish_experiment(&mut harness);
    let queue = harness.state().experiment_queue().expect("a queue");
    assert_eq!(queue.results, Some(Ok(())));
    let names: Vec<&str> = queue.runs.iter().map(|r| r.run.name.as_str()).collect();
    assert_eq!(
        names,
        ["baseline-seed0", "baseline-seed1", "sla-seed0", "sla-seed1"]
    );
    assert_eq!(
        compared_labels(&harness),
        ["baseline-seed0", "sla-seed0", "baseline-seed1", "sla-seed1"]
    );
    let results = std::fs::read_to_string(experiment.join("results.md")).expect("results.md");
    for mode in ["baseline", "sla"] {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| {mode} |")))
            .expect("a row per mode");
        assert!(row.trim_end().ends_with("| 2 |"), "{row}");
    }
}

#[test]
fn a_few_shot_experiment_from_the_window_trains_baseline_and_sla_on_episodes_and_tabulates_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let experiment = dir.path().join("experiment");
    let mut harness = app_harness(GuiOptions {
        run_dir: Some(experiment.clone()),
        deterministic: true,
        ..Default::default()
    });
    wait_for_the_preview(&mut harness);
    harness
        .get_by_label(sla::gui::fewshot_settings::FEW_SHOT)
        .click_accesskit();
    harness.step();
    for (name, value) in [
        ("Shots", 1.0),
        ("Queries", 2.0),
        ("Test queries", 3.0),
        ("Episodes", 4.0),
        ("Evaluate every", 4.0),
        ("Test episodes", 4.0),
    ] {
        harness.get_by_label(name).set_value_accesskit(value);
        harness.step();
    }
    harness.get_by_label("Experiment").click_accesskit();
    harness.step();
    // The setting's modes only: MT and SLA+SD are greyed out.
    for standard_only in ["mt", "sla-sd"] {
        assert!(
            harness
                .get_by_label(standard_only)
                .accesskit_node()
                .is_disabled(),
            "{standard_only} offered"
        );
    }
    assert!(!harness.get_by_label("da").accesskit_node().is_disabled());
    harness.get_by_label("Baseline vs sla").click_accesskit();
    harness.step();
    finish_experiment(&mut harness);
    let queue = harness.state().experiment_queue().expect("a queue");
    assert_eq!(queue.results, Some(Ok(())));
    let names: Vec<&str> = queue.runs.iter().map(|r| r.run.name.as_str()).collect();
    assert_eq!(names, ["baseline-seed0", "sla-seed0"]);
    // Each run is a few-shot run of its mode, trained for its 4 episodes and evaluated on 4 test
    // episodes with their interval.
    for (name, mode) in [
        ("baseline-seed0", sla::sla::Mode::Baseline),
        ("sla-seed0", sla::sla::Mode::Sla),
    ] {
        let run = experiment.join(name);
        let config = sla::run::read_config(&run).expect("config");
        assert_eq!(config.mode, mode, "{name}");
        let fewshot = config.fewshot.expect("a few-shot run");
        assert_eq!((fewshot.shots, fewshot.episodes), (1, 4), "{name}");
        let metrics = sla::run::read_metrics(&run).expect("metrics");
        let last = metrics.records.last().expect("an evaluation");
        assert_eq!(last.step, 4, "{name}");
        let episodes = last.episodes.expect("episode statistics");
        assert_eq!((episodes.episodes, episodes.queries), (4, 3), "{name}");
        assert_eq!(
            last.agg_acc.is_some(),
            mode == sla::sla::Mode::Sla,
            "{name}"
        );
    }
    // The tables are `sla experiment`'s: a row per mode, with the comparison's cells.
    let results = std::fs::read_to_string(experiment.join("results.md")).expect("results.md");
    assert_eq!(compared_labels(&harness), ["baseline-seed0", "sla-seed0"]);
    for group in harness.state().compare().groups() {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", group.name)))
            .expect("a row per mode");
        let cell = sla::run::Spread::cell(group.single, true);
        assert!(row.contains(&cell), "{cell} not in {row}");
    }
}

/// Step the app until `done` holds, for at most four minutes (then fail, naming `what`).
fn step_until(harness: &mut Harness<'_, SlaApp>, what: &str, done: impl Fn(&SlaApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "not in time: {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Step until the experiment launched from the window has written its tables.
fn finish_experiment(harness: &mut Harness<'_, SlaApp>) {
    step_until(harness, "the experiment's tables", |app| {
        app.experiment_queue().is_some_and(|q| q.results.is_some())
    });
}

/// The compared runs' labels, in the view's order.
fn compared_labels(harness: &Harness<'_, SlaApp>) -> Vec<String> {
    harness
        .state()
        .compare()
        .runs
        .iter()
        .map(|r| r.label.clone())
        .collect()
}

/// The comparison's curve selector named `name` (the by-mode table below it has a column of the
/// same name).
fn curve_choice<'h>(harness: &'h Harness<'_, SlaApp>, name: &'h str) -> egui_kittest::Node<'h> {
    harness
        .get_all_by_label(name)
        .next()
        .unwrap_or_else(|| panic!("no {name} choice"))
}

#[test]
fn the_few_shot_setting_trains_episodes_in_the_app_with_confidence_bands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = app_harness(GuiOptions {
        run_dir: Some(dir.path().join("run")),
        deterministic: true,
        ..Default::default()
    });
    wait_for_the_preview(&mut harness);
    assert!(harness.query_by_label("Ways").is_none(), "standard first");
    harness
        .get_by_label(sla::gui::fewshot_settings::FEW_SHOT)
        .click_accesskit();
    harness.step();
    // The setting's own rows appear, the standard's epochs and batch size go.
    assert!(harness.query_by_label("Epochs").is_none());
    assert!(harness.query_by_label("Batch size").is_none());
    for (name, value) in [
        ("Shots", 1.0),
        ("Queries", 2.0),
        ("Test queries", 3.0),
        ("Episodes", 6.0),
        ("Evaluate every", 3.0),
        ("Test episodes", 4.0),
    ] {
        harness.get_by_label(name).set_value_accesskit(value);
        harness.step();
    }
    // Only the modes the setting trains are offered.
    harness
        .get_all_by_label("Objective and model")
        .next()
        .expect("the mode menu")
        .click_accesskit();
    harness.step();
    harness.step();
    let menu = harness.get_by_role(eframe::egui::accesskit::Role::ListBox);
    for offered in ["baseline", "da", "sla"] {
        assert!(menu.query_by_label(offered).is_some(), "{offered} missing");
    }
    for standard_only in ["mt", "sla-sd"] {
        assert!(
            menu.query_by_label(standard_only).is_none(),
            "{standard_only} offered"
        );
    }
    harness
        .get_by_role(eframe::egui::accesskit::Role::ListBox)
        .get_by_label("sla")
        .click_accesskit();
    harness.step();
    // The model summary counts Conv-4 on 1×28×28 images without a linear head, and an episode's
    // images: 5 ways × (1 shot + 2 queries) × 4 rotations. By hand: convolutions 576 + 3 × 36,864,
    // batch norms 4 × 128; multiply-adds 28²·64·9 + 14²·64²·9 + 7²·64²·9 + 3²·64²·9.
    harness.get_by_label(
        "111,680 parameters, no head (the meta-learner's classifier comes from the support set)\n\
         9.8 M multiply-adds per image\nabout 1.8 G per episode (60 images, forward and backward)",
    );
    let config = harness.state().config().clone();
    let fewshot = config.fewshot.clone().expect("few-shot");
    assert_eq!(config.model, sla::model::ModelKind::Conv4);
    assert_eq!(
        (
            fewshot.ways,
            fewshot.shots,
            fewshot.queries,
            fewshot.episodes
        ),
        (5, 1, 2, 6)
    );
    click_when_in_view(&mut harness, "Start");
    // While it trains, the grid shows the training episode of the moment, its ways named after the
    // base classes they stand for. Paused after the first, so the window can be read at leisure.
    step_until(&mut harness, "a training episode shown", |app| {
        app.run_state().training_episode.is_some()
    });
    click_when_in_view(&mut harness, "Pause");
    step_until(&mut harness, "the run paused", |app| {
        app.run_state().phase == Phase::Paused
    });
    let episode = harness
        .state()
        .run_state()
        .training_episode
        .clone()
        .expect("a training episode");
    assert!(episode.step >= 1);
    assert_eq!(
        (episode.grid.samples, episode.grid.support_samples),
        (10, 5)
    );
    assert_eq!(episode.grid.num_transforms, 4);
    let base_classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"];
    assert_eq!(episode.class_names.len(), 5);
    for (way, name) in episode.class_names.iter().enumerate() {
        let class = name
            .strip_prefix(&format!("way {}: ", way + 1))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(base_classes.contains(&class), "{name} is not a base class");
    }
    assert!(
        harness
            .query_all_by_label_contains(&format!("Training episode {}: ", episode.step))
            .next()
            .is_some(),
        "the grid's title names the training episode"
    );
    // The first "Resume" is the paused run's; the second resumes a run folder.
    harness
        .get_all_by_label("Resume")
        .next()
        .expect("a Resume button")
        .click();
    step_until(&mut harness, "the run resumed", |app| {
        app.run_state().phase != Phase::Paused
    });
    train_to_the_end(&mut harness);
    let state = harness.state().run_state();
    assert_eq!(state.history.losses.len(), 6, "one loss per episode");
    assert_eq!(
        state.history.metrics.len(),
        2,
        "evaluations after episodes 3 and 6"
    );
    let last = state.history.metrics.last().expect("metrics");
    let episodes = last.episodes.expect("episode statistics");
    assert_eq!(
        (episodes.episodes, episodes.shots, episodes.queries),
        (4, 5, 3)
    );
    // The episode grid: a support image and a query of each of the 5 ways under the 4 rotations,
    // with joint labels.
    let snapshot = state.history.snapshot.as_ref().expect("a snapshot");
    assert_eq!(snapshot.samples.samples, 10);
    assert_eq!(snapshot.samples.support_samples, 5);
    assert_eq!(snapshot.samples.num_transforms, 4);
    assert_eq!(snapshot.samples.true_labels[..4], [0, 1, 2, 3]);
    assert_eq!(snapshot.joint_confusion.iter().sum::<u32>(), 4 * 15 * 4);
    // The accuracy chart carries the confidence bounds, as `sla render` draws them from the folder.
    let names = &snapshot.transform_names;
    let accuracy: Vec<String> = state.history.charts(names)[1]
        .series
        .iter()
        .map(|s| s.name.clone())
        .collect();
    for bound in ["training episodes", "single 95% CI", "aggregated 95% CI"] {
        assert!(accuracy.iter().any(|n| n == bound), "{accuracy:?}");
    }
    let from_folder = sla::run::RunHistory::read(state.run_dir().expect("a folder"), u64::MAX);
    assert_eq!(
        from_folder.history.charts(names),
        state.history.charts(names)
    );
    let saved = sla::run::read_config(state.run_dir().expect("a folder")).expect("config");
    assert_eq!(saved.fewshot, Some(fewshot));
}
