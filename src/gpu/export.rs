//! Headless export: a run folder's four views written as PNG files with the same renderers as the GUI.

use std::fs;
use std::path::{Path, PathBuf};

use super::style::category_colour;
use super::{
    BorderMode, ConfusionInput, ConfusionRenderer, ConfusionView, CurvesInput, CurvesRenderer,
    CurvesView, GpuContext, GpuError, GridInput, GridLayout, InputGridRenderer, RenderTarget,
    Series, ViewStyle, read_back,
};
use crate::run::{self, Chart, ChartKind, RunHistory};

/// Side the confusion pictures aim for; cells are whole pixels, so large matrices come out a bit bigger.
const CONFUSION_SIDE: u32 = 800;

/// Width of the charts stacked in `curves.png`, height of the loss and accuracy charts.
const CHART_SIZE: (u32, u32) = (1000, 360);

/// Height of the learning-rate chart: context, not the subject, so a strip (as in the app).
const LEARNING_RATE_HEIGHT: u32 = 120;

/// Source images are scaled by a whole factor to about this many pixels.
const TILE_SIDE: usize = 64;

/// Smoothing of the loss chart: per-step losses are noisy.
const LOSS_SMOOTHING: f32 = 0.9;

fn save_png(path: &Path, width: u32, height: u32, pixels: Vec<u8>) -> Result<(), GpuError> {
    let image = image::RgbaImage::from_raw(width, height, pixels).ok_or_else(|| {
        GpuError::InvalidInput(format!("{width}x{height} picture of the wrong size"))
    })?;
    image.save(path).map_err(|source| GpuError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Renders `inputs.png`, `confusion.png` (the joint matrix with its transformation blocks, or the class
/// matrix for runs without joint labels), `confusion_classes.png` and `curves.png` (the app's charts,
/// `RunHistory::charts`, top to bottom: loss, accuracies, learning rate) into `out_dir` from the run
/// folder's `snapshot.json`, `metrics.jsonl` and `steps.csv`. A log that does not exist yet leaves
/// its chart empty and a torn final line is skipped, both with a warning; a corrupt file is an error.
pub fn render_run(
    run_dir: &Path,
    out_dir: &Path,
    ctx: &GpuContext,
) -> Result<Vec<PathBuf>, GpuError> {
    let snapshot = run::read_snapshot(run_dir)?;
    let loaded = RunHistory::read_logs(run_dir, u64::MAX);
    if let Some(error) = loaded.errors.into_iter().next() {
        return Err(error.into());
    }
    for torn in &loaded.torn_tails {
        log::warn!("{torn}");
    }
    let charts = loaded.history.charts(&snapshot.transform_names);
    fs::create_dir_all(out_dir).map_err(|source| GpuError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let style = ViewStyle::dark();
    let mut written = Vec::new();
    let mut write =
        |name: &str, width: u32, height: u32, pixels: Vec<u8>| -> Result<(), GpuError> {
            let path = out_dir.join(name);
            save_png(&path, width, height, pixels)?;
            log::info!("wrote {}", path.display());
            written.push(path);
            Ok(())
        };

    let grid = &snapshot.samples;
    if grid.samples == 0 {
        log::warn!("the snapshot holds no sample images; inputs.png stays empty");
    }
    let scale = (TILE_SIDE / grid.height.max(grid.width).max(1)).max(1) as u32;
    let input = GridInput::from_sample_grid(
        grid,
        BorderMode::Correctness,
        GridLayout::scaled(grid.width, grid.height, scale),
        style,
    );
    let (width, height) = input.size();
    let target = RenderTarget::new(&ctx.device, width, height)?;
    let mut renderer = InputGridRenderer::new(&ctx.device);
    ctx.submit(|encoder| renderer.render(ctx, encoder, &input, &target))?;
    write("inputs.png", width, height, read_back(ctx, &target)?)?;

    let n = snapshot.num_classes();
    let m = snapshot.num_transforms().max(1);
    let joint = (!snapshot.joint_confusion.is_empty()).then(|| ConfusionInput {
        block: m,
        ..ConfusionInput::classes(n * m, &snapshot.joint_confusion)
    });
    let classes = if snapshot.class_confusion.is_empty() {
        joint.map(|j| ConfusionInput {
            view: ConfusionView::ClassMarginal,
            ..j
        })
    } else {
        Some(ConfusionInput::classes(n, &snapshot.class_confusion))
    };
    let full = joint
        .or(classes)
        .ok_or_else(|| GpuError::InvalidInput("the snapshot holds no confusion matrix".into()))?;
    let mut confusion = ConfusionRenderer::new(&ctx.device);
    for (name, input) in [
        ("confusion.png", Some(full)),
        ("confusion_classes.png", classes),
    ] {
        let input = input.unwrap_or(full);
        let (side, _) = input.matrix()?;
        let side = u32::try_from(side).unwrap_or(u32::MAX);
        let size = side.saturating_mul(CONFUSION_SIDE.div_ceil(side.max(1)));
        let target = RenderTarget::new(&ctx.device, size, size)?;
        ctx.submit(|encoder| confusion.render(ctx, encoder, &input, &target))?;
        write(name, size, size, read_back(ctx, &target)?)?;
    }

    let (width, height, pixels) = render_run_charts(ctx, &charts, style)?;
    write("curves.png", width, height, pixels)?;
    Ok(written)
}

/// The charts of a run drawn by the curve renderer as the app draws them (the loss smoothed on a
/// log axis, accuracies on 0 to 1, every chart over the whole run's steps), stacked top to bottom:
/// width, height and RGBA rows.
fn render_run_charts(
    ctx: &GpuContext,
    charts: &[Chart],
    style: ViewStyle,
) -> Result<(u32, u32, Vec<u8>), GpuError> {
    let last_step = charts
        .iter()
        .flat_map(|chart| chart.series.iter().filter_map(|s| s.xs.last()))
        .fold(1.0f64, |last, &x| last.max(f64::from(x)));
    let (width, chart_height) = CHART_SIZE;
    let mut curves = CurvesRenderer::new(&ctx.device);
    let mut stacked = Vec::new();
    let mut height = 0;
    for chart in charts {
        let chart_height = match chart.kind {
            ChartKind::LearningRate => LEARNING_RATE_HEIGHT,
            ChartKind::Loss | ChartKind::Accuracy => chart_height,
        };
        let input = CurvesInput {
            series: chart
                .series
                .iter()
                .map(|line| Series {
                    ys: &line.ys,
                    xs: Some(&line.xs),
                    colour: line.colour,
                    smooth: line.smooth,
                })
                .collect(),
            smoothing: LOSS_SMOOTHING,
            raw_shadow: chart.kind == ChartKind::Loss,
            view: CurvesView {
                x_range: Some((0.0, last_step)),
                y_range: (chart.kind == ChartKind::Accuracy).then_some((0.0, 1.0)),
                log_y: chart.kind.log_y_by_default(),
                style,
                ..CurvesView::default()
            },
        };
        let target = RenderTarget::new(&ctx.device, width, chart_height)?;
        ctx.submit(|encoder| curves.render(ctx, encoder, &input, &target).map(|_| ()))?;
        stacked.extend(read_back(ctx, &target)?);
        height += chart_height;
    }
    Ok((width, height, stacked))
}

/// Charts of `CHART_SIZE`, each drawn by the curve renderer, stacked top to bottom (RGBA rows).
fn render_charts(ctx: &GpuContext, charts: &[CurvesInput<'_>]) -> Result<Vec<u8>, GpuError> {
    let (width, height) = CHART_SIZE;
    let target = RenderTarget::new(&ctx.device, width, height)?;
    let mut curves = CurvesRenderer::new(&ctx.device);
    let mut stacked = Vec::with_capacity(width as usize * height as usize * 4 * charts.len());
    for chart in charts {
        ctx.submit(|encoder| curves.render(ctx, encoder, chart, &target).map(|_| ()))?;
        stacked.extend(read_back(ctx, &target)?);
    }
    Ok(stacked)
}

/// One line of the per-class accuracy chart: a mode's accuracy of each class, classes in the order
/// the chart shows them (most to fewest training images).
#[derive(Clone, Debug, PartialEq)]
pub struct PerClassLine {
    pub name: String,
    pub values: Vec<f32>,
}

/// `per-class-*.png`: per-class test accuracy (y from 0 to 1) against the class rank by training
/// count (x), one line per mode in the categorical colours, in order (the legend is the order of
/// `lines`: blue, orange, red, teal, green, …).
pub fn render_per_class(
    lines: &[PerClassLine],
    path: &Path,
    ctx: &GpuContext,
) -> Result<(), GpuError> {
    let classes = lines.iter().map(|l| l.values.len()).max().unwrap_or(0);
    let chart = CurvesInput {
        series: lines
            .iter()
            .enumerate()
            .map(|(i, line)| Series {
                ys: &line.values,
                xs: None,
                colour: category_colour(i),
                smooth: false,
            })
            .collect(),
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView {
            x_range: Some((0.0, classes.saturating_sub(1).max(1) as f64)),
            y_range: Some((0.0, 1.0)),
            line_width: 2.5,
            style: ViewStyle::dark(),
            ..CurvesView::default()
        },
    };
    let pixels = render_charts(ctx, &[chart])?;
    save_figure(path, 1, pixels)
}

/// `charts` stacked charts of `CHART_SIZE` saved at `path`, its folder made if needed.
fn save_figure(path: &Path, charts: u32, pixels: Vec<u8>) -> Result<(), GpuError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| GpuError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let (width, height) = CHART_SIZE;
    save_png(path, width, height * charts, pixels)
}

/// One mode of an experiment in the overlaid figure: its training loss at each step and one test
/// accuracy at each evaluation (each the mean over the mode's seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct ModeCurves {
    pub name: String,
    pub steps: Vec<f32>,
    pub loss: Vec<f32>,
    pub eval_steps: Vec<f32>,
    pub accuracy: Vec<f32>,
}

/// `curves-modes*.png`: the modes overlaid, one categorical colour each in the order of `modes`
/// (blue, orange, red, teal, green, …): the smoothed training loss (log y) above, the test accuracy
/// below (y fitted to the data, so gaps of a point or two stay visible), x the step in both.
pub fn render_mode_curves(
    modes: &[ModeCurves],
    path: &Path,
    ctx: &GpuContext,
) -> Result<(), GpuError> {
    let last = modes
        .iter()
        .flat_map(|m| m.steps.last().into_iter().chain(m.eval_steps.last()))
        .fold(1.0f32, |a, &b| a.max(b));
    let view = CurvesView {
        x_range: Some((0.0, f64::from(last))),
        line_width: 2.0,
        style: ViewStyle::dark(),
        ..CurvesView::default()
    };
    let charts = [
        CurvesInput {
            series: modes
                .iter()
                .enumerate()
                .map(|(i, m)| Series {
                    ys: &m.loss,
                    xs: Some(&m.steps),
                    colour: category_colour(i),
                    smooth: true,
                })
                .collect(),
            smoothing: LOSS_SMOOTHING,
            raw_shadow: false,
            view: CurvesView {
                log_y: true,
                ..view
            },
        },
        CurvesInput {
            series: modes
                .iter()
                .enumerate()
                .map(|(i, m)| Series {
                    ys: &m.accuracy,
                    xs: Some(&m.eval_steps),
                    colour: category_colour(i),
                    smooth: false,
                })
                .collect(),
            smoothing: 0.0,
            raw_shadow: false,
            view,
        },
    ];
    let pixels = render_charts(ctx, &charts)?;
    save_figure(path, 2, pixels)
}
