//! Where a model runs: the device names every front end accepts, and opening them.
//!
//! `"cpu"`, `"cuda"` / `"cuda:N"` and `"mps"` / `"metal"` / `"metal:N"` name a device. A name
//! this build cannot serve (compiled without the feature) or this machine cannot (no GPU, no
//! driver) is an [`Error::Device`] that says which: a model never falls back to the CPU.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};

/// A device by name, as `device=` gives it; [`DeviceSpec::open`] turns it into Candle's device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The CPU (every build).
    #[default]
    Cpu,
    /// NVIDIA GPU number N (`"cuda"` is GPU 0); builds with the `cuda` feature.
    Cuda(usize),
    /// Apple GPU number N through Metal (`"mps"` and `"metal"` are GPU 0); macOS builds with
    /// the `metal` feature.
    Metal(usize),
}

/// What a device name may be, for error messages.
const EXPECTED: &str =
    "expected \"cpu\", \"cuda\", \"cuda:N\" (N a GPU number), \"mps\", \"metal\" or \"metal:N\"";

/// Largest GPU number accepted in a name (far above any machine's count).
const MAX_ORDINAL: usize = 1 << 16;

impl DeviceSpec {
    /// The device called `name` (see the module docs); anything else is an
    /// [`Error::InvalidArgument`] about `device`.
    pub fn parse(name: &str) -> Result<DeviceSpec> {
        let (kind, ordinal) = match name.split_once(':') {
            Some((kind, number)) => (kind, Some(number)),
            None => (name, None),
        };
        let ordinal = match ordinal {
            None => 0,
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_ORDINAL)
                .ok_or_else(|| {
                    Error::argument(
                        "device",
                        format!("is {name:?}, whose GPU number is out of range; {EXPECTED}"),
                    )
                })?,
            Some(_) => {
                return Err(Error::argument(
                    "device",
                    format!("is {name:?}, whose GPU number is not a whole number; {EXPECTED}"),
                ))
            }
        };
        match (kind, ordinal) {
            ("cpu", _) if name == "cpu" => Ok(DeviceSpec::Cpu),
            ("cuda", n) => Ok(DeviceSpec::Cuda(n)),
            ("metal", n) => Ok(DeviceSpec::Metal(n)),
            ("mps", _) if name == "mps" => Ok(DeviceSpec::Metal(0)),
            _ => Err(Error::argument(
                "device",
                format!("is {name:?}; {EXPECTED}"),
            )),
        }
    }

    /// The canonical name: `"cpu"`, `"cuda:N"` or `"metal:N"`.
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// The backend feature this device needs (`None` for the CPU).
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            DeviceSpec::Cpu => None,
            DeviceSpec::Cuda(_) => Some("cuda"),
            DeviceSpec::Metal(_) => Some("metal"),
        }
    }

    /// Opens the device: an [`Error::Device`] when this build lacks its feature or the machine
    /// lacks the hardware or driver (never a fallback to another device).
    pub fn open(&self) -> Result<Device> {
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => self.open_gpu(cfg!(feature = "cuda"), || Device::new_cuda(n)),
            DeviceSpec::Metal(n) => self.open_gpu(cfg!(feature = "metal"), || Device::new_metal(n)),
        }
    }

    fn open_gpu(
        &self,
        compiled: bool,
        open: impl FnOnce() -> candle_core::Result<Device>,
    ) -> Result<Device> {
        let feature = self.feature().unwrap_or("cpu");
        if !compiled {
            let (hardware, platform) = match self {
                DeviceSpec::Metal(_) => ("an Apple GPU", " on macOS"),
                _ => ("an NVIDIA GPU", ""),
            };
            return Err(Error::Device {
                device: self.name(),
                message: format!(
                    "this build of latebird was compiled without the `{feature}` feature (it has: {}); expected a build with it{platform} (`cargo build --features {feature}`, or `maturin build --features {feature}` for Python) on a machine with {hardware}, or device \"cpu\"",
                    build_features().join(", ")
                ),
            });
        }
        let hardware = match self {
            DeviceSpec::Metal(_) => "an Apple GPU (Metal)",
            _ => "an NVIDIA GPU with its driver (`nvidia-smi` lists the GPUs and their numbers)",
        };
        // A GPU library that cannot find its driver may panic rather than return an error.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)) {
            Ok(Ok(device)) => Ok(device),
            Ok(Err(e)) => Err(Error::Device {
                device: self.name(),
                message: format!("could not be opened: {e}; expected {hardware}"),
            }),
            Err(payload) => Err(Error::Device {
                device: self.name(),
                message: format!(
                    "could not be opened ({}); expected {hardware}",
                    crate::error::panic_message(payload.as_ref())
                ),
            }),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(name: &str) -> Result<DeviceSpec> {
        DeviceSpec::parse(name)
    }
}

/// The backends this build was compiled with: `"cpu"` and any of `"mkl"`, `"accelerate"`,
/// `"cuda"`, `"metal"`.
pub fn build_features() -> Vec<&'static str> {
    let mut out = vec!["cpu"];
    for (on, name) in [
        (cfg!(feature = "mkl"), "mkl"),
        (cfg!(feature = "accelerate"), "accelerate"),
        (cfg!(feature = "cuda"), "cuda"),
        (cfg!(feature = "metal"), "metal"),
    ] {
        if on {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn names_parse_to_their_canonical_form() {
        for (name, spec, canonical) in [
            ("cpu", DeviceSpec::Cpu, "cpu"),
            ("cuda", DeviceSpec::Cuda(0), "cuda:0"),
            ("cuda:0", DeviceSpec::Cuda(0), "cuda:0"),
            ("cuda:3", DeviceSpec::Cuda(3), "cuda:3"),
            ("mps", DeviceSpec::Metal(0), "metal:0"),
            ("metal", DeviceSpec::Metal(0), "metal:0"),
            ("metal:1", DeviceSpec::Metal(1), "metal:1"),
        ] {
            let parsed: DeviceSpec = name.parse().unwrap();
            assert_eq!(parsed, spec, "{name}");
            assert_eq!(parsed.name(), canonical);
            assert_eq!(DeviceSpec::parse(canonical).unwrap(), spec);
        }
    }

    #[test]
    fn bad_names_say_what_is_expected() {
        for (name, says) in [
            ("", "is \"\""),
            ("gpu", "is \"gpu\""),
            ("CUDA", "is \"CUDA\""),
            ("cpu:0", "is \"cpu:0\""),
            ("mps:0", "is \"mps:0\""),
            ("cuda:", "not a whole number"),
            ("cuda:-1", "not a whole number"),
            ("cuda:1.5", "not a whole number"),
            ("cuda: 1", "not a whole number"),
            ("cuda:99999999999999999999999", "out of range"),
            ("cuda:0:1", "not a whole number"),
        ] {
            let err = DeviceSpec::parse(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Input, "{name}");
            let text = err.to_string();
            assert!(text.starts_with("invalid argument `device`"), "{text}");
            assert!(text.contains(says), "{name}: {text}");
            assert!(text.contains("\"cuda:N\""), "{text}");
        }
    }

    #[test]
    fn the_cpu_always_opens() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        assert_eq!(build_features()[0], "cpu");
    }

    #[test]
    fn a_gpu_this_build_or_machine_lacks_is_a_device_error() {
        for spec in [
            DeviceSpec::Cuda(0),
            DeviceSpec::Cuda(7),
            DeviceSpec::Metal(0),
        ] {
            let compiled = build_features().contains(&spec.feature().unwrap());
            let Err(err) = spec.open() else {
                // A machine with that GPU: nothing to check here (gpu_check.sh runs on it).
                continue;
            };
            assert_eq!(err.kind(), ErrorKind::Device);
            let text = err.to_string();
            assert!(text.starts_with(&format!("device {spec}")), "{text}");
            if compiled {
                assert!(text.contains("could not be opened"), "{text}");
                assert!(text.contains("GPU"), "{text}");
            } else {
                let feature = spec.feature().unwrap();
                assert!(
                    text.contains(&format!("compiled without the `{feature}` feature")),
                    "{text}"
                );
                assert!(text.contains(&format!("--features {feature}")), "{text}");
            }
        }
    }
}
