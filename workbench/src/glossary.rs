//! Editing a project's glossary (its product and component names), one path for the admin
//! page and the API: check the terms, store them, write the audit log entry, and extract
//! the project's tickets' entities again in the background.

use datasets::store::prelude::*;
use datasets::text::glossary::Glossary;
use datasets::{Actor, AnyStore, AuditAction, Project, StoreError};

/// Replaces the project's glossary with `terms`; answers the terms as stored (trimmed,
/// each once) and whether anything changed.
pub async fn replace(
    store: &AnyStore,
    actor: &Actor,
    project: &Project,
    terms: &[String],
) -> Result<(Vec<String>, bool), StoreError> {
    let glossary = Glossary::new(terms)?;
    let before = store.glossary(project.id).await?;
    let changed = store.set_glossary(project.id, &glossary).await?;
    let after = glossary.terms().to_vec();
    if changed {
        crate::audit_trail::record(
            store,
            actor,
            AuditAction::ProjectGlossary,
            Some(project.id),
            format!("project {} {:?}", project.id, project.name.as_str()),
            serde_json::json!({ "from": before, "to": after }),
        )
        .await;
        // The tickets were stored with the old glossary's products.
        crate::entity_rebuild::spawn_now(store.clone());
    }
    Ok((after, changed))
}
