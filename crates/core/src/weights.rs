//! Tensors out of a safetensors file, found by name whatever prefix or LayerNorm naming
//! the checkpoint uses, checked against the shape the config implies, converted to f32.

use candle_core::{Device, Tensor};
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::source::Blob;

/// A parsed safetensors file borrowed from its bytes.
pub(crate) struct WeightStore<'a> {
    file: String,
    blob: &'a Blob,
    tensors: SafeTensors<'a>,
    prefix: String,
    device: Device,
}

impl<'a> WeightStore<'a> {
    /// Parses the header; a truncated or corrupt file is an error naming `file`.
    pub(crate) fn parse(file: &str, blob: &'a Blob, device: &Device) -> Result<Self> {
        let bytes: &'a [u8] = blob;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::weights(
                file,
                format!("not a valid safetensors file ({} bytes): {e}", bytes.len()),
            )
        })?;
        Ok(WeightStore {
            file: file.to_string(),
            blob,
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

    /// The raw view of `name` (under the detected prefix), its shape checked.
    fn view(
        &self,
        name: &str,
        shape: &[usize],
    ) -> Result<(String, safetensors::tensor::TensorView<'a>)> {
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
        Ok((found, view))
    }

    /// Decodes `name` to f32, transposed when `transpose` (a 2-d `[rows, cols]` tensor comes
    /// back as `[cols, rows]`), checking on the way that every value is finite.
    fn load(&self, name: &str, shape: &[usize], transpose: bool) -> Result<Tensor> {
        let (found, view) = self.view(name, shape)?;
        let (rows, cols) = match (transpose, shape) {
            (true, &[rows, cols]) => (rows, cols),
            _ => (1, shape.iter().product()),
        };
        let bytes = view.data();
        let decoded = match view.dtype() {
            safetensors::Dtype::F32 => decode::<4>(bytes, rows, cols, f32::from_le_bytes),
            safetensors::Dtype::F16 => {
                decode::<2>(bytes, rows, cols, |b| half::f16::from_le_bytes(b).to_f32())
            }
            safetensors::Dtype::BF16 => {
                decode::<2>(bytes, rows, cols, |b| half::bf16::from_le_bytes(b).to_f32())
            }
            safetensors::Dtype::F64 => {
                decode::<8>(bytes, rows, cols, |b| f64::from_le_bytes(b) as f32)
            }
            other => {
                return Err(Error::weights(
                    &self.file,
                    format!("tensor {found:?} has dtype {other:?}; expected F32, F16 or BF16"),
                ))
            }
        };
        // NaN or infinity in a weight (or an f64 beyond f32's range) would silently poison
        // every output.
        let Some(values) = decoded else {
            return Err(Error::weights(
                &self.file,
                format!("tensor {found:?} holds NaN or infinite values; expected finite weights"),
            ));
        };
        self.blob.release(bytes);
        let shape: Vec<usize> = if transpose {
            vec![cols, rows]
        } else {
            shape.to_vec()
        };
        Ok(Tensor::from_vec(values, shape, &self.device)?)
    }

    /// Loads `name` (under the detected prefix) as f32 and checks its shape.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.load(name, shape, false)
    }

    /// Loads the 2-d tensor `name` of shape `[rows, cols]` as its f32 transpose `[cols, rows]`,
    /// stored contiguously (a linear layer's `[out, in]` weight as the `[in, out]` matrix
    /// the matmul streams best).
    pub(crate) fn get_transposed(&self, name: &str, shape: [usize; 2]) -> Result<Tensor> {
        self.load(name, &shape, true)
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

/// Decodes `rows * cols` little-endian values of `N` bytes into f32, transposing a
/// `[rows, cols]` matrix into `[cols, rows]` when `rows > 1`; `None` if any value is NaN or
/// infinite (after the conversion to f32).
fn decode<const N: usize>(
    bytes: &[u8],
    rows: usize,
    cols: usize,
    convert: impl Fn([u8; N]) -> f32 + Sync,
) -> Option<Vec<f32>> {
    use rayon::prelude::*;
    let read = |i: usize| -> f32 {
        let mut raw = [0u8; N];
        raw.copy_from_slice(&bytes[i * N..(i + 1) * N]);
        convert(raw)
    };
    if rows <= 1 {
        let values: Vec<f32> = bytes
            .chunks_exact(N)
            .map(|c| {
                let mut raw = [0u8; N];
                raw.copy_from_slice(c);
                convert(raw)
            })
            .collect();
        let finite = values.iter().fold(true, |ok, x| ok & x.is_finite());
        return finite.then_some(values);
    }
    // Tiles of the source, so that reads and writes both stay within a few cache lines;
    // output rows (source columns) in parallel chunks.
    const TILE: usize = 16;
    let mut out = vec![0f32; rows * cols];
    let finite = out
        .par_chunks_mut(rows * TILE)
        .enumerate()
        .map(|(block, chunk)| {
            let first = block * TILE;
            let width = chunk.len() / rows;
            let mut finite = true;
            for r0 in (0..rows).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for c in 0..width {
                        let x = read(r * cols + first + c);
                        finite &= x.is_finite();
                        chunk[c * rows + r] = x;
                    }
                }
            }
            finite
        })
        .reduce(|| true, |a, b| a & b);
    finite.then_some(out)
}
