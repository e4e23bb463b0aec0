//! Backup and restore the way docs/deploy.md tells operators to: `pg_dump` of the
//! PostgreSQL database and a `tar` of the model files, both wiped, then `pg_restore` into an
//! empty database and the files put back; the promoted model serves again and answers
//! exactly as before. Runs when TEST_DATABASE_URL names a PostgreSQL server and the
//! PostgreSQL client tools are installed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::test_db::TestDatabase;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn tagger(database_url: &str, data_dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--database-url", database_url, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("TAGGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tagger {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Synthetic labelled tickets as a CSV file.
fn demo_csv(dir: &Path, tickets: usize) -> PathBuf {
    let path = dir.join("demo.csv");
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer
        .write_record(["id", "subject", "body", "tags"])
        .unwrap();
    for ticket in datasets::demo::generate(tickets, 3, chrono::Utc::now()) {
        let tags: Vec<&str> = ticket.tags.iter().map(|t| t.as_str()).collect();
        writer
            .write_record([
                ticket.external_id.as_str(),
                &ticket.subject,
                &ticket.body,
                &tags.join(";"),
            ])
            .unwrap();
    }
    writer.flush().unwrap();
    path
}

/// `tagger serve` on a free port; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(database_url: &str, data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagger"))
            .args(["--database-url", database_url, "--data-dir"])
            .arg(data_dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("TAGGER_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let base = banner
            .trim()
            .strip_prefix("tagger serving on ")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .to_string();
        Self { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tagging answer of a server on this database and data directory, and the model it
/// then reports in `/readyz` (project, version, kind, last error; not when it loaded).
async fn served(
    database_url: &str,
    data_dir: &Path,
    key: &str,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let server = Server::start(database_url, data_dir);
    let client = reqwest::Client::new();
    let tagged = client
        .post(format!("{}/v1/projects/Support/tag", server.base))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "subject": "Charged twice",
            "body": "I was charged twice for my subscription, please refund the invoice",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    let tagged: serde_json::Value = tagged.json().await.unwrap();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    let models = ready["models"]
        .as_array()
        .unwrap_or_else(|| panic!("no models in {ready}"))
        .iter()
        .map(|model| {
            let mut model = model.clone();
            model.as_object_mut().unwrap().remove("loaded_at");
            model
        })
        .collect();
    (tagged, models)
}

#[tokio::test]
async fn a_restored_backup_serves_the_promoted_model_again() {
    if !have("pg_dump") || !have("pg_restore") || !have("tar") {
        eprintln!("skipped: pg_dump, pg_restore or tar is not installed");
        return;
    }
    let Some(original) = TestDatabase::postgres("backup_original").await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = demo_csv(dir.path(), 600);
    let url = original.url.clone();
    tagger(
        &url,
        &data,
        &[
            "import",
            "--project",
            "Support",
            "--file",
            csv.to_str().unwrap(),
            "--id-column",
            "id",
            "--text-column",
            "subject",
            "--text-column",
            "body",
            "--label-column",
            "tags",
            "--label-separator",
            ";",
        ],
    );
    // Two versions, the older one promoted: the restore must bring back which one serves,
    // not merely the newest files.
    for _ in 0..2 {
        tagger(
            &url,
            &data,
            &["train", "--project", "Support", "--epochs", "3"],
        );
    }
    tagger(
        &url,
        &data,
        &[
            "models",
            "promote",
            "--project",
            "Support",
            "--version",
            "1",
        ],
    );
    let created = tagger(
        &url,
        &data,
        &[
            "keys",
            "create",
            "--project",
            "Support",
            "--name",
            "backup",
            "--scopes",
            "tag",
        ],
    );
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let (tagged_before, ready_before) = served(&url, &data, &key).await;
    assert_eq!(tagged_before["version"], 1, "{tagged_before}");
    assert_eq!(ready_before.len(), 1, "{ready_before:?}");

    // Back up: the database first, then the files (docs/deploy.md#backup-and-restore).
    let dump = dir.path().join("tagger.dump");
    let archive = dir.path().join("models.tar");
    run(
        "pg_dump",
        &["--format=custom", "--file", dump.to_str().unwrap(), &url],
    );
    run(
        "tar",
        &[
            "-C",
            data.to_str().unwrap(),
            "-cf",
            archive.to_str().unwrap(),
            "models",
        ],
    );

    // Wipe both.
    original.drop_database().await.unwrap();
    std::fs::remove_dir_all(&data).unwrap();

    // Restore into an empty database. Without the files the promoted version cannot load,
    // and the server says so instead of serving.
    let restored = TestDatabase::postgres("backup_restored")
        .await
        .unwrap()
        .unwrap();
    let url = restored.url.clone();
    run(
        "pg_restore",
        &["--no-owner", "--dbname", &url, dump.to_str().unwrap()],
    );
    std::fs::create_dir_all(&data).unwrap();
    let missing = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--database-url", &url, "--data-dir"])
        .arg(&data)
        .args([
            "predict",
            "--project",
            "Support",
            "--version",
            "1",
            "a refund please",
        ])
        .env("TAGGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(!missing.status.success());

    run(
        "tar",
        &[
            "-C",
            data.to_str().unwrap(),
            "-xf",
            archive.to_str().unwrap(),
        ],
    );
    let (tagged_after, ready_after) = served(&url, &data, &key).await;
    assert_eq!(tagged_after, tagged_before);
    assert_eq!(ready_after, ready_before);
    restored.drop_database().await.unwrap();
}
