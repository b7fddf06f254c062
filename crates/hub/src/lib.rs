//! latebird-hub: fetch a PyLate model folder from a Hugging Face compatible hub.
//!
//! [`download`] resolves a revision (branch, tag or commit) to a commit through the hub API
//! (`GET {endpoint}/api/models/{repo}/revision/{revision}`), fetches only the files a PyLate
//! folder needs (`modules.json`, the JSON configs, tokenizer files, `*.safetensors` at the top
//! and in module folders such as `1_Dense/`) from `{endpoint}/{repo}/resolve/{commit}/{file}`,
//! and returns the local snapshot folder, ready for `latebird::ColBERT::from_folder`.
//!
//! The cache is huggingface_hub's: `{cache}/models--{org}--{name}/snapshots/{commit}/...` and
//! `refs/{revision}` holding the commit, so a cache filled by huggingface_hub is reused and
//! huggingface_hub reads what latebird downloaded. latebird writes plain files into the
//! snapshot (huggingface_hub's layout without symlinks, as on Windows) and renames each file
//! into place only once it is complete.
//!
//! ```no_run
//! let folder = latebird_hub::download("lightonai/GTE-ModernColBERT-v1", None, None)?;
//! # Ok::<(), latebird_hub::Error>(())
//! ```
//!
//! Environment (as huggingface_hub): `HF_ENDPOINT`, `HF_HUB_CACHE` / `HF_HOME`, `HF_TOKEN`
//! (or the `token` file of `HF_HOME`), `HF_HUB_OFFLINE`, `HF_HUB_DOWNLOAD_TIMEOUT`; and
//! `LATEBIRD_HUB_RETRIES`, `LATEBIRD_HUB_BACKOFF` (see [`HubOptions::from_env`]).
#![deny(missing_docs)]

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// The hub huggingface_hub talks to when `HF_ENDPOINT` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// What can go wrong while fetching a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository id is not `name` or `org/name` made of letters, digits, `-`, `_`, `.`.
    #[error("invalid repository id {repo_id:?}: {reason}")]
    InvalidRepoId {
        /// The id given.
        repo_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The revision is empty or not a safe branch, tag or commit name.
    #[error("invalid revision {revision:?}: {reason}")]
    InvalidRevision {
        /// The revision given.
        revision: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The hub has no such repository (or hides a private or gated one from this token).
    #[error(
        "repository {repo_id:?} not found on {endpoint} (HTTP {status}); check the id, and set \
         HF_TOKEN if the repository is private or gated"
    )]
    RepoNotFound {
        /// The repository id.
        repo_id: String,
        /// The hub asked.
        endpoint: String,
        /// The HTTP status the hub answered.
        status: u16,
    },
    /// The repository exists but has no such branch, tag or commit.
    #[error(
        "revision {revision:?} not found in {repo_id:?}; expected a branch, tag or commit hash"
    )]
    RevisionNotFound {
        /// The repository id.
        repo_id: String,
        /// The revision asked for.
        revision: String,
    },
    /// A file listed by the hub could not be fetched: the hub answered 404.
    #[error("file {file:?} not found in {repo_id:?} at revision {revision}")]
    FileNotFound {
        /// The repository id.
        repo_id: String,
        /// The commit the file was asked at.
        revision: String,
        /// The file's path in the repository.
        file: String,
    },
    /// The hub refused the token (or its absence) for this repository.
    #[error(
        "access to {repo_id:?} denied by {endpoint} (HTTP {status}); set HF_TOKEN to a token \
         that can read it (gated repositories also need their terms accepted)"
    )]
    AccessDenied {
        /// The repository id.
        repo_id: String,
        /// The hub asked.
        endpoint: String,
        /// The HTTP status the hub answered.
        status: u16,
    },
    /// The repository holds no `modules.json`: it is not a sentence-transformers/PyLate model.
    #[error(
        "{repo_id:?} at revision {revision} is not a PyLate model: it has no modules.json \
         (files: {files})"
    )]
    NotAModel {
        /// The repository id.
        repo_id: String,
        /// The commit looked at.
        revision: String,
        /// The repository's files, abridged.
        files: String,
    },
    /// Offline mode is on (or the hub is unreachable) and the cache has no complete copy.
    #[error("{repo_id:?} at revision {revision:?} is not in the cache {cache}: {reason}")]
    NotCached {
        /// The repository id.
        repo_id: String,
        /// The revision asked for.
        revision: String,
        /// The cache folder looked in.
        cache: PathBuf,
        /// Why the hub was not asked, or what asking it gave.
        reason: String,
    },
    /// The hub could not be reached, or stopped answering, after every retry.
    #[error("network error fetching {url} (after {attempts} attempt(s)): {message}")]
    Network {
        /// The address asked.
        url: String,
        /// What the transport said.
        message: String,
        /// How many times it was tried.
        attempts: u32,
    },
    /// The hub answered with an HTTP status other than the ones above.
    #[error("{url}: HTTP {status} (after {attempts} attempt(s)): {message}")]
    Http {
        /// The address asked.
        url: String,
        /// The status answered.
        status: u16,
        /// The start of the body, or the X-Error-Message header.
        message: String,
        /// How many times it was tried.
        attempts: u32,
    },
    /// The hub answered something that is not the API's shape.
    #[error("{url}: unexpected response from the hub: {message}")]
    InvalidResponse {
        /// The address asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// Reading or writing the cache failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where and how to download. [`HubOptions::from_env`] reads huggingface_hub's variables.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Base address of the hub, without a trailing `/` (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The hub cache folder holding `models--org--name/` folders (`HF_HUB_CACHE`).
    pub cache_dir: PathBuf,
    /// Bearer token for private or gated repositories (`HF_TOKEN`).
    pub token: Option<String>,
    /// Use the cache only, never the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Limit for connecting and for each read or write on the socket
    /// (`HF_HUB_DOWNLOAD_TIMEOUT`, seconds; default 10).
    pub timeout: Duration,
    /// Retries after a 5xx or 429 answer, a timeout or a broken transfer
    /// (`LATEBIRD_HUB_RETRIES`; default 3). A refused connection is not retried.
    pub retries: u32,
    /// Wait before the first retry, doubled for each next one, at most 30 s
    /// (`LATEBIRD_HUB_BACKOFF`, seconds; default 1).
    pub backoff: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self::from_env()
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_seconds(name: &str, default: f64) -> Duration {
    let secs = env_nonempty(name)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

/// Whether an environment flag is on, as huggingface_hub reads them (`1`, `true`, `yes`, `on`).
fn env_flag(name: &str) -> bool {
    env_nonempty(name).is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn hf_home() -> PathBuf {
    if let Some(home) = env_nonempty("HF_HOME") {
        return PathBuf::from(home);
    }
    let cache = env_nonempty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env_nonempty("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface")
}

impl HubOptions {
    /// Options from the environment, with huggingface_hub's defaults:
    /// endpoint `HF_ENDPOINT` or <https://huggingface.co>; cache `HF_HUB_CACHE`, else
    /// `HF_HOME/hub`, else `~/.cache/huggingface/hub`; token `HF_TOKEN`, else the file
    /// `HF_TOKEN_PATH` or `HF_HOME/token`; offline `HF_HUB_OFFLINE`; timeout
    /// `HF_HUB_DOWNLOAD_TIMEOUT` (10 s); retries `LATEBIRD_HUB_RETRIES` (3); first backoff
    /// `LATEBIRD_HUB_BACKOFF` (1 s).
    pub fn from_env() -> Self {
        let endpoint = env_nonempty("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let cache_dir = env_nonempty("HF_HUB_CACHE")
            .or_else(|| env_nonempty("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home().join("hub"));
        let token = env_nonempty("HF_TOKEN").or_else(|| {
            let path = env_nonempty("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home().join("token"));
            fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let retries = env_nonempty("LATEBIRD_HUB_RETRIES")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(3);
        HubOptions {
            endpoint,
            cache_dir,
            token: token.map(|t| t.trim().to_string()),
            offline: env_flag("HF_HUB_OFFLINE"),
            timeout: env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", 10.0),
            retries,
            backoff: env_seconds("LATEBIRD_HUB_BACKOFF", 1.0),
        }
    }
}

/// Fetches the PyLate files of `repo_id` at `revision` (default `main`) into the cache
/// (`cache_dir`, or the one the environment names) and returns the snapshot folder.
/// Every other setting comes from the environment ([`HubOptions::from_env`]).
pub fn download(
    repo_id: &str,
    revision: Option<&str>,
    cache_dir: Option<&Path>,
) -> Result<PathBuf> {
    let mut options = HubOptions::from_env();
    if let Some(cache) = cache_dir {
        options.cache_dir = cache.to_path_buf();
    }
    download_with(repo_id, revision, &options)
}

/// [`download`] with explicit options.
///
/// Files already in the snapshot of the resolved commit are not fetched again. With
/// `offline`, or when the hub cannot be reached at all, a complete cached snapshot of the
/// revision is returned instead ([`Error::NotCached`] if there is none).
pub fn download_with(
    repo_id: &str,
    revision: Option<&str>,
    options: &HubOptions,
) -> Result<PathBuf> {
    check_repo_id(repo_id)?;
    let revision = revision.unwrap_or("main");
    check_revision(revision)?;
    let repo_dir = options
        .cache_dir
        .join(format!("models--{}", repo_id.replace('/', "--")));
    let not_cached = |reason: String| Error::NotCached {
        repo_id: repo_id.to_string(),
        revision: revision.to_string(),
        cache: options.cache_dir.clone(),
        reason,
    };
    if options.offline {
        return cached_snapshot(&repo_dir, revision).ok_or_else(|| {
            not_cached(
                "offline mode is on (HF_HUB_OFFLINE=1); download it once with the hub \
                 reachable, or unset HF_HUB_OFFLINE"
                    .to_string(),
            )
        });
    }
    let client = Client::new(options);
    let info = match client.revision_info(repo_id, revision) {
        Ok(info) => info,
        Err(err @ Error::Network { .. }) => {
            // As huggingface_hub: an unreachable hub falls back to a complete cached copy.
            return cached_snapshot(&repo_dir, revision).ok_or_else(|| not_cached(err.to_string()));
        }
        Err(err) => return Err(err),
    };
    let commit = info.commit;
    let files: Vec<&String> = info.files.iter().filter(|f| is_model_file(f)).collect();
    if !files.iter().any(|f| f.as_str() == "modules.json") {
        let mut listing: Vec<&str> = info.files.iter().take(20).map(String::as_str).collect();
        if info.files.len() > 20 {
            listing.push("...");
        }
        return Err(Error::NotAModel {
            repo_id: repo_id.to_string(),
            revision: commit,
            files: listing.join(", "),
        });
    }
    let snapshot = repo_dir.join("snapshots").join(&commit);
    for file in files {
        let dest = snapshot.join(file);
        if dest.is_file() {
            continue; // a commit's files never change
        }
        client.download_file(repo_id, &commit, file, &dest)?;
    }
    if revision != commit {
        // Written last: a ref names a snapshot whose files are all there.
        write_atomic(&repo_dir.join("refs").join(revision), commit.as_bytes())?;
    }
    Ok(snapshot)
}

/// The cached snapshot of `revision` (a commit hash, or a branch or tag through `refs/`),
/// if it holds a complete PyLate folder.
fn cached_snapshot(repo_dir: &Path, revision: &str) -> Option<PathBuf> {
    let commit = if is_commit_hash(revision) {
        revision.to_string()
    } else {
        fs::read_to_string(repo_dir.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let snapshot = repo_dir.join("snapshots").join(commit);
    is_complete(&snapshot).then_some(snapshot)
}

/// A snapshot is complete when `modules.json`, the backbone's config, tokenizer and weights,
/// and each Dense module's config and weights are there.
fn is_complete(snapshot: &Path) -> bool {
    #[derive(Deserialize)]
    struct Module {
        path: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let Ok(text) = fs::read_to_string(snapshot.join("modules.json")) else {
        return false;
    };
    let Ok(modules) = serde_json::from_str::<Vec<Module>>(&text) else {
        return false;
    };
    let has_weights = |dir: &Path| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(".safetensors"))
            })
        })
    };
    let top = ["config.json", "tokenizer.json"]
        .iter()
        .all(|f| snapshot.join(f).is_file());
    top && has_weights(snapshot)
        && modules
            .iter()
            .filter(|m| m.kind.ends_with("Dense") && !m.path.is_empty())
            .all(|m| {
                let dir = snapshot.join(&m.path);
                dir.join("config.json").is_file() && has_weights(&dir)
            })
}

/// Whether a repository file belongs to a PyLate folder: JSON configs and tokenizer files,
/// vocabularies and `*.safetensors` at the top, JSON and `*.safetensors` in module folders
/// (`1_Dense/`, `2_Dense/`, ...). Other weights formats, ONNX exports and docs are skipped.
fn is_model_file(path: &str) -> bool {
    let weights_or_config = |name: &str| name.ends_with(".json") || name.ends_with(".safetensors");
    match path.split_once('/') {
        None => {
            weights_or_config(path)
                || matches!(
                    path,
                    "vocab.txt" | "merges.txt" | "tokenizer.model" | "spiece.model"
                )
        }
        Some((dir, name)) => {
            let module_dir = dir.split_once('_').is_some_and(|(n, rest)| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
            });
            module_dir && !name.contains('/') && weights_or_config(name)
        }
    }
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_repo_id(repo_id: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::InvalidRepoId {
            repo_id: repo_id.to_string(),
            reason: reason.to_string(),
        })
    };
    let parts: Vec<&str> = repo_id.split('/').collect();
    if parts.len() > 2 {
        return fail("expected \"name\" or \"org/name\"");
    }
    for part in parts {
        if part.is_empty() || part.len() > 96 {
            return fail("expected \"name\" or \"org/name\", each 1 to 96 characters");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return fail("only letters, digits, '-', '_' and '.' are allowed");
        }
        if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) || part.contains("..") {
            return fail("a part may not start or end with '-' or '.', nor contain '..'");
        }
    }
    Ok(())
}

fn check_revision(revision: &str) -> Result<()> {
    let bad = revision.is_empty()
        || revision.len() > 255
        || revision.starts_with('/')
        || revision.ends_with('/')
        || revision
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || revision.chars().any(|c| c.is_control() || c == '\\');
    if bad {
        return Err(Error::InvalidRevision {
            revision: revision.to_string(),
            reason: "expected a branch, tag or commit hash".to_string(),
        });
    }
    Ok(())
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct RevisionInfo {
    commit: String,
    files: Vec<String>,
}

/// A failed HTTP exchange, before it is given a meaning.
enum Failure {
    Status {
        status: u16,
        error_code: Option<String>,
        message: String,
    },
    Network(String),
}

struct Client<'a> {
    agent: ureq::Agent,
    options: &'a HubOptions,
}

impl<'a> Client<'a> {
    fn new(options: &'a HubOptions) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(options.timeout)
            .timeout_read(options.timeout)
            .timeout_write(options.timeout)
            .redirects(8)
            .user_agent(concat!("latebird/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent, options }
    }

    /// Runs `exchange` with retries on 5xx/429 answers and on transfer errors other than
    /// a refused connection or a failed name lookup (no server: retrying would only wait).
    fn with_retries<T>(
        &self,
        url: &str,
        mut exchange: impl FnMut(ureq::Response) -> Result<T, Failure>,
    ) -> Result<(T, u32), (Failure, u32)> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut request = self.agent.get(url);
            if let Some(token) = &self.options.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let (failure, retryable) = match request.call() {
                Ok(response) => match exchange(response) {
                    Ok(value) => return Ok((value, attempt)),
                    Err(failure) => {
                        let retryable = matches!(failure, Failure::Network(_));
                        (failure, retryable)
                    }
                },
                Err(ureq::Error::Status(status, response)) => {
                    let error_code = response.header("X-Error-Code").map(str::to_string);
                    let header_message = response.header("X-Error-Message").map(str::to_string);
                    let mut body = String::new();
                    let _ = response.into_reader().take(512).read_to_string(&mut body);
                    let message = header_message.unwrap_or_else(|| body.trim().to_string());
                    let retryable = status >= 500 || status == 429;
                    (
                        Failure::Status {
                            status,
                            error_code,
                            message,
                        },
                        retryable,
                    )
                }
                Err(ureq::Error::Transport(transport)) => {
                    let retryable = !matches!(
                        transport.kind(),
                        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns
                    );
                    // Display starts with the URL, which the error names already.
                    let text = transport.to_string();
                    let text = text
                        .strip_prefix(&format!("{url}: "))
                        .unwrap_or(&text)
                        .to_string();
                    (Failure::Network(text), retryable)
                }
            };
            if !retryable || attempt > self.options.retries {
                return Err((failure, attempt));
            }
            let factor = 2u32.saturating_pow(attempt - 1).min(64);
            std::thread::sleep((self.options.backoff * factor).min(Duration::from_secs(30)));
        }
    }

    fn generic(url: &str, failure: Failure, attempts: u32) -> Error {
        match failure {
            Failure::Status {
                status, message, ..
            } => Error::Http {
                url: url.to_string(),
                status,
                message,
                attempts,
            },
            Failure::Network(message) => Error::Network {
                url: url.to_string(),
                message,
                attempts,
            },
        }
    }

    fn revision_info(&self, repo_id: &str, revision: &str) -> Result<RevisionInfo> {
        #[derive(Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        #[derive(Deserialize)]
        struct Info {
            sha: Option<String>,
            siblings: Option<Vec<Sibling>>,
        }
        let endpoint = &self.options.endpoint;
        let url = format!(
            "{endpoint}/api/models/{repo_id}/revision/{}",
            encode(revision, false)
        );
        let read_json = |response: ureq::Response| {
            let mut body = String::new();
            response
                .into_reader()
                .take(64 << 20)
                .read_to_string(&mut body)
                .map_err(|e| Failure::Network(e.to_string()))?;
            Ok(body)
        };
        let body = match self.with_retries(&url, read_json) {
            Ok((body, _)) => body,
            Err((
                Failure::Status {
                    status, error_code, ..
                },
                attempts,
            )) if matches!(status, 401 | 403 | 404) => {
                return Err(self
                    .classify(repo_id, revision, status, error_code.as_deref())
                    .unwrap_or_else(|| {
                        Self::generic(
                            &url,
                            Failure::Status {
                                status,
                                error_code: None,
                                message: String::new(),
                            },
                            attempts,
                        )
                    }));
            }
            Err((failure, attempts)) => return Err(Self::generic(&url, failure, attempts)),
        };
        let invalid = |message: String| Error::InvalidResponse {
            url: url.clone(),
            message,
        };
        let info: Info = serde_json::from_str(&body)
            .map_err(|e| invalid(format!("expected the model info JSON: {e}")))?;
        let commit = info
            .sha
            .filter(|sha| !sha.is_empty() && sha.chars().all(|c| c.is_ascii_alphanumeric()))
            .ok_or_else(|| invalid("no commit hash (\"sha\") in the model info".to_string()))?;
        let files = info
            .siblings
            .ok_or_else(|| invalid("no file list (\"siblings\") in the model info".to_string()))?
            .into_iter()
            .map(|s| s.rfilename)
            .collect();
        Ok(RevisionInfo { commit, files })
    }

    /// Meaning of a 401/403/404 from the revision endpoint. Without the hub's X-Error-Code,
    /// asks for the repository itself to tell a missing repository from a missing revision.
    fn classify(
        &self,
        repo_id: &str,
        revision: &str,
        status: u16,
        code: Option<&str>,
    ) -> Option<Error> {
        let endpoint = self.options.endpoint.clone();
        let repo_missing = || Error::RepoNotFound {
            repo_id: repo_id.to_string(),
            endpoint: endpoint.clone(),
            status,
        };
        let revision_missing = || Error::RevisionNotFound {
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
        };
        match code {
            Some("RepoNotFound") => return Some(repo_missing()),
            Some("RevisionNotFound") => return Some(revision_missing()),
            Some("GatedRepo") => {
                return Some(Error::AccessDenied {
                    repo_id: repo_id.to_string(),
                    endpoint,
                    status,
                })
            }
            _ => {}
        }
        if status != 404 {
            return Some(Error::AccessDenied {
                repo_id: repo_id.to_string(),
                endpoint,
                status,
            });
        }
        let url = format!("{}/api/models/{repo_id}", self.options.endpoint);
        match self.with_retries(&url, |_| Ok(())) {
            Ok(_) => Some(revision_missing()),
            Err((Failure::Status { status: 404, .. }, _)) => Some(repo_missing()),
            Err(_) => None,
        }
    }

    fn download_file(&self, repo_id: &str, commit: &str, file: &str, dest: &Path) -> Result<()> {
        if file
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            || file.starts_with('/')
        {
            return Err(Error::InvalidResponse {
                url: format!("{}/api/models/{repo_id}", self.options.endpoint),
                message: format!("unsafe file name {file:?} in the file list"),
            });
        }
        let url = format!(
            "{}/{repo_id}/resolve/{commit}/{}",
            self.options.endpoint,
            encode(file, true)
        );
        let parent = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        let temp = temp_path(dest);
        let mut local_error = None;
        let result = self.with_retries(&url, |response| {
            let expected: Option<u64> = response
                .header("Content-Length")
                .and_then(|v| v.trim().parse().ok());
            let mut out = match fs::File::create(&temp) {
                Ok(out) => out,
                Err(e) => {
                    local_error = Some(e);
                    return Err(Failure::Network("cannot create the temporary file".into()));
                }
            };
            let copied = io::copy(&mut response.into_reader(), &mut out)
                .map_err(|e| Failure::Network(format!("transfer broken: {e}")))?;
            if let Some(expected) = expected {
                if copied != expected {
                    return Err(Failure::Network(format!(
                        "transfer cut short: {copied} of {expected} bytes"
                    )));
                }
            }
            out.flush().and_then(|()| out.sync_all()).map_err(|e| {
                local_error = Some(e);
                Failure::Network("cannot write the temporary file".into())
            })
        });
        if let Some(source) = local_error {
            let _ = fs::remove_file(&temp);
            return Err(Error::Io { path: temp, source });
        }
        match result {
            Ok(_) => fs::rename(&temp, dest).map_err(|source| {
                let _ = fs::remove_file(&temp);
                Error::Io {
                    path: dest.to_path_buf(),
                    source,
                }
            }),
            Err((failure, attempts)) => {
                let _ = fs::remove_file(&temp);
                Err(match failure {
                    Failure::Status {
                        status: 404,
                        ref error_code,
                        ..
                    } if !matches!(
                        error_code.as_deref(),
                        Some("RepoNotFound" | "RevisionNotFound")
                    ) =>
                    {
                        Error::FileNotFound {
                            repo_id: repo_id.to_string(),
                            revision: commit.to_string(),
                            file: file.to_string(),
                        }
                    }
                    Failure::Status {
                        status: 401 | 403, ..
                    } => Error::AccessDenied {
                        repo_id: repo_id.to_string(),
                        endpoint: self.options.endpoint.clone(),
                        status: if let Failure::Status { status, .. } = failure {
                            status
                        } else {
                            0
                        },
                    },
                    failure => Self::generic(&url, failure, attempts),
                })
            }
        }
    }
}

/// A unique sibling name for `dest`, so an interrupted download never leaves a partial file
/// under the real name (huggingface_hub leaves `.incomplete` files too).
fn temp_path(dest: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}.{nanos}.incomplete", std::process::id()))
}

fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let temp = temp_path(dest);
    fs::write(&temp, bytes).map_err(io_error(&temp))?;
    fs::rename(&temp, dest).map_err(|e| {
        let _ = fs::remove_file(&temp);
        io_error(dest)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_pylate_files_only() {
        for keep in [
            "modules.json",
            "config.json",
            "config_sentence_transformers.json",
            "tokenizer.json",
            "vocab.txt",
            "model.safetensors",
            "1_Dense/config.json",
            "1_Dense/model.safetensors",
            "2_Dense/model.safetensors",
        ] {
            assert!(is_model_file(keep), "{keep}");
        }
        for skip in [
            "pytorch_model.bin",
            "README.md",
            "onnx/model.onnx",
            "1_Dense/pytorch_model.bin",
            "docs/config.json",
            "1_Dense/sub/model.safetensors",
            ".gitattributes",
        ] {
            assert!(!is_model_file(skip), "{skip}");
        }
    }

    #[test]
    fn validates_ids_and_revisions() {
        assert!(check_repo_id("lightonai/GTE-ModernColBERT-v1").is_ok());
        assert!(check_repo_id("bert-base-uncased").is_ok());
        for bad in ["", "a/b/c", "../x", "org/..", "a b", "/abs", "org/", "-x"] {
            assert!(
                matches!(check_repo_id(bad), Err(Error::InvalidRepoId { .. })),
                "{bad}"
            );
        }
        assert!(check_revision("main").is_ok());
        assert!(check_revision("refs/pr/1").is_ok());
        for bad in ["", "../x", "a//b", "/x", "x/"] {
            assert!(
                matches!(check_revision(bad), Err(Error::InvalidRevision { .. })),
                "{bad}"
            );
        }
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("1_Dense/a b.json", true), "1_Dense/a%20b.json");
    }
}
