//! The command line: `tagger [--database-url URL] [--data-dir DIR] <command>`.

use clap::{Args, Parser, Subcommand};
use datasets::LabelMode;
use datasets::import::{FileFormat, OnBadRow, SplitChoice};
use inference::ModelKind;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Tags support tickets automatically and learns from the people who correct it.
#[derive(Debug, Parser)]
#[command(name = "tagger", version)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: a SQLite file in the data directory).
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A TOML config file (default: ./tagger.toml when it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Directory of the embedded database and the model files [default: ./data]. Every
    /// command takes it, so `tagger users add` reaches the database `tagger demo` made.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the workbench on an embedded SQLite database with a demo project.
    Demo(ServeArgs),
    /// Run the server against the configured database.
    Serve(ServeArgs),
    /// Run queued training jobs against the configured database.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Import tickets (and their labels) from a CSV or JSON Lines file.
    Import(ImportArgs),
    /// Export a project's tickets with their tags as CSV or JSON Lines.
    Export(ExportArgs),
    /// List projects with their ticket and tag counts.
    Projects,
    /// Show or set the languages a project's model serves (others go to review).
    Languages(crate::commands::languages::LanguagesArgs),
    /// Stored ticket entities: extract them again (`rebuild`).
    #[command(subcommand)]
    Entities(crate::commands::entities::EntitiesCommand),
    /// Train a new model version on the project's labelled tickets and evaluate it.
    Train(TrainArgs),
    /// Evaluate a model version on the project's held-out tickets.
    Eval(EvalArgs),
    /// Tag a text with a model version, for a quick look.
    Predict(PredictArgs),
    /// Model versions: list, promote, roll back.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// API keys (per project with scopes, or instance-admin): create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Accounts of the web workbench: add, list.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Connectors to help desks (Zendesk, Jira, ServiceNow): add, list, remove.
    #[command(subcommand)]
    Connectors(crate::commands::connectors::ConnectorsCommand),
    /// Outgoing webhooks: URLs that receive a project's events, signed: add, list, remove,
    /// deliveries.
    #[command(subcommand)]
    Webhooks(crate::commands::WebhooksCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The project's versions with their status and held-out figures, and the promotion history.
    List {
        #[arg(long)]
        project: String,
    },
    /// Put a version in service; every running server swaps to it without dropping a request.
    Promote {
        #[arg(long)]
        project: String,
        /// The version id (see `tagger models list`).
        #[arg(long)]
        version: i64,
        /// Promote even if its macro-F1 is worse than the version in service by more than the guard margin.
        #[arg(long)]
        force: bool,
        /// Who promotes, for the history [default: $USER].
        #[arg(long)]
        actor: Option<String>,
    },
    /// Put back the version the one in service replaced.
    Rollback {
        #[arg(long)]
        project: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Download a sentence encoder from the Hugging Face Hub into the local cache.
    Pull(PullArgs),
}

/// `tagger models pull`: reads HF_HOME / HF_HUB_CACHE (the cache), HF_ENDPOINT (a mirror),
/// HF_TOKEN (gated models) and HF_HUB_OFFLINE (no network: fails at once).
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The model id on the Hub.
    #[arg(default_value = inference::encoder::hub::DEFAULT_ENCODER_REPO)]
    pub repo: String,
    /// A branch, tag or commit id [default: main].
    #[arg(long)]
    pub revision: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once and stored only as a hash.
    Create {
        /// The project the key acts on.
        #[arg(long, required_unless_present = "instance_admin")]
        project: Option<String>,
        /// What the key is for, e.g. "zendesk connector".
        #[arg(long)]
        name: String,
        /// What the key may do, comma-separated: tag, read, label, train, admin [default: all].
        #[arg(long, conflicts_with = "instance_admin")]
        scopes: Option<datasets::Scopes>,
        /// A key bound to no project that creates and lists projects.
        #[arg(long, conflicts_with = "project")]
        instance_admin: bool,
    },
    /// A project's keys with their scopes, or the instance-admin keys.
    List {
        #[arg(long, required_unless_present = "instance_admin")]
        project: Option<String>,
        #[arg(long, conflicts_with = "project")]
        instance_admin: bool,
    },
    Revoke {
        #[arg(long, required_unless_present = "instance_admin")]
        project: Option<String>,
        /// Revoke an instance-admin key.
        #[arg(long, conflicts_with = "project")]
        instance_admin: bool,
        /// The key's id (see `tagger keys list`).
        #[arg(long)]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account; the password comes from --password, --password-stdin or a prompt.
    Add {
        #[arg(long)]
        username: String,
        /// admin, ml-engineer or labeler.
        #[arg(long, default_value = "labeler")]
        role: String,
        /// The password (visible in the process list: prefer --password-stdin).
        #[arg(long)]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    List,
}

/// `--kind`'s values and their help, from the model kind registry.
fn model_kind_parser() -> impl clap::builder::TypedValueParser<Value = ModelKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(
        ModelKind::ALL
            .map(|kind| clap::builder::PossibleValue::new(kind.as_str()).help(kind.info().summary)),
    )
    .try_map(|name| name.parse::<ModelKind>())
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[arg(long)]
    pub project: String,
    /// The kind of model to train.
    #[arg(long, default_value_t, value_parser = model_kind_parser())]
    pub kind: ModelKind,
    /// Most passes over the training tickets (training stops early when validation stops improving).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// ngram: width of the embedding bag; 0 for a linear model over the n-grams.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Step size: Adagrad's for ngram (with --solver adagrad), Adam's for encoder-head.
    #[arg(long)]
    pub learning_rate: Option<f32>,
    /// ngram: drop n-grams seen in fewer training tickets.
    #[arg(long)]
    pub min_df: Option<u32>,
    /// ngram: model selection's budget in millions of weight updates (n-gram families, L2 and epochs chosen by cross-validation on the training tickets); 0 (the default) turns it off; 40000 is the suggested budget.
    #[arg(long)]
    pub selection_budget: Option<u64>,
    /// ngram: how the linear model is fitted: lbfgs (the regularised loss to convergence, its strength chosen on the validation tickets), adagrad (epochs with early stopping) or auto (lbfgs for one tag per ticket, adagrad for multi-label and grouped projects) [default: auto].
    #[arg(long, value_parser = ["auto", "lbfgs", "adagrad"])]
    pub solver: Option<String>,
    /// ngram with lbfgs: the loss weight C (as scikit-learn's C); chosen on the validation tickets when absent.
    #[arg(long)]
    pub loss_weight: Option<f64>,
    /// encoder-head: the sentence encoder, a Hugging Face model id (downloaded into the local cache on first use, see `tagger models pull`).
    #[arg(long)]
    pub encoder: Option<String>,
    /// encoder-head: threads for the encoder [default: 2].
    #[arg(long)]
    pub threads: Option<usize>,
    /// encoder-head: L2 penalty on the head's weights.
    #[arg(long)]
    pub l2: Option<f64>,
    /// encoder-head: windows of 128 tokens a long ticket is read in, averaged (1 cuts it at 128 tokens; 4 reads 512) [default: 1].
    #[arg(long)]
    pub windows: Option<usize>,
    /// finetune and setfit: word pieces of a ticket the encoder is tuned and served on, 8–512 (a longer ticket is cut there; time per step grows with it) [default: 64].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// setfit: most sentence pairs of the contrastive phase [default: 2000].
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Precision that tags applied without a person must reach on validation tickets.
    #[arg(long, default_value_t = trainer::run::DEFAULT_TARGET_PRECISION)]
    pub target_precision: f64,
    /// Print the evaluation as JSON instead of a table.
    #[arg(long, default_value = "table")]
    pub format: OutputFormat,
}

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub project: String,
    /// Model version id [default: the newest].
    #[arg(long)]
    pub version: Option<i64>,
    #[arg(long, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[arg(long)]
    pub project: String,
    /// Model version id [default: the newest].
    #[arg(long)]
    pub version: Option<i64>,
    /// The ticket text (subject and body). Long tickets: use `--file`.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the ticket text from a file, or from standard input with `-`.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Also run a training worker in this process (`demo` always does).
    #[arg(long)]
    pub with_worker: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Project to import into; created (with the tags found in the file) when it does not exist.
    #[arg(long)]
    pub project: String,
    /// The file to read.
    #[arg(long)]
    pub file: PathBuf,
    /// File format [default: from the extension: .jsonl/.ndjson is jsonl, else csv].
    #[arg(long)]
    pub format: Option<FileFormat>,
    /// Column holding ticket text; repeat it: the first is the subject, the rest the body.
    /// A single text column is the body.
    #[arg(long = "text-column", required = true)]
    pub text_columns: Vec<String>,
    /// Column holding the ticket's tags.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Splits the label column into several tags (e.g. ";"); without it the cell is one tag.
    #[arg(long)]
    pub label_separator: Option<String>,
    /// The column giving one tag group's tags, as GROUP=COLUMN (e.g. Priority=priority);
    /// repeat it for each group. A single-choice group's cell is one tag; a multi-choice
    /// group's cell is split by --label-separator. A group the project lacks is created
    /// (single-choice) when tags may be created, else the import stops before writing.
    #[arg(long = "group-column", value_name = "GROUP=COLUMN")]
    pub group_columns: Vec<datasets::import::GroupColumn>,
    /// Column with the ticket's id in its source system [default: FILE-NAME:LINE].
    #[arg(long)]
    pub id_column: Option<String>,
    /// Name of the system the tickets come from.
    #[arg(long, default_value = "import")]
    pub source: String,
    /// Put every ticket in the train or test split, or split them (seeded, stratified by tag).
    #[arg(long, default_value = "auto")]
    pub split: SplitChoice,
    /// What to do with a bad row: abort (import nothing) or skip (report it, import the rest).
    #[arg(long, default_value = "abort")]
    pub on_bad_row: OnBadRow,
    /// Add tags that an existing project does not have yet.
    #[arg(long)]
    pub create_tags: bool,
    /// Label mode of a new project [default: multi with --label-separator, else single].
    #[arg(long)]
    pub label_mode: Option<LabelMode>,
    /// Seed of the automatic split.
    #[arg(long, default_value_t = datasets::split::DEFAULT_SPLIT_SEED)]
    pub seed: u64,
    /// Share of tickets the automatic split holds out for testing.
    #[arg(long, default_value_t = datasets::split::DEFAULT_TEST_FRACTION)]
    pub test_fraction: f64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Project to export.
    #[arg(long)]
    pub project: String,
    /// csv or jsonl [default: from --file's extension, else csv].
    #[arg(long)]
    pub format: Option<FileFormat>,
    /// Write here instead of standard output.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Keep e-mail addresses, phone numbers and card numbers as stored (they are masked
    /// unless this is given): for a backup or a move to another instance.
    #[arg(long)]
    pub unmasked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn import_takes_repeated_text_columns() {
        let cli = Cli::try_parse_from([
            "tagger",
            "import",
            "--project",
            "b77",
            "--file",
            "x.csv",
            "--text-column",
            "subject",
            "--text-column",
            "body",
            "--label-column",
            "category",
            "--split",
            "train",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("not import");
        };
        assert_eq!(args.text_columns, ["subject", "body"]);
        assert_eq!(args.split, SplitChoice::Train);
    }

    #[test]
    fn import_takes_repeated_group_columns_and_refuses_a_malformed_one() {
        let parse = |group: &str| {
            Cli::try_parse_from([
                "tagger",
                "import",
                "--project",
                "b77",
                "--file",
                "x.csv",
                "--text-column",
                "body",
                "--group-column",
                "Priority=priority",
                "--group-column",
                group,
            ])
        };
        let Command::Import(args) = parse("Type = kind").unwrap().command else {
            panic!("not import");
        };
        let given: Vec<(&str, &str)> = args
            .group_columns
            .iter()
            .map(|g| (g.group.as_str(), g.column.as_str()))
            .collect();
        assert_eq!(given, [("Priority", "priority"), ("Type", "kind")]);
        for bad in ["Type", "Type=", "=kind"] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
