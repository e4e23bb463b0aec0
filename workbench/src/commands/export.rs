//! `tagger export`: a project's tickets and their tags to a file or standard output.

use crate::cli::ExportArgs;
use anyhow::Context;
use datasets::export::{Personal, export_project};
use datasets::import::FileFormat;
use datasets::store::prelude::*;
use datasets::{AnyStore, ProjectName};
use std::io::Write;

pub async fn run(store: &AnyStore, args: ExportArgs) -> anyhow::Result<()> {
    let name = ProjectName::parse(&args.project)?;
    let project = store.project_by_name(&name).await?.with_context(|| {
        format!(
            "project {:?} not found (see `tagger projects`)",
            args.project
        )
    })?;
    let format = args
        .format
        .or_else(|| args.file.as_deref().map(FileFormat::from_path))
        .unwrap_or(FileFormat::Csv);
    let personal = if args.unmasked {
        Personal::Kept
    } else {
        Personal::Masked
    };
    let count = match &args.file {
        Some(path) => {
            // Write beside the target and rename, so a failed export never leaves half a file.
            let partial = path.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            let count = export_project(
                store,
                project.id,
                format,
                personal,
                std::io::BufWriter::new(file),
            )
            .await?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            count
        }
        None => {
            let stdout = std::io::stdout();
            let count = export_project(store, project.id, format, personal, stdout.lock()).await?;
            std::io::stdout().flush()?;
            count
        }
    };
    eprintln!("exported {count} tickets of {:?}", project.name.as_str());
    if personal == Personal::Masked {
        eprintln!(
            "e-mail addresses, phone numbers and card numbers are masked; --unmasked keeps them"
        );
    }
    Ok(())
}
