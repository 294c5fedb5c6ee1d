//! The step estimate under the model summary: on request, the chosen model and objective are built
//! on the chosen device and a few training steps on random data of the dataset's shape are timed
//! (the same step `sla bench` times), giving seconds per step and the host memory one step
//! needs. It is shown as what it is, a measurement of random batches, not of the run itself.

use std::sync::mpsc::{self, Receiver, TryRecvError};

use eframe::egui;

use crate::config::TrainConfig;
use crate::data::ImageShape;
use crate::model::ModelKind;
use crate::sla::{Objective, TransformSet};
use crate::train::step_timer::{StepTiming, SyntheticStep, time_steps};

use super::x_axis::duration;

/// Untimed steps first (the first step allocates and warms caches), then the timed ones: enough
/// for a median, few enough to answer in seconds.
const WARMUP_STEPS: usize = 1;
const TIMED_STEPS: usize = 2;

/// Everything the measurement depends on; a change makes an earlier result stale.
#[derive(Clone, Debug, PartialEq)]
struct Setup {
    model: ModelKind,
    objective: Objective,
    set: TransformSet,
    shape: (usize, usize, usize),
    batch_size: usize,
    device: String,
}

/// The last measurement and the one in progress.
#[derive(Default)]
pub struct StepEstimate {
    running: Option<(Setup, Receiver<Result<StepTiming, String>>)>,
    done: Option<(Setup, Result<StepTiming, String>)>,
}

impl StepEstimate {
    fn start(&mut self, setup: Setup, ctx: &egui::Context) {
        let (sender, receiver) = mpsc::channel();
        let job = setup.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("step estimate".into())
            .spawn(move || {
                let _ = sender.send(measure(&job));
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.running = Some((setup, receiver)),
            Err(error) => self.done = Some((setup, Err(error.to_string()))),
        }
    }

    fn poll(&mut self) {
        let Some((setup, receiver)) = &self.running else {
            return;
        };
        let result = match receiver.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(result) => result,
            Err(TryRecvError::Disconnected) => Err("the measurement stopped unexpectedly".into()),
        };
        self.done = Some((setup.clone(), result));
        self.running = None;
    }
}

fn measure(setup: &Setup) -> Result<StepTiming, String> {
    let device = crate::device::open_device(&setup.device)?;
    let (channels, height, width) = setup.shape;
    let shape = ImageShape {
        channels,
        height,
        width,
    };
    let timing = time_steps(
        || {
            SyntheticStep::new(
                setup.model,
                setup.objective.clone(),
                &setup.set,
                shape,
                setup.batch_size,
                &device,
            )
        },
        WARMUP_STEPS,
        TIMED_STEPS,
        || {},
    )
    .map_err(|e| e.to_string())?;
    // Host memory is the step's memory only when the step runs on the host.
    Ok(StepTiming {
        step_memory_mb: timing.step_memory_mb.filter(|_| device.is_cpu()),
        ..timing
    })
}

/// The "Time a step" button and its result, for `config` on images of `shape` with `classes`
/// classes; disabled while `busy` (a run is training: it would slow both and measure neither).
pub(super) fn show(
    ui: &mut egui::Ui,
    estimate: &mut StepEstimate,
    config: &TrainConfig,
    (shape, classes): (ImageShape, usize),
    busy: bool,
) {
    estimate.poll();
    let Ok(set) = config.transforms.set() else {
        return;
    };
    let setup = Setup {
        model: config.model,
        objective: config.objective(classes, set.len()),
        set,
        shape: (shape.channels, shape.height, shape.width),
        batch_size: config.batch_size,
        device: config.device.clone(),
    };
    ui.horizontal_wrapped(|ui| {
        let running = estimate.running.is_some();
        let button = ui
            .add_enabled(!busy && !running, egui::Button::new("Time a step"))
            .on_hover_text(format!(
                "Build the model on {} and time {TIMED_STEPS} training steps (after \
                 {WARMUP_STEPS} warm-up) on random images of this shape, batch and M",
                setup.device
            ))
            .on_disabled_hover_text("not while a run trains: both would be slowed");
        if button.clicked() {
            estimate.start(setup.clone(), ui.ctx());
        }
        if running {
            ui.spinner();
            ui.label("timing…");
        }
    });
    let Some((measured, result)) = &estimate.done else {
        return;
    };
    let text = match result {
        Ok(timing) => describe(timing, measured),
        Err(error) => format!("could not time a step: {error}"),
    };
    let text = if *measured == setup {
        text
    } else {
        format!("{text} (for earlier settings: time again)")
    };
    ui.label(egui::RichText::new(text).small());
}

/// "estimate on cpu: 0.71 s a step (median of 2), about 310 MiB of memory for the step".
fn describe(timing: &StepTiming, setup: &Setup) -> String {
    let seconds = timing.median_ms() / 1e3;
    let per_step = if seconds < 60.0 {
        format!("{seconds:.2} s")
    } else {
        duration(seconds)
    };
    let memory = match timing.step_memory_mb {
        Some(mb) => format!(", about {mb:.0} MiB of memory for the step"),
        _ => ", memory on this device not measured".to_string(),
    };
    format!(
        "estimate on {}: {per_step} a step (median of {}, random images){memory}",
        setup.device,
        timing.sorted_ms.len()
    )
}
