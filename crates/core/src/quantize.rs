//! Writes a smaller copy of a model folder: the backbone's linear-layer weights in int8
//! (everything else as it was), or every float tensor of the backbone in float16 (half the
//! download, for browsers). Every binding loads the copy like any model folder: an int8 copy
//! in int8 unless told otherwise, a float16 copy in float32.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::config::Modules;
use crate::encoder::{ColBERT, Options};
use crate::error::{Error, Result};
use crate::models::quantize_symmetric;
use crate::precision::Precision;
use crate::source::{join, Source};
use crate::weights::WeightStore;

/// What [`quantize`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeReport {
    /// Tensors stored in the new precision: weight matrices for int8, every float tensor
    /// for float16.
    pub quantized: usize,
    /// Size of the backbone's weights file before, in bytes.
    pub bytes_before: u64,
    /// Size of the backbone's weights file after, in bytes.
    pub bytes_after: u64,
    /// Files copied unchanged (relative paths).
    pub copied: Vec<String>,
    /// Files left out (other serialisations of the same weights, such as
    /// `pytorch_model.bin`), relative paths.
    pub skipped: Vec<String>,
}

/// Other serialisations of a backbone's weights, left out of the copy: they would hold the
/// float weights again.
const OTHER_WEIGHT_FILES: &[&str] = &[
    "pytorch_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
    "model.onnx",
    "rust_model.ot",
];

/// Writes to `output` (a new or empty folder) a copy of the PyLate model folder `model`
/// whose backbone weights are stored in `precision`:
/// - [`Precision::Int8`]: every linear layer's weight `[out, in]` becomes int8 values with
///   one float32 step per output (`{name}_scale`), quantized exactly as loading the float
///   model with `precision` int8 does, so both give the same embeddings. Embeddings, norms,
///   biases and the Dense head stay as they were.
/// - [`Precision::Float16`]: every float tensor of the backbone (embedding tables included,
///   which dominate small models) is rounded to float16; the copy loads in float32 by
///   default, its weights then exactly the rounded values. The Dense head stays as it was.
///
/// The model is loaded first, so a folder latebird cannot run is refused before anything is
/// written.
///
/// Errors: [`Error::InvalidArgument`] (`precision` float32 or bfloat16, `output` not empty,
/// the model already quantized, or for float16 already in float16), the load errors of the
/// model, [`Error::Write`].
pub fn quantize(
    model: impl AsRef<Path>,
    output: impl AsRef<Path>,
    precision: Precision,
) -> Result<QuantizeReport> {
    let (model, output) = (model.as_ref(), output.as_ref());
    if !matches!(precision, Precision::Int8 | Precision::Float16) {
        return Err(Error::argument(
            "precision",
            format!("is {precision}; expected int8 or float16 (float32 is the model as it is, and bfloat16 needs no copy: load the model with precision bfloat16)"),
        ));
    }
    check_output(output)?;
    ColBERT::from_folder(model, Options::default())?;
    let source = Source::folder(model)?;
    let modules = Modules::read(&source)?;
    let weights_file = join(&modules.transformer, "model.safetensors");
    let (name, blob) = source.read_weights(&modules.transformer, "the backbone's weights")?;
    let store = WeightStore::parse(&name, &blob, &crate::Device::Cpu)?;
    let tensors =
        SafeTensors::deserialize(&blob).map_err(|e| Error::weights(&name, e.to_string()))?;
    let (_, metadata) =
        SafeTensors::read_metadata(&blob).map_err(|e| Error::weights(&name, e.to_string()))?;

    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut quantized = 0;
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    for tensor_name in names {
        let view = tensors
            .tensor(&tensor_name)
            .map_err(|e| Error::weights(&name, format!("tensor {tensor_name:?}: {e}")))?;
        if view.dtype() == Dtype::I8 {
            return Err(Error::argument(
                "model",
                format!("{} holds the int8 tensor {tensor_name:?}: the model is quantized already; expected a float model", model.display()),
            ));
        }
        let shape = view.shape().to_vec();
        let float = matches!(view.dtype(), Dtype::F32 | Dtype::F64 | Dtype::BF16);
        if precision == Precision::Float16 && float {
            let values: Vec<f32> = store.get(&tensor_name, &shape)?.flatten_all()?.to_vec1()?;
            if let Some(v) = values.iter().find(|v| v.is_finite() && v.abs() > 65504.0) {
                return Err(Error::argument(
                    "precision",
                    format!("float16 cannot hold {tensor_name:?}: it has the value {v}, beyond float16's largest (65504); use int8"),
                ));
            }
            let bytes = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            owned.push((tensor_name.clone(), Dtype::F16, shape, bytes));
            quantized += 1;
        } else if precision == Precision::Int8
            && is_linear_weight(&tensor_name, &shape, view.dtype())
        {
            let (rows, cols) = (shape[0], shape[1]);
            let values: Vec<f32> = store.get(&tensor_name, &shape)?.flatten_all()?.to_vec1()?;
            let (q, scales) = quantize_symmetric(&values, cols);
            owned.push((
                tensor_name.clone(),
                Dtype::I8,
                shape.clone(),
                q.into_iter().map(|v| v as u8).collect(),
            ));
            owned.push((
                format!("{tensor_name}_scale"),
                Dtype::F32,
                vec![rows],
                scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ));
            quantized += 1;
        } else {
            owned.push((
                tensor_name.clone(),
                view.dtype(),
                shape,
                view.data().to_vec(),
            ));
        }
    }
    if precision == Precision::Float16 && quantized == 0 {
        return Err(Error::argument(
            "model",
            format!("{} stores its weights in float16 already: a float16 copy would be the same; expected a float32 or bfloat16 model", model.display()),
        ));
    }
    let mut info = metadata.metadata().clone().unwrap_or_default();
    info.insert(
        "latebird_precision".to_string(),
        precision.name().to_string(),
    );
    let views = owned
        .iter()
        .map(|(n, dtype, shape, data)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (n.clone(), view))
                .map_err(|e| Error::Internal {
                    message: format!("tensor {n:?}: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| Error::Internal {
        message: format!("serialising {weights_file}: {e}"),
    })?;

    let mut report = QuantizeReport {
        quantized,
        bytes_before: blob.len() as u64,
        bytes_after: bytes.len() as u64,
        copied: Vec::new(),
        skipped: Vec::new(),
    };
    std::fs::create_dir_all(output).map_err(|e| write_error(output, e))?;
    copy_tree(
        model,
        output,
        "",
        &modules.transformer,
        &weights_file,
        &mut report,
    )?;
    let target = output.join(&weights_file);
    std::fs::write(&target, bytes).map_err(|e| write_error(&target, e))?;
    Ok(report)
}

/// A 2-d float tensor named `*.weight` outside the embeddings: a linear layer's weight.
fn is_linear_weight(name: &str, shape: &[usize], dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
        && shape.len() == 2
        && shape.iter().all(|&d| d > 0)
        && name.ends_with(".weight")
        && !name.split('.').any(|part| part.contains("embeddings"))
}

fn check_output(output: &Path) -> Result<()> {
    match std::fs::read_dir(output) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::argument(
                    "output",
                    format!(
                        "{} is not empty; expected a new or empty folder (nothing is overwritten)",
                        output.display()
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if output.is_file() => Err(Error::argument(
            "output",
            format!(
                "{} is a file ({e}); expected a new or empty folder",
                output.display()
            ),
        )),
        Err(e) => Err(write_error(output, e)),
    }
}

fn write_error(path: &Path, source: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies `from/relative` into `to/relative`, recursively, except the backbone weights
/// (`weights_file`, rewritten by the caller) and the other serialisations of them.
fn copy_tree(
    from: &Path,
    to: &Path,
    relative: &str,
    transformer: &str,
    weights_file: &str,
    report: &mut QuantizeReport,
) -> Result<()> {
    let dir: PathBuf = from.join(relative);
    let read_error = |e| Error::Io {
        path: dir.clone(),
        source: e,
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(read_error)?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(read_error)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = join(relative, &name);
        let source_path = entry.path();
        if source_path.is_dir() {
            std::fs::create_dir_all(to.join(&path)).map_err(|e| write_error(&to.join(&path), e))?;
            copy_tree(from, to, &path, transformer, weights_file, report)?;
        } else if path == weights_file {
            continue;
        } else if relative.trim_matches('/') == transformer.trim_matches('/')
            && OTHER_WEIGHT_FILES.contains(&name.as_str())
        {
            report.skipped.push(path);
        } else {
            let target = to.join(&path);
            std::fs::copy(&source_path, &target).map_err(|e| write_error(&target, e))?;
            report.copied.push(path);
        }
    }
    Ok(())
}
