//! Where model versions' files are kept: the local models directory (the default), or an
//! S3-compatible bucket chosen by URL (`s3://bucket/prefix`). Training saves a version
//! locally as always, then [`ArtifactStore::publish`] uploads every file before the version
//! is recorded, so a version row never names objects that are not there. A process that
//! loads a version first calls [`ArtifactStore::fetch`]: a version kept in a bucket is
//! downloaded into the local models directory (a staging directory renamed only when every
//! file matches the hash the store recorded), so a half-downloaded or altered file is never
//! served. Embedding caches also live in the models directory but are not artifacts.

use crate::artifact::FileHashes;
use datasets::{ModelVersion, ProjectId};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// The URL scheme of an S3-compatible artifact store.
pub const S3_SCHEME: &str = "s3://";

/// Held while a project's versions are downloaded, so two processes sharing a models
/// directory (a server and its in-process worker, two servers on one volume) never write
/// the same staging directory. An OS lock: a killed process releases it.
const FETCH_LOCK_FILE: &str = ".fetch.lock";

/// Why a version's files could not be stored or fetched. The object store's errors are
/// boxed: they are large, and this error travels inside others (a failed model swap).
#[derive(Debug, thiserror::Error)]
pub enum ArtifactStoreError {
    #[error(
        "artifact store {url:?} is not supported: {reason} (use a directory, or s3://bucket/prefix)"
    )]
    Url { url: String, reason: String },
    #[error("cannot open the artifact store {url}: {source}")]
    Open {
        url: String,
        source: Box<object_store::Error>,
    },
    #[error(
        "model files are kept at {location}, but this process's artifact store is {configured}: set artifact_store (TAGGER_ARTIFACT_STORE) to that bucket"
    )]
    NotConfigured {
        location: String,
        configured: String,
    },
    #[error("cannot upload {file} to {location}: {source}")]
    Upload {
        file: String,
        location: String,
        source: Box<object_store::Error>,
    },
    #[error("cannot download {file} from {location}: {source}")]
    Download {
        file: String,
        location: String,
        source: Box<object_store::Error>,
    },
    #[error("model file {file} is missing from {location}")]
    Missing { file: String, location: String },
    #[error(
        "model file {file} at {location} does not match the hash recorded when it was trained (expected {expected}, found {actual}): it was changed or damaged, so it is not used"
    )]
    HashMismatch {
        file: String,
        location: String,
        expected: String,
        actual: String,
    },
    #[error(
        "the model version lists {name:?}, which is not a file name a model directory can hold"
    )]
    BadFileName { name: String },
    #[error("cannot read or write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ArtifactStoreError {
    /// Whether trying again cannot help (a refused file, a wrong setting), as opposed to a
    /// network or disk fault that may pass.
    pub fn is_lasting(&self) -> bool {
        match self {
            Self::Url { .. }
            | Self::NotConfigured { .. }
            | Self::Missing { .. }
            | Self::HashMismatch { .. }
            | Self::BadFileName { .. } => true,
            Self::Open { .. } | Self::Upload { .. } | Self::Download { .. } | Self::Io { .. } => {
                false
            }
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactStoreError + use<> {
    let path = path.to_path_buf();
    move |source| ArtifactStoreError::Io { path, source }
}

/// What an `artifact_store` setting names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory (a path, or a `file://` URL).
    Directory(PathBuf),
    /// An S3-compatible bucket and a key prefix (empty, or without slashes at either end).
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    /// Reads an `artifact_store` setting; refuses schemes other than `s3://` and `file://`.
    pub fn parse(url: &str) -> Result<Self, ArtifactStoreError> {
        let refuse = |reason: &str| ArtifactStoreError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix(S3_SCHEME) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // S3's own bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens.
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-')
                });
            if !valid_bucket {
                return Err(refuse(
                    "the bucket name must be 3 to 63 lowercase letters, digits, dots or hyphens",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|part| part == "." || part == "..")
                || prefix.contains("//")
                || ObjectPath::parse(prefix).is_err()
            {
                return Err(refuse("the prefix is not a valid object key prefix"));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(refuse("the file:// URL names no directory"));
            }
            return Ok(Self::Directory(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(refuse("unknown scheme"));
        }
        if url.is_empty() {
            return Err(refuse("it is empty"));
        }
        Ok(Self::Directory(PathBuf::from(url)))
    }
}

/// A bucket the store uploads to and downloads from.
struct Remote {
    bucket: String,
    prefix: String,
    objects: Arc<dyn ObjectStore>,
}

impl Remote {
    fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("{S3_SCHEME}{}", self.bucket)
        } else {
            format!("{S3_SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Where this process keeps and finds model versions' files; cheap to clone.
#[derive(Clone, Default)]
pub struct ArtifactStore {
    models_dir: PathBuf,
    remote: Option<Arc<Remote>>,
}

// The object store's client holds credentials: only the URL is shown.
impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("models_dir", &self.models_dir)
            .field("remote", &self.remote.as_ref().map(|r| r.url()))
            .finish()
    }
}

/// A plain directory is a local store (what tests and the benchmarks pass).
impl From<&Path> for ArtifactStore {
    fn from(models_dir: &Path) -> Self {
        Self::local(models_dir)
    }
}

impl From<&ArtifactStore> for ArtifactStore {
    fn from(store: &ArtifactStore) -> Self {
        store.clone()
    }
}

impl ArtifactStore {
    /// Versions written to and read from `models_dir` only (the default).
    pub fn local(models_dir: impl Into<PathBuf>) -> Self {
        Self {
            models_dir: models_dir.into(),
            remote: None,
        }
    }

    /// Versions uploaded to the bucket of `url` (`s3://bucket/prefix`) and cached in
    /// `models_dir`. The client's settings come from `env`, the standard `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …;
    /// others are ignored); an `http://` endpoint is allowed without TLS, since naming it is
    /// the operator's choice (a store on the same network, a test server).
    pub fn s3(
        url: &str,
        models_dir: impl Into<PathBuf>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ArtifactStoreError> {
        let StoreUrl::S3 { bucket, prefix } = StoreUrl::parse(url)? else {
            return Err(ArtifactStoreError::Url {
                url: url.to_string(),
                reason: "not an s3:// URL".into(),
            });
        };
        let mut builder = AmazonS3Builder::new().with_bucket_name(&bucket);
        let mut plain_http = false;
        for (key, value) in env {
            if !key.starts_with("AWS_") {
                continue;
            }
            let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() else {
                continue;
            };
            if matches!(
                config_key,
                AmazonS3ConfigKey::Endpoint | AmazonS3ConfigKey::S3Endpoint
            ) && value.starts_with("http://")
            {
                plain_http = true;
            }
            builder = builder.with_config(config_key, value);
        }
        if plain_http {
            builder = builder.with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp),
                "true",
            );
        }
        let objects = builder.build().map_err(|source| ArtifactStoreError::Open {
            url: url.to_string(),
            source: Box::new(source),
        })?;
        Ok(Self::with_objects(
            models_dir,
            bucket,
            prefix,
            Arc::new(objects),
        ))
    }

    /// A store over any object store client (tests use an in-memory one).
    fn with_objects(
        models_dir: impl Into<PathBuf>,
        bucket: String,
        prefix: String,
        objects: Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            models_dir: models_dir.into(),
            remote: Some(Arc::new(Remote {
                bucket,
                prefix,
                objects,
            })),
        }
    }

    /// The local directory: versions are written here, fetched copies kept here, and the
    /// embedding caches live under it.
    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// `s3://bucket/prefix` when versions are uploaded, `None` when they stay local.
    pub fn url(&self) -> Option<String> {
        self.remote.as_ref().map(|remote| remote.url())
    }

    fn describe(&self) -> String {
        self.url()
            .unwrap_or_else(|| format!("the local directory {}", self.models_dir.display()))
    }

    /// Where training writes a new version of `project` before it is published.
    pub fn version_dir(&self, project: ProjectId, name: &str) -> PathBuf {
        self.models_dir
            .join(format!("project-{project}"))
            .join(name)
    }

    /// Makes a saved version (`dir`, holding `files`) reachable by every process and returns
    /// the location to record: `dir` itself for a local store; for a bucket, the URL its
    /// files were uploaded under (`<prefix>/project-<id>/<dir name>/<file>`). Record the
    /// version only after this returned. On failure the objects already uploaded are
    /// removed (best effort: a leftover is never referenced by any version).
    #[tracing::instrument(skip_all, fields(project = %project))]
    pub async fn publish(
        &self,
        project: ProjectId,
        dir: &Path,
        files: &FileHashes,
    ) -> Result<String, ArtifactStoreError> {
        let Some(remote) = &self.remote else {
            return Ok(dir.to_string_lossy().into_owned());
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        check_name(&name)?;
        let key = remote_key(&remote.prefix, &format!("project-{project}/{name}"));
        let location = format!("{S3_SCHEME}{}/{key}", remote.bucket);
        let mut uploaded = Vec::new();
        for file in files.keys() {
            check_name(file)?;
            let object = object_path(&key, file, &location)?;
            match upload(&remote.objects, &dir.join(file), &object).await {
                Ok(()) => uploaded.push(object),
                Err(error) => {
                    for object in &uploaded {
                        let _ = remote.objects.delete(object).await;
                    }
                    return Err(error.into_error(file, &location));
                }
            }
        }
        tracing::info!(%location, files = files.len(), "model files uploaded");
        Ok(location)
    }

    /// The version as this machine can load it: its `artifact_path` names a local directory.
    /// A version kept in a bucket is downloaded into `<models dir>/project-<id>/<name>` unless
    /// a copy whose every file matches the recorded hashes is already there; the download
    /// goes to a staging directory (a leftover of an interrupted one is removed first),
    /// every file's hash is checked, and only then is it renamed into place. A missing object
    /// or a hash mismatch is an error and leaves no files behind. Local versions are returned
    /// as they are (loading checks their hashes).
    #[tracing::instrument(skip_all, fields(version = %version.id))]
    pub async fn fetch(&self, version: &ModelVersion) -> Result<ModelVersion, ArtifactStoreError> {
        let location = version.artifact_path.trim_end_matches('/');
        let Some(rest) = location.strip_prefix(S3_SCHEME) else {
            return Ok(version.clone());
        };
        let not_configured = || ArtifactStoreError::NotConfigured {
            location: location.to_string(),
            configured: self.describe(),
        };
        let remote = self.remote.as_ref().ok_or_else(not_configured)?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket != remote.bucket {
            return Err(not_configured());
        }
        let name = key.rsplit('/').next().unwrap_or_default();
        check_name(name)?;
        for file in version.files.keys() {
            check_name(file)?;
        }
        let parent = self
            .models_dir
            .join(format!("project-{}", version.project_id));
        let target = parent.join(name);
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(io_error(&parent))?;
        let _lock = lock(parent.join(FETCH_LOCK_FILE)).await?;
        let local = ModelVersion {
            artifact_path: target.to_string_lossy().into_owned(),
            ..version.clone()
        };
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            let (dir, files) = (target.clone(), version.files.clone());
            let verified = tokio::task::spawn_blocking(move || verify_dir(&dir, &files))
                .await
                .unwrap_or(false);
            if verified {
                return Ok(local);
            }
            tracing::warn!(dir = %target.display(), "the local copy does not match the recorded hashes; downloading it again");
        }
        let staging = parent.join(format!(".{name}.partial"));
        if tokio::fs::try_exists(&staging).await.unwrap_or(false) {
            tracing::info!(dir = %staging.display(), "removing an interrupted download");
            tokio::fs::remove_dir_all(&staging)
                .await
                .map_err(io_error(&staging))?;
        }
        let downloaded = async {
            tokio::fs::create_dir_all(&staging)
                .await
                .map_err(io_error(&staging))?;
            for (file, expected) in &version.files {
                let object = object_path(key, file, location)?;
                download(
                    remote,
                    &object,
                    &staging.join(file),
                    file,
                    location,
                    expected,
                )
                .await?;
            }
            if tokio::fs::try_exists(&target).await.unwrap_or(false) {
                tokio::fs::remove_dir_all(&target)
                    .await
                    .map_err(io_error(&target))?;
            }
            tokio::fs::rename(&staging, &target)
                .await
                .map_err(io_error(&target))
        }
        .await;
        if let Err(error) = downloaded {
            // Never leave a half-downloaded or refused file where the next fetch or a person
            // could take it for a model.
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(error);
        }
        tracing::info!(%location, dir = %target.display(), "model files downloaded");
        Ok(local)
    }
}

/// `<prefix>/<rest>`, or `rest` under an empty prefix.
fn remote_key(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}/{rest}")
    }
}

fn object_path(key: &str, file: &str, location: &str) -> Result<ObjectPath, ArtifactStoreError> {
    ObjectPath::parse(format!("{key}/{file}")).map_err(|e| ArtifactStoreError::Url {
        url: location.to_string(),
        reason: e.to_string(),
    })
}

/// Plain names only: a record listing `../x` must not make a download write outside the
/// version's directory.
fn check_name(name: &str) -> Result<(), ArtifactStoreError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(ArtifactStoreError::BadFileName {
            name: name.to_string(),
        })
    }
}

/// Whether every recorded file is in `dir` with its recorded hash.
fn verify_dir(dir: &Path, files: &FileHashes) -> bool {
    files.iter().all(|(file, expected)| {
        let Ok(mut reader) = std::fs::File::open(dir.join(file)) else {
            return false;
        };
        let mut hasher = Sha256::new();
        std::io::copy(&mut reader, &mut hasher).is_ok() && hex(&hasher.finalize()) == *expected
    })
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn lock(path: PathBuf) -> Result<std::fs::File, ArtifactStoreError> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        file.lock().map_err(io_error(&path))?;
        Ok(file)
    })
    .await
    .map_err(|e| ArtifactStoreError::Io {
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Why one upload failed, before the file and location are known to the message.
enum UploadError {
    Io(PathBuf, std::io::Error),
    Store(object_store::Error),
}

impl UploadError {
    fn into_error(self, file: &str, location: &str) -> ArtifactStoreError {
        match self {
            Self::Io(path, source) => ArtifactStoreError::Io { path, source },
            Self::Store(source) => ArtifactStoreError::Upload {
                file: file.to_string(),
                location: location.to_string(),
                source: Box::new(source),
            },
        }
    }
}

/// Streams one file up: in one request when small, in parts when large (a fine-tuned
/// encoder's weights), never whole in memory.
async fn upload(
    objects: &Arc<dyn ObjectStore>,
    path: &Path,
    object: &ObjectPath,
) -> Result<(), UploadError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| UploadError::Io(path.to_path_buf(), e))?;
    let mut writer = object_store::buffered::BufWriter::new(Arc::clone(objects), object.clone());
    let copied = tokio::io::copy(&mut file, &mut writer).await;
    let finished = match copied {
        Ok(_) => writer.shutdown().await,
        Err(error) => Err(error),
    };
    if let Err(error) = finished {
        let _ = writer.abort().await;
        // The writer reports the store's errors as I/O errors; keep the store's message.
        return Err(UploadError::Store(object_store::Error::Generic {
            store: "S3",
            source: Box::new(error),
        }));
    }
    Ok(())
}

/// Streams one object into `path`, hashing as it goes; a mismatch with `expected` is an
/// error (the caller removes the staging directory).
async fn download(
    remote: &Remote,
    object: &ObjectPath,
    path: &Path,
    file: &str,
    location: &str,
    expected: &str,
) -> Result<(), ArtifactStoreError> {
    let fail = |source: object_store::Error| match source {
        object_store::Error::NotFound { .. } => ArtifactStoreError::Missing {
            file: file.to_string(),
            location: location.to_string(),
        },
        source => ArtifactStoreError::Download {
            file: file.to_string(),
            location: location.to_string(),
            source: Box::new(source),
        },
    };
    let mut stream = remote
        .objects
        .get(object)
        .await
        .map_err(fail)?
        .into_stream();
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(fail)?;
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io_error(path))?;
    }
    out.sync_all().await.map_err(io_error(path))?;
    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(ArtifactStoreError::HashMismatch {
            file: file.to_string(),
            location: location.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;
    use crate::artifact::{CARD_FILE, Tensors, WEIGHTS_FILE};
    use crate::card::{ModelCard, ModelKind};
    use datasets::{LabelMode, ModelVersionId};
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    const PROJECT: ProjectId = ProjectId(7);

    fn card() -> ModelCard {
        ModelCard {
            format: 1,
            kind: ModelKind::Ngram,
            label_mode: LabelMode::Single,
            groups: Vec::new(),
            tags: Vec::new(),
            temperature: 1.0,
            thresholds: Vec::new(),
            params: serde_json::json!({}),
            training_fingerprint: String::new(),
            ngram: None,
            encoder: None,
            out_of_distribution: None,
        }
    }

    fn tensors(first: f32) -> Tensors {
        let mut tensors = Tensors::default();
        tensors
            .f32s
            .insert("w".into(), (vec![2, 2], vec![first, 2.0, 3.0, 4.0]));
        tensors
    }

    /// One trainer's and one server's view of the same bucket, each with its own models dir.
    struct Setup {
        _dirs: (tempfile::TempDir, tempfile::TempDir),
        objects: Arc<InMemory>,
        trainer: ArtifactStore,
        server: ArtifactStore,
    }

    fn setup() -> Setup {
        let trainer_dir = tempfile::tempdir().unwrap();
        let server_dir = tempfile::tempdir().unwrap();
        let objects = Arc::new(InMemory::new());
        let over = |dir: &tempfile::TempDir| {
            ArtifactStore::with_objects(
                dir.path().join("models"),
                "models".into(),
                "tagger/prod".into(),
                Arc::clone(&objects) as Arc<dyn ObjectStore>,
            )
        };
        Setup {
            trainer: over(&trainer_dir),
            server: over(&server_dir),
            objects,
            _dirs: (trainer_dir, server_dir),
        }
    }

    /// Saves a version as training does and publishes it; the row the store would keep.
    async fn published(store: &ArtifactStore, name: &str, first: f32) -> ModelVersion {
        let dir = store.version_dir(PROJECT, name);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let files = crate::artifact::save(&dir, &card(), &tensors(first)).unwrap();
        let location = store.publish(PROJECT, &dir, &files).await.unwrap();
        ModelVersion {
            id: ModelVersionId(1),
            project_id: PROJECT,
            kind: ModelKind::Ngram,
            status: "candidate".into(),
            metrics: serde_json::json!({}),
            params: serde_json::json!({}),
            artifact_path: location,
            files,
            training_fingerprint: String::new(),
            created_at: chrono::Utc::now(),
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_published_version_is_fetched_into_an_empty_models_dir_and_loads() {
        let setup = setup();
        let version = published(&setup.trainer, "ngram-1", 1.0).await;
        assert_eq!(
            version.artifact_path,
            "s3://models/tagger/prod/project-7/ngram-1"
        );
        for file in [CARD_FILE, WEIGHTS_FILE] {
            let key = ObjectPath::from(format!("tagger/prod/project-7/ngram-1/{file}"));
            setup.objects.head(&key).await.unwrap();
        }
        let local = setup.server.fetch(&version).await.unwrap();
        let dir = setup.server.version_dir(PROJECT, "ngram-1");
        assert_eq!(Path::new(&local.artifact_path), dir);
        let (loaded, weights) = crate::artifact::load(&dir, &version.files).unwrap();
        assert_eq!((loaded, weights), (card(), tensors(1.0)));
        // Only the version and the lock: no staging directory is left.
        assert_eq!(entries(dir.parent().unwrap()), [FETCH_LOCK_FILE, "ngram-1"]);
        // On the machine that trained it, the copy it wrote is used as it is.
        let trained = setup.trainer.fetch(&version).await.unwrap();
        assert_eq!(
            Path::new(&trained.artifact_path),
            setup.trainer.version_dir(PROJECT, "ngram-1")
        );
    }

    #[tokio::test]
    async fn an_object_with_other_bytes_is_refused_and_leaves_nothing_behind() {
        let setup = setup();
        let version = published(&setup.trainer, "ngram-1", 1.0).await;
        let other = crate::artifact::to_safetensors(&tensors(9.0)).unwrap();
        let key = ObjectPath::from(format!("tagger/prod/project-7/ngram-1/{WEIGHTS_FILE}"));
        setup
            .objects
            .put(&key, PutPayload::from(other))
            .await
            .unwrap();
        let error = setup.server.fetch(&version).await.unwrap_err();
        assert!(
            matches!(&error, ArtifactStoreError::HashMismatch { file, .. } if file == WEIGHTS_FILE),
            "{error}"
        );
        assert!(error.is_lasting());
        let parent = setup.server.version_dir(PROJECT, "ngram-1");
        assert_eq!(entries(parent.parent().unwrap()), [FETCH_LOCK_FILE]);
    }

    #[tokio::test]
    async fn a_missing_object_is_a_clear_error() {
        let setup = setup();
        let version = published(&setup.trainer, "ngram-1", 1.0).await;
        let key = ObjectPath::from(format!("tagger/prod/project-7/ngram-1/{CARD_FILE}"));
        setup.objects.delete(&key).await.unwrap();
        let error = setup.server.fetch(&version).await.unwrap_err();
        assert!(
            matches!(&error, ArtifactStoreError::Missing { file, .. } if file == CARD_FILE),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("s3://models/tagger/prod/project-7/ngram-1")
        );
    }

    #[tokio::test]
    async fn an_interrupted_download_is_removed_and_done_again() {
        let setup = setup();
        let version = published(&setup.trainer, "ngram-1", 1.0).await;
        // What a server killed mid-download leaves: a staging directory with part of a file.
        let parent = setup.server.models_dir().join("project-7");
        let staging = parent.join(".ngram-1.partial");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join(WEIGHTS_FILE), b"half a fi").unwrap();
        let local = setup.server.fetch(&version).await.unwrap();
        assert!(!staging.exists());
        crate::artifact::load(Path::new(&local.artifact_path), &version.files).unwrap();
    }

    #[tokio::test]
    async fn a_damaged_local_copy_is_downloaded_again() {
        let setup = setup();
        let version = published(&setup.trainer, "ngram-1", 1.0).await;
        let local = setup.server.fetch(&version).await.unwrap();
        let weights = Path::new(&local.artifact_path).join(WEIGHTS_FILE);
        std::fs::write(&weights, b"changed on disk").unwrap();
        let again = setup.server.fetch(&version).await.unwrap();
        let (_, loaded) =
            crate::artifact::load(Path::new(&again.artifact_path), &version.files).unwrap();
        assert_eq!(loaded, tensors(1.0));
    }

    #[tokio::test]
    async fn a_version_in_a_bucket_this_store_does_not_reach_is_refused() {
        let setup = setup();
        let mut version = published(&setup.trainer, "ngram-1", 1.0).await;
        let local_only = ArtifactStore::local(setup.server.models_dir());
        let error = local_only.fetch(&version).await.unwrap_err();
        assert!(
            matches!(error, ArtifactStoreError::NotConfigured { .. }),
            "{error}"
        );
        version.artifact_path = "s3://elsewhere/project-7/ngram-1".into();
        let error = setup.server.fetch(&version).await.unwrap_err();
        assert!(
            error.to_string().contains("TAGGER_ARTIFACT_STORE"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_recorded_file_name_that_leaves_the_directory_is_refused() {
        let setup = setup();
        let mut version = published(&setup.trainer, "ngram-1", 1.0).await;
        version.files.insert("../../escape".into(), "00".into());
        let error = setup.server.fetch(&version).await.unwrap_err();
        assert!(
            matches!(error, ArtifactStoreError::BadFileName { .. }),
            "{error}"
        );
        assert!(!setup.server.models_dir().join("escape").exists());
    }

    #[tokio::test]
    async fn a_local_store_records_the_directory_and_fetches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path());
        let version = published(&store, "ngram-1", 1.0).await;
        assert_eq!(
            Path::new(&version.artifact_path),
            dir.path().join("project-7").join("ngram-1")
        );
        assert_eq!(store.fetch(&version).await.unwrap(), version);
    }

    #[test]
    fn store_urls_are_read_or_refused() {
        assert_eq!(
            StoreUrl::parse("s3://models/tagger/prod/").unwrap(),
            StoreUrl::S3 {
                bucket: "models".into(),
                prefix: "tagger/prod".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://models").unwrap(),
            StoreUrl::S3 {
                bucket: "models".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StoreUrl::parse("/srv/models").unwrap(),
            StoreUrl::Directory("/srv/models".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///srv/models").unwrap(),
            StoreUrl::Directory("/srv/models".into())
        );
        for refused in [
            "",
            "gs://models",
            "s3://",
            "s3://Models",
            "s3://models/a/../b",
            "s3://models/a//b",
            "file://",
        ] {
            assert!(
                StoreUrl::parse(refused).is_err(),
                "{refused:?} was accepted"
            );
        }
    }
}
