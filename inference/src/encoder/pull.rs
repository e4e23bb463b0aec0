//! Downloading an encoder from the Hugging Face Hub, or the mirror `HF_ENDPOINT` names, into
//! the standard cache layout (`blobs/<etag>`, `snapshots/<commit>/<file>` linking to it,
//! `refs/<revision>`), which `hub.rs` reads. hf-hub fetches the bytes (plain or Xet-stored,
//! with an HTTP range to resume); this module adds what hf-hub 1.0's own cache download
//! lacks: the Hub's metadata read from the resolve URL without following the CDN redirect
//! (where the Hub puts `X-Repo-Commit`, `X-Linked-Etag` and `X-Linked-Size`), a size and hash
//! check before a file becomes visible, resuming an interrupted download, and a lock so two
//! processes never write the same blob.

use super::hub::{HubCache, HubRemote, Snapshot, check_repo_id};
use super::{CONFIG_FILE, EncoderError, TOKENIZER_FILE, WEIGHTS_FILE};
use futures::StreamExt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files an encoder is loaded from: what `tagger models pull` and a first use fetch.
pub const ENCODER_FILES: [&str; 3] = [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE];

/// The branch a pull follows when no revision is named.
pub const DEFAULT_REVISION: &str = "main";

/// How hard a pull tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullOptions {
    /// Tries per file; each one after the first resumes where the last one stopped.
    pub attempts: usize,
    /// Pause before the second try, doubled for each one after it.
    pub retry_delay: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            attempts: 4,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// What a pull is doing, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent<'a> {
    /// A file is about to be fetched: `size` bytes, `resumed_from` of them already on disk.
    Started {
        file: &'a str,
        size: u64,
        resumed_from: u64,
    },
    /// `done` bytes of the file are on disk.
    Progress { file: &'a str, done: u64 },
    /// The file was already in the cache.
    Cached { file: &'a str, size: u64 },
    /// The file is in the cache, its size and hash checked.
    Verified { file: &'a str },
}

/// Why a pull failed. Every message says how to get the files another way.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "HF_HUB_OFFLINE is set, so {repo} is not downloaded into {}: unset it and run `tagger models pull {repo}`, or run that command on a machine with network access and copy its cache folder models--{} into this cache (HF_HUB_CACHE, or HF_HOME/hub)",
        .cache.display(), .repo.replace('/', "--")
    )]
    Offline { repo: String, cache: PathBuf },
    #[error(
        "cannot reach the Hub at {endpoint} for {repo}: {reason}. Check the network or HF_ENDPOINT (a mirror), then run `tagger models pull {repo}`; without network, copy the cache folder models--{} from a machine that has it",
        .repo.replace('/', "--")
    )]
    Unreachable {
        endpoint: String,
        repo: String,
        reason: String,
    },
    #[error(
        "{endpoint} has no {file} in {repo} at revision {revision} ({reason}); check the model id and `--revision` of `tagger models pull`"
    )]
    NotFound {
        endpoint: String,
        repo: String,
        revision: String,
        file: String,
        reason: String,
    },
    #[error(
        "{endpoint} refused {repo} (HTTP {status}): a gated or private model needs an access token in HF_TOKEN, then `tagger models pull {repo}`"
    )]
    Denied {
        endpoint: String,
        repo: String,
        status: u16,
    },
    #[error(
        "the answer of {endpoint} for {file} of {repo} is not a Hub's: {reason}; check that HF_ENDPOINT names a Hugging Face Hub or mirror"
    )]
    Metadata {
        endpoint: String,
        repo: String,
        file: String,
        reason: String,
    },
    #[error(
        "{file} of {repo} from {endpoint} does not match what the Hub reports ({reason}), so it was discarded; run `tagger models pull {repo}` again, and if it fails the same way the server sends a different file than it describes"
    )]
    Corrupt {
        endpoint: String,
        repo: String,
        file: String,
        reason: String,
    },
    #[error(
        "the download of {file} of {repo} from {endpoint} stopped after {done} of {size} bytes ({reason}); they are kept, and `tagger models pull {repo}` resumes from there"
    )]
    Interrupted {
        endpoint: String,
        repo: String,
        file: String,
        done: u64,
        size: u64,
        reason: String,
    },
    #[error("{0:?} is not a Hugging Face model id (expected ORG/NAME)")]
    InvalidRepo(String),
    #[error("{0:?} is not a revision (a branch, tag or commit id)")]
    InvalidRevision(String),
    #[error("cannot write the Hugging Face cache at {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the download: {0}")]
    Client(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a file's content is checked: the Hub names LFS files by their SHA-256 and small git
/// files by their git blob id (SHA-1 over `blob <size>\0` and the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Sha256,
    GitSha1,
    // A mirror whose ETag is no content hash: only the size is checked.
    SizeOnly,
}

/// What the Hub says about one file at one revision.
#[derive(Debug, Clone)]
struct FileMeta {
    file: String,
    commit: String,
    etag: String,
    size: u64,
    check: Check,
}

/// An error with its causes: reqwest's own message ("error sending request") names none.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A revision becomes a path under `refs/`: refuse anything that could leave it.
fn check_revision(revision: &str) -> Result<(), PullError> {
    let valid = !revision.is_empty()
        && revision.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if valid {
        Ok(())
    } else {
        Err(PullError::InvalidRevision(revision.to_string()))
    }
}

/// Downloads `files` of `repo` at `revision` (a branch, tag or commit; `main` when none)
/// into `cache` from the Hub the cache names, and returns the complete snapshot. Files
/// already in the cache are not fetched again; `refs/<revision>` moves only once every file
/// is in place, so a reader never sees a half-pulled revision.
#[tracing::instrument(skip_all, fields(repo = %repo))]
pub async fn pull(
    cache: &HubCache,
    repo: &str,
    revision: Option<&str>,
    files: &[&str],
    options: &PullOptions,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<Snapshot, PullError> {
    check_repo_id(repo).map_err(|_| PullError::InvalidRepo(repo.to_string()))?;
    let revision = revision.unwrap_or(DEFAULT_REVISION);
    check_revision(revision)?;
    let Some(remote) = cache.remote() else {
        return Err(PullError::Offline {
            repo: repo.to_string(),
            cache: cache.root().to_path_buf(),
        });
    };
    let hub = Hub::new(remote, repo, options)?;
    // The revision is resolved to a commit once, by the first file; the others are asked
    // for at that commit, so a branch that moves during the pull cannot mix two commits.
    let mut metas: Vec<FileMeta> = Vec::with_capacity(files.len());
    for file in files {
        let asked = metas
            .first()
            .map_or(revision, |first| first.commit.as_str());
        metas.push(hub.metadata(asked, file).await?);
    }
    let Some(commit) = metas.first().map(|meta| meta.commit.clone()) else {
        return Err(PullError::InvalidRevision(revision.to_string()));
    };
    let repo_dir = cache
        .root()
        .join(format!("models--{}", repo.replace('/', "--")));
    for meta in &metas {
        hub.fetch(&repo_dir, meta, options, progress).await?;
    }
    if revision != commit {
        write_ref(&repo_dir, revision, &commit)?;
    }
    tracing::info!(%commit, files = files.len(), "encoder files in the cache");
    Ok(Snapshot {
        repo: repo.to_string(),
        revision: commit.clone(),
        dir: repo_dir.join("snapshots").join(commit),
    })
}

/// `pull` for callers outside an async runtime (or inside one, on a thread that may
/// block): runs it on a runtime of its own, on a thread of its own, so it works from a
/// training thread and from within a tokio worker alike.
pub fn pull_blocking(
    cache: &HubCache,
    repo: &str,
    revision: Option<&str>,
    files: &[&str],
    options: &PullOptions,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<Snapshot, PullError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Two workers: Xet transfers need a multi-threaded runtime.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("hub-pull")
                    .enable_all()
                    .build()
                    .map_err(|e| PullError::Client(e.to_string()))?;
                runtime.block_on(pull(cache, repo, revision, files, options, progress))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl HubCache {
    /// The snapshot of `repo` at `revision` (a commit id; `refs/main` when none) with every
    /// encoder file in it: from the cache, else downloaded when the cache has a Hub to
    /// download from (`HubCache::from_env` without `HF_HUB_OFFLINE`).
    pub fn encoder_snapshot(
        &self,
        repo: &str,
        revision: Option<&str>,
    ) -> Result<Snapshot, EncoderError> {
        let found = self.snapshot(repo, revision);
        let missing = match found {
            Ok(snapshot) => {
                let Some(path) = ENCODER_FILES
                    .iter()
                    .map(|file| snapshot.dir.join(file))
                    .find(|path| !path.is_file())
                else {
                    return Ok(snapshot);
                };
                EncoderError::MissingFile {
                    repo: repo.to_string(),
                    revision: snapshot.revision,
                    path,
                }
            }
            Err(
                error @ (EncoderError::NotInCache { .. }
                | EncoderError::RevisionNotCached { .. }
                | EncoderError::MissingFile { .. }),
            ) => error,
            Err(other) => return Err(other),
        };
        let Some(remote) = self.remote() else {
            return Err(missing);
        };
        tracing::info!(repo, endpoint = %remote.endpoint, cache = %self.root().display(), "downloading the encoder on first use");
        let snapshot = pull_blocking(
            self,
            repo,
            revision,
            &ENCODER_FILES,
            &PullOptions::default(),
            &mut |_| {},
        )?;
        Ok(snapshot)
    }
}

/// One repository on one Hub: hf-hub's client for the bytes, and a client that does not
/// follow redirects for the metadata (the Hub answers a HEAD of an LFS file with a redirect
/// to its CDN, and the headers that describe the file are on that redirect).
struct Hub {
    endpoint: String,
    repo: String,
    token: Option<String>,
    head_client: reqwest::Client,
    files: hf_hub::HFRepository<hf_hub::RepoTypeModel>,
}

/// The user agent the Hub sees: which program asks, and through which library.
const USER_AGENT: &str = concat!("tagger/", env!("CARGO_PKG_VERSION"), "; hf-hub/1.0");

impl Hub {
    fn new(remote: &HubRemote, repo: &str, options: &PullOptions) -> Result<Self, PullError> {
        let head_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PullError::Client(e.to_string()))?;
        let mut builder = hf_hub::HFClient::builder()
            .endpoint(remote.endpoint.clone())
            .user_agent(USER_AGENT)
            // Retries of a whole file are ours (they resume); hf-hub's would restart it.
            .retry_max_attempts(0)
            .retry_base_delay(options.retry_delay);
        if let Some(token) = &remote.token {
            builder = builder.token(token.clone());
        }
        let client = builder
            .build()
            .map_err(|e| PullError::Client(e.to_string()))?;
        let (owner, name) = hf_hub::split_id(repo);
        Ok(Self {
            endpoint: remote.endpoint.clone(),
            repo: repo.to_string(),
            token: remote.token.clone(),
            head_client,
            files: client.model(owner, name),
        })
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> PullError {
        PullError::Unreachable {
            endpoint: self.endpoint.clone(),
            repo: self.repo.clone(),
            reason: reason.to_string(),
        }
    }

    fn bad_metadata(&self, file: &str, reason: impl Into<String>) -> PullError {
        PullError::Metadata {
            endpoint: self.endpoint.clone(),
            repo: self.repo.clone(),
            file: file.to_string(),
            reason: reason.into(),
        }
    }

    /// HEAD of `resolve/<revision>/<file>`, following only relative redirects (the Hub's
    /// renamed repositories), as the Hugging Face tools do.
    async fn metadata(&self, revision: &str, file: &str) -> Result<FileMeta, PullError> {
        let mut url = reqwest::Url::parse(&format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint, self.repo, revision, file
        ))
        .map_err(|e| self.unreachable(format!("HF_ENDPOINT is not a URL: {e}")))?;
        let mut hops = 0;
        let response = loop {
            let mut request = self.head_client.head(url.clone());
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(describe(&e)))?;
            let relative = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                // An absolute one (`https://cdn…`, `//cdn…`) leads to the file's bytes.
                .filter(|location| !location.contains("://") && !location.starts_with("//"))
                .map(str::to_string);
            match relative {
                Some(location) if response.status().is_redirection() && hops < 5 => {
                    hops += 1;
                    url = url
                        .join(&location)
                        .map_err(|e| self.bad_metadata(file, e.to_string()))?;
                }
                _ => break response,
            }
        };
        let status = response.status();
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(PullError::NotFound {
                endpoint: self.endpoint.clone(),
                repo: self.repo.clone(),
                revision: revision.to_string(),
                file: file.to_string(),
                reason: header("x-error-message")
                    .or(header("x-error-code"))
                    .unwrap_or("HTTP 404")
                    .to_string(),
            });
        }
        if matches!(status.as_u16(), 401 | 403) {
            return Err(PullError::Denied {
                endpoint: self.endpoint.clone(),
                repo: self.repo.clone(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() && !status.is_redirection() {
            return Err(self.unreachable(format!("HTTP {status} for {file}")));
        }
        let commit = header("x-repo-commit")
            .ok_or_else(|| self.bad_metadata(file, "no X-Repo-Commit header"))?
            .to_ascii_lowercase();
        if !is_hex(&commit, 40) {
            return Err(self.bad_metadata(file, format!("X-Repo-Commit {commit:?}")));
        }
        let etag = header("x-linked-etag")
            .or(header("etag"))
            .map(|raw| raw.trim_start_matches("W/").trim_matches('"').to_string())
            .filter(|etag| !etag.is_empty())
            .ok_or_else(|| self.bad_metadata(file, "no ETag header"))?;
        // The ETag names the blob in the cache: it must be a plain file name.
        if !etag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(self.bad_metadata(file, format!("ETag {etag:?}")));
        }
        // A redirect's own Content-Length is its body's, not the file's: only the Hub's
        // X-Linked-Size describes a file behind a redirect.
        let size = match header("x-linked-size") {
            Some(size) => Some(size),
            None if status.is_success() => header("content-length"),
            None => None,
        }
        .ok_or_else(|| self.bad_metadata(file, "no X-Linked-Size or Content-Length header"))?
        .parse::<u64>()
        .map_err(|e| self.bad_metadata(file, format!("file size: {e}")))?;
        let check = if is_hex(&etag, 64) {
            Check::Sha256
        } else if is_hex(&etag, 40) {
            Check::GitSha1
        } else {
            tracing::warn!(file, %etag, "the server's ETag is no content hash: only the size is checked");
            Check::SizeOnly
        };
        Ok(FileMeta {
            file: file.to_string(),
            commit,
            etag: etag.to_ascii_lowercase(),
            size,
            check,
        })
    }

    /// Puts one file into the cache: linked from the snapshot if its blob is there, else
    /// downloaded into `blobs/<etag>.incomplete`, resumed, checked, renamed, linked.
    async fn fetch(
        &self,
        repo_dir: &Path,
        meta: &FileMeta,
        options: &PullOptions,
        progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
    ) -> Result<(), PullError> {
        let file = meta.file.as_str();
        let snapshot_file = repo_dir.join("snapshots").join(&meta.commit).join(file);
        let blob = repo_dir.join("blobs").join(&meta.etag);
        if file_len(&snapshot_file) == Some(meta.size) {
            progress(PullEvent::Cached {
                file,
                size: meta.size,
            });
            return Ok(());
        }
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(io_error(&blobs))?;
        // Another process pulling the same file waits here, then finds the blob done.
        let lock_path = blobs.join(format!("{}.lock", meta.etag));
        let lock = std::fs::File::create(&lock_path).map_err(io_error(&lock_path))?;
        lock.lock().map_err(io_error(&lock_path))?;
        if file_len(&blob) == Some(meta.size) {
            progress(PullEvent::Cached {
                file,
                size: meta.size,
            });
        } else {
            self.download(&blob, meta, options, progress).await?;
        }
        link(&blob, &snapshot_file)?;
        // Dropping the handle releases the lock; the lock file stays, as the Hub tools'.
        drop(lock);
        progress(PullEvent::Verified { file });
        Ok(())
    }

    async fn download(
        &self,
        blob: &Path,
        meta: &FileMeta,
        options: &PullOptions,
        progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
    ) -> Result<(), PullError> {
        let file = meta.file.as_str();
        let partial = PathBuf::from(format!("{}.incomplete", blob.display()));
        let attempts = options.attempts.max(1);
        let mut last_stop = String::new();
        let mut delay = options.retry_delay;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            match self.try_download(&partial, meta, progress).await? {
                Attempt::Complete => {}
                Attempt::Stopped(reason) => {
                    tracing::warn!(file, attempt, %reason, "download stopped; resuming");
                    last_stop = reason;
                    continue;
                }
            }
            match verify(&partial, meta)? {
                Ok(()) => {
                    std::fs::rename(&partial, blob).map_err(io_error(blob))?;
                    return Ok(());
                }
                Err(reason) => {
                    // Never kept: the next try (or pull) starts from the first byte.
                    std::fs::remove_file(&partial).map_err(io_error(&partial))?;
                    return Err(PullError::Corrupt {
                        endpoint: self.endpoint.clone(),
                        repo: self.repo.clone(),
                        file: file.to_string(),
                        reason,
                    });
                }
            }
        }
        Err(PullError::Interrupted {
            endpoint: self.endpoint.clone(),
            repo: self.repo.clone(),
            file: file.to_string(),
            done: file_len(&partial).unwrap_or(0),
            size: meta.size,
            reason: last_stop,
        })
    }

    /// One request for the bytes the partial file lacks. Errors that another try cannot
    /// mend are returned; a stream that stops early is an `Attempt::Stopped`.
    async fn try_download(
        &self,
        partial: &Path,
        meta: &FileMeta,
        progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
    ) -> Result<Attempt, PullError> {
        let file = meta.file.as_str();
        let mut offset = file_len(partial).unwrap_or(0);
        if offset > meta.size {
            offset = 0;
        }
        progress(PullEvent::Started {
            file,
            size: meta.size,
            resumed_from: offset,
        });
        if offset == meta.size && meta.size > 0 {
            return Ok(Attempt::Complete);
        }
        let range = (offset > 0).then_some(offset..meta.size);
        let sent = self
            .files
            .download_file_stream()
            .filename(file)
            .revision(meta.commit.clone())
            .maybe_range(range)
            .send()
            .await;
        let (length, mut stream) = match sent {
            Ok(answer) => answer,
            Err(error) => return self.classify(file, error).map(Attempt::Stopped),
        };
        // A server that ignores the range sends the whole file: start over with it.
        if offset > 0 && length == Some(meta.size) {
            tracing::info!(
                file,
                "the server ignored the range; downloading from the start"
            );
            offset = 0;
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .append(offset > 0)
            .open(partial)
            .map_err(io_error(partial))?;
        let mut done = offset;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    out.flush().map_err(io_error(partial))?;
                    return Ok(Attempt::Stopped(describe(&error)));
                }
            };
            done += chunk.len() as u64;
            if done > meta.size {
                // More bytes than the Hub announced: the verification below refuses it.
                out.write_all(&chunk).map_err(io_error(partial))?;
                break;
            }
            out.write_all(&chunk).map_err(io_error(partial))?;
            progress(PullEvent::Progress { file, done });
        }
        out.flush().map_err(io_error(partial))?;
        out.sync_all().map_err(io_error(partial))?;
        if done < meta.size {
            return Ok(Attempt::Stopped(format!(
                "the server closed the stream after {done} of {} bytes",
                meta.size
            )));
        }
        Ok(Attempt::Complete)
    }

    /// Whether a failed request is worth another try (network, server errors) or final.
    fn classify(&self, file: &str, error: hf_hub::HFError) -> Result<String, PullError> {
        use hf_hub::HFError;
        match error {
            HFError::AuthRequired { .. } | HFError::Forbidden { .. } => Err(PullError::Denied {
                endpoint: self.endpoint.clone(),
                repo: self.repo.clone(),
                status: 401,
            }),
            HFError::RepoNotFound { .. }
            | HFError::EntryNotFound { .. }
            | HFError::RevisionNotFound { .. } => Err(PullError::NotFound {
                endpoint: self.endpoint.clone(),
                repo: self.repo.clone(),
                revision: String::new(),
                file: file.to_string(),
                reason: error.to_string(),
            }),
            other => Ok(describe(&other)),
        }
    }
}

enum Attempt {
    Complete,
    Stopped(String),
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// The partial file against the Hub's size and hash: `Err(reason)` when it differs.
fn verify(path: &Path, meta: &FileMeta) -> Result<Result<(), String>, PullError> {
    use sha1::Digest as _;
    use sha2::Digest as _;
    let len = file_len(path).unwrap_or(0);
    if len != meta.size {
        return Ok(Err(format!(
            "{len} bytes, the Hub reports {} bytes",
            meta.size
        )));
    }
    let mut input = std::fs::File::open(path).map_err(io_error(path))?;
    let mut sha256 = sha2::Sha256::new();
    let mut git = sha1::Sha1::new();
    git.update(format!("blob {len}\0").as_bytes());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = input.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        match meta.check {
            Check::Sha256 => sha256.update(&buffer[..read]),
            Check::GitSha1 => git.update(&buffer[..read]),
            Check::SizeOnly => {}
        }
    }
    let actual = match meta.check {
        Check::Sha256 => hex(&sha256.finalize()),
        Check::GitSha1 => hex(&git.finalize()),
        Check::SizeOnly => return Ok(Ok(())),
    };
    if actual == meta.etag {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{} {actual}, the Hub reports {}",
            if meta.check == Check::Sha256 {
                "SHA-256"
            } else {
                "git blob id"
            },
            meta.etag
        )))
    }
}

/// `snapshots/<commit>/<file>` → `blobs/<etag>`, replaced atomically: a relative symbolic
/// link, as the Hub tools make, so the cache can be copied elsewhere whole.
fn link(blob: &Path, snapshot_file: &Path) -> Result<(), PullError> {
    let dir = snapshot_file.parent().unwrap_or(snapshot_file);
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        snapshot_file
            .file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temporary);
    #[cfg(unix)]
    {
        // From snapshots/<commit>/<dirs…>/<file> up to the repository folder.
        let depth = snapshot_file
            .strip_prefix(blob.parent().and_then(Path::parent).unwrap_or(blob))
            .map(|relative| relative.components().count() - 1)
            .unwrap_or(2);
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(&target, &temporary).map_err(io_error(&temporary))?;
    }
    #[cfg(not(unix))]
    std::fs::copy(blob, &temporary).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, snapshot_file).map_err(io_error(snapshot_file))
}

/// `refs/<revision>` holds the commit, with no trailing newline as the Hub tools write it;
/// written aside and renamed so a reader never sees half of it.
fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<(), PullError> {
    let path = repo_dir.join("refs").join(revision);
    let dir = path.parent().unwrap_or(repo_dir);
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let temporary = dir.join(format!(".ref.{}.tmp", std::process::id()));
    std::fs::write(&temporary, commit).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io_error(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_that_could_leave_refs_are_refused() {
        for bad in ["", "..", "a/../b", "/abs", "a//b", "main\n", "x y"] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(check_revision(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_file_is_checked_by_the_kind_of_hash_its_etag_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        let meta = |etag: &str, check| FileMeta {
            file: "f".into(),
            commit: "0".repeat(40),
            etag: etag.into(),
            size: 6,
            check,
        };
        // `git hash-object` of "hello\n", and its SHA-256.
        let git = "ce013625030ba8dba906f756967f9e9ca394464a";
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        assert_eq!(verify(&path, &meta(git, Check::GitSha1)).unwrap(), Ok(()));
        assert_eq!(verify(&path, &meta(sha, Check::Sha256)).unwrap(), Ok(()));
        assert!(
            verify(&path, &meta(&"0".repeat(64), Check::Sha256))
                .unwrap()
                .is_err()
        );
        let short = FileMeta {
            size: 7,
            ..meta(sha, Check::SizeOnly)
        };
        assert!(verify(&path, &short).unwrap().is_err());
    }
}
