//! Storage buffers that keep their size between frames and grow only when the data outgrows them.

use eframe::wgpu;

use super::{GpuContext, GpuError};

/// Storage buffers may not be empty, and a shader's array needs room for one element even when
/// there is no data: small buffers get at least this many bytes.
const MIN_SIZE: u64 = 32;

const _: () = assert!(size_of::<super::gpu_data::SeriesInfo>() as u64 <= MIN_SIZE);

#[derive(Debug)]
pub(crate) struct GrowableBuffer {
    label: &'static str,
    buffer: wgpu::Buffer,
    capacity: u64,
}

impl GrowableBuffer {
    pub(crate) fn new(device: &wgpu::Device, label: &'static str) -> Self {
        Self {
            label,
            buffer: Self::create(device, label, MIN_SIZE),
            capacity: MIN_SIZE,
        }
    }

    fn create(device: &wgpu::Device, label: &'static str, size: u64) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Makes room for `size` bytes; returns true when the buffer was replaced (bind groups must follow).
    pub(crate) fn reserve(&mut self, ctx: &GpuContext, size: u64) -> Result<bool, GpuError> {
        let limit = ctx.device.limits().max_storage_buffer_binding_size;
        if size > limit {
            return Err(GpuError::TooLarge {
                what: self.label,
                needed: size,
                limit,
            });
        }
        if size <= self.capacity {
            return Ok(false);
        }
        // Doubling keeps growing data (live curves) from re-allocating every frame.
        let capacity = size
            .max(self.capacity.saturating_mul(2).min(limit))
            .next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        log::debug!("{}: growing to {capacity} bytes", self.label);
        self.buffer = Self::create(&ctx.device, self.label, capacity);
        self.capacity = capacity;
        Ok(true)
    }

    /// Writes `bytes` at the start, padding the tail to the 4-byte copy alignment with zeros.
    pub(crate) fn write_bytes(&mut self, ctx: &GpuContext, bytes: &[u8]) -> Result<bool, GpuError> {
        let padded = (bytes.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let grown = self.reserve(ctx, padded.max(MIN_SIZE))?;
        let aligned = bytes.len() - bytes.len() % 4;
        if aligned > 0 {
            ctx.queue.write_buffer(&self.buffer, 0, &bytes[..aligned]);
        }
        if aligned < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - aligned].copy_from_slice(&bytes[aligned..]);
            ctx.queue.write_buffer(&self.buffer, aligned as u64, &tail);
        }
        Ok(grown)
    }
}
