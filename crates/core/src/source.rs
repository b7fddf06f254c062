//! Where a model's files come from: a folder on disk (weights memory-mapped) or
//! an in-memory map of file names to bytes (the browser, a Lambda layer read by the caller).

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The bytes of one file: memory-mapped from disk or shared from memory.
pub(crate) enum Blob {
    Mapped(memmap2::Mmap),
    Shared(Arc<[u8]>),
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Mapped(map) => map,
            Blob::Shared(bytes) => bytes,
        }
    }
}

impl Blob {
    /// Tells the OS that the pages under `part` (a slice of this blob) are no longer needed,
    /// once a tensor has been decoded out of them: the weights then count once in the
    /// resident memory, not twice (mapped file and decoded copy).
    pub(crate) fn release(&self, part: &[u8]) {
        #[cfg(unix)]
        if let Blob::Mapped(map) = self {
            let start = map.as_ptr() as usize;
            let Some(offset) = (part.as_ptr() as usize).checked_sub(start) else {
                return;
            };
            if offset + part.len() > map.len() {
                return;
            }
            // SAFETY: the map is a read-only file mapping: pages dropped here are read again
            // from the file, unchanged, if anything touches them later.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, part.len())
            };
        }
        #[cfg(not(unix))]
        let _ = part;
    }
}

/// A PyLate model folder, wherever it lives.
#[derive(Clone)]
pub(crate) enum Source {
    Folder(PathBuf),
    Files(Arc<HashMap<String, Arc<[u8]>>>),
}

impl Source {
    pub(crate) fn folder(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::argument(
                "path",
                format!(
                    "{} is not a directory; expected a PyLate model folder",
                    path.display()
                ),
            ));
        }
        Ok(Source::Folder(path.to_path_buf()))
    }

    /// Builds a source from relative file names. Names are normalised (`\` to `/`,
    /// leading `./` dropped) and, when every file sits under one top folder and no
    /// `config.json` is at the top, that folder is stripped: dropping a whole model
    /// folder in a browser yields names such as `my-model/config.json`.
    pub(crate) fn files<I, K, V>(files: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<Arc<[u8]>>,
    {
        let mut map: HashMap<String, Arc<[u8]>> = HashMap::new();
        for (name, bytes) in files {
            let mut name = name.as_ref().replace('\\', "/");
            while let Some(rest) = name.strip_prefix("./") {
                name = rest.to_string();
            }
            let name = name.trim_start_matches('/').to_string();
            if name.is_empty() {
                return Err(Error::argument("files", "a file name is empty"));
            }
            if map.insert(name.clone(), bytes.into()).is_some() {
                return Err(Error::argument(
                    "files",
                    format!("{name} is given twice once normalised"),
                ));
            }
        }
        if map.is_empty() {
            return Err(Error::argument(
                "files",
                "no files given; expected a PyLate model folder's files (modules.json, config.json, model.safetensors, tokenizer.json, ...)",
            ));
        }
        if !map.contains_key("config.json") {
            let tops: std::collections::HashSet<&str> = map
                .keys()
                .map(|k| k.split('/').next().unwrap_or(""))
                .collect();
            if tops.len() == 1 && map.keys().all(|k| k.contains('/')) {
                let top = format!("{}/", tops.into_iter().next().unwrap_or_default());
                map = map
                    .into_iter()
                    .map(|(k, v)| (k[top.len()..].to_string(), v))
                    .collect();
            }
        }
        Ok(Source::Files(Arc::new(map)))
    }

    /// A human-readable description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Folder(path) => path.display().to_string(),
            Source::Files(_) => "the given files".to_string(),
        }
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Source::Folder(root) => root.join(name).is_file(),
            Source::Files(map) => map.contains_key(name),
        }
    }

    /// Reads a file, `None` if it is absent.
    pub(crate) fn read_optional(&self, name: &str) -> Result<Option<Blob>> {
        match self {
            Source::Folder(root) => {
                let path = root.join(name);
                if !path.is_file() {
                    return Ok(None);
                }
                let file = std::fs::File::open(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                // SAFETY: the map is read-only; a file changed underneath us while the model
                // loads is the same hazard as with any memory-mapped reader (safetensors, numpy).
                let map = unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|source| Error::Io { path, source })?;
                Ok(Some(Blob::Mapped(map)))
            }
            Source::Files(map) => Ok(map.get(name).map(|b| Blob::Shared(b.clone()))),
        }
    }

    /// Reads a file that must be there; `why` says what it is needed for.
    pub(crate) fn read(&self, name: &str, why: &str) -> Result<Blob> {
        self.read_optional(name)?.ok_or_else(|| Error::MissingFile {
            file: name.to_string(),
            expected: format!("{why}; looked in {}", self.describe()),
        })
    }
}

impl Source {
    /// Reads `dir/model.safetensors`, the weights of a module; `what` names them for the
    /// error, which points at a lone `pytorch_model.bin` when that is what the folder has.
    pub(crate) fn read_weights(&self, dir: &str, what: &str) -> Result<(String, Arc<Blob>)> {
        let file = join(dir, "model.safetensors");
        match self.read_optional(&file)? {
            Some(blob) => Ok((file, Arc::new(blob))),
            None => {
                let expected = if self.exists(&join(dir, "pytorch_model.bin")) {
                    "only pytorch_model.bin is present; expected model.safetensors (convert it, \
                     e.g. save_pretrained(safe_serialization=True))"
                        .to_string()
                } else {
                    format!("{what}; looked in {}", self.describe())
                };
                Err(Error::MissingFile { file, expected })
            }
        }
    }
}

/// Joins a module folder (`""` for the root) and a file name.
pub(crate) fn join(dir: &str, file: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}
