//! Finding a model's files in the local Hugging Face hub cache, never on the network:
//! `$HF_HOME/hub/models--ORG--NAME/refs/main` holds a revision id and
//! `snapshots/<revision>/` the files. The layout is read by hand because hf-hub 1.0 always
//! builds its network client (reqwest, hf-xet, aws-lc: ~280 crates and a C build) even when
//! only the cache is used, and this crate must never reach for the network while serving.

use super::EncoderError;
use std::path::{Path, PathBuf};

/// The sentence encoder `encoder-head` models use unless a run names another.
pub const DEFAULT_ENCODER_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The local hub cache: the `hub` directory under `HF_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// The cache a Hugging Face tool would use: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`.
    pub fn from_env() -> Self {
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

    /// A cache rooted at `root` (the directory holding `models--…` folders).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
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
fn check_repo_id(repo: &str) -> Result<(), EncoderError> {
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
