//! Finding a model's files in the local Hugging Face hub cache:
//! `$HF_HOME/hub/models--ORG--NAME/refs/main` holds a revision id and
//! `snapshots/<revision>/` the files. Reading the cache never touches the network; a cache
//! built from the environment also knows the Hub to download a missing encoder from
//! (`pull.rs`), unless `HF_HUB_OFFLINE` says there is no network.

use super::EncoderError;
use std::path::{Path, PathBuf};

/// The sentence encoder `encoder-head` models use unless a run names another.
pub const DEFAULT_ENCODER_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The Hub that Hugging Face tools use when `HF_ENDPOINT` names no mirror.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A Hub (or a mirror of it) to download missing files from.
#[derive(Clone, PartialEq, Eq)]
pub struct HubRemote {
    /// Base URL, e.g. `https://huggingface.co` or an in-house mirror.
    pub endpoint: String,
    /// Access token for gated or private repositories (`HF_TOKEN`).
    pub token: Option<String>,
}

impl std::fmt::Debug for HubRemote {
    // The token is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubRemote")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

impl HubRemote {
    /// A Hub at `endpoint`, without a token.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token: None,
        }
    }

    /// The Hub the environment names: `HF_ENDPOINT` (a mirror or an air-gapped install)
    /// else huggingface.co, with `HF_TOKEN`; none when `HF_HUB_OFFLINE` is set.
    pub fn from_env() -> Option<Self> {
        if offline_from_env() {
            return None;
        }
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Some(Self {
            token: std::env::var("HF_TOKEN").ok().filter(|v| !v.is_empty()),
            ..Self::new(endpoint)
        })
    }
}

/// `HF_HUB_OFFLINE` as the Hugging Face tools read it: 1, ON, YES or TRUE in any case.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

/// The local hub cache: the `hub` directory under `HF_HOME`, and the Hub that fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
    // None: only what is already in the cache is used (offline, or a test's own cache).
    remote: Option<HubRemote>,
}

impl HubCache {
    /// The cache a Hugging Face tool would use: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`; encoders missing from it are downloaded from the Hub the
    /// environment names (`HubRemote::from_env`).
    pub fn from_env() -> Self {
        Self {
            remote: HubRemote::from_env(),
            ..Self::root_from_env()
        }
    }

    fn root_from_env() -> Self {
        if let Some(cache) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
            return Self::at(PathBuf::from(cache));
        }
        let home = std::env::var_os("HF_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".cache")
                    .join("huggingface")
            });
        Self::at(home.join("hub"))
    }

    /// A cache rooted at `root` (the directory holding `models--…` folders) that never
    /// downloads.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            remote: None,
        }
    }

    /// The same cache, filled from `remote` when a file is missing.
    pub fn with_remote(self, remote: HubRemote) -> Self {
        Self {
            remote: Some(remote),
            ..self
        }
    }

    /// The same cache without downloads: for callers that must answer quickly with what is
    /// there (a request handler), or tests that must not reach for the network.
    pub fn offline(self) -> Self {
        Self {
            remote: None,
            ..self
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Hub missing files come from, if any.
    pub fn remote(&self) -> Option<&HubRemote> {
        self.remote.as_ref()
    }

    /// The folder of a model repository: `models--ORG--NAME`.
    pub fn repo_dir(&self, repo: &str) -> Result<PathBuf, EncoderError> {
        check_repo_id(repo)?;
        Ok(self
            .root
            .join(format!("models--{}", repo.replace('/', "--"))))
    }

    /// The snapshot of `repo` at `revision` (a 40-hex commit id), or at whatever `refs/main`
    /// points to when no revision is given.
    pub fn snapshot(&self, repo: &str, revision: Option<&str>) -> Result<Snapshot, EncoderError> {
        let repo_dir = self.repo_dir(repo)?;
        let not_cached = |path: PathBuf| EncoderError::NotInCache {
            repo: repo.to_string(),
            path,
        };
        if !repo_dir.is_dir() {
            return Err(not_cached(repo_dir));
        }
        let revision = match revision {
            Some(revision) => revision.to_string(),
            None => {
                let reference = repo_dir.join("refs").join("main");
                let text = std::fs::read_to_string(&reference)
                    .map_err(|_| not_cached(reference.clone()))?;
                // Written without a trailing newline by the hub tools; tolerate one anyway.
                text.trim().to_string()
            }
        };
        if revision.len() != 40 || !revision.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(EncoderError::RevisionNotCached {
                repo: repo.to_string(),
                revision,
                path: repo_dir.join("refs").join("main"),
            });
        }
        let dir = repo_dir.join("snapshots").join(&revision);
        if !dir.is_dir() {
            return Err(EncoderError::RevisionNotCached {
                repo: repo.to_string(),
                revision,
                path: dir,
            });
        }
        Ok(Snapshot {
            repo: repo.to_string(),
            revision,
            dir,
        })
    }
}

/// Repository ids come from cards and the command line: refuse anything that could step
/// outside the cache.
pub(crate) fn check_repo_id(repo: &str) -> Result<(), EncoderError> {
    let parts: Vec<&str> = repo.split('/').collect();
    let valid = parts.len() == 2
        && parts.iter().all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if valid {
        Ok(())
    } else {
        Err(EncoderError::InvalidRepo(repo.to_string()))
    }
}

/// One revision of a repository in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub repo: String,
    pub revision: String,
    pub dir: PathBuf,
}

impl Snapshot {
    /// The bytes of one of the snapshot's files.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, EncoderError> {
        let path = self.dir.join(file);
        if !path.is_file() {
            return Err(EncoderError::MissingFile {
                repo: self.repo.clone(),
                revision: self.revision.clone(),
                path,
            });
        }
        std::fs::read(&path).map_err(|source| EncoderError::Io { path, source })
    }
}
