//! `tagger languages`: the languages a project's model serves. A ticket detected in another
//! goes to review as `unsupported_language` instead of being tagged; the same setting as
//! `PUT /v1/projects/{project}/languages`, applied by running servers on their next look.

use anyhow::Context;
use datasets::store::prelude::*;
use datasets::{Actor, AnyStore, AuditAction, Language};

#[derive(Debug, clap::Args)]
pub struct LanguagesArgs {
    /// The project's name.
    #[arg(long)]
    pub project: String,
    /// Serve only these languages (ISO 639-3 codes, comma-separated, e.g. `eng,deu`).
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub set: Option<Vec<String>>,
    /// Serve every language again (the default).
    #[arg(long)]
    pub all: bool,
}

pub async fn run(store: &AnyStore, args: LanguagesArgs) -> anyhow::Result<()> {
    let project = super::find_project(store, &args.project).await?;
    let wanted = match (&args.set, args.all) {
        (Some(codes), _) => Some(parse_codes(codes)?),
        (None, true) => Some(Vec::new()),
        (None, false) => None,
    };
    let project = match wanted {
        None => project,
        Some(languages) => {
            let before = project.languages.clone();
            let changed = store
                .set_project_languages(project.id, &languages)
                .await
                .context("cannot store the project's languages")?;
            if before != changed.languages {
                crate::audit_trail::record(
                    store,
                    &Actor::Cli(std::env::var("USER").ok()),
                    AuditAction::ProjectLanguages,
                    Some(changed.id),
                    format!("project {} {:?}", changed.id, changed.name.as_str()),
                    serde_json::json!({ "from": before, "to": changed.languages }),
                )
                .await;
            }
            changed
        }
    };
    if project.languages.is_empty() {
        println!("project {:?} serves every language", project.name.as_str());
    } else {
        let names: Vec<String> = project
            .languages
            .iter()
            .map(|l| format!("{} ({})", l.english_name(), l.code()))
            .collect();
        println!(
            "project {:?} serves {}; tickets in other languages go to review",
            project.name.as_str(),
            names.join(", ")
        );
    }
    Ok(())
}

/// The codes as languages, sorted and without repeats; an unknown code names the known ones'
/// form.
fn parse_codes(codes: &[String]) -> anyhow::Result<Vec<Language>> {
    let mut languages = codes
        .iter()
        .filter(|code| !code.trim().is_empty())
        .map(|code| Language::parse(code).map_err(|error| anyhow::anyhow!(error)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if languages.is_empty() {
        anyhow::bail!("--set needs at least one language code (or use --all)");
    }
    languages.sort_by_key(|l| l.code());
    languages.dedup();
    Ok(languages)
}
