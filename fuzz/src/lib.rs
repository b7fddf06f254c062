//! Shared pieces of the fuzz targets: the two small seed models, read into memory once per
//! process, and the checks every successful output must pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use latebird::{ColBERT, Embeddings, Error, ErrorKind, InputKind, Options};

/// Which seed model a target starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `tests/fixtures/models/modernbert-v4`: random ModernBERT, byte-level BPE tokenizer.
    ModernBert,
    /// `fuzz/models/bert-tiny`: random 2-layer BERT, WordPiece tokenizer (see make_corpus.py).
    Bert,
}

impl Which {
    /// Even bytes pick ModernBERT, odd ones BERT (the corpus script writes 0 and 1).
    pub fn from_byte(b: u8) -> Self {
        if b & 1 == 0 {
            Which::ModernBert
        } else {
            Which::Bert
        }
    }

    fn folder(self) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        match self {
            Which::ModernBert => root.join("../tests/fixtures/models/modernbert-v4"),
            Which::Bert => root.join("models/bert-tiny"),
        }
    }
}

/// A model folder's files, relative name to bytes.
pub type Files = HashMap<String, Arc<[u8]>>;

fn read_folder(dir: &Path) -> Files {
    let mut files = Files::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("seed model {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .expect("under the model folder")
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path).expect("seed model file");
            files.insert(name, Arc::from(bytes));
        }
    }
    files
}

/// The seed model's files, read from disk on first use only: every execution after the first
/// clones `Arc`s, so a run measures the engine, not the file system.
pub fn files(which: Which) -> &'static Files {
    static MODERNBERT: OnceLock<Files> = OnceLock::new();
    static BERT: OnceLock<Files> = OnceLock::new();
    let cell = match which {
        Which::ModernBert => &MODERNBERT,
        Which::Bert => &BERT,
    };
    cell.get_or_init(|| read_folder(&which.folder()))
}

/// The seed model loaded with default options, once per process (for targets that only vary
/// the texts).
pub fn model(which: Which) -> &'static ColBERT {
    static MODERNBERT: OnceLock<ColBERT> = OnceLock::new();
    static BERT: OnceLock<ColBERT> = OnceLock::new();
    let cell = match which {
        Which::ModernBert => &MODERNBERT,
        Which::Bert => &BERT,
    };
    cell.get_or_init(|| {
        ColBERT::from_files(files(which).clone(), Options::default()).expect("seed model loads")
    })
}

/// The seed model's files with `name` replaced by `bytes`.
pub fn with_file(which: Which, name: &str, bytes: &[u8]) -> Files {
    let mut files = files(which).clone();
    files.insert(name.to_string(), Arc::from(bytes));
    files
}

/// A load error must be a load or input error with a message; an internal error (a tensor
/// error or a caught panic) from a hostile file is a finding.
pub fn check_load_error(e: &Error) {
    assert!(
        matches!(e.kind(), ErrorKind::Load | ErrorKind::Input),
        "a hostile model file gave an internal error: {e:?}"
    );
    assert!(!e.to_string().is_empty());
}

/// Every output matrix must be consistent, of the model's width and finite.
pub fn check_embeddings(model: &ColBERT, out: &[Embeddings], texts: usize) {
    assert_eq!(out.len(), texts, "one matrix per text");
    for e in out {
        assert_eq!(e.dim, model.dim(), "output width");
        assert_eq!(e.data.len(), e.rows * e.dim, "rows * dim values");
        assert!(
            e.data.iter().all(|v| v.is_finite()),
            "non-finite value in an output: {e:?}"
        );
    }
}

/// Encodes a few fixed texts as queries and documents with a model that loaded from hostile
/// files: loading succeeded, so encoding must either work (finite output) or give a typed error.
pub fn exercise(model: &ColBERT) {
    let texts = [
        "what is late interaction?",
        "",
        "ColBERT, scored with MaxSim; a longer document of several words. ünïcode 日本",
    ];
    for kind in [InputKind::Query, InputKind::Document] {
        match model.encode(&texts, kind) {
            Ok(out) => check_embeddings(model, &out, texts.len()),
            Err(e) => assert!(
                e.kind() != ErrorKind::Internal,
                "encoding with a model that loaded gave an internal error: {e:?}"
            ),
        }
    }
}
