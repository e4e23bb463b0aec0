//! The `tagger` binary as scripts call it: exit codes, messages on bad input, and files
//! that go in and come out.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::test_db::TestDatabase;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn tagger(database_url: &str, args: &[&str]) -> Run {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("TAGGER_LOG", "warn")
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn tagger_with_stdin(database_url: &str, args: &[&str], input: &[u8]) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("TAGGER_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn import(database_url: &str, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "import",
        "--project",
        "Support",
        "--file",
        file.to_str().unwrap(),
        "--text-column",
        "subject",
        "--text-column",
        "body",
        "--label-column",
        "tags",
        "--label-separator",
        ";",
    ];
    args.extend_from_slice(extra);
    tagger(database_url, &args)
}

const GOOD: &str = "subject,body,tags\nLogin fails,Cannot sign in,Account Access\nDouble charge,Charged twice,Billing;Bug\n";

#[test]
fn every_command_has_help() {
    for command in [
        "demo", "serve", "migrate", "import", "export", "projects", "entities",
    ] {
        let run = tagger("sqlite::memory:", &[command, "--help"]);
        assert!(run.ok, "{command} --help failed: {}", run.stderr);
        assert!(run.stdout.contains("Usage: tagger"), "{}", run.stdout);
    }
}

#[test]
fn import_then_export_round_trips_through_files() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "good.csv", GOOD.as_bytes());
    let run = import(&database.url, &file, &[]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("imported 2 rows into \"Support\" (new project)"),
        "{}",
        run.stdout
    );

    let listed = tagger(&database.url, &["projects"]);
    assert!(
        listed.stdout.contains("Support") && listed.stdout.contains("multi"),
        "{}",
        listed.stdout
    );

    let out = dir.path().join("out.jsonl");
    let run = tagger(
        &database.url,
        &[
            "export",
            "--project",
            "support",
            "--file",
            out.to_str().unwrap(),
        ],
    );
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["tags"], serde_json::json!(["Billing", "Bug"]));

    let csv = tagger(&database.url, &["export", "--project", "Support"]);
    assert!(
        csv.stdout
            .starts_with("source,external_id,subject,body,tags,split,created_at,metadata\n")
    );
    assert!(csv.stdout.contains("Billing;Bug"));
}

#[test]
fn a_malformed_csv_in_abort_mode_imports_nothing_and_names_the_line() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "bad.csv",
        format!("{GOOD}Stray,\"quote,Bug,extra\nfine,row,Bug\n").as_bytes(),
    );
    let run = import(&database.url, &file, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("line 4: malformed CSV"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was imported"));
    let listed = tagger(&database.url, &["projects"]);
    assert!(
        listed.stdout.contains("no projects yet"),
        "{}",
        listed.stdout
    );
}

#[test]
fn skip_mode_reports_bad_rows_and_imports_the_rest() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"Bad \xff\xfe bytes,body,Bug\nEmpty tag name,body, ;Bug\n");
    let file = write_file(dir.path(), "mixed.csv", &bytes);
    let run = import(&database.url, &file, &["--on-bad-row", "skip"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("skipped line 4: column \"subject\" is not valid UTF-8"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("imported 3 rows"), "{}", run.stdout);
    assert!(run.stdout.contains("1 skipped"), "{}", run.stdout);
}

#[test]
fn whole_file_problems_are_explained() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "empty.csv", b"");
    let run = import(&database.url, &empty, &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("the file is empty"), "{}", run.stderr);

    let wrong = write_file(dir.path(), "wrong.csv", b"title,description\nx,y\n");
    let run = import(&database.url, &wrong, &[]);
    assert!(
        run.stderr
            .contains("column \"subject\" not found; the file's columns are: title, description"),
        "{}",
        run.stderr
    );

    let missing = dir.path().join("missing.csv");
    let run = import(&database.url, &missing, &[]);
    assert!(run.stderr.contains("cannot open"), "{}", run.stderr);

    let run = tagger(&database.url, &["export", "--project", "Nobody"]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("project \"Nobody\" not found"),
        "{}",
        run.stderr
    );

    let run = tagger("mysql://localhost/x", &["projects"]);
    assert!(
        run.stderr.contains("unsupported database URL"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_tag_for_an_existing_project_is_refused_until_allowed() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "good.csv", GOOD.as_bytes());
    assert!(import(&database.url, &file, &[]).ok);
    let more = write_file(
        dir.path(),
        "more.csv",
        b"subject,body,tags\nSlow,Very slow,Performance Issue\n",
    );
    let run = import(&database.url, &more, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("unknown tag \"Performance Issue\""),
        "{}",
        run.stderr
    );
    let run = import(&database.url, &more, &["--create-tags"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("new tags: Performance Issue"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn import_works_the_same_on_postgres() {
    let Some(database) = TestDatabase::postgres("import_works_the_same_on_postgres")
        .await
        .unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "good.csv", GOOD.as_bytes());
    let url = database.url.clone();
    let first = tokio::task::spawn_blocking(move || import(&url, &file, &[]))
        .await
        .unwrap();
    assert!(first.ok, "{}", first.stderr);
    let url = database.url.clone();
    let file = dir.path().join("good.csv");
    let again = tokio::task::spawn_blocking(move || import(&url, &file, &[]))
        .await
        .unwrap();
    assert!(
        again.stdout.contains("0 new, 2 updated"),
        "{}",
        again.stdout
    );
    database.drop_database().await.unwrap();
}

/// Synthetic labelled tickets as a CSV file.
fn demo_csv(dir: &Path, tickets: usize) -> PathBuf {
    let mut writer = csv::Writer::from_path(dir.join("demo.csv")).unwrap();
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
    dir.join("demo.csv")
}

#[test]
fn a_projects_languages_are_shown_set_refused_when_unknown_and_cleared() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = demo_csv(dir.path(), 30);
    assert!(import(&database.url, &file, &["--id-column", "id"]).ok);
    let languages = |args: &[&str]| {
        let mut all = vec!["languages", "--project", "Support"];
        all.extend_from_slice(args);
        tagger(&database.url, &all)
    };
    let shown = languages(&[]);
    assert!(shown.ok, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("serves every language"),
        "{}",
        shown.stdout
    );
    let set = languages(&["--set", "deu,eng,eng"]);
    assert!(set.ok, "{}", set.stderr);
    assert!(
        set.stdout.contains(
            "serves German (deu), English (eng); tickets in other languages go to review"
        ),
        "{}",
        set.stdout
    );
    let unknown = languages(&["--set", "xx1"]);
    assert!(!unknown.ok);
    assert!(unknown.stderr.contains("xx1"), "{}", unknown.stderr);
    // The refusal changed nothing.
    assert!(
        languages(&[])
            .stdout
            .contains("German (deu), English (eng)")
    );
    let cleared = languages(&["--all"]);
    assert!(
        cleared.stdout.contains("serves every language"),
        "{}",
        cleared.stdout
    );
}

#[test]
fn train_eval_and_predict_from_the_command_line() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = demo_csv(dir.path(), 600);
    assert!(import(&database.url, &file, &["--id-column", "id"]).ok);

    let no_model = tagger(&database.url, &["eval", "--project", "Support"]);
    assert!(!no_model.ok);
    assert!(
        no_model.stderr.contains("has no model yet"),
        "{}",
        no_model.stderr
    );

    let data_dir = dir.path().join("data");
    let trained = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args([
            "--database-url",
            &database.url,
            "train",
            "--project",
            "Support",
            "--epochs",
            "5",
            "--format",
            "json",
        ])
        // A relative data directory: the recorded model path must still work from elsewhere.
        .current_dir(dir.path())
        .env("TAGGER_DATA_DIR", "data")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&trained.stderr);
    assert!(trained.status.success(), "{stderr}");
    assert!(
        stderr.contains("model version 1 (ngram) trained in"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("files in {}", data_dir.display())),
        "{stderr}"
    );
    let metrics: serde_json::Value = serde_json::from_slice(&trained.stdout).unwrap();
    assert!(metrics["micro_f1"].as_f64().unwrap() > 0.5, "{metrics}");

    let evaluated = tagger(
        &database.url,
        &["eval", "--project", "Support", "--format", "json"],
    );
    assert!(evaluated.ok, "{}", evaluated.stderr);
    let evaluation: serde_json::Value = serde_json::from_str(&evaluated.stdout).unwrap();
    for key in ["accuracy", "micro_f1", "macro_f1", "ece", "per_tag"] {
        assert!(evaluation.get(key).is_some(), "missing {key}");
    }
    assert!(
        (evaluation["macro_f1"].as_f64().unwrap() - metrics["macro_f1"].as_f64().unwrap()).abs()
            < 1e-6
    );

    let table = tagger(&database.url, &["eval", "--project", "Support"]);
    assert!(
        table.stdout.contains("PRECISION") && table.stdout.contains("auto-tagged"),
        "{}",
        table.stdout
    );

    let predicted = tagger(
        &database.url,
        &[
            "predict",
            "--project",
            "Support",
            "I was charged twice for my subscription, please refund the invoice",
        ],
    );
    assert!(predicted.ok, "{}", predicted.stderr);
    assert!(predicted.stdout.contains("Billing"), "{}", predicted.stdout);

    // Long tickets come from a file or standard input, not the command line.
    let long = format!(
        "I was charged twice for my subscription, please refund the invoice. {}",
        "The log follows. ".repeat(10_000)
    );
    let path = write_file(dir.path(), "ticket.txt", long.as_bytes());
    let from_file = tagger(
        &database.url,
        &[
            "predict",
            "--project",
            "Support",
            "--file",
            path.to_str().unwrap(),
        ],
    );
    assert!(from_file.ok, "{}", from_file.stderr);
    assert!(
        from_file.stdout.contains("model version"),
        "{}",
        from_file.stdout
    );
    let from_stdin = tagger_with_stdin(
        &database.url,
        &["predict", "--project", "Support", "--file", "-"],
        b"I was charged twice for my subscription, please refund the invoice",
    );
    assert!(from_stdin.ok, "{}", from_stdin.stderr);
    assert!(
        from_stdin.stdout.contains("Billing"),
        "{}",
        from_stdin.stdout
    );
    let too_long = write_file(dir.path(), "huge.txt", &vec![b'a'; 2 * 1024 * 1024]);
    let refused = tagger(
        &database.url,
        &[
            "predict",
            "--project",
            "Support",
            "--file",
            too_long.to_str().unwrap(),
        ],
    );
    assert!(!refused.ok);
    assert!(refused.stderr.contains("KiB"), "{}", refused.stderr);

    // Nothing to read: refused when empty, sent to a person when there are no words.
    let empty = tagger(&database.url, &["predict", "--project", "Support", "  "]);
    assert!(!empty.ok);
    assert!(empty.stderr.contains("empty"), "{}", empty.stderr);
    for junk in ["🙂", "????"] {
        let verdict = tagger(&database.url, &["predict", "--project", "Support", junk]);
        assert!(verdict.ok, "{}", verdict.stderr);
        assert!(
            verdict
                .stdout
                .contains("sent to a person for review: the ticket has no words to tag from"),
            "{}",
            verdict.stdout
        );
        assert!(!verdict.stdout.contains(" applied"), "{}", verdict.stdout);
    }
}

#[test]
fn keys_are_created_with_scopes_or_as_instance_admin_and_listed_with_them() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "good.csv", GOOD.as_bytes());
    assert!(import(&database.url, &file, &[]).ok);

    let scoped = tagger(
        &database.url,
        &[
            "keys",
            "create",
            "--project",
            "Support",
            "--name",
            "crm",
            "--scopes",
            "tag,read",
        ],
    );
    assert!(scoped.ok, "{}", scoped.stderr);
    assert!(scoped.stdout.trim().starts_with("tt_"), "{}", scoped.stdout);
    assert!(
        scoped.stderr.contains("with scopes tag,read"),
        "{}",
        scoped.stderr
    );
    let full = tagger(
        &database.url,
        &["keys", "create", "--project", "Support", "--name", "ops"],
    );
    assert!(full.ok, "{}", full.stderr);
    let bad = tagger(
        &database.url,
        &[
            "keys",
            "create",
            "--project",
            "Support",
            "--name",
            "x",
            "--scopes",
            "read,write",
        ],
    );
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("unknown scope \"write\""),
        "{}",
        bad.stderr
    );
    let both = tagger(
        &database.url,
        &[
            "keys",
            "create",
            "--project",
            "Support",
            "--name",
            "x",
            "--instance-admin",
        ],
    );
    assert!(!both.ok, "a key is either a project's or the instance's");
    let admin = tagger(
        &database.url,
        &[
            "keys",
            "create",
            "--instance-admin",
            "--name",
            "provisioning",
        ],
    );
    assert!(admin.ok, "{}", admin.stderr);

    let listed = tagger(&database.url, &["keys", "list", "--project", "Support"]);
    assert!(listed.ok, "{}", listed.stderr);
    let line = |name: &str| {
        listed
            .stdout
            .lines()
            .find(|line| line.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed: {}", listed.stdout))
            .to_string()
    };
    assert!(line("crm").contains(" tag,read "), "{}", listed.stdout);
    assert!(
        line("ops").contains(" tag,read,label,train,admin "),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("provisioning"));
    let instance = tagger(&database.url, &["keys", "list", "--instance-admin"]);
    assert!(instance.ok, "{}", instance.stderr);
    assert!(
        instance.stdout.contains("provisioning") && instance.stdout.contains("instance-admin"),
        "{}",
        instance.stdout
    );
}

/// `tagger` run in `cwd` without `--database-url`: the data directory decides the database.
fn tagger_in(cwd: &Path, args: &[&str]) -> Run {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .env_remove("DATABASE_URL")
        .env_remove("TAGGER_DATABASE_URL")
        .env_remove("TAGGER_DATA_DIR")
        .env("TAGGER_LOG", "warn")
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn every_command_takes_the_data_directory_and_creates_no_database_elsewhere() {
    let elsewhere = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    // Before or after the command's name, as people type it.
    let added = tagger_in(
        elsewhere.path(),
        &[
            "users",
            "add",
            "--data-dir",
            data_dir,
            "--username",
            "ana",
            "--password",
            "a long enough password",
        ],
    );
    assert!(added.ok, "{}", added.stderr);
    let listed = tagger_in(elsewhere.path(), &["--data-dir", data_dir, "users", "list"]);
    assert!(listed.ok, "{}", listed.stderr);
    assert!(listed.stdout.contains("ana"), "{}", listed.stdout);
    let projects = tagger_in(elsewhere.path(), &["projects", "--data-dir", data_dir]);
    assert!(projects.ok, "{}", projects.stderr);
    assert!(data.path().join("tagger.db").exists());
    assert!(
        !elsewhere.path().join("data").exists(),
        "a second database was created in the working directory"
    );
    for command in [
        "demo",
        "serve",
        "worker",
        "train",
        "keys",
        "models",
        "languages",
    ] {
        let help = tagger_in(elsewhere.path(), &[command, "--help"]);
        assert!(
            help.stdout.contains("--data-dir"),
            "{command}: {}",
            help.stdout
        );
    }
}

#[test]
fn logs_written_to_a_file_or_pipe_carry_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    // Debug level: the database layer logs its statements, so there is log output to check.
    let output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--data-dir", data.path().to_str().unwrap(), "migrate"])
        .env_remove("DATABASE_URL")
        .env_remove("TAGGER_DATABASE_URL")
        .env_remove("NO_COLOR")
        .env("TAGGER_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("DEBUG"), "no log lines to check: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in the log: {stderr:?}"
    );
}

/// Every line `tagger` wrote to standard error, each parsed as one JSON object.
fn json_log_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line:?}"))
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    // Debug level: the database layer logs its statements, so there are lines to check.
    let output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--data-dir", data.path().to_str().unwrap(), "migrate"])
        .env_remove("DATABASE_URL")
        .env_remove("TAGGER_DATABASE_URL")
        .env("TAGGER_LOG", "debug")
        .env("TAGGER_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines = json_log_lines(&stderr);
    assert!(!lines.is_empty(), "no log lines to check");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["target"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|line| line["level"] == "DEBUG"));
}

#[test]
fn an_unknown_log_format_is_refused_with_the_setting_named() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--data-dir", data.path().to_str().unwrap(), "migrate"])
        .env_remove("DATABASE_URL")
        .env_remove("TAGGER_DATABASE_URL")
        .env("TAGGER_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.to_lowercase().contains("log_format"), "{stderr}");
}

#[test]
fn a_served_request_is_logged_in_json_within_its_span_and_request_id() {
    use std::io::{BufRead, BufReader, Read, Write};
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args([
            "--data-dir",
            data.path().to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .env_remove("DATABASE_URL")
        .env_remove("TAGGER_DATABASE_URL")
        // The request's span is at `info`: a filter that drops it would drop its fields too.
        .env(
            "TAGGER_LOG",
            "warn,workbench::http_trace=info,tower_http=debug",
        )
        .env("TAGGER_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .trim()
        .strip_prefix("tagger serving on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();

    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nx-request-id: cli-json-7\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-request-id: cli-json-7\r\n"),
        "{response}"
    );

    // The response is logged when the request's span closes; give it a moment, then stop.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let lines = json_log_lines(&String::from_utf8_lossy(&output.stderr));
    let logged = lines
        .iter()
        .find(|line| line["span"]["request_id"] == "cli-json-7")
        .unwrap_or_else(|| panic!("no line in the request's span: {lines:?}"));
    assert_eq!(logged["span"]["name"], "http");
    assert_eq!(logged["span"]["method"], "GET");
    assert_eq!(logged["span"]["route"], "/healthz");
}

/// `tagger models pull` with the settings a user has: the cache from HF_HOME, the Hub from
/// HF_ENDPOINT (here a fake one on a local port), and HF_HUB_OFFLINE.
fn pull_with_env(home: &Path, endpoint: &str, offline: bool) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagger"));
    command
        .args(["models", "pull", "tests/tiny-bert"])
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .env("TAGGER_LOG", "warn");
    if offline {
        command.env("HF_HUB_OFFLINE", "1");
    } else {
        command.env_remove("HF_HUB_OFFLINE");
    }
    let output = command.output().unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_pull_fills_the_cache_from_hf_endpoint_and_fails_at_once_offline() {
    use inference::encoder::fake_hub::{FakeHub, FakeRepo};
    let commit = "00112233445566778899aabbccddeeff00112233";
    let hub = FakeHub::start(vec![FakeRepo::tiny("tests/tiny-bert", commit).unwrap()])
        .await
        .unwrap();
    let endpoint = hub.url();

    let offline_home = tempfile::tempdir().unwrap();
    let (home, url) = (offline_home.path().to_path_buf(), endpoint.clone());
    let run = tokio::task::spawn_blocking(move || pull_with_env(&home, &url, true))
        .await
        .unwrap();
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("HF_HUB_OFFLINE"), "{}", run.stderr);
    assert!(run.stderr.contains("copy"), "{}", run.stderr);
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());

    let online_home = tempfile::tempdir().unwrap();
    let (home, url) = (online_home.path().to_path_buf(), endpoint);
    let run = tokio::task::spawn_blocking(move || pull_with_env(&home, &url, false))
        .await
        .unwrap();
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("at commit {commit}")),
        "{}",
        run.stdout
    );
    let repo_dir = online_home.path().join("hub/models--tests--tiny-bert");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        commit
    );
    assert!(
        repo_dir
            .join("snapshots")
            .join(commit)
            .join("model.safetensors")
            .is_file()
    );
}

#[test]
fn entities_rebuild_re_extracts_a_projects_tickets_and_refuses_an_unknown_project() {
    let database = TestDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "tickets.csv",
        b"subject,body,tags\nCrash E1234,On Firefox 121,Bug\nQuestion,How do I export?,Billing\n",
    );
    assert!(import(&database.url, &file, &[]).ok);
    // The import stored the entities already: nothing waited, two tickets done again.
    let rebuilt = tagger(
        &database.url,
        &["entities", "rebuild", "--project", "support"],
    );
    assert!(rebuilt.ok, "{}", rebuilt.stderr);
    assert!(
        rebuilt
            .stdout
            .contains("entities extracted again for 2 tickets in 1 projects"),
        "{}",
        rebuilt.stdout
    );
    let unknown = tagger(&database.url, &["entities", "rebuild", "--project", "Nope"]);
    assert!(!unknown.ok);
    assert!(unknown.stderr.contains("Nope"), "{}", unknown.stderr);
}
