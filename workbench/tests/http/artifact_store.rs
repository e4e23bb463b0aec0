//! Model files in S3-compatible storage, against a real local S3 server (moto's
//! `moto_server`, started by each test on a free port): a version trained by one process is
//! served by a server whose data directory is empty; a changed object is refused while the
//! old version keeps serving; an interrupted download is cleaned up and done again; the
//! `tagger` binary reads the store from `TAGGER_ARTIFACT_STORE` and the `AWS_*` variables.
//!
//! `bash .ci/moto-server` installs the server and prints its path; pass it as
//! `TAGGER_MOTO_SERVER` (or put `moto_server` on PATH). Without it these tests say loudly
//! that they were skipped, unless `TAGGER_S3_TESTS=required` (`.ci/run` sets it): then they
//! fail, so CI never skips them silently.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::{AnyStore, LabelMode, ModelVersion, Project, ProjectName};
use http_body_util::BodyExt;
use inference::artifact_store::ArtifactStore;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use workbench::config::Config;
use workbench::state::AppState;

const BUCKET: &str = "tagger-models";

/// A running `moto_server`, stopped when the test ends however it ends.
struct S3Server {
    process: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl S3Server {
    /// The `AWS_*` settings a process needs to reach this server.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The configured artifact store of a process whose data directory is `data_dir`.
    fn store(&self, data_dir: &Path) -> ArtifactStore {
        config(data_dir).artifact_store_with(self.env()).unwrap()
    }

    /// A client of the bucket, for changing objects behind the stores' back.
    fn client(&self) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_region("us-east-1")
            .build()
            .unwrap()
    }
}

fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        artifact_store: Some(format!("s3://{BUCKET}/ci")),
        ..Config::default()
    }
}

fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TAGGER_MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "TAGGER_MOTO_SERVER={} does not exist",
            path.display()
        );
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("moto_server"))
        .find(|path| path.exists())
}

/// A fresh S3 server with an empty bucket, or `None` (said on the terminal, past the test
/// harness's capture) when no `moto_server` is installed and the run does not require one.
async fn s3_server(test: &str) -> Option<S3Server> {
    let Some(program) = moto_server() else {
        let required = std::env::var("TAGGER_S3_TESTS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "TAGGER_S3_TESTS=required but no moto_server: run `bash .ci/moto-server` and pass its output as TAGGER_MOTO_SERVER"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no S3 server to test against (TAGGER_MOTO_SERVER=$(bash .ci/moto-server) runs it)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = S3Server {
        process: Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    // Python takes a moment to start; the bucket is created as soon as it answers.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(answer) = client
            .put(format!("{}/{BUCKET}", server.endpoint))
            .send()
            .await
        {
            assert!(answer.status().is_success(), "{}", answer.status());
            return Some(server);
        }
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn demo_project(store: &AnyStore) -> Project {
    let name = ProjectName::parse("Acme").unwrap();
    datasets::demo_project::install_demo_project(store, &name, LabelMode::Multi, 500, 5)
        .await
        .unwrap()
}

/// Trains a version as a worker with `artifacts` does.
async fn train(store: &AnyStore, project: &Project, artifacts: &ArtifactStore) -> ModelVersion {
    let mut request = trainer::TrainRequest::default();
    request.ngram.epochs = 4;
    trainer::train(store, project, &request, artifacts, |_| {})
        .await
        .unwrap()
        .version
}

/// Tags one ticket through the API of `state`; the version that answered.
async fn tag(state: &AppState, key: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/projects/Acme/tag")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({"subject": "Charged twice", "body": "Please refund the invoice."})
                .to_string(),
        ))
        .unwrap();
    let response = workbench::app::app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The version's directory name: the last part of its location.
fn dir_name(version: &ModelVersion) -> &str {
    version.artifact_path.rsplit('/').next().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_version_trained_into_s3_is_served_by_a_server_with_an_empty_data_dir() {
    let Some(s3) =
        s3_server("a_version_trained_into_s3_is_served_by_a_server_with_an_empty_data_dir").await
    else {
        return;
    };
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store).await;
    let trainer_dir = tempfile::tempdir().unwrap();
    let version = train(&store, &project, &s3.store(trainer_dir.path())).await;
    let location = format!(
        "s3://{BUCKET}/ci/project-{}/{}",
        project.id,
        dir_name(&version)
    );
    assert_eq!(version.artifact_path, location);
    // Every recorded file is in the bucket, where the location says.
    let client = s3.client();
    for file in version.files.keys() {
        let key = format!("ci/project-{}/{}/{file}", project.id, dir_name(&version));
        client
            .head(&object_store::path::Path::from(key))
            .await
            .unwrap();
    }
    store
        .promote_model_version(project.id, version.id, "ops")
        .await
        .unwrap();

    // Another machine: nothing in its data directory.
    let server_dir = tempfile::tempdir().unwrap();
    let state = AppState::with_artifacts(
        store.clone(),
        config(server_dir.path()),
        s3.store(server_dir.path()),
    );
    state.tagging.sync_all(&store).await.unwrap();
    let key = support::project_key(&store, project.id, "tests").await;
    let (status, tagged) = tag(&state, &key).await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(tagged["version"], serde_json::json!(version.id), "{tagged}");
    let cached = server_dir
        .path()
        .join("models")
        .join(format!("project-{}", project.id));
    assert_eq!(entries(&cached), [".fetch.lock", dir_name(&version)]);
}

#[tokio::test]
async fn a_changed_object_is_refused_and_the_old_version_keeps_serving() {
    let Some(s3) = s3_server("a_changed_object_is_refused_and_the_old_version_keeps_serving").await
    else {
        return;
    };
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store).await;
    let trainer_dir = tempfile::tempdir().unwrap();
    let artifacts = s3.store(trainer_dir.path());
    let first = train(&store, &project, &artifacts).await;
    let second = train(&store, &project, &artifacts).await;
    store
        .promote_model_version(project.id, first.id, "ops")
        .await
        .unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let state = AppState::with_artifacts(
        store.clone(),
        config(server_dir.path()),
        s3.store(server_dir.path()),
    );
    state.tagging.sync_all(&store).await.unwrap();
    assert_eq!(state.tagging.serving(project.id).unwrap().version, first.id);

    // Someone overwrites the second version's weights in the bucket with other bytes: one
    // bit of one weight flipped, still a well-formed safetensors file.
    let client = s3.client();
    let weights = |version: &ModelVersion| -> object_store::path::Path {
        format!(
            "ci/project-{}/{}/{}",
            project.id,
            dir_name(version),
            inference::artifact::WEIGHTS_FILE
        )
        .into()
    };
    let mut other = client
        .get(&weights(&second))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    *other.last_mut().unwrap() ^= 1;
    client.put(&weights(&second), other.into()).await.unwrap();
    store
        .promote_model_version(project.id, second.id, "ops")
        .await
        .unwrap();
    let error = state
        .tagging
        .sync_project(&store, project.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("does not match the hash recorded"),
        "{error}"
    );
    assert_eq!(state.tagging.serving(project.id).unwrap().version, first.id);
    let key = support::project_key(&store, project.id, "tests").await;
    let (status, tagged) = tag(&state, &key).await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(tagged["version"], serde_json::json!(first.id), "{tagged}");
    let status = state
        .tagging
        .statuses()
        .into_iter()
        .find(|s| s.project == project.id)
        .unwrap();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains(dir_name(&second)),
        "{status:?}"
    );
    // Neither the refused file nor a staging directory is left for anyone to pick up.
    let cached = server_dir
        .path()
        .join("models")
        .join(format!("project-{}", project.id));
    assert_eq!(entries(&cached), [".fetch.lock", dir_name(&first)]);
}

#[tokio::test]
async fn an_interrupted_download_is_cleaned_up_and_done_again() {
    let Some(s3) = s3_server("an_interrupted_download_is_cleaned_up_and_done_again").await else {
        return;
    };
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store).await;
    let trainer_dir = tempfile::tempdir().unwrap();
    let version = train(&store, &project, &s3.store(trainer_dir.path())).await;
    store
        .promote_model_version(project.id, version.id, "ops")
        .await
        .unwrap();
    // What a server killed in the middle of a download leaves behind.
    let server_dir = tempfile::tempdir().unwrap();
    let cached = server_dir
        .path()
        .join("models")
        .join(format!("project-{}", project.id));
    let staging = cached.join(format!(".{}.partial", dir_name(&version)));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(
        staging.join(inference::artifact::WEIGHTS_FILE),
        b"the first hal",
    )
    .unwrap();

    let state = AppState::with_artifacts(
        store.clone(),
        config(server_dir.path()),
        s3.store(server_dir.path()),
    );
    state.tagging.sync_all(&store).await.unwrap();
    assert_eq!(
        state.tagging.serving(project.id).unwrap().version,
        version.id
    );
    assert_eq!(entries(&cached), [".fetch.lock", dir_name(&version)]);
}

/// Runs `tagger` as an operator would, with the store and the S3 settings in its environment.
fn tagger(s3: &S3Server, database_url: &str, data_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--database-url", database_url, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("TAGGER_ARTIFACT_STORE", format!("s3://{BUCKET}/cli"))
        .envs(s3.env())
        .env("TAGGER_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn the_command_line_trains_into_the_configured_bucket_and_promotes_from_it() {
    let Some(s3) =
        s3_server("the_command_line_trains_into_the_configured_bucket_and_promotes_from_it").await
    else {
        return;
    };
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store).await;
    let trainer_dir = tempfile::tempdir().unwrap();
    let (ok, output) = tagger(
        &s3,
        &database.url,
        trainer_dir.path(),
        &["train", "--project", "Acme", "--epochs", "4"],
    );
    assert!(ok, "{output}");
    let version = store.model_versions(project.id).await.unwrap().remove(0);
    assert!(
        version
            .artifact_path
            .starts_with(&format!("s3://{BUCKET}/cli/project-{}/", project.id)),
        "{version:?}"
    );
    assert!(output.contains(&version.artifact_path), "{output}");

    // Promoting from another machine loads (so downloads) the version before it promotes.
    let other_dir = tempfile::tempdir().unwrap();
    let id = version.id.to_string();
    let (ok, output) = tagger(
        &s3,
        &database.url,
        other_dir.path(),
        &["models", "promote", "--project", "Acme", "--version", &id],
    );
    assert!(ok, "{output}");
    let fetched = other_dir
        .path()
        .join("models")
        .join(format!("project-{}", project.id))
        .join(dir_name(&version));
    for file in version.files.keys() {
        assert!(fetched.join(file).exists(), "{} was not fetched", file);
    }
    let (ok, output) = tagger(
        &s3,
        &database.url,
        other_dir.path(),
        &[
            "predict",
            "--project",
            "Acme",
            "I was charged twice, please refund",
        ],
    );
    assert!(ok, "{output}");
    assert!(output.contains(&format!("model version {id}")), "{output}");
}
