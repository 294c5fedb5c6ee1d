//! The real app driven through egui_kittest: choose a transformation set, start a run, watch it finish.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sla::config::TrainConfig;
use sla::gui::run_state::Phase;
use sla::gui::{GuiOptions, SlaApp};

#[test]
fn a_run_started_in_the_app_fills_the_curves_and_the_confusion_matrix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GuiOptions {
        config: TrainConfig {
            limit_train: Some(240),
            limit_test: Some(60),
            batch_size: 40,
            epochs: 2,
            ..Default::default()
        },
        run_dir: Some(dir.path().join("run")),
        deterministic: true,
        ..Default::default()
    };
    let mut harness = Harness::builder()
        .with_size(eframe::egui::vec2(1100.0, 760.0))
        .wgpu_setup(sla::gpu::wgpu_setup_for_compute())
        .build_eframe(|cc| SlaApp::new(cc, options));
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
    // A custom set: identity and 180° only (M = 2).
    harness
        .get_by_label("Custom rotations × channel orders")
        .click();
    harness.step();
    harness.get_by_label("180°").click();
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
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
    assert_eq!(state.losses.len(), 12, "one loss per step");
    assert_eq!(state.metrics.len(), 2, "one evaluation per epoch");
    let snapshot = state.snapshot.as_ref().expect("a snapshot");
    assert_eq!(snapshot.transform_names, ["identity", "rot180"]);
    assert_eq!(snapshot.joint_confusion.len(), 20 * 20);
    assert_eq!(snapshot.joint_confusion.iter().sum::<u32>(), 60 * 2);
    assert!(state.metrics[1].agg_acc.is_some());
    // The window as a user sees it, drawn by egui-wgpu with the compute views on lavapipe.
    harness.snapshot("app_after_training");
}
