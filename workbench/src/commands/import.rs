//! `tagger import`: a CSV or JSON Lines file into a project.

use crate::cli::ImportArgs;
use crate::config::Config;
use anyhow::Context;
use datasets::AnyStore;
use datasets::ProjectName;
use datasets::import::{ColumnMap, FileFormat, ImportOptions, import_file};
use inference::service::{BatchConfig, TaggingService};

pub async fn run(store: &AnyStore, config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let project = ProjectName::parse(&args.project)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let format = args
        .format
        .unwrap_or_else(|| FileFormat::from_path(&args.file));
    let file_name = args
        .file
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
    let mut options = ImportOptions::new(
        project,
        format,
        ColumnMap {
            text: args.text_columns,
            label: args.label_column,
            id: args.id_column,
            groups: Vec::new(),
        },
        &file_name,
    );
    options.label_separator = args.label_separator;
    options.group_columns = args.group_columns;
    options.source = args.source;
    options.split = args.split;
    options.on_bad_row = args.on_bad_row;
    options.create_tags = args.create_tags;
    options.label_mode = args.label_mode;
    options.seed = args.seed;
    options.test_fraction = args.test_fraction;

    let started = std::time::Instant::now();
    // New tickets are tagged by the project's model in service, as the API's are; the model
    // is loaded only if the project has one.
    let tagging = TaggingService::start(
        BatchConfig::default(),
        super::models::open_artifacts(config)?,
    );
    let verdicts = crate::ingest::ServiceVerdicts {
        store,
        tagging: &tagging,
    };
    let report = import_file(
        store,
        std::io::BufReader::with_capacity(1 << 20, file),
        &options,
        &verdicts,
    )
    .await
    .with_context(|| format!("import of {} failed", args.file.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    for problem in &report.skipped {
        eprintln!("skipped line {}: {}", problem.line, problem.reason);
    }
    if report.skipped_count > report.skipped.len() as u64 {
        eprintln!(
            "… and {} more skipped lines",
            report.skipped_count - report.skipped.len() as u64
        );
    }
    println!(
        "imported {} rows into {:?}{} in {:.1} s ({:.0} rows/s): {} new, {} updated, {} labels, {} train / {} test, {} skipped{}",
        report.rows_read - report.skipped_count,
        report.project,
        if report.project_created {
            " (new project)"
        } else {
            ""
        },
        seconds,
        report.rows_read as f64 / seconds.max(1e-9),
        report.created,
        report.updated,
        report.labels,
        report.train,
        report.test,
        report.skipped_count,
        if report.tags_created.is_empty() {
            String::new()
        } else {
            format!("; new tags: {}", report.tags_created.join(", "))
        }
    );
    if !report.groups_created.is_empty() {
        println!(
            "new single-choice tag groups: {} (change them on the Taxonomy page)",
            report.groups_created.join(", ")
        );
    }
    Ok(())
}
