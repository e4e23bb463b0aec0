//! Pulling an encoder from a Hub: a fake Hub on a local port serves a tiny random BERT with
//! the Hub's headers and redirects; the pull lays it out as the Hugging Face cache, checks
//! every file, resumes after a cut, refuses corrupt bytes, and never touches the network
//! when there is no Hub to use. Settings are passed explicitly: no test sets the process's
//! environment.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use inference::encoder::fake_hub::{FakeHub, FakeRepo, git_blob_id, sha256_hex};
use inference::encoder::hub::{HubCache, HubRemote};
use inference::encoder::pull::{ENCODER_FILES, PullError, PullEvent, PullOptions, pull};
use inference::encoder::testing::TinyBert;
use inference::encoder::{CONFIG_FILE, Encoder, EncoderError, EncoderOptions, WEIGHTS_FILE};
use std::path::{Path, PathBuf};
use std::time::Duration;

const REPO: &str = "tests/tiny-bert";
const COMMIT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

/// The tiny model's three files, as a repository whose weights are stored with LFS.
fn tiny_repo() -> FakeRepo {
    FakeRepo::tiny(REPO, COMMIT).unwrap()
}

fn quick() -> PullOptions {
    PullOptions {
        attempts: 3,
        retry_delay: Duration::from_millis(10),
    }
}

fn repo_dir(root: &Path) -> PathBuf {
    root.join("models--tests--tiny-bert")
}

async fn pull_all(cache: &HubCache, options: PullOptions) -> Result<Vec<String>, PullError> {
    let mut events = Vec::new();
    pull(cache, REPO, None, &ENCODER_FILES, &options, &mut |event| {
        let line = match event {
            PullEvent::Started {
                file, resumed_from, ..
            } => format!("started {file} at {resumed_from}"),
            PullEvent::Progress { .. } => return,
            PullEvent::Cached { file, .. } => format!("cached {file}"),
            PullEvent::Verified { file } => format!("verified {file}"),
        };
        events.push(line);
    })
    .await?;
    Ok(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_lays_out_the_cache_and_the_encoder_then_loads_offline() {
    let repo = tiny_repo();
    let hub = FakeHub::start(vec![repo.clone()]).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));

    let events = pull_all(&cache, quick()).await.unwrap();
    for file in ENCODER_FILES {
        assert!(events.contains(&format!("verified {file}")), "{events:?}");
    }

    // refs/main names the commit the Hub reported, with no newline.
    let dir = repo_dir(root.path());
    assert_eq!(
        std::fs::read_to_string(dir.join("refs/main")).unwrap(),
        COMMIT
    );
    // Each snapshot file links to its blob, named as the Hub names the file.
    for (name, file) in &repo.files {
        let link = dir.join("snapshots").join(COMMIT).join(name);
        let blob = if file.lfs {
            sha256_hex(&file.bytes)
        } else {
            git_blob_id(&file.bytes)
        };
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../../blobs").join(&blob)
        );
        assert_eq!(std::fs::read(&link).unwrap(), file.bytes);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The weights came through the CDN redirect, as the Hub sends LFS files.
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.starts_with("/cdn/")),
        "{:?}",
        hub.requests()
    );

    // A cache without a Hub now loads it, and it is the model the fake served.
    let offline = HubCache::at(root.path());
    let pulled = Encoder::load(&offline, REPO, &EncoderOptions::default()).unwrap();
    assert_eq!(pulled.spec().revision, COMMIT);
    let reference_root = tempfile::tempdir().unwrap();
    TinyBert::default()
        .write(reference_root.path(), REPO)
        .unwrap();
    let reference = Encoder::load(
        &HubCache::at(reference_root.path()),
        REPO,
        &EncoderOptions::default(),
    )
    .unwrap();
    let texts = ["my refund is missing", "the app crashes on login"];
    assert_eq!(
        pulled.embed(&texts).unwrap(),
        reference.embed(&texts).unwrap()
    );

    // A second pull downloads nothing.
    let before = hub.requests().len();
    let events = pull_all(&cache, quick()).await.unwrap();
    assert!(
        events.iter().all(|e| !e.starts_with("started")),
        "{events:?}"
    );
    assert!(
        hub.requests()[before..].iter().all(|r| r.method == "HEAD"),
        "{:?}",
        &hub.requests()[before..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_with_a_range_in_the_same_pull() {
    let repo = tiny_repo();
    let size = repo.files[WEIGHTS_FILE].bytes.len();
    let hub = FakeHub::start(vec![repo]).await.unwrap();
    hub.cut_once(WEIGHTS_FILE);
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));

    let events = pull_all(&cache, quick()).await.unwrap();
    let half = size / 2;
    assert!(
        events.contains(&format!("started {WEIGHTS_FILE} at {half}")),
        "{events:?}"
    );
    let expected = format!("bytes={half}-{}", size - 1);
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.method == "GET" && r.range.as_deref() == Some(expected.as_str())),
        "no resuming request: {:?}",
        hub.requests()
    );
    Encoder::load(&HubCache::at(root.path()), REPO, &EncoderOptions::default()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_that_gives_up_keeps_the_bytes_hidden_and_the_next_pull_resumes() {
    let repo = tiny_repo();
    let size = repo.files[WEIGHTS_FILE].bytes.len() as u64;
    let hub = FakeHub::start(vec![repo]).await.unwrap();
    hub.cut_once(WEIGHTS_FILE);
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));
    let once = PullOptions {
        attempts: 1,
        ..quick()
    };

    let error = pull_all(&cache, once).await.unwrap_err();
    assert!(
        matches!(error, PullError::Interrupted { done, .. } if done == size / 2),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("`tagger models pull tests/tiny-bert` resumes")
    );
    // The half file is never served: no ref, no snapshot file, so loading finds nothing.
    let dir = repo_dir(root.path());
    assert!(!dir.join("refs/main").exists());
    assert!(
        !dir.join("snapshots")
            .join(COMMIT)
            .join(WEIGHTS_FILE)
            .exists()
    );
    let error =
        Encoder::load(&HubCache::at(root.path()), REPO, &EncoderOptions::default()).unwrap_err();
    assert!(matches!(error, EncoderError::NotInCache { .. }), "{error}");

    let events = pull_all(&cache, once).await.unwrap();
    assert!(
        events.contains(&format!("started {WEIGHTS_FILE} at {}", size / 2)),
        "{events:?}"
    );
    Encoder::load(&HubCache::at(root.path()), REPO, &EncoderOptions::default()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_the_range_still_yields_a_checked_file() {
    let hub = FakeHub::start(vec![tiny_repo()]).await.unwrap();
    hub.cut_once(WEIGHTS_FILE);
    hub.ignore_ranges();
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));
    pull_all(&cache, quick()).await.unwrap();
    Encoder::load(&HubCache::at(root.path()), REPO, &EncoderOptions::default()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_bytes_are_refused_and_not_left_in_the_cache() {
    for file in [WEIGHTS_FILE, CONFIG_FILE] {
        let hub = FakeHub::start(vec![tiny_repo()]).await.unwrap();
        hub.corrupt(file);
        let root = tempfile::tempdir().unwrap();
        let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));

        let error = pull_all(&cache, quick()).await.unwrap_err();
        assert!(
            matches!(&error, PullError::Corrupt { file: f, .. } if f == file),
            "{error}"
        );
        assert!(error.to_string().contains("discarded"), "{error}");
        let dir = repo_dir(root.path());
        let blobs: Vec<String> = std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".lock"))
            .collect();
        // Files checked before the bad one may stay; the bad one, whole or partial, not.
        assert!(
            blobs.iter().all(|name| !name.ends_with(".incomplete")),
            "{blobs:?}"
        );
        assert!(!dir.join("snapshots").join(COMMIT).join(file).exists());
        assert!(!dir.join("refs/main").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hub_nothing_touches_the_network() {
    let hub = FakeHub::start(vec![tiny_repo()]).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    // What `HF_HUB_OFFLINE=1` gives: the cache and no Hub.
    let offline = HubCache::at(root.path());

    let error = pull_all(&offline, quick()).await.unwrap_err();
    assert!(matches!(error, PullError::Offline { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("`tagger models pull tests/tiny-bert`"),
        "{error}"
    );
    let error = Encoder::load(&offline, REPO, &EncoderOptions::default()).unwrap_err();
    assert!(matches!(error, EncoderError::NotInCache { .. }), "{error}");
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_use_of_a_missing_encoder_downloads_it() {
    let hub = FakeHub::start(vec![tiny_repo()]).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));
    // Loading is synchronous (a training thread); it must work from a blocking thread.
    let encoder = tokio::task::spawn_blocking(move || {
        Encoder::load(&cache, REPO, &EncoderOptions::default())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(encoder.spec().revision, COMMIT);
    assert!(!hub.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_or_revision_the_hub_lacks_is_named() {
    let hub = FakeHub::start(vec![tiny_repo()]).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::at(root.path()).with_remote(HubRemote::new(hub.url()));
    let options = quick();
    let error = pull(
        &cache,
        "tests/no-such-model",
        None,
        &ENCODER_FILES,
        &options,
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(error, PullError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("RepoNotFound"), "{error}");
    let error = pull(
        &cache,
        REPO,
        Some("v9"),
        &ENCODER_FILES,
        &options,
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("RevisionNotFound"), "{error}");
    // A commit id works as the revision, and writes no ref.
    let snapshot = pull(
        &cache,
        REPO,
        Some(COMMIT),
        &ENCODER_FILES,
        &options,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(snapshot.revision, COMMIT);
    assert!(!repo_dir(root.path()).join("refs/main").exists());
}
