//! The textures views draw into, and reading them back to the CPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use eframe::wgpu;

use super::{GpuContext, GpuError};

/// The one format views write: egui shows `Rgba8Unorm` native textures, and `*Srgb` cannot be a storage texture.
pub const TARGET_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

static NEXT_TARGET_ID: AtomicU64 = AtomicU64::new(1);

/// A texture a renderer can write (storage), egui can sample, and tests can copy out.
#[derive(Debug)]
pub struct RenderTarget {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    width: u32,
    height: u32,
    /// Lets renderers keep a bind group per target instead of making one per frame.
    id: u64,
}

impl RenderTarget {
    pub fn new(device: &wgpu::Device, width: u32, height: u32) -> Result<Self, GpuError> {
        let limit = device.limits().max_texture_dimension_2d;
        if width == 0 || height == 0 {
            return Err(GpuError::InvalidInput(format!(
                "a render target of {width}x{height} pixels is empty"
            )));
        }
        if width.max(height) > limit {
            return Err(GpuError::TooLarge {
                what: "the render target side",
                needed: u64::from(width.max(height)),
                limit: u64::from(limit),
            });
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("sla view target"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: TARGET_FORMAT,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            texture,
            view,
            width,
            height,
            id: NEXT_TARGET_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// Copies the target to the CPU as tightly packed RGBA rows (waits for the GPU).
pub fn read_back(ctx: &GpuContext, target: &RenderTarget) -> Result<Vec<u8>, GpuError> {
    let row_bytes = target.width * 4;
    // copy_texture_to_buffer needs rows padded to 256 bytes.
    let padded_row =
        row_bytes.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("sla read-back"),
        size: u64::from(padded_row) * u64::from(target.height),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.submit(|encoder| {
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &target.texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &staging,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded_row),
                    rows_per_image: Some(target.height),
                },
            },
            wgpu::Extent3d {
                width: target.width,
                height: target.height,
                depth_or_array_layers: 1,
            },
        );
        Ok(())
    })?;
    let slice = staging.slice(..);
    let (sender, receiver) = mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        // The receiver lives until after the poll below; a failed send only means nobody listens.
        let _ = sender.send(result);
    });
    ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
    receiver
        .recv()
        .map_err(|e| GpuError::Map(e.to_string()))?
        .map_err(|e| GpuError::Map(e.to_string()))?;
    let mut pixels = Vec::with_capacity(row_bytes as usize * target.height as usize);
    {
        let mapped = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Map(e.to_string()))?;
        for row in mapped.chunks(padded_row as usize) {
            pixels.extend_from_slice(&row[..row_bytes as usize]);
        }
    }
    staging.unmap();
    Ok(pixels)
}
