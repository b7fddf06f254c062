//! Tensors out of a safetensors file, found by name whatever prefix or LayerNorm naming
//! the checkpoint uses, checked against the shape the config implies, converted to f32.

use candle_core::{Device, Tensor};
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::source::Blob;
use std::sync::Arc;

/// A parsed safetensors file borrowed from its bytes.
pub(crate) struct WeightStore<'a> {
    file: String,
    blob: &'a Arc<Blob>,
    tensors: SafeTensors<'a>,
    prefix: String,
    device: Device,
    /// The precision linear layers' weights are loaded in (`None`: as stored).
    precision: Option<Precision>,
}

impl<'a> WeightStore<'a> {
    /// The device the tensors are put on.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The precision linear layers' weights are loaded in (`None`: as the file stores them).
    pub(crate) fn precision(&self) -> Option<Precision> {
        self.precision
    }

    pub(crate) fn set_precision(&mut self, precision: Option<Precision>) {
        self.precision = precision;
    }

    /// Parses the header; a truncated or corrupt file is an error naming `file`.
    pub(crate) fn parse(file: &str, blob: &'a Arc<Blob>, device: &Device) -> Result<Self> {
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
            precision: None,
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

    /// Checks a config's layer count against the numbered blocks `{stem}.0.`, `{stem}.1.`, ...
    /// that the file holds (under the detected prefix), before anything is sized from it: a
    /// config asking for more layers than the weights have is an error naming `config_file`
    /// and `key`. Fewer is allowed, as in transformers (the extra layers are unused).
    pub(crate) fn check_layer_count(
        &self,
        config_file: &str,
        key: &str,
        wanted: usize,
        stem: &str,
    ) -> Result<()> {
        let lead = format!("{}{stem}.", self.prefix);
        let mut present = std::collections::HashSet::new();
        for name in self.tensors.names() {
            let index = name
                .strip_prefix(&lead)
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(index, _)| index.parse::<usize>().ok());
            if let Some(index) = index {
                present.insert(index);
            }
        }
        let held = (0..).take_while(|i| present.contains(i)).count();
        if wanted > held {
            return Err(Error::config(
                config_file,
                format!(
                    "`{key}` is {wanted} but {} holds {held} layers ({lead}0 to {lead}{}); expected at most {held}",
                    self.file,
                    held.saturating_sub(1)
                ),
            ));
        }
        Ok(())
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

    /// Decodes `name` to f32, checking on the way that every value is finite.
    fn load(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (found, view) = self.view(name, shape)?;
        let bytes = view.data();
        let dtype = self.table_type(&found, &view)?;
        // NaN or infinity in a weight (or an f64 beyond f32's range) would silently poison
        // every output.
        let Some(values) = decode(dtype, bytes) else {
            return Err(Error::weights(
                &self.file,
                format!("tensor {found:?} holds NaN or infinite values; expected finite weights"),
            ));
        };
        self.blob.release(bytes);
        Ok(Tensor::from_vec(values, shape, &self.device)?)
    }

    fn table_type(
        &self,
        found: &str,
        view: &safetensors::tensor::TensorView<'_>,
    ) -> Result<TableType> {
        Ok(match view.dtype() {
            safetensors::Dtype::F32 => TableType::F32,
            safetensors::Dtype::F16 => TableType::F16,
            safetensors::Dtype::BF16 => TableType::BF16,
            safetensors::Dtype::F64 => TableType::F64,
            other => {
                return Err(Error::weights(
                    &self.file,
                    format!("tensor {found:?} has dtype {other:?}; expected F32, F16 or BF16"),
                ))
            }
        })
    }

    /// Loads `name` (under the detected prefix) as f32 and checks its shape.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.load(name, shape)
    }

    /// An embedding matrix `[rows, cols]` left in the file's bytes: checked for finite
    /// values now, its rows decoded only when [`EmbeddingTable::gather`] asks for them, so
    /// the largest tensor of a model is neither copied nor kept resident as a whole.
    pub(crate) fn get_table(&self, name: &str, shape: [usize; 2]) -> Result<EmbeddingTable> {
        let (found, view) = self.view(name, &shape)?;
        let bytes = view.data();
        let dtype = self.table_type(&found, &view)?;
        if !dtype.all_finite(bytes) {
            return Err(Error::weights(
                &self.file,
                format!("tensor {found:?} holds NaN or infinite values; expected finite weights"),
            ));
        }
        self.blob.release(bytes);
        let blob_start = self.blob.as_ptr() as usize;
        Ok(EmbeddingTable {
            blob: Arc::clone(self.blob),
            offset: bytes.as_ptr() as usize - blob_start,
            dtype,
            rows: shape[0],
            cols: shape[1],
        })
    }

    /// Whether any tensor of the file is stored in int8 (a folder written by
    /// [`crate::quantize`]).
    pub(crate) fn holds_int8(&self) -> bool {
        self.tensors
            .tensors()
            .iter()
            .any(|(_, view)| view.dtype() == safetensors::Dtype::I8)
    }

    /// Whether the tensor `name` (under the detected prefix) is stored in int8.
    pub(crate) fn is_int8(&self, name: &str) -> bool {
        self.lookup(&format!("{}{name}", self.prefix))
            .and_then(|found| self.tensors.tensor(&found).ok())
            .is_some_and(|view| view.dtype() == safetensors::Dtype::I8)
    }

    /// A linear layer's weight `name` of shape `[out, in]` as stored: float (decoded to f32)
    /// or int8 (as written by [`crate::quantize`]: the values
    /// `[out, in]` and `{name}_scale`, one positive f32 step per output).
    pub(crate) fn get_linear(&self, name: &str, out: usize, input: usize) -> Result<LinearParts> {
        if !self.is_int8(name) {
            return Ok(LinearParts::F32(self.get(name, &[out, input])?));
        }
        let (found, view) = self.view(name, &[out, input])?;
        let values: Vec<i8> = view.data().iter().map(|&b| b as i8).collect();
        if values.contains(&i8::MIN) {
            return Err(Error::weights(
                &self.file,
                format!("int8 tensor {found:?} holds -128; expected values in -127..=127 (symmetric quantization)"),
            ));
        }
        self.blob.release(view.data());
        let scale_name = format!("{name}_scale");
        let scales: Vec<f32> = self.get(&scale_name, &[out])?.to_vec1()?;
        if let Some(bad) = scales.iter().find(|s| **s <= 0.0) {
            return Err(Error::weights(
                &self.file,
                format!(
                    "tensor {:?} holds the step {bad}; expected positive steps",
                    format!("{}{scale_name}", self.prefix)
                ),
            ));
        }
        Ok(LinearParts::Int8 { values, scales })
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

/// A linear layer's weight as a checkpoint stores it.
pub(crate) enum LinearParts {
    /// Decoded to f32: `[out, in]`.
    F32(Tensor),
    /// Symmetric int8 values `[out, in]` and the f32 step of each output.
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

/// Decodes little-endian values into f32, in parallel chunks; `None` if any value is NaN or
/// infinite (after the conversion to f32).
fn decode(dtype: TableType, bytes: &[u8]) -> Option<Vec<f32>> {
    use rayon::prelude::*;
    /// Values per task: large enough to amortise the scheduling, small enough to share.
    const CHUNK: usize = 1 << 16;
    let size = dtype.size();
    let mut out = vec![0f32; bytes.len() / size];
    let finite = out
        .par_chunks_mut(CHUNK)
        .zip(bytes.par_chunks(CHUNK * size))
        .all(|(values, bytes)| {
            dtype.decode(bytes, values);
            values.iter().fold(true, |ok, x| ok & x.is_finite())
        });
    finite.then_some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TableType {
    F32,
    F16,
    BF16,
    F64,
}

impl TableType {
    fn size(self) -> usize {
        match self {
            TableType::F32 => 4,
            TableType::F16 | TableType::BF16 => 2,
            TableType::F64 => 8,
        }
    }

    /// Decodes little-endian values into `out` (as many as it holds).
    fn decode(self, bytes: &[u8], out: &mut [f32]) {
        fn each<const N: usize>(bytes: &[u8], out: &mut [f32], f: impl Fn([u8; N]) -> f32) {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(N)) {
                let mut raw = [0u8; N];
                raw.copy_from_slice(c);
                *o = f(raw);
            }
        }
        match self {
            TableType::F32 => each::<4>(bytes, out, f32::from_le_bytes),
            TableType::F16 => each::<2>(bytes, out, |b| half::f16::from_le_bytes(b).to_f32()),
            TableType::BF16 => each::<2>(bytes, out, |b| half::bf16::from_le_bytes(b).to_f32()),
            TableType::F64 => each::<8>(bytes, out, |b| f64::from_le_bytes(b) as f32),
        }
    }
}

impl TableType {
    /// Whether every value of `bytes` is finite once converted to f32, decoded a chunk at a
    /// time in parallel (nothing is kept).
    fn all_finite(self, bytes: &[u8]) -> bool {
        use rayon::prelude::*;
        const CHUNK: usize = 4096;
        bytes.par_chunks(CHUNK * self.size()).all(|chunk| {
            let mut values = [0f32; CHUNK];
            let values = &mut values[..chunk.len() / self.size()];
            self.decode(chunk, values);
            values.iter().fold(true, |ok, x| ok & x.is_finite())
        })
    }
}

/// An embedding matrix read row by row out of the weights file's bytes (memory-mapped or
/// shared), see [`WeightStore::get_table`].
pub(crate) struct EmbeddingTable {
    blob: Arc<Blob>,
    offset: usize,
    dtype: TableType,
    rows: usize,
    cols: usize,
}

impl EmbeddingTable {
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The rows of `ids`, as a `[ids.len(), cols]` f32 tensor.
    pub(crate) fn gather(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        let width = self.cols * self.dtype.size();
        let bytes = &self.blob[self.offset..self.offset + self.rows * width];
        let mut out = vec![0f32; ids.len() * self.cols];
        for (dst, &id) in out.chunks_exact_mut(self.cols.max(1)).zip(ids) {
            let id = id as usize;
            if id >= self.rows {
                candle_core::bail!("token id {id} is outside the {} embedding rows", self.rows);
            }
            self.dtype.decode(&bytes[id * width..(id + 1) * width], dst);
        }
        Tensor::from_vec(out, (ids.len(), self.cols), device)
    }
}
