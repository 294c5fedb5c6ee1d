//! Compute devices by name: `cpu`, `cuda`, `cuda:N`, `metal`.

use candle_core::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    Cuda(usize),
    Metal,
}

/// Parse a device name, explaining what is accepted when it is not.
pub fn parse_device_name(name: &str) -> Result<DeviceName, String> {
    match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok(DeviceName::Cpu),
        "cuda" => Ok(DeviceName::Cuda(0)),
        "metal" => Ok(DeviceName::Metal),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(ordinal)) => Ok(DeviceName::Cuda(ordinal)),
            _ => Err(format!(
                "unknown device {name:?}: use cpu, cuda, cuda:N or metal"
            )),
        },
    }
}

/// Open the named device; a build without the `cuda`/`metal` feature says so.
pub fn open_device(name: &str) -> Result<Device, String> {
    match parse_device_name(name)? {
        DeviceName::Cpu => Ok(Device::Cpu),
        DeviceName::Cuda(ordinal) if candle_core::utils::cuda_is_available() => {
            Device::new_cuda(ordinal).map_err(|e| format!("cannot open cuda:{ordinal}: {e}"))
        }
        DeviceName::Cuda(_) => {
            Err("this build has no CUDA support: rebuild with `--features cuda`".into())
        }
        DeviceName::Metal if candle_core::utils::metal_is_available() => {
            Device::new_metal(0).map_err(|e| format!("cannot open the Metal device: {e}"))
        }
        DeviceName::Metal => {
            Err("this build has no Metal support: rebuild with `--features metal`".into())
        }
    }
}

/// Devices this build can use, for pickers.
pub fn available_devices() -> Vec<&'static str> {
    let mut devices = vec!["cpu"];
    if candle_core::utils::cuda_is_available() {
        devices.push("cuda");
    }
    if candle_core::utils::metal_is_available() {
        devices.push("metal");
    }
    devices
}
