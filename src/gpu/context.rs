//! The device and queue the renderers draw with: borrowed from eframe, or created headless.

use std::sync::Arc;

use eframe::{egui_wgpu, wgpu};

use super::GpuError;

/// A wgpu device and queue plus what the adapter says about itself.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Opens a device without a window: `WGPU_ADAPTER_NAME` picks an adapter by name (case-insensitive
    /// substring), otherwise the usual `WGPU_BACKEND` / `WGPU_POWER_PREF` driven choice, high
    /// performance by default. Finds software Vulkan (lavapipe) or GL (llvmpipe) when no GPU exists.
    pub fn headless() -> Result<Self, GpuError> {
        pollster::block_on(Self::headless_async())
    }

    async fn headless_async() -> Result<Self, GpuError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // The default would be all backends; browsers aside, keep the ones eframe itself would try.
        descriptor.backends =
            wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY | wgpu::Backends::GL);
        let instance = wgpu::Instance::new(descriptor);
        let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(wanted) => {
                let wanted = wanted.to_lowercase();
                let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                    .ok_or_else(|| {
                        GpuError::NoAdapter(format!(
                            "WGPU_ADAPTER_NAME={wanted} matches none of {names:?}"
                        ))
                    })?
            }
            Err(_) => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::from_env()
                        .unwrap_or(wgpu::PowerPreference::HighPerformance),
                    ..Default::default()
                })
                .await
                .map_err(|e| GpuError::NoAdapter(e.to_string()))?,
        };
        let adapter_info = adapter.get_info();
        log::info!(
            "GPU views on {} ({:?}, {:?})",
            adapter_info.name,
            adapter_info.backend,
            adapter_info.device_type
        );
        let (device, queue) = adapter.request_device(&device_descriptor(&adapter)).await?;
        Ok(Self {
            device,
            queue,
            adapter_info,
        })
    }

    /// Shares eframe's device and queue, so the textures can be shown with `register_native_texture`.
    pub fn from_render_state(render_state: &egui_wgpu::RenderState) -> Self {
        Self {
            device: render_state.device.clone(),
            queue: render_state.queue.clone(),
            adapter_info: render_state.adapter.get_info(),
        }
    }

    /// "name (backend, device type)", e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.adapter_info.name, self.adapter_info.backend, self.adapter_info.device_type
        )
    }

    /// Records commands with `record` and submits them at once.
    pub fn submit(
        &self,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sla views"),
            });
        record(&mut encoder)?;
        self.queue.submit([encoder.finish()]);
        Ok(())
    }
}

/// The device the views need: on GL, `downlevel_defaults` (egui's own choice there, the WebGL2 limits,
/// allows no storage textures, so compute views could not exist), elsewhere the WebGPU defaults; both
/// with 2D textures up to 8192 where the adapter has them, for 4k screens and tall grids.
pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    let base = if adapter.get_info().backend == wgpu::Backend::Gl {
        wgpu::Limits::downlevel_defaults()
    } else {
        wgpu::Limits::default()
    };
    let supported = adapter.limits();
    wgpu::DeviceDescriptor {
        label: Some("sla device"),
        required_limits: wgpu::Limits {
            max_texture_dimension_2d: supported.max_texture_dimension_2d.min(8192),
            ..base
        },
        ..Default::default()
    }
}

/// eframe's wgpu setup with the device limits the compute views need (`NativeOptions::wgpu_options.wgpu_setup`).
pub fn wgpu_setup_for_compute() -> egui_wgpu::WgpuSetup {
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(device_descriptor);
    egui_wgpu::WgpuSetup::CreateNew(setup)
}
