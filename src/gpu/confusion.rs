//! Confusion heatmap view: a count matrix as colour-mapped cells, with its class and transformation
//! marginals, or the difference of two runs' matrices (run B − run A) in a diverging colour map.
//!
//! The marginals, differences and row sums are computed on the CPU before upload: they are O(K²)
//! additions done once per new matrix, far below the cost of the per-pixel pass, and keep the shader
//! a pure lookup.

use std::borrow::Cow;

use eframe::wgpu;
use eframe::wgpu::util::DeviceExt;

use super::buffer::GrowableBuffer;
use super::gpu_data::{ConfusionParams, NO_HIGHLIGHT};
use super::style::{COLORMAP_LEN, diverging_table, viridis_table};
use super::{GpuContext, GpuError, RenderTarget, ViewStyle, pack_rgba, unorm8, unpack_rgba};

/// Which matrix of a joint (class × transformation) confusion matrix to draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConfusionView {
    /// The K×K matrix itself, with lines between the `block`×`block` transformation blocks.
    #[default]
    Full,
    /// N×N with N = K / block: counts summed over the transformations of the true and predicted label.
    ClassMarginal,
    /// block×block: counts summed over the classes of the true and predicted label.
    TransformMarginal,
}

/// A K×K count matrix (row = true label, column = predicted) and how to show it.
#[derive(Clone, Copy, Debug)]
pub struct ConfusionInput<'a> {
    pub k: usize,
    /// Row-major, `k * k` entries.
    pub counts: &'a [u32],
    /// Transformations per class (M): joint label `y * block + j`. 1 for a plain class matrix.
    pub block: usize,
    /// Each row divided by its sum (per-class recall), otherwise by the largest count.
    pub normalise_rows: bool,
    /// `ln(1 + count) / ln(1 + denominator)` instead of `count / denominator`, to see rare confusions.
    pub log_scale: bool,
    /// (row, column) of the hovered cell in the drawn matrix.
    pub highlight: Option<(usize, usize)>,
    pub view: ConfusionView,
    pub style: ViewStyle,
    /// Run A's counts (same `k`, same test set): the view then draws `counts − minus`, blue where
    /// run B has fewer images in a cell than run A, red where it has more, normalised by the row's
    /// images or by the largest difference.
    pub minus: Option<&'a [u32]>,
}

impl<'a> ConfusionInput<'a> {
    /// A plain class matrix (no blocks), row-normalised, linear, nothing highlighted.
    pub fn classes(n: usize, counts: &'a [u32]) -> Self {
        Self {
            k: n,
            counts,
            block: 1,
            normalise_rows: true,
            log_scale: false,
            highlight: None,
            view: ConfusionView::Full,
            style: ViewStyle::default(),
            minus: None,
        }
    }

    fn validate(&self) -> Result<(), GpuError> {
        let invalid = |m: String| Err(GpuError::InvalidInput(m));
        if self.k == 0 {
            return invalid("the confusion matrix is empty".into());
        }
        if self.counts.len() != self.k * self.k {
            return invalid(format!(
                "{} counts for a {}x{} matrix",
                self.counts.len(),
                self.k,
                self.k
            ));
        }
        if self.block == 0 || !self.k.is_multiple_of(self.block) {
            return invalid(format!(
                "{} labels do not split into blocks of {}",
                self.k, self.block
            ));
        }
        if let Some(minus) = self.minus {
            if minus.len() != self.counts.len() {
                return invalid(format!(
                    "cannot subtract a matrix of {} cells from one of {}",
                    minus.len(),
                    self.counts.len()
                ));
            }
            let row_sum = |row: &[u32]| row.iter().map(|&c| u64::from(c)).sum::<u64>();
            let rows = self
                .counts
                .chunks_exact(self.k)
                .zip(minus.chunks_exact(self.k));
            for (label, (b, a)) in rows.enumerate() {
                if row_sum(b) != row_sum(a) {
                    return invalid(format!(
                        "the two runs were not evaluated on the same test set: true label {label} \
                         has {} images in one and {} in the other",
                        row_sum(b),
                        row_sum(a)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The matrix this view draws: its side and its row-major counts (run B's, for a difference).
    pub fn matrix(&self) -> Result<(usize, Cow<'a, [u32]>), GpuError> {
        self.validate()?;
        Ok(self.view_of(self.counts))
    }

    /// The difference this view draws, run B − run A cell by cell in the drawn view (each row sums
    /// to zero), with its side; `None` when there is no `minus`.
    pub fn difference(&self) -> Result<Option<(usize, Vec<i64>)>, GpuError> {
        self.validate()?;
        Ok(self.minus.map(|minus| {
            let (n, b) = self.view_of(self.counts);
            let (_, a) = self.view_of(minus);
            let cells = b
                .iter()
                .zip(a.iter())
                .map(|(&b, &a)| i64::from(b) - i64::from(a))
                .collect();
            (n, cells)
        }))
    }

    /// `counts` (validated `k`×`k`) as this view shows them.
    fn view_of(&self, counts: &'a [u32]) -> (usize, Cow<'a, [u32]>) {
        let (k, m) = (self.k, self.block);
        let (n, label_of): (usize, fn(usize, usize) -> usize) = match self.view {
            ConfusionView::Full => return (k, Cow::Borrowed(counts)),
            ConfusionView::ClassMarginal => (k / m, |joint, m| joint / m),
            ConfusionView::TransformMarginal => (m, |joint, m| joint % m),
        };
        let mut matrix = vec![0u32; n * n];
        for (truth, row) in counts.chunks_exact(k).enumerate() {
            let r = label_of(truth, m);
            for (predicted, &count) in row.iter().enumerate() {
                let cell = &mut matrix[r * n + label_of(predicted, m)];
                *cell = cell.saturating_add(count);
            }
        }
        (n, Cow::Owned(matrix))
    }

    /// Lines between blocks only make sense on the full joint matrix.
    fn line_block(&self) -> usize {
        match self.view {
            ConfusionView::Full => self.block,
            _ => 1,
        }
    }
}

/// The drawn matrix with what the shader needs besides the cells.
struct Prepared<'a> {
    n: usize,
    /// Counts, or for a difference the i32 bits of each cell's B − A.
    cells: Cow<'a, [u32]>,
    row_sums: Vec<u32>,
    params: ConfusionParams,
}

fn prepare<'a>(
    input: &ConfusionInput<'a>,
    width: u32,
    height: u32,
) -> Result<Prepared<'a>, GpuError> {
    let (n, counts) = input.matrix()?;
    // Rows of a difference hold the same images in both runs: either run's sums normalise it.
    let row_sums: Vec<u32> = counts
        .chunks_exact(n)
        .map(|row| row.iter().fold(0u32, |a, &c| a.saturating_add(c)))
        .collect();
    let (highlight_row, highlight_col) = match input.highlight {
        Some((r, c)) if r < n && c < n => (r as u32, c as u32),
        _ => (NO_HIGHLIGHT, NO_HIGHLIGHT),
    };
    let (cells, max_count) = match input.difference()? {
        Some((_, difference)) => {
            // Counts fit in i32 on any test set a run can hold (the GPU cell is 32 bits).
            let to_i32 = |d: i64| d.clamp(i64::from(i32::MIN + 1), i64::from(i32::MAX)) as i32;
            let largest = difference.iter().map(|&d| to_i32(d).unsigned_abs()).max();
            let bits = difference.iter().map(|&d| to_i32(d) as u32).collect();
            (Cow::Owned(bits), largest.unwrap_or(0))
        }
        None => {
            let largest = counts.iter().copied().max().unwrap_or(0);
            (counts, largest)
        }
    };
    // n ≤ sqrt(counts buffer size), far below u32::MAX.
    let params = ConfusionParams {
        n: n as u32,
        block: input.line_block() as u32,
        out_width: width,
        out_height: height,
        normalise_rows: u32::from(input.normalise_rows),
        log_scale: u32::from(input.log_scale),
        highlight_row,
        highlight_col,
        max_count,
        grid_colour: pack_rgba(input.style.grid_line),
        highlight_colour: pack_rgba(input.style.highlight),
        signed: u32::from(input.minus.is_some()),
    };
    Ok(Prepared {
        n,
        cells,
        row_sums,
        params,
    })
}

/// The (row, column) of the cell under texture pixel (x, y) of a `width`×`height` heatmap of side `n`.
pub fn cell_at(n: usize, width: u32, height: u32, x: u32, y: u32) -> Option<(usize, usize)> {
    if x >= width || y >= height {
        return None;
    }
    let cell = |p: u32, size: u32| (u64::from(p) * n as u64 / u64::from(size)) as usize;
    Some((cell(y, height), cell(x, width)))
}

/// Draws [`ConfusionInput`]s with `shaders/confusion.wgsl`.
#[derive(Debug)]
pub struct ConfusionRenderer {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    colormap: wgpu::Buffer,
    counts: GrowableBuffer,
    row_sums: GrowableBuffer,
    bind_group: Option<(u64, wgpu::BindGroup)>,
}

impl ConfusionRenderer {
    pub fn new(device: &wgpu::Device) -> Self {
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("confusion"),
            entries: &[
                super::layout_entry(0, super::uniform_binding()),
                super::layout_entry(1, super::storage_binding(true)),
                super::layout_entry(2, super::storage_binding(true)),
                super::layout_entry(3, super::storage_binding(true)),
                super::layout_entry(4, super::output_binding()),
            ],
        });
        let module = super::shader_module(device, "confusion");
        let colormap = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("confusion colormap"),
            contents: bytemuck::cast_slice(&colour_table()),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Self {
            pipeline: super::compute_pipeline(device, "confusion", &layout, &module, "main"),
            params: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("confusion params"),
                size: size_of::<ConfusionParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            colormap,
            counts: GrowableBuffer::new(device, "confusion counts"),
            row_sums: GrowableBuffer::new(device, "confusion row sums"),
            layout,
            bind_group: None,
        }
    }

    /// Uploads the matrix and records the dispatch; the matrix fills the whole target, so give it at
    /// least one pixel per cell. Draw each renderer once per submit: uploads go through the queue.
    pub fn render(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: &ConfusionInput<'_>,
        target: &RenderTarget,
    ) -> Result<(), GpuError> {
        let prepared = prepare(input, target.width(), target.height())?;
        let grown_counts = self
            .counts
            .write_bytes(ctx, bytemuck::cast_slice(&prepared.cells))?;
        let grown_sums = self
            .row_sums
            .write_bytes(ctx, bytemuck::cast_slice(&prepared.row_sums))?;
        ctx.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&prepared.params));
        let stale = !matches!(&self.bind_group, Some((id, _)) if *id == target.id());
        if grown_counts || grown_sums || stale {
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("confusion"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.counts.buffer().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: self.row_sums.buffer().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: self.colormap.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: wgpu::BindingResource::TextureView(&target.view),
                    },
                ],
            });
            self.bind_group = Some((target.id(), bind_group));
        }
        if let Some((_, bind_group)) = &self.bind_group {
            super::dispatch_per_pixel(encoder, "confusion", &self.pipeline, bind_group, target);
        }
        Ok(())
    }
}

/// The shader's colour table: viridis for counts, then the diverging map for differences.
fn colour_table() -> Vec<u32> {
    let mut table = viridis_table();
    table.extend(diverging_table());
    table
}

/// The CPU side of `colormap_sample` in `shaders/confusion.wgsl`: `t` in [0, 1] along the table
/// starting at entry `offset`.
fn colormap_sample(table: &[u32], offset: usize, t: f32) -> [f32; 4] {
    let s = t.clamp(0.0, 1.0) * 255.0;
    let i = (s.floor() as usize).min(COLORMAP_LEN - 2);
    let f = s - i as f32;
    let (a, b) = (
        unpack_rgba(table[offset + i]),
        unpack_rgba(table[offset + i + 1]),
    );
    // WGSL's mix(a, b, f) is defined as a * (1 - f) + b * f.
    std::array::from_fn(|c| a[c] * (1.0 - f) + b[c] * f)
}

/// The CPU picture of `shaders/confusion.wgsl`: RGBA rows of a `width`×`height` target.
pub fn reference_image(
    input: &ConfusionInput<'_>,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, GpuError> {
    let Prepared {
        n,
        cells,
        row_sums,
        params: p,
    } = prepare(input, width, height)?;
    let table = colour_table();
    let cell_of = |px: u32, size: u32| px * p.n / size;
    let cell_start = |c: u32, size: u32| (c * size).div_ceil(p.n) as i32;
    let in_ring = |v: i32, start: i32, end: i32| v >= start - 1 && v <= end;
    let in_core = |v: i32, start: i32, end: i32| v > start && v < end - 1;
    let mut image = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            let (col, row) = (cell_of(x, width), cell_of(y, height));
            let colour = (|| {
                if p.highlight_row != NO_HIGHLIGHT {
                    let (x0, x1) = (
                        cell_start(p.highlight_col, width),
                        cell_start(p.highlight_col + 1, width),
                    );
                    let (y0, y1) = (
                        cell_start(p.highlight_row, height),
                        cell_start(p.highlight_row + 1, height),
                    );
                    let (px, py) = (x as i32, y as i32);
                    if in_ring(px, x0, x1)
                        && in_ring(py, y0, y1)
                        && !(in_core(px, x0, x1) && in_core(py, y0, y1))
                    {
                        return unpack_rgba(p.highlight_colour);
                    }
                }
                if p.block > 1 {
                    let x_line = x > 0 && col / p.block != cell_of(x - 1, width) / p.block;
                    let y_line = y > 0 && row / p.block != cell_of(y - 1, height) / p.block;
                    if x_line || y_line {
                        return unpack_rgba(p.grid_colour);
                    }
                }
                let denominator = if p.normalise_rows != 0 {
                    row_sums[row as usize]
                } else {
                    p.max_count
                };
                let cell = cells[row as usize * n + col as usize];
                // A difference maps its sign to either side of the diverging map's middle.
                let (magnitude, sign, offset) = if p.signed != 0 {
                    let d = cell as i32;
                    (d.unsigned_abs(), d.signum() as f32, COLORMAP_LEN)
                } else {
                    (cell, 1.0, 0)
                };
                let scaled = match (denominator, p.log_scale != 0) {
                    (0, _) => 0.0,
                    (d, true) => (1.0 + magnitude as f32).ln() / (1.0 + d as f32).ln(),
                    (d, false) => magnitude as f32 / d as f32,
                };
                let t = if p.signed != 0 {
                    0.5 + 0.5 * sign * scaled
                } else {
                    scaled
                };
                colormap_sample(&table, offset, t)
            })();
            image.extend(colour.map(unorm8));
        }
    }
    Ok(image)
}
