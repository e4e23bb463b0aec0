//! Layered configuration: built-in defaults that run the demo, then a TOML file, then
//! `TAGGER_*` environment variables, then command-line flags.

use crate::logging::LogFormat;
use datasets::store::any::redact_password;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use inference::artifact_store::{ArtifactStore, ArtifactStoreError, StoreUrl};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "tagger.toml";

/// 32 MiB: the import page holds an upload in memory while it imports; BANKING77's 10,003
/// tickets are under 1 MiB as CSV.
pub const DEFAULT_UPLOAD_MAX_BYTES: usize = 32 << 20;

/// How many tickets a promotion tags again by default: every ticket of a small project, and a
/// job of a minute or less for a large one (the newest tickets are the ones people look at).
pub const DEFAULT_RETAG_AFTER_PROMOTION: u32 = 5000;

/// Everything the binary can be configured with.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://…`; when unset, a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Where the embedded database and model files live.
    pub data_dir: PathBuf,
    /// Where model versions' files are kept (`TAGGER_ARTIFACT_STORE`): unset, in
    /// `<data_dir>/models`; a directory (or `file://` URL), there; `s3://bucket/prefix`, in
    /// an S3-compatible bucket reached with the standard `AWS_*` variables, each process
    /// keeping a hash-checked copy in `<data_dir>/models`.
    pub artifact_store: Option<String>,
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// A `tracing` filter, e.g. `info` or `workbench=debug,sqlx=warn` (`TAGGER_LOG`; the
    /// only filter variable: `RUST_LOG` is not read).
    pub log: String,
    /// `text` for people, `json` (one object per line) for log collectors.
    pub log_format: LogFormat,
    /// The most tickets one batch request may carry.
    pub max_batch: usize,
    /// Refuse promoting a version whose held-out macro-F1 is worse than the promoted one's by
    /// more than this (unless forced).
    pub promotion_guard_margin: f64,
    /// How often a server checks for versions promoted by other processes, in seconds.
    pub model_watch_seconds: f64,
    /// Mark the web session cookie `Secure`: set it when TLS terminates in front of tagger.
    pub secure_cookies: bool,
    /// `serve` also runs a training worker in-process (`demo` always does).
    pub with_worker: bool,
    /// How often a worker tells the queue it is alive, in seconds; one silent for three of
    /// these is taken for dead and its job handed to another worker.
    pub worker_heartbeat_seconds: f64,
    /// Retrain (`ngram`, promoted when the guard allows) after this many tickets were
    /// labelled since the review queue was last scored; 0 turns it off.
    pub retrain_after_labels: u64,
    /// After a promotion (a person's, the retraining policy's, the demo's first model), tag
    /// this many of the newest tickets no person labelled with the new version, in a
    /// background job, so its suggestions reach the review page, the ticket list and the
    /// dashboard; 0 leaves earlier tags as they are.
    pub retag_after_promotion: u32,
    /// The most password hashes (argon2id, 19 MiB each) computed at once, for logins and
    /// passwords set on the admin page; 0 means one per CPU. Beyond it a login waits half a
    /// second for a turn, then is answered 503 with `Retry-After`.
    pub max_concurrent_password_hashes: usize,
    /// The key that seals connectors' credentials at rest: 32 bytes as 64 hex digits or
    /// base64 (`TAGGER_ENCRYPTION_KEY`). When unset, a key is generated on first use and kept
    /// in `<data_dir>/encryption.key` (fine for a laptop; servers set it from a secret store).
    pub encryption_key: Option<String>,
    /// The largest ticket file the workbench's import page accepts, in bytes; larger files
    /// are refused with 413 (`tagger import` streams files of any size).
    pub upload_max_bytes: usize,
    /// Keep e-mail addresses, phone numbers and card numbers in log lines
    /// (`TAGGER_LOG_PERSONAL_DATA`); by default they are masked (`[email]`, `[phone]`,
    /// `[card]`), as exports mask them unless `--unmasked` is given.
    pub log_personal_data: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: None,
            data_dir: PathBuf::from("data"),
            artifact_store: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: "info,sqlx=warn".into(),
            log_format: LogFormat::default(),
            max_batch: 1000,
            promotion_guard_margin: 0.02,
            model_watch_seconds: 2.0,
            secure_cookies: false,
            with_worker: false,
            worker_heartbeat_seconds: 10.0,
            retrain_after_labels: 50,
            retag_after_promotion: DEFAULT_RETAG_AFTER_PROMOTION,
            max_concurrent_password_hashes: 0,
            encryption_key: None,
            upload_max_bytes: DEFAULT_UPLOAD_MAX_BYTES,
            log_personal_data: false,
        }
    }
}

// The database URL may hold a password: never print it.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_password),
            )
            .field("data_dir", &self.data_dir)
            .field("artifact_store", &self.artifact_store)
            .field("addr", &self.addr)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("max_batch", &self.max_batch)
            .field("promotion_guard_margin", &self.promotion_guard_margin)
            .field("model_watch_seconds", &self.model_watch_seconds)
            .field("secure_cookies", &self.secure_cookies)
            .field("with_worker", &self.with_worker)
            .field("worker_heartbeat_seconds", &self.worker_heartbeat_seconds)
            .field("retrain_after_labels", &self.retrain_after_labels)
            .field("retag_after_promotion", &self.retag_after_promotion)
            .field(
                "max_concurrent_password_hashes",
                &self.max_concurrent_password_hashes,
            )
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .field("upload_max_bytes", &self.upload_max_bytes)
            .field("log_personal_data", &self.log_personal_data)
            .finish()
    }
}

impl Config {
    /// Defaults < the TOML file (when it exists) < `TAGGER_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(Box::new(figment::Error::from(format!(
                        "config file {} does not exist",
                        path.display()
                    ))));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE)),
        }
        let config: Self = figment
            .merge(Env::prefixed("TAGGER_"))
            .extract()
            .map_err(Box::new)?;
        config
            .check()
            .map_err(|reason| Box::new(figment::Error::from(reason)))?;
        Ok(config)
    }

    /// Refuses values the server would misbehave on rather than fail on: TOML and the
    /// environment can say `inf`, `nan` or `-1` for a number of seconds, and a duration made
    /// from them panics or never fires.
    pub fn check(&self) -> Result<(), String> {
        let within = |key: &str, value: f64, low: f64, high: f64| {
            if value.is_finite() && (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(format!("{key} = {value} is outside {low}..={high}"))
            }
        };
        within("model_watch_seconds", self.model_watch_seconds, 0.1, 3600.0)?;
        within(
            "worker_heartbeat_seconds",
            self.worker_heartbeat_seconds,
            0.2,
            3600.0,
        )?;
        within(
            "promotion_guard_margin",
            self.promotion_guard_margin,
            0.0,
            1.0,
        )?;
        if self.max_batch == 0 {
            return Err("max_batch = 0: a batch must be allowed at least one ticket".into());
        }
        if let Some(url) = &self.artifact_store {
            StoreUrl::parse(url).map_err(|error| format!("artifact_store: {error}"))?;
        }
        Ok(())
    }

    /// The artifact store in force, its S3 client set up from this process's `AWS_*`
    /// environment variables.
    pub fn artifact_store(&self) -> Result<ArtifactStore, ArtifactStoreError> {
        // Variables that are not Unicode cannot be AWS settings: skipped, not a panic.
        let env = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
        self.artifact_store_with(env)
    }

    /// `artifact_store` with the `AWS_*` settings given (tests pass a local server's).
    pub fn artifact_store_with(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ArtifactStore, ArtifactStoreError> {
        // Absolute: a version records the directory its files were written to.
        let absolute = |path: PathBuf| {
            std::path::absolute(&path).map_err(|source| ArtifactStoreError::Io { path, source })
        };
        let models_dir = absolute(self.data_dir.join("models"))?;
        let Some(url) = &self.artifact_store else {
            return Ok(ArtifactStore::local(models_dir));
        };
        match StoreUrl::parse(url)? {
            StoreUrl::Directory(dir) => Ok(ArtifactStore::local(absolute(dir)?)),
            StoreUrl::S3 { .. } => ArtifactStore::s3(url, models_dir, env),
        }
    }

    /// How often a server looks for versions other processes promoted.
    pub fn model_watch(&self) -> Duration {
        Duration::from_secs_f64(self.model_watch_seconds.clamp(0.1, 3600.0))
    }

    /// How often a worker tells the queue it is alive.
    pub fn worker_heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.worker_heartbeat_seconds.clamp(0.2, 3600.0))
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tagger.db").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn file_overrides_defaults_and_environment_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "addr = \"0.0.0.0:9000\"\ndata_dir = \"/srv/tagger\"\nlog = \"debug\"",
            )?;
            jail.set_env("TAGGER_LOG", "warn");
            let config = Config::load(Some(Path::new("custom.toml"))).map_err(|e| *e)?;
            assert_eq!(config.addr.port(), 9000);
            assert_eq!(config.log, "warn");
            assert_eq!(config.database_url(), "sqlite:///srv/tagger/tagger.db");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn the_artifact_store_comes_from_the_environment_and_defaults_to_the_data_directory() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TAGGER_DATA_DIR", "/srv/tagger");
            let local = Config::load(None).map_err(|e| *e)?;
            let store = local
                .artifact_store_with(Vec::new())
                .map_err(|e| e.to_string())?;
            assert_eq!(store.url(), None);
            assert_eq!(store.models_dir(), Path::new("/srv/tagger/models"));

            jail.set_env("TAGGER_ARTIFACT_STORE", "s3://models/tagger/");
            let remote = Config::load(None).map_err(|e| *e)?;
            let env = [
                (
                    "AWS_ENDPOINT_URL".to_string(),
                    "http://127.0.0.1:9".to_string(),
                ),
                ("AWS_REGION".to_string(), "eu-west-1".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ];
            let store = remote.artifact_store_with(env).map_err(|e| e.to_string())?;
            assert_eq!(store.url().as_deref(), Some("s3://models/tagger"));
            // Fetched copies are kept where local versions are.
            assert_eq!(store.models_dir(), Path::new("/srv/tagger/models"));
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_given_explicitly_is_an_error() {
        let error = Config::load(Some(Path::new("/nonexistent/tagger.toml"))).unwrap_err();
        assert!(error.to_string().contains("does not exist"));
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let config = Config {
            database_url: Some("postgres://u:hunter2@db/x".into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    use proptest::prelude::*;

    /// A value TOML can hold for a key: numbers of every kind (including `inf` and `nan`),
    /// strings, booleans, arrays.
    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|x| format!("{x:?}")),
            prop::sample::select(vec![
                "inf",
                "-inf",
                "nan",
                "0",
                "-1",
                "0.0",
                "1e308",
                "true",
                "[]",
                "{}",
                "\"s3://models/tagger\"",
                "\"s3://x\"",
                "\"file://\""
            ])
            .prop_map(str::to_string),
            "[ -~]{0,20}".prop_map(|s| format!("{s:?}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a config file says, loading it refuses it with a message naming what is
        /// wrong, or gives a configuration every part of the server can use as it is.
        #[test]
        fn any_config_file_is_refused_or_usable(
            lines in prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "database_url", "data_dir", "artifact_store", "addr", "log", "log_format", "max_batch",
                        "promotion_guard_margin", "model_watch_seconds", "secure_cookies",
                        "with_worker", "worker_heartbeat_seconds", "retrain_after_labels",
                        "retag_after_promotion", "max_concurrent_password_hashes", "encryption_key",
                        "unknown_key",
                    ]),
                    toml_value(),
                ),
                0..6,
            ),
            garbage in prop::option::of("\\PC{0,40}"),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tagger.toml");
            let mut text: String = lines
                .iter()
                .map(|(key, value)| format!("{key} = {value}\n"))
                .collect();
            if let Some(garbage) = garbage {
                text.push_str(&garbage);
            }
            std::fs::write(&path, &text).unwrap();
            match Config::load(Some(&path)) {
                Err(error) => prop_assert!(!error.to_string().is_empty()),
                Ok(config) => {
                    prop_assert!(config.check().is_ok());
                    prop_assert!(config.model_watch() >= Duration::from_millis(100));
                    prop_assert!(config.worker_heartbeat() >= Duration::from_millis(200));
                    prop_assert!(config.max_batch >= 1);
                    prop_assert!(config.artifact_store_with(Vec::new()).is_ok());
                    let _ = config.database_url();
                }
            }
        }
    }

    #[test]
    fn seconds_that_make_no_duration_are_refused_with_the_key() {
        for (key, value) in [
            ("model_watch_seconds", "inf"),
            ("model_watch_seconds", "nan"),
            ("worker_heartbeat_seconds", "-1.0"),
            ("worker_heartbeat_seconds", "1e300"),
            ("promotion_guard_margin", "2.0"),
            ("max_batch", "0"),
            ("artifact_store", "\"gs://models/tagger\""),
            ("artifact_store", "\"s3://No_Such_Bucket\""),
            ("artifact_store", "\"\""),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tagger.toml");
            std::fs::write(&path, format!("{key} = {value}\n")).unwrap();
            let error = Config::load(Some(&path)).unwrap_err().to_string();
            assert!(error.contains(key), "{key} = {value}: {error}");
        }
    }
}
