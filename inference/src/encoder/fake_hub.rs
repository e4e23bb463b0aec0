//! A fake Hugging Face Hub on a local port, for tests of `pull.rs` and `tagger models pull`:
//! it answers `HEAD`/`GET /{org}/{name}/resolve/{revision}/{file}` with the Hub's headers
//! (`X-Repo-Commit`, `ETag`, and for LFS files `X-Linked-Etag`, `X-Linked-Size` on a 302 to
//! an absolute CDN URL), and serves the bytes with HTTP ranges. It can cut a file's body half
//! way once, serve other bytes than it describes, or ignore ranges; it logs every request.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha1::Digest as _;
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// One file of a fake repository.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub bytes: Vec<u8>,
    /// Stored with git LFS: described by its SHA-256 and served through a CDN redirect.
    pub lfs: bool,
}

/// A repository at one commit, reachable as `main` and as the commit id.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub id: String,
    pub commit: String,
    pub files: BTreeMap<String, FakeFile>,
}

impl FakeRepo {
    /// The tiny random BERT of `testing.rs` as repository `id` at `commit`, its weights
    /// stored with LFS as the Hub stores them.
    pub fn tiny(id: &str, commit: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        use super::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let scratch = std::env::temp_dir().join(format!(
            "tagger-fake-hub-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let snapshot = super::testing::TinyBert::default().write(&scratch, id);
        let read = |name: &str, lfs: bool| -> Result<(String, FakeFile), std::io::Error> {
            let path = snapshot
                .as_ref()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((
                name.to_string(),
                FakeFile {
                    bytes: std::fs::read(path.join(name))?,
                    lfs,
                },
            ))
        };
        let files = [
            read(CONFIG_FILE, false),
            read(TOKENIZER_FILE, false),
            read(WEIGHTS_FILE, true),
        ];
        let _ = std::fs::remove_dir_all(&scratch);
        Ok(Self {
            id: id.to_string(),
            commit: commit.to_string(),
            files: files.into_iter().collect::<Result<_, _>>()?,
        })
    }
}

/// A request the fake received: method, path and `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

#[derive(Debug, Default)]
struct Faults {
    // Files whose next GET body stops half way.
    cut_once: BTreeSet<String>,
    // Files served with one byte flipped (same length, other hash).
    corrupt: BTreeSet<String>,
    ignore_ranges: bool,
}

#[derive(Debug)]
struct Shared {
    base: String,
    repos: Vec<FakeRepo>,
    faults: Mutex<Faults>,
    log: Mutex<Vec<Logged>>,
}

/// A running fake Hub; it stops when the test's runtime does.
#[derive(Debug, Clone)]
pub struct FakeHub {
    shared: Arc<Shared>,
}

/// SHA-256 in hex, as the Hub names LFS files.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The git blob id, as the Hub names small files.
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The LFS pointer git stores for an LFS file: what the Hub's plain `ETag` describes.
fn lfs_pointer(bytes: &[u8]) -> Vec<u8> {
    format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        sha256_hex(bytes),
        bytes.len()
    )
    .into_bytes()
}

impl FakeHub {
    /// Serves `repos` on 127.0.0.1, on a port the system picks.
    pub async fn start(repos: Vec<FakeRepo>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            repos,
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/{org}/{name}/resolve/{revision}/{*file}", get(resolve))
            .route("/cdn/{repo}/{etag}", get(cdn))
            .with_state(shared.clone());
        tokio::spawn(async move {
            // The test ends the runtime; an error here is a test's socket closing.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared })
    }

    /// The `HF_ENDPOINT` to give a client.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The next GET of `file`'s bytes stops half way through, once.
    pub fn cut_once(&self, file: &str) {
        self.faults().cut_once.insert(file.to_string());
    }

    /// `file` is served with other bytes than its headers describe.
    pub fn corrupt(&self, file: &str) {
        self.faults().corrupt.insert(file.to_string());
    }

    /// Answer range requests with the whole file, as some servers do.
    pub fn ignore_ranges(&self) {
        self.faults().ignore_ranges = true;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    fn record(&self, method: &Method, path: String, headers: &HeaderMap) {
        let range = headers
            .get(header::RANGE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Logged {
                method: method.to_string(),
                path,
                range,
            });
    }

    /// The repository at `revision`, or the Hub's error code for a 404.
    fn find(&self, id: &str, revision: &str) -> Result<&FakeRepo, &'static str> {
        let Some(repo) = self.repos.iter().find(|repo| repo.id == id) else {
            return Err("RepoNotFound");
        };
        if revision != "main" && revision != repo.commit {
            return Err("RevisionNotFound");
        }
        Ok(repo)
    }
}

fn hub_error(status: StatusCode, code: &'static str) -> Response {
    (
        status,
        [("x-error-code", code), ("x-error-message", code)],
        code,
    )
        .into_response()
}

async fn resolve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    UrlPath((org, name, revision, file)): UrlPath<(String, String, String, String)>,
) -> Response {
    let id = format!("{org}/{name}");
    shared.record(
        &method,
        format!("/{id}/resolve/{revision}/{file}"),
        &headers,
    );
    let repo = match shared.find(&id, &revision) {
        Ok(repo) => repo,
        Err(code) => return hub_error(StatusCode::NOT_FOUND, code),
    };
    let Some(entry) = repo.files.get(&file) else {
        return hub_error(StatusCode::NOT_FOUND, "EntryNotFound");
    };
    if entry.lfs {
        let sha = sha256_hex(&entry.bytes);
        let location = format!(
            "{}/cdn/{}/{sha}?file={file}",
            shared.base,
            id.replace('/', "--")
        );
        let body = format!("Found. Redirecting to {location}");
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header("x-repo-commit", &repo.commit)
            .header(
                header::ETAG,
                format!("\"{}\"", git_blob_id(&lfs_pointer(&entry.bytes))),
            )
            .header("x-linked-etag", format!("\"{sha}\""))
            .header("x-linked-size", entry.bytes.len().to_string())
            .header(header::CONTENT_LENGTH, body.len().to_string())
            .body(Body::from(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let mut response = serve_bytes(&shared, &method, &headers, &file, &entry.bytes);
    let headers = response.headers_mut();
    if let Ok(value) = format!("\"{}\"", git_blob_id(&entry.bytes)).parse() {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = repo.commit.parse() {
        headers.insert("x-repo-commit", value);
    }
    response
}

#[derive(serde::Deserialize)]
struct CdnQuery {
    file: String,
}

async fn cdn(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    UrlPath((repo_folder, sha)): UrlPath<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<CdnQuery>,
) -> Response {
    shared.record(&method, format!("/cdn/{repo_folder}/{sha}"), &headers);
    let id = repo_folder.replacen("--", "/", 1);
    let Some(entry) = shared
        .repos
        .iter()
        .filter(|repo| repo.id == id)
        .flat_map(|repo| repo.files.get(&query.file))
        .find(|entry| sha256_hex(&entry.bytes) == sha)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = serve_bytes(&shared, &method, &headers, &query.file, &entry.bytes);
    // A CDN's own ETag, which describes nothing the Hub vouches for.
    if let Ok(value) = format!("\"cdn-{}\"", &sha[..8]).parse() {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The bytes of a file, or the range asked for, with the faults the test set.
fn serve_bytes(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    file: &str,
    bytes: &[u8],
) -> Response {
    let mut faults = shared.faults.lock().unwrap_or_else(PoisonError::into_inner);
    let mut content = bytes.to_vec();
    if faults.corrupt.contains(file)
        && let Some(last) = content.last_mut()
    {
        *last ^= 0xff;
    }
    let total = content.len();
    let start = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.split('-').next())
        .and_then(|start| start.parse::<usize>().ok())
        .filter(|_| !faults.ignore_ranges);
    let (status, body) = match start {
        Some(start) if start < total => (StatusCode::PARTIAL_CONTENT, content.split_off(start)),
        Some(_) => return StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        None => (StatusCode::OK, content),
    };
    let length = body.len();
    let mut builder = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, length.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{total}", total - length, total - 1),
        );
    }
    // HEAD requests (hf-hub sends one first) neither see nor use up a cut.
    let cut = *method == Method::GET && faults.cut_once.remove(file);
    drop(faults);
    let body = if cut {
        use futures::StreamExt as _;
        let half = Bytes::from(body[..length / 2].to_vec());
        // The pause lets the half reach the client before the connection is cut.
        Body::from_stream(
            futures::stream::iter([Ok(half)]).chain(futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Err(std::io::Error::other("the fake Hub cut the connection"))
            })),
        )
    } else {
        Body::from(body)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
