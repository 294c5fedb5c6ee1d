//! Curves view: many long series as anti-aliased lines over a grid, down-sampled per pixel column by min/max.
//!
//! Smoothing (a debiased exponential moving average) runs on the CPU over the full data when the data
//! is uploaded, never on the down-sampled picture; it is a sequential scan, done once per new data, not
//! per frame. Everything that depends on the view (ranges, log axis, size) happens on the GPU per draw:
//! `reduce` finds, for every series and pixel column, the exact min/max of the polyline over that
//! column's x interval (so no spike is hidden), and `draw` shades each pixel by its distance to those spans.

use eframe::wgpu;

use super::buffer::GrowableBuffer;
use super::gpu_data::{CurvesParams, IMPLICIT_X, MAX_TICKS, MISSING, NO_BAND, SeriesInfo};
use super::{
    GpuContext, GpuError, LINEAR_WORKGROUP_SIZE, RenderTarget, ViewStyle, pack_rgba, unorm8,
    unpack_rgba,
};
use crate::number_format::tick_labels;

/// One line: `ys[i]` at `xs[i]` (ascending), or at x = i when `xs` is `None`. Non-finite values are gaps.
/// The GPU works in f32, so x stays exact up to 2^24 (16.7 million steps).
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    pub ys: &'a [f32],
    pub xs: Option<&'a [f32]>,
    /// Gamma-space RGBA; alpha blends the line over what lies below.
    pub colour: [u8; 4],
    /// Whether the chart's smoothing applies (per-step losses: yes; a few evaluation points: no).
    pub smooth: bool,
    /// A band instead of a line: filled from `low` up to `ys` (at the same x), in `colour`.
    pub low: Option<&'a [f32]>,
}

/// Pixels around the plot area, left for axis labels: egui draws them over the texture in the app,
/// `annotate` onto the read-back picture in the headless figures (with wider margins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Margins {
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
}

impl Default for Margins {
    fn default() -> Self {
        Self {
            left: 56,
            right: 12,
            top: 8,
            bottom: 24,
        }
    }
}

/// How the uploaded series are shown; changing it needs no new upload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvesView {
    /// A true log10 y axis: lines are straight between points in log space; y ≤ 0 is a gap.
    pub log_y: bool,
    /// Data x shown from left to right edge; `None` fits all data.
    pub x_range: Option<(f64, f64)>,
    /// Data y (not its log) shown from bottom to top; `None` fits all data with a 5% pad.
    pub y_range: Option<(f64, f64)>,
    pub margins: Margins,
    /// Line width in pixels.
    pub line_width: f32,
    pub style: ViewStyle,
}

impl Default for CurvesView {
    fn default() -> Self {
        Self {
            log_y: false,
            x_range: None,
            y_range: None,
            margins: Margins::default(),
            line_width: 1.5,
            style: ViewStyle::default(),
        }
    }
}

/// Everything one chart shows.
#[derive(Clone, Debug)]
pub struct CurvesInput<'a> {
    pub series: Vec<Series<'a>>,
    /// Weight of the exponential moving average in [0, 1) for series with `smooth`; 0 draws raw data.
    pub smoothing: f32,
    /// With smoothing, also draw each smoothed series' raw data faded under its line.
    pub raw_shadow: bool,
    pub view: CurvesView,
}

/// A grid line: its data value and its texture column (x) or row (y).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub pixel: u32,
}

/// Where things landed in the texture, for labels and hover drawn by egui or by `annotate`.
#[derive(Clone, Debug, PartialEq)]
pub struct Axes {
    /// Plot area: left, top, width, height in texture pixels.
    pub plot: [u32; 4],
    /// Data x at the plot's left and right edges.
    pub x_range: (f64, f64),
    /// Data y at the plot's bottom and top edges (not its log).
    pub y_range: (f64, f64),
    pub log_y: bool,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
}

impl Axes {
    /// Labels of the x ticks, as the app and the figures print them (x is never on a log axis).
    pub fn x_tick_labels(&self) -> Vec<String> {
        let values: Vec<f64> = self.x_ticks.iter().map(|t| t.value).collect();
        tick_labels(&values, false)
    }

    /// Labels of the y ticks, as the app and the figures print them.
    pub fn y_tick_labels(&self) -> Vec<String> {
        let values: Vec<f64> = self.y_ticks.iter().map(|t| t.value).collect();
        tick_labels(&values, self.log_y)
    }
}

/// Debiased exponential moving average (as TensorBoard and W&B smooth): a constant series stays
/// constant and early points are not pulled toward 0. Non-finite points stay gaps and are skipped.
pub fn smooth(ys: &[f32], weight: f32, out: &mut Vec<f32>) {
    let weight = f64::from(weight.clamp(0.0, 0.999_999));
    let (mut sum, mut norm) = (0.0f64, 0.0f64);
    out.extend(ys.iter().map(|&y| {
        if !y.is_finite() {
            return y;
        }
        sum = weight * sum + (1.0 - weight) * f64::from(y);
        norm = weight * norm + (1.0 - weight);
        (sum / norm) as f32
    }));
}

#[derive(Clone, Copy, Debug, Default)]
struct Bounds {
    x: Option<(f64, f64)>,
    y: Option<(f64, f64)>,
    y_positive: Option<(f64, f64)>,
}

fn widen(range: &mut Option<(f64, f64)>, v: f64) {
    *range = Some(match *range {
        Some((lo, hi)) => (lo.min(v), hi.max(v)),
        None => (v, v),
    });
}

/// The data as uploaded: all series' y (and explicit x) back to back, missing points as `MISSING`.
#[derive(Debug, Default)]
struct Prepared {
    ys: Vec<f32>,
    xs: Vec<f32>,
    infos: Vec<SeriesInfo>,
    bounds: Bounds,
}

fn count_u32(n: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(n).map_err(|_| {
        GpuError::InvalidInput(format!("{n} {what} do not fit the GPU's 32-bit indices"))
    })
}

impl Prepared {
    fn fill(
        &mut self,
        series: &[Series<'_>],
        smoothing: f32,
        raw_shadow: bool,
    ) -> Result<(), GpuError> {
        self.ys.clear();
        self.xs.clear();
        self.infos.clear();
        self.bounds = Bounds::default();
        let mut x_offsets = Vec::with_capacity(series.len());
        for s in series {
            if let Some(low) = s.low
                && low.len() != s.ys.len()
            {
                return Err(GpuError::InvalidInput(format!(
                    "a band has {} high and {} low values",
                    s.ys.len(),
                    low.len()
                )));
            }
            let Some(xs) = s.xs else {
                x_offsets.push(IMPLICIT_X);
                if !s.ys.is_empty() {
                    widen(&mut self.bounds.x, 0.0);
                    widen(&mut self.bounds.x, (s.ys.len() - 1) as f64);
                }
                continue;
            };
            if xs.len() != s.ys.len() {
                return Err(GpuError::InvalidInput(format!(
                    "a series has {} x and {} y values",
                    xs.len(),
                    s.ys.len()
                )));
            }
            if xs.iter().any(|x| !x.is_finite()) || xs.windows(2).any(|w| w[1] < w[0]) {
                return Err(GpuError::InvalidInput(
                    "a series' x values are not finite and ascending".into(),
                ));
            }
            if let (Some(&first), Some(&last)) = (xs.first(), xs.last()) {
                widen(&mut self.bounds.x, f64::from(first));
                widen(&mut self.bounds.x, f64::from(last));
            }
            x_offsets.push(count_u32(self.xs.len(), "x values")?);
            self.xs.extend_from_slice(xs);
        }
        let smoothed = |s: &Series<'_>| s.smooth && smoothing > 0.0;
        if raw_shadow {
            for (s, &x_offset) in series.iter().zip(&x_offsets).filter(|(s, _)| smoothed(s)) {
                let [r, g, b, a] = s.colour;
                // Faded so the smoothed line reads first; the raw data stays visible as context.
                let faded = [r, g, b, (f32::from(a) * 0.3).round() as u8];
                self.push(s, x_offset, faded, None)?;
            }
        }
        for (s, &x_offset) in series.iter().zip(&x_offsets) {
            self.push(s, x_offset, s.colour, smoothed(s).then_some(smoothing))?;
        }
        count_u32(self.ys.len(), "y values")?;
        Ok(())
    }

    fn push(
        &mut self,
        series: &Series<'_>,
        x_offset: u32,
        colour: [u8; 4],
        smoothing: Option<f32>,
    ) -> Result<(), GpuError> {
        let y_offset = self.append(series.ys, smoothing)?;
        let low_offset = match series.low {
            Some(low) => self.append(low, smoothing)?,
            None => NO_BAND,
        };
        self.infos.push(SeriesInfo {
            y_offset,
            x_offset,
            len: count_u32(series.ys.len(), "points")?,
            colour: pack_rgba(colour),
            low_offset,
        });
        Ok(())
    }

    /// Appends one line's y values (smoothed if asked), widening the bounds; returns its offset.
    fn append(&mut self, ys: &[f32], smoothing: Option<f32>) -> Result<u32, GpuError> {
        let y_offset = count_u32(self.ys.len(), "y values")?;
        let start = self.ys.len();
        match smoothing {
            Some(weight) => smooth(ys, weight, &mut self.ys),
            None => self.ys.extend_from_slice(ys),
        }
        for y in &mut self.ys[start..] {
            if y.is_finite() {
                widen(&mut self.bounds.y, f64::from(*y));
                if *y > 0.0 {
                    widen(&mut self.bounds.y_positive, f64::from(*y));
                }
            } else {
                *y = MISSING;
            }
        }
        Ok(y_offset)
    }
}

/// Rounded steps of 1, 2 or 5 × 10^k, about `target` of them, inside [lo, hi].
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let raw = (hi - lo) / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return Vec::new();
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = magnitude
        * match raw / magnitude {
            n if n < 1.5 => 1.0,
            n if n < 3.0 => 2.0,
            n if n < 7.0 => 5.0,
            _ => 10.0,
        };
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Ticks of a log axis over [lo, hi] (0 < lo < hi): whole decades when at least three fall
/// inside (every k-th decade for wide ranges, at most about eight); else 1, 2 and 5 times each
/// power of ten, which a range of one or two decades holds three or more of (a loss from 2 to 30
/// has the decade 10 alone, but 2, 5, 10 and 20); else, for a range under about a factor of 2.5,
/// evenly spaced nice values.
fn log_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (a, b) = (lo.log10(), hi.log10());
    if !(a.is_finite() && b.is_finite() && b > a) {
        return Vec::new();
    }
    let step = ((b - a) / 8.0).ceil().max(1.0);
    let decades: Vec<f64> = ((a / step).ceil() as i64..=(b / step).floor() as i64)
        .map(|k| 10f64.powf(k as f64 * step))
        .collect();
    if decades.len() >= 3 {
        return decades;
    }
    let one_two_five: Vec<f64> = (a.floor() as i32..=b.floor() as i32)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .filter(|v| (lo..=hi).contains(v))
        .collect();
    if one_two_five.len() >= 3 {
        return one_two_five;
    }
    nice_ticks(lo, hi, target)
}

/// The view resolved against the data: shader parameters plus the axes egui labels.
fn resolve(
    view: &CurvesView,
    bounds: &Bounds,
    series_count: usize,
    width: u32,
    height: u32,
) -> (CurvesParams, Axes) {
    let m = view.margins;
    let left = m.left.min(width - 1);
    let top = m.top.min(height - 1);
    let plot_width = width.saturating_sub(left.saturating_add(m.right)).max(1);
    let plot_height = height.saturating_sub(top.saturating_add(m.bottom)).max(1);
    let usable = |r: (f64, f64)| r.0.is_finite() && r.1.is_finite() && r.1 > r.0;
    let x_range = view
        .x_range
        .filter(|&r| usable(r))
        .or_else(|| {
            bounds.x.map(|(lo, hi)| {
                if hi > lo {
                    (lo, hi)
                } else {
                    (lo - 0.5, lo + 0.5)
                }
            })
        })
        .unwrap_or((0.0, 1.0));
    let log = |v: f64| v.log10();
    let y_fixed = view
        .y_range
        .filter(|&r| usable(r) && (!view.log_y || r.0 > 0.0))
        .map(|(lo, hi)| {
            if view.log_y {
                (log(lo), log(hi))
            } else {
                (lo, hi)
            }
        });
    let y_data = if view.log_y {
        bounds.y_positive.map(|(lo, hi)| (log(lo), log(hi)))
    } else {
        bounds.y
    };
    let (y0, y1) = y_fixed
        .or_else(|| {
            y_data.map(|(lo, hi)| {
                let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
                (lo - pad, hi + pad)
            })
        })
        .unwrap_or((0.0, 1.0));
    let unlog = |v: f64| if view.log_y { 10f64.powf(v) } else { v };
    let x_pixel = |x: f64| (x - x_range.0) / (x_range.1 - x_range.0) * f64::from(plot_width);
    let y_pixel = |y: f64| (y1 - y) / (y1 - y0) * f64::from(plot_height);
    let ticks =
        |values: Vec<f64>, to_pixel: &dyn Fn(f64) -> f64, start: u32, len: u32| -> Vec<Tick> {
            values
                .into_iter()
                .filter_map(|value| {
                    let p = to_pixel(value).floor();
                    (p >= 0.0 && p < f64::from(len)).then(|| Tick {
                        value,
                        pixel: start + p as u32,
                    })
                })
                .take(MAX_TICKS)
                .collect()
        };
    let x_ticks = ticks(
        nice_ticks(
            x_range.0,
            x_range.1,
            (plot_width / 100).clamp(2, 10) as usize,
        ),
        &x_pixel,
        left,
        plot_width,
    );
    let y_target = (plot_height / 60).clamp(2, 8) as usize;
    let y_values = if view.log_y {
        log_ticks(unlog(y0), unlog(y1), y_target)
    } else {
        nice_ticks(y0, y1, y_target)
    };
    let y_ticks = ticks(
        y_values,
        &|v| y_pixel(if view.log_y { log(v) } else { v }),
        top,
        plot_height,
    );
    let pack = |ticks: &[Tick]| {
        let mut packed = [[-1i32; 4]; MAX_TICKS / 4];
        for (i, t) in ticks.iter().enumerate() {
            packed[i / 4][i % 4] = t.pixel as i32;
        }
        packed
    };
    let params = CurvesParams {
        out_width: width,
        out_height: height,
        plot_left: left,
        plot_top: top,
        plot_width,
        plot_height,
        // Bounded by the series buffer, itself bounded by the device limits.
        series_count: series_count as u32,
        log_y: u32::from(view.log_y),
        x_origin: x_range.0 as f32,
        x_step: ((x_range.1 - x_range.0) / f64::from(plot_width)) as f32,
        y_top: y1 as f32,
        y_scale: (f64::from(plot_height) / (y1 - y0)) as f32,
        half_width: (view.line_width * 0.5).max(0.0),
        background: pack_rgba(view.style.background),
        grid_colour: pack_rgba(view.style.grid_line),
        axis_colour: pack_rgba(view.style.axis),
        x_ticks: pack(&x_ticks),
        y_ticks: pack(&y_ticks),
    };
    let axes = Axes {
        plot: [left, top, plot_width, plot_height],
        x_range,
        y_range: (unlog(y0), unlog(y1)),
        log_y: view.log_y,
        x_ticks,
        y_ticks,
    };
    (params, axes)
}

struct BindGroups {
    target: u64,
    reduce: wgpu::BindGroup,
    draw: wgpu::BindGroup,
}

/// Draws [`CurvesInput`]s with the two passes of `shaders/curves.wgsl`.
pub struct CurvesRenderer {
    reduce: wgpu::ComputePipeline,
    draw: wgpu::ComputePipeline,
    reduce_layout: wgpu::BindGroupLayout,
    draw_layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    ys: GrowableBuffer,
    xs: GrowableBuffer,
    series: GrowableBuffer,
    spans: GrowableBuffer,
    /// The last upload; its vectors are reused so re-uploads do not allocate.
    data: Prepared,
    bind_groups: Option<BindGroups>,
}

impl CurvesRenderer {
    pub fn new(device: &wgpu::Device) -> Self {
        use super::{layout_entry, output_binding, storage_binding, uniform_binding};
        let reduce_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("curves reduce"),
            entries: &[
                layout_entry(0, uniform_binding()),
                layout_entry(1, storage_binding(true)),
                layout_entry(2, storage_binding(true)),
                layout_entry(3, storage_binding(true)),
                layout_entry(4, storage_binding(false)),
            ],
        });
        let draw_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("curves draw"),
            entries: &[
                layout_entry(0, uniform_binding()),
                layout_entry(3, storage_binding(true)),
                layout_entry(5, storage_binding(true)),
                layout_entry(6, output_binding()),
            ],
        });
        let module = super::shader_module(device, "curves");
        Self {
            reduce: super::compute_pipeline(
                device,
                "curves reduce",
                &reduce_layout,
                &module,
                "reduce",
            ),
            draw: super::compute_pipeline(device, "curves draw", &draw_layout, &module, "draw"),
            reduce_layout,
            draw_layout,
            params: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("curves params"),
                size: size_of::<CurvesParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            ys: GrowableBuffer::new(device, "curves y values"),
            xs: GrowableBuffer::new(device, "curves x values"),
            series: GrowableBuffer::new(device, "curves series"),
            spans: GrowableBuffer::new(device, "curves column spans"),
            data: Prepared::default(),
            bind_groups: None,
        }
    }

    /// Smooths (on the CPU, over the full data) and uploads the series; call when they or the smoothing change.
    pub fn upload(
        &mut self,
        ctx: &GpuContext,
        series: &[Series<'_>],
        smoothing: f32,
        raw_shadow: bool,
    ) -> Result<(), GpuError> {
        self.data.fill(series, smoothing, raw_shadow)?;
        let grown = [
            self.ys
                .write_bytes(ctx, bytemuck::cast_slice(&self.data.ys))?,
            self.xs
                .write_bytes(ctx, bytemuck::cast_slice(&self.data.xs))?,
            self.series
                .write_bytes(ctx, bytemuck::cast_slice(&self.data.infos))?,
        ];
        if grown.contains(&true) {
            self.bind_groups = None;
        }
        Ok(())
    }

    /// Where the plot, its ranges and its grid lines fall in a `width`×`height` target with the uploaded data.
    pub fn axes(&self, view: &CurvesView, width: u32, height: u32) -> Axes {
        resolve(
            view,
            &self.data.bounds,
            self.data.infos.len(),
            width.max(1),
            height.max(1),
        )
        .1
    }

    /// Records both passes for the uploaded series. Draw each renderer once per submit.
    pub fn draw(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        view: &CurvesView,
        target: &RenderTarget,
    ) -> Result<Axes, GpuError> {
        let series_count = self.data.infos.len();
        let (params, axes) = resolve(
            view,
            &self.data.bounds,
            series_count,
            target.width(),
            target.height(),
        );
        let spans_size = (series_count as u64 * u64::from(params.plot_width) * 8).max(8);
        if self.spans.reserve(ctx, spans_size)? {
            self.bind_groups = None;
        }
        ctx.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        if !matches!(&self.bind_groups, Some(b) if b.target == target.id()) {
            self.bind_groups = Some(self.bind_groups_for(ctx, target));
        }
        let Some(groups) = &self.bind_groups else {
            return Ok(axes);
        };
        if series_count > 0 {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("curves reduce"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.reduce);
            pass.set_bind_group(0, &groups.reduce, &[]);
            pass.dispatch_workgroups(
                params.plot_width.div_ceil(LINEAR_WORKGROUP_SIZE),
                params.series_count,
                1,
            );
        }
        super::dispatch_per_pixel(encoder, "curves draw", &self.draw, &groups.draw, target);
        Ok(axes)
    }

    /// Uploads and draws in one go (headless export, tests); the GUI calls `upload` only on new data.
    pub fn render(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: &CurvesInput<'_>,
        target: &RenderTarget,
    ) -> Result<Axes, GpuError> {
        self.upload(ctx, &input.series, input.smoothing, input.raw_shadow)?;
        self.draw(ctx, encoder, &input.view, target)
    }

    fn bind_groups_for(&self, ctx: &GpuContext, target: &RenderTarget) -> BindGroups {
        let entry = |binding, resource| wgpu::BindGroupEntry { binding, resource };
        let reduce = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("curves reduce"),
            layout: &self.reduce_layout,
            entries: &[
                entry(0, self.params.as_entire_binding()),
                entry(1, self.ys.buffer().as_entire_binding()),
                entry(2, self.xs.buffer().as_entire_binding()),
                entry(3, self.series.buffer().as_entire_binding()),
                entry(4, self.spans.buffer().as_entire_binding()),
            ],
        });
        let draw = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("curves draw"),
            layout: &self.draw_layout,
            entries: &[
                entry(0, self.params.as_entire_binding()),
                entry(3, self.series.buffer().as_entire_binding()),
                entry(5, self.spans.buffer().as_entire_binding()),
                entry(6, wgpu::BindingResource::TextureView(&target.view)),
            ],
        });
        BindGroups {
            target: target.id(),
            reduce,
            draw,
        }
    }
}

/// The CPU picture of both passes of `shaders/curves.wgsl`: RGBA rows of a `width`×`height` target.
pub fn reference_image(
    input: &CurvesInput<'_>,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, GpuError> {
    if width == 0 || height == 0 {
        return Err(GpuError::InvalidInput("an empty curves picture".into()));
    }
    let mut data = Prepared::default();
    data.fill(&input.series, input.smoothing, input.raw_shadow)?;
    let (p, _) = resolve(&input.view, &data.bounds, data.infos.len(), width, height);
    let spans: Vec<[f32; 2]> = data
        .infos
        .iter()
        .flat_map(|s| (0..p.plot_width).map(|column| reference_span(&p, &data, s, column)))
        .collect();
    let mut image = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            image.extend(reference_pixel(&p, &data.infos, &spans, x, y).map(unorm8));
        }
    }
    Ok(image)
}

const LOG10_2: f32 = std::f32::consts::LOG10_2;

fn reference_span(p: &CurvesParams, data: &Prepared, s: &SeriesInfo, column: u32) -> [f32; 2] {
    let x_at = |i: u32| {
        if s.x_offset == IMPLICIT_X {
            i as f32
        } else {
            data.xs[(s.x_offset + i) as usize]
        }
    };
    let y_at = |offset: u32, i: u32| {
        let y = data.ys[(offset + i) as usize];
        match y {
            y if y >= MISSING => MISSING,
            y if p.log_y != 0 && y <= 0.0 => MISSING,
            y if p.log_y != 0 => y.log2() * LOG10_2,
            y => y,
        }
    };
    let lower_bound = |x: f32| {
        let (mut lo, mut hi) = (0, s.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if x_at(mid) < x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let crossing = |offset: u32, i: u32, x: f32| {
        if i == 0 || i >= s.len {
            return MISSING;
        }
        let (ya, yb) = (y_at(offset, i - 1), y_at(offset, i));
        if ya >= MISSING || yb >= MISSING {
            return MISSING;
        }
        let (xa, xb) = (x_at(i - 1), x_at(i));
        if xb <= xa {
            return yb;
        }
        ya + (x - xa) / (xb - xa) * (yb - ya)
    };
    let to_pixel = |y: f32| {
        let top = p.plot_top as f32;
        let margin = p.half_width + 2.0;
        (top + (p.y_top - y) * p.y_scale).clamp(top - margin, top + p.plot_height as f32 + margin)
    };
    let x0 = p.x_origin + column as f32 * p.x_step;
    let x1 = p.x_origin + (column + 1) as f32 * p.x_step;
    let (first, end) = (lower_bound(x0), lower_bound(x1));
    let (mut lo, mut hi) = (MISSING, -MISSING);
    // A band covers its low line too, and everything between.
    let lines = [
        Some(s.y_offset),
        (s.low_offset != NO_BAND).then_some(s.low_offset),
    ];
    for offset in lines.into_iter().flatten() {
        let values = (first..end)
            .map(|i| y_at(offset, i))
            .chain([crossing(offset, first, x0), crossing(offset, end, x1)]);
        for y in values.filter(|&y| y < MISSING) {
            lo = lo.min(y);
            hi = hi.max(y);
        }
    }
    if lo <= hi {
        [to_pixel(hi), to_pixel(lo)]
    } else {
        [1.0, -1.0]
    }
}

fn reference_pixel(
    p: &CurvesParams,
    infos: &[SeriesInfo],
    spans: &[[f32; 2]],
    x: u32,
    y: u32,
) -> [f32; 4] {
    let (px, py) = (x as i32, y as i32);
    let (left, top) = (p.plot_left as i32, p.plot_top as i32);
    let (right, bottom) = (left + p.plot_width as i32, top + p.plot_height as i32);
    let on_y_axis = px == left - 1 && py >= top && py <= bottom;
    let on_x_axis = py == bottom && px >= left - 1 && px < right;
    if on_y_axis || on_x_axis {
        return unpack_rgba(p.axis_colour);
    }
    let mut colour = unpack_rgba(p.background);
    if px < left || px >= right || py < top || py >= bottom {
        return colour;
    }
    let ticked = |ticks: &[[i32; 4]], v: i32| ticks.iter().flatten().any(|&t| t == v);
    if ticked(&p.x_ticks, px) || ticked(&p.y_ticks, py) {
        colour = unpack_rgba(p.grid_colour);
    }
    let column = px - left;
    let centre = y as f32 + 0.5;
    for (index, s) in infos.iter().enumerate() {
        let mut coverage = 0.0f32;
        for dc in -1i32..=1 {
            let c = column + dc;
            if c < 0 || c >= p.plot_width as i32 {
                continue;
            }
            let [top, bottom] = spans[index * p.plot_width as usize + c as usize];
            if top > bottom {
                continue;
            }
            let dy = (top - centre).max(centre - bottom).max(0.0);
            let dx = dc.abs() as f32;
            let distance = (dx * dx + dy * dy).sqrt();
            coverage = coverage.max((p.half_width + 0.5 - distance).clamp(0.0, 1.0));
        }
        let line = unpack_rgba(s.colour);
        let a = coverage * line[3];
        for c in 0..3 {
            colour[c] = colour[c] * (1.0 - a) + line[c] * a;
        }
        colour[3] = 1.0;
    }
    colour
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * y.abs())
    }

    #[test]
    fn a_log_axis_always_gets_several_ticks() {
        // Many decades: whole ones; every third of eighteen, to keep about eight.
        assert!(close(
            &log_ticks(1e-3, 1e2, 5),
            &[1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]
        ));
        assert!(close(
            &log_ticks(1e-9, 1e9, 5),
            &[1e-9, 1e-6, 1e-3, 1.0, 1e3, 1e6, 1e9]
        ));
        // A loss from 2 to 30 holds one decade only: 1-2-5 steps instead.
        assert!(close(&log_ticks(2.0, 30.0, 5), &[2.0, 5.0, 10.0, 20.0]));
        assert!(close(&log_ticks(0.3, 4.0, 5), &[0.5, 1.0, 2.0]));
        // Under a factor of 2.5: evenly spaced values.
        assert!(close(&log_ticks(1.1, 1.9, 4), &[1.2, 1.4, 1.6, 1.8]));
        assert!(log_ticks(0.0, 1.0, 4).is_empty());
    }
}
