//! Tensors out of a safetensors file, found by name whatever prefix or LayerNorm naming
//! the checkpoint uses, checked against the shape the config implies, converted to f32.

use candle_core::{DType, Device, Tensor};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// A parsed safetensors file borrowed from its bytes.
pub(crate) struct WeightStore<'a> {
    file: String,
    tensors: SafeTensors<'a>,
    prefix: String,
    device: Device,
}

impl<'a> WeightStore<'a> {
    /// Parses the header; a truncated or corrupt file is an error naming `file`.
    pub(crate) fn parse(file: &str, bytes: &'a [u8], device: &Device) -> Result<Self> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::weights(
                file,
                format!("not a valid safetensors file ({} bytes): {e}", bytes.len()),
            )
        })?;
        Ok(WeightStore {
            file: file.to_string(),
            tensors,
            prefix: String::new(),
            device: device.clone(),
        })
    }

    /// Picks the name prefix (`""`, `bert.`, `model.`, ...) under which `probe` exists.
    pub(crate) fn detect_prefix(&mut self, probe: &str, candidates: &[&str]) -> Result<()> {
        for prefix in candidates {
            if self.lookup(&format!("{prefix}{probe}")).is_some() {
                self.prefix = prefix.to_string();
                return Ok(());
            }
        }
        let mut names: Vec<String> = self.tensors.names().into_iter().map(String::from).collect();
        names.sort();
        names.truncate(5);
        Err(Error::weights(
            &self.file,
            format!(
                "no tensor named {probe:?} under any of the prefixes {candidates:?}; the file starts with {names:?}"
            ),
        ))
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let names = self.tensors.names();
        if names.contains(&name) {
            return Some(name.to_string());
        }
        // Legacy LayerNorm naming: gamma/beta instead of weight/bias.
        let legacy = if let Some(stem) = name.strip_suffix(".weight") {
            format!("{stem}.gamma")
        } else if let Some(stem) = name.strip_suffix(".bias") {
            format!("{stem}.beta")
        } else {
            return None;
        };
        names.contains(&legacy.as_str()).then_some(legacy)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.lookup(&format!("{}{name}", self.prefix)).is_some()
    }

    /// Loads `name` (under the detected prefix) as f32 and checks its shape.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let found = self.lookup(&full).ok_or_else(|| {
            Error::weights(
                &self.file,
                format!("tensor {full:?} is missing; expected shape {shape:?}"),
            )
        })?;
        let view = self
            .tensors
            .tensor(&found)
            .map_err(|e| Error::weights(&self.file, format!("tensor {found:?}: {e}")))?;
        if view.shape() != shape {
            return Err(Error::weights(
                &self.file,
                format!(
                    "tensor {found:?} has shape {:?}; expected {shape:?} from the config",
                    view.shape()
                ),
            ));
        }
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::F64 => DType::F64,
            other => {
                return Err(Error::weights(
                    &self.file,
                    format!("tensor {found:?} has dtype {other:?}; expected F32, F16 or BF16"),
                ))
            }
        };
        // NaN or infinity in a weight would silently poison every output.
        if has_non_finite(dtype, view.data()) {
            return Err(Error::weights(
                &self.file,
                format!("tensor {found:?} holds NaN or infinite values; expected finite weights"),
            ));
        }
        let tensor = Tensor::from_raw_buffer(view.data(), dtype, shape, &self.device)?;
        Ok(tensor.to_dtype(DType::F32)?)
    }

    /// Loads `name` when present.
    pub(crate) fn get_optional(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Whether raw little-endian floats hold a NaN or an infinity (all exponent bits set),
/// checked on the bytes themselves: no conversion, no allocation, no overflow of a sum.
fn has_non_finite(dtype: DType, bytes: &[u8]) -> bool {
    fn any<const N: usize>(bytes: &[u8], exponent: u64) -> bool {
        bytes.chunks_exact(N).any(|c| {
            let mut word = [0u8; 8];
            word[..N].copy_from_slice(c);
            u64::from_le_bytes(word) & exponent == exponent
        })
    }
    match dtype {
        DType::F32 => any::<4>(bytes, 0x7f80_0000),
        DType::F16 => any::<2>(bytes, 0x7c00),
        DType::BF16 => any::<2>(bytes, 0x7f80),
        DType::F64 => any::<8>(bytes, 0x7ff0_0000_0000_0000),
        _ => false,
    }
}
