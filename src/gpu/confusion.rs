//! Confusion heatmap view: a count matrix as colour-mapped cells, with its class and transformation marginals.
//!
//! The marginals and the row sums are computed on the CPU before upload: they are O(K²) additions done
//! once per new matrix, far below the cost of the per-pixel pass, and keep the shader a pure lookup.

use std::borrow::Cow;

use eframe::wgpu;
use eframe::wgpu::util::DeviceExt;

use super::buffer::GrowableBuffer;
use super::gpu_data::{ConfusionParams, NO_HIGHLIGHT};
use super::style::{COLORMAP_LEN, viridis_table};
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
        Ok(())
    }

    /// The matrix this view draws: its side and its row-major counts.
    pub fn matrix(&self) -> Result<(usize, Cow<'a, [u32]>), GpuError> {
        self.validate()?;
        let (k, m) = (self.k, self.block);
        let (n, label_of): (usize, fn(usize, usize) -> usize) = match self.view {
            ConfusionView::Full => return Ok((k, Cow::Borrowed(self.counts))),
            ConfusionView::ClassMarginal => (k / m, |joint, m| joint / m),
            ConfusionView::TransformMarginal => (m, |joint, m| joint % m),
        };
        let mut matrix = vec![0u32; n * n];
        for (truth, row) in self.counts.chunks_exact(k).enumerate() {
            let r = label_of(truth, m);
            for (predicted, &count) in row.iter().enumerate() {
                let cell = &mut matrix[r * n + label_of(predicted, m)];
                *cell = cell.saturating_add(count);
            }
        }
        Ok((n, Cow::Owned(matrix)))
    }

    /// Lines between blocks only make sense on the full joint matrix.
    fn line_block(&self) -> usize {
        match self.view {
            ConfusionView::Full => self.block,
            _ => 1,
        }
    }
}

/// The drawn matrix with what the shader needs besides the counts.
struct Prepared<'a> {
    n: usize,
    counts: Cow<'a, [u32]>,
    row_sums: Vec<u32>,
    params: ConfusionParams,
}

fn prepare<'a>(
    input: &ConfusionInput<'a>,
    width: u32,
    height: u32,
) -> Result<Prepared<'a>, GpuError> {
    let (n, counts) = input.matrix()?;
    let row_sums: Vec<u32> = counts
        .chunks_exact(n)
        .map(|row| row.iter().fold(0u32, |a, &c| a.saturating_add(c)))
        .collect();
    let (highlight_row, highlight_col) = match input.highlight {
        Some((r, c)) if r < n && c < n => (r as u32, c as u32),
        _ => (NO_HIGHLIGHT, NO_HIGHLIGHT),
    };
    let max_count = counts.iter().copied().max().unwrap_or(0);
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
        _pad: 0,
    };
    Ok(Prepared {
        n,
        counts,
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
            contents: bytemuck::cast_slice(&viridis_table()),
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
            .write_bytes(ctx, bytemuck::cast_slice(&prepared.counts))?;
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

/// The CPU side of `colormap_sample` in `shaders/confusion.wgsl`.
fn colormap_sample(table: &[u32], t: f32) -> [f32; 4] {
    let s = t.clamp(0.0, 1.0) * 255.0;
    let i = (s.floor() as usize).min(COLORMAP_LEN - 2);
    let f = s - i as f32;
    let (a, b) = (unpack_rgba(table[i]), unpack_rgba(table[i + 1]));
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
        counts,
        row_sums,
        params: p,
    } = prepare(input, width, height)?;
    let table = viridis_table();
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
                let count = counts[row as usize * n + col as usize];
                let t = match (denominator, p.log_scale != 0) {
                    (0, _) => 0.0,
                    (d, true) => (1.0 + count as f32).ln() / (1.0 + d as f32).ln(),
                    (d, false) => count as f32 / d as f32,
                };
                colormap_sample(&table, t)
            })();
            image.extend(colour.map(unorm8));
        }
    }
    Ok(image)
}
