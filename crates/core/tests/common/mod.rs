//! Shared helpers for the integration tests: where the fixtures are and how to read references.
#![allow(dead_code)]

/// Asserts that `$result` is an error matching `$pattern` (with an optional guard) whose
/// message holds every needle.
#[allow(unused_macros)]
macro_rules! assert_error {
    ($result:expr, $pattern:pat $(if $guard:expr)?, [$($needle:expr),* $(,)?]) => {{
        match $result {
            Ok(_) => panic!("expected {} but got a result", stringify!($pattern)),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    matches!(e, $pattern $(if $guard)?),
                    "expected {}, got {e:?} ({message})",
                    stringify!($pattern)
                );
                $(
                    assert!(
                        message.contains($needle),
                        "message {message:?} does not mention {:?}",
                        $needle
                    );
                )*
            }
        }
    }};
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use latebird::{Case, ColBERT, Options, Overrides};
use serde_json::Value;

/// The repository's `tests/` folder.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests")
}

/// A model folder by name: committed fixtures first, then the ones the build script makes.
pub fn model_dir(name: &str) -> PathBuf {
    for base in ["fixtures/models", "models"] {
        let dir = tests_dir().join(base).join(name);
        if dir.join("modules.json").is_file() {
            return dir;
        }
    }
    panic!(
        "test model {name:?} not found under tests/fixtures/models or tests/models; \
         build it with `python scripts/build_test_models.py`"
    )
}

/// One committed PyLate reference file.
pub struct Reference {
    pub name: String,
    pub model: String,
    pub overrides: serde_json::Map<String, Value>,
    pub queries: Vec<String>,
    pub documents: Vec<String>,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Reference {
    pub fn matrix(&self, key: &str) -> (Vec<usize>, &[f64]) {
        let (shape, values) = self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name));
        (shape.clone(), values)
    }

    /// The reference's settings, on the device `LATEBIRD_TEST_DEVICE` names (default: the
    /// CPU; scripts/gpu_check.sh runs the parity tests with `cuda`).
    pub fn options(&self) -> Options {
        let overrides = Overrides::from_map(&self.overrides, Case::Snake)
            .unwrap_or_else(|e| panic!("{}: overrides: {e}", self.name));
        Options {
            device: test_device(),
            ..Options::default()
        }
        .with_overrides(overrides)
    }

    pub fn load_model(&self, batch_size: usize) -> ColBERT {
        let options = Options {
            batch_size,
            ..self.options()
        };
        ColBERT::from_folder(model_dir(&self.model), options)
            .unwrap_or_else(|e| panic!("{}: loading failed: {e}", self.name))
    }
}

/// The device the parity and batching tests run on: `LATEBIRD_TEST_DEVICE` (default: the CPU;
/// scripts/gpu_check.sh sets `cuda`).
#[allow(dead_code)]
pub fn test_device() -> latebird::DeviceSpec {
    match std::env::var("LATEBIRD_TEST_DEVICE") {
        Ok(name) => name
            .parse()
            .unwrap_or_else(|e| panic!("LATEBIRD_TEST_DEVICE: {e}")),
        Err(_) => latebird::DeviceSpec::Cpu,
    }
}

fn read_reference(path: &Path) -> Reference {
    let bytes = std::fs::read(path).expect("reference readable");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("reference header");
    let meta = meta.metadata().clone().expect("reference metadata");
    let json = |k: &str| -> Value { serde_json::from_str(&meta[k]).expect("metadata json") };
    let texts = json("texts");
    let strings = |k: &str| -> Vec<String> {
        texts[k]
            .as_array()
            .expect("texts")
            .iter()
            .map(|t| t.as_str().expect("text").to_string())
            .collect()
    };
    let tensors = read_tensors(&bytes, &path.display().to_string());
    Reference {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        model: meta["model"].clone(),
        overrides: json("overrides").as_object().cloned().unwrap_or_default(),
        queries: strings("queries"),
        documents: strings("documents"),
        tensors,
    }
}

/// Every tensor of a safetensors file, widened to f64 (f32, f64 and i64 tensors).
pub fn read_tensors(bytes: &[u8], what: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).expect("safetensors file");
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f64> = match view.dtype() {
            safetensors::Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            safetensors::Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::I64 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            other => panic!("{what}: {name}: unexpected dtype {other:?}"),
        };
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    tensors
}

/// Every committed reference file.
pub fn references() -> Vec<Reference> {
    let dir = tests_dir().join("fixtures/references");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no reference files in {}", dir.display());
    paths.iter().map(|p| read_reference(p)).collect()
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// A model folder held in memory, to break one thing and load it from disk or from bytes.
#[derive(Clone)]
pub struct Fixture {
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
}

/// One tensor of a safetensors file, as bytes.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Fixture {
    /// Reads every file of a test model (by name, see [`model_dir`]).
    pub fn new(name: &str) -> Self {
        let root = model_dir(name);
        let mut files = std::collections::BTreeMap::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("fixture folder readable") {
                let path = entry.expect("fixture entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(&root)
                        .expect("inside the fixture")
                        .to_string_lossy()
                        .replace('\\', "/");
                    files.insert(rel, std::fs::read(&path).expect("fixture file readable"));
                }
            }
        }
        Fixture { files }
    }

    pub fn remove(&mut self, name: &str) -> &mut Self {
        assert!(self.files.remove(name).is_some(), "fixture has no {name}");
        self
    }

    pub fn set(&mut self, name: &str, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.files.insert(name.to_string(), bytes.into());
        self
    }

    pub fn get(&self, name: &str) -> &[u8] {
        self.files
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no {name}"))
    }

    /// Edits a JSON file in place.
    pub fn edit_json(&mut self, name: &str, edit: impl FnOnce(&mut Value)) -> &mut Self {
        let mut value: Value = serde_json::from_slice(self.get(name)).expect("fixture JSON");
        edit(&mut value);
        let bytes = serde_json::to_vec_pretty(&value).expect("JSON serialises");
        self.set(name, bytes)
    }

    /// Sets `key` of a JSON object file.
    pub fn set_key(&mut self, name: &str, key: &str, value: Value) -> &mut Self {
        self.edit_json(name, |v| {
            v.as_object_mut()
                .expect("a JSON object")
                .insert(key.to_string(), value);
        })
    }

    /// Removes `key` of a JSON object file.
    pub fn remove_key(&mut self, name: &str, key: &str) -> &mut Self {
        self.edit_json(name, |v| {
            v.as_object_mut().expect("a JSON object").remove(key);
        })
    }

    /// Reads a safetensors file into its tensors.
    pub fn tensors(&self, name: &str) -> std::collections::BTreeMap<String, RawTensor> {
        let st = safetensors::SafeTensors::deserialize(self.get(name)).expect("fixture weights");
        st.tensors()
            .into_iter()
            .map(|(n, v)| {
                (
                    n,
                    RawTensor {
                        dtype: v.dtype(),
                        shape: v.shape().to_vec(),
                        data: v.data().to_vec(),
                    },
                )
            })
            .collect()
    }

    /// Edits the tensors of a safetensors file and writes it back.
    pub fn edit_tensors(
        &mut self,
        name: &str,
        edit: impl FnOnce(&mut std::collections::BTreeMap<String, RawTensor>),
    ) -> &mut Self {
        let mut tensors = self.tensors(name);
        edit(&mut tensors);
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)
                        .expect("consistent tensor"),
                )
            })
            .collect();
        let bytes = safetensors::serialize(views, None).expect("safetensors serialises");
        self.set(name, bytes)
    }

    /// Writes the files into a fresh temporary folder (removed when the guard drops).
    pub fn write(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary folder");
        for (name, bytes) in &self.files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create folder");
            }
            std::fs::write(&path, bytes).expect("write fixture file");
        }
        dir
    }

    pub fn load_folder(&self, options: Options) -> latebird::Result<ColBERT> {
        let dir = self.write();
        ColBERT::from_folder(dir.path(), options)
    }

    pub fn load_files(&self, options: Options) -> latebird::Result<ColBERT> {
        ColBERT::from_files(self.files.clone(), options)
    }
}
