//! Input grid view: each sample's M transformed copies side by side, bordered by verdict or transformation.

use eframe::wgpu;

use super::buffer::GrowableBuffer;
use super::gpu_data::GridParams;
use super::{GpuContext, GpuError, RenderTarget, ViewStyle, pack_rgba, style};
use crate::run::SampleGrid;

/// What a tile's border colour says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BorderMode {
    /// `ViewStyle::correct` when the predicted label equals the true one, else `ViewStyle::wrong`;
    /// support samples, which have no verdict, in their transformation's colour.
    #[default]
    Correctness,
    /// The categorical colour of the tile's transformation index.
    Transform,
    /// Borders in the background colour.
    None,
}

/// Tile geometry in texture pixels: each image is scaled (nearest) to `tile_width`×`tile_height`,
/// framed by `border` pixels and separated from its neighbours and the texture edge by `gap` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridLayout {
    pub tile_width: u32,
    pub tile_height: u32,
    pub border: u32,
    pub gap: u32,
}

impl GridLayout {
    /// Tiles `scale` times the source size, with a 2-pixel border and gap.
    pub fn scaled(src_width: usize, src_height: usize, scale: u32) -> Self {
        let side = |s: usize| {
            u32::try_from(s)
                .unwrap_or(u32::MAX)
                .saturating_mul(scale)
                .max(1)
        };
        Self {
            tile_width: side(src_width),
            tile_height: side(src_height),
            border: 2,
            gap: 2,
        }
    }

    fn pitch(&self) -> (u32, u32) {
        (
            self.tile_width + 2 * self.border + self.gap,
            self.tile_height + 2 * self.border + self.gap,
        )
    }

    /// The texture size that holds `samples` rows of `transforms` tiles.
    pub fn size(&self, samples: usize, transforms: usize) -> (u32, u32) {
        let (pitch_x, pitch_y) = self.pitch();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (
            count(transforms)
                .saturating_mul(pitch_x)
                .saturating_add(self.gap)
                .max(1),
            count(samples)
                .saturating_mul(pitch_y)
                .saturating_add(self.gap)
                .max(1),
        )
    }

    /// The (sample, transformation) of the tile (border included) under texture pixel (x, y), if any.
    pub fn tile_at(
        &self,
        samples: usize,
        transforms: usize,
        x: u32,
        y: u32,
    ) -> Option<(usize, usize)> {
        let (pitch_x, pitch_y) = self.pitch();
        let (gx, gy) = (x.checked_sub(self.gap)?, y.checked_sub(self.gap)?);
        let (col, row) = ((gx / pitch_x) as usize, (gy / pitch_y) as usize);
        let inside = gx % pitch_x < pitch_x - self.gap && gy % pitch_y < pitch_y - self.gap;
        (inside && col < transforms && row < samples).then_some((row, col))
    }
}

/// One grid to draw: `samples * transforms` tiles, tile `b * transforms + j` = t_j(x_b), each CHW u8.
#[derive(Clone, Copy, Debug)]
pub struct GridInput<'a> {
    pub samples: usize,
    pub transforms: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: &'a [u8],
    /// Per tile; only read for `BorderMode::Correctness`.
    pub true_labels: &'a [u32],
    pub predicted_labels: &'a [u32],
    /// The leading samples that are a few-shot episode's support images.
    pub support_samples: usize,
    pub border_mode: BorderMode,
    pub layout: GridLayout,
    pub style: ViewStyle,
}

impl<'a> GridInput<'a> {
    /// The evaluation samples of a snapshot, with tiles at the given layout.
    pub fn from_sample_grid(
        grid: &'a SampleGrid,
        border_mode: BorderMode,
        layout: GridLayout,
        style: ViewStyle,
    ) -> Self {
        Self {
            samples: grid.samples,
            transforms: grid.num_transforms,
            channels: grid.channels,
            height: grid.height,
            width: grid.width,
            pixels: &grid.pixels,
            true_labels: &grid.true_labels,
            predicted_labels: &grid.predicted_labels,
            support_samples: grid.support_samples,
            border_mode,
            layout,
            style,
        }
    }

    fn tiles(&self) -> usize {
        self.samples * self.transforms
    }

    /// The texture size this grid fills.
    pub fn size(&self) -> (u32, u32) {
        self.layout.size(self.samples, self.transforms)
    }

    fn validate(&self) -> Result<(), GpuError> {
        let invalid = |m: String| Err(GpuError::InvalidInput(m));
        if self.channels != 1 && self.channels != 3 {
            return invalid(format!(
                "grid images need 1 or 3 channels, not {}",
                self.channels
            ));
        }
        let expected = self.tiles() * self.channels * self.height * self.width;
        if self.pixels.len() != expected {
            return invalid(format!(
                "{} grid pixels for {} tiles of {}x{}x{} (expected {expected})",
                self.pixels.len(),
                self.tiles(),
                self.channels,
                self.height,
                self.width
            ));
        }
        if self.tiles() > 0 && (self.height == 0 || self.width == 0) {
            return invalid("grid images are empty".into());
        }
        if self.layout.tile_width == 0 || self.layout.tile_height == 0 {
            return invalid("grid tiles are empty".into());
        }
        let labelled =
            self.true_labels.len() == self.tiles() && self.predicted_labels.len() == self.tiles();
        if self.border_mode == BorderMode::Correctness && !labelled {
            return invalid(format!(
                "{} true and {} predicted labels for {} tiles",
                self.true_labels.len(),
                self.predicted_labels.len(),
                self.tiles()
            ));
        }
        Ok(())
    }

    fn tile_colours(&self) -> Vec<u32> {
        (0..self.tiles())
            .map(|t| {
                let support = t / self.transforms.max(1) < self.support_samples;
                pack_rgba(match self.border_mode {
                    BorderMode::Correctness if support => {
                        style::category_colour(t % self.transforms)
                    }
                    BorderMode::Correctness if self.true_labels[t] == self.predicted_labels[t] => {
                        self.style.correct
                    }
                    BorderMode::Correctness => self.style.wrong,
                    BorderMode::Transform => style::category_colour(t % self.transforms),
                    BorderMode::None => self.style.background,
                })
            })
            .collect()
    }

    fn params(&self, out_width: u32, out_height: u32) -> GridParams {
        // validate() and the buffer limits keep these counts far below u32::MAX.
        GridParams {
            samples: self.samples as u32,
            transforms: self.transforms as u32,
            channels: self.channels as u32,
            src_width: self.width as u32,
            src_height: self.height as u32,
            tile_width: self.layout.tile_width,
            tile_height: self.layout.tile_height,
            border: self.layout.border,
            gap: self.layout.gap,
            out_width,
            out_height,
            background: pack_rgba(self.style.background),
        }
    }
}

/// Draws [`GridInput`]s with `shaders/input_grid.wgsl`.
#[derive(Debug)]
pub struct InputGridRenderer {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    pixels: GrowableBuffer,
    colours: GrowableBuffer,
    /// The bind group of the last target, kept while neither the target nor a buffer changes.
    bind_group: Option<(u64, wgpu::BindGroup)>,
}

impl InputGridRenderer {
    pub fn new(device: &wgpu::Device) -> Self {
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("input_grid"),
            entries: &[
                super::layout_entry(0, super::uniform_binding()),
                super::layout_entry(1, super::storage_binding(true)),
                super::layout_entry(2, super::storage_binding(true)),
                super::layout_entry(3, super::output_binding()),
            ],
        });
        let module = super::shader_module(device, "input_grid");
        Self {
            pipeline: super::compute_pipeline(device, "input_grid", &layout, &module, "main"),
            params: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("input_grid params"),
                size: size_of::<GridParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            pixels: GrowableBuffer::new(device, "input_grid pixels"),
            colours: GrowableBuffer::new(device, "input_grid tile colours"),
            layout,
            bind_group: None,
        }
    }

    /// Uploads the grid and records its dispatch; the tiles land at the target's top-left corner and the
    /// rest of the target is background. Draw each renderer once per submit: uploads go through the queue.
    pub fn render(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: &GridInput<'_>,
        target: &RenderTarget,
    ) -> Result<(), GpuError> {
        input.validate()?;
        let grown_pixels = self.pixels.write_bytes(ctx, input.pixels)?;
        let colours = input.tile_colours();
        let grown_colours = self
            .colours
            .write_bytes(ctx, bytemuck::cast_slice(&colours))?;
        let params = input.params(target.width(), target.height());
        ctx.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        let stale = !matches!(&self.bind_group, Some((id, _)) if *id == target.id());
        if grown_pixels || grown_colours || stale {
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("input_grid"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.pixels.buffer().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: self.colours.buffer().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::TextureView(&target.view),
                    },
                ],
            });
            self.bind_group = Some((target.id(), bind_group));
        }
        if let Some((_, bind_group)) = &self.bind_group {
            super::dispatch_per_pixel(encoder, "input_grid", &self.pipeline, bind_group, target);
        }
        Ok(())
    }
}

/// The CPU picture of `shaders/input_grid.wgsl`: RGBA rows of a `width`×`height` target.
pub fn reference_image(
    input: &GridInput<'_>,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, GpuError> {
    input.validate()?;
    let p = input.params(width, height);
    let colours = input.tile_colours();
    let background = pack_rgba(input.style.background).to_le_bytes();
    let (outer_w, outer_h) = (p.tile_width + 2 * p.border, p.tile_height + 2 * p.border);
    let mut image = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            let pixel = (|| {
                let (gx, gy) = (x.checked_sub(p.gap)?, y.checked_sub(p.gap)?);
                let (col, row) = (gx / (outer_w + p.gap), gy / (outer_h + p.gap));
                let (lx, ly) = (gx % (outer_w + p.gap), gy % (outer_h + p.gap));
                if col >= p.transforms || row >= p.samples || lx >= outer_w || ly >= outer_h {
                    return None;
                }
                let tile = (row * p.transforms + col) as usize;
                let inner_x = lx.checked_sub(p.border).filter(|&v| v < p.tile_width);
                let inner_y = ly.checked_sub(p.border).filter(|&v| v < p.tile_height);
                let (Some(ix), Some(iy)) = (inner_x, inner_y) else {
                    return Some(colours[tile].to_le_bytes());
                };
                let sx = (2 * ix + 1) * p.src_width / (2 * p.tile_width);
                let sy = (2 * iy + 1) * p.src_height / (2 * p.tile_height);
                let plane = (p.src_width * p.src_height) as usize;
                let at = tile * p.channels as usize * plane + (sy * p.src_width + sx) as usize;
                let r = input.pixels[at];
                let (g, b) = if p.channels == 3 {
                    (input.pixels[at + plane], input.pixels[at + 2 * plane])
                } else {
                    (r, r)
                };
                Some([r, g, b, 255])
            })()
            .unwrap_or(background);
            image.extend_from_slice(&pixel);
        }
    }
    Ok(image)
}
