//! The batch side of the one ingest path. A file import, the browser's upload and the demo
//! write tickets in batches through the store's `ImportWriter`; before each batch is written
//! the tickets are shown to the project's model in service, and each ticket is stored
//! together with the model's verdict in the batch's transaction, as a ticket from the API is
//! (`workbench::ingest`). The verdicts come from the workbench, which holds the models:
//! this crate only defines the seam (`Verdicts`), so it needs no model to write.

use crate::error::StoreError;
use crate::ids::{ModelVersionId, TagId};
use crate::project::Project;
use crate::store::{ImportRow, ImportWriter};
use crate::ticket::NewTicket;
use std::future::Future;

/// The tags a model version applied to one ticket, with their probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVerdict {
    pub version: ModelVersionId,
    pub tags: Vec<(TagId, f32)>,
}

/// Why a batch could not be tagged (the model failed; a project without a model is not an
/// error, see `Verdicts`).
#[derive(Debug, thiserror::Error)]
#[error("tagging failed: {0}")]
pub struct VerdictError(pub String);

/// Gives the verdicts of a project's model in service.
pub trait Verdicts: Sync {
    /// One verdict per ticket, in order; `None` when the project has no model in service,
    /// and its tickets are stored untagged (they are the training data of its first model).
    fn verdicts(
        &self,
        project: &Project,
        tickets: &[NewTicket],
    ) -> impl Future<Output = Result<Option<Vec<ModelVerdict>>, VerdictError>> + Send;
}

/// For a source that stores without tagging: the demo, whose project has no model yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Untagged;

impl Verdicts for Untagged {
    async fn verdicts(
        &self,
        _project: &Project,
        _tickets: &[NewTicket],
    ) -> Result<Option<Vec<ModelVerdict>>, VerdictError> {
        Ok(None)
    }
}

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Tagging(#[from] VerdictError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tags a batch with the project's model in service and writes it, each ticket with its
/// imported labels and its verdict, in the writer's transaction.
pub async fn write_batch<W: ImportWriter, V: Verdicts>(
    writer: &mut W,
    mut rows: Vec<ImportRow>,
    verdicts: &V,
) -> Result<(), BatchError> {
    if rows.is_empty() {
        return Ok(());
    }
    let tickets: Vec<NewTicket> = rows.iter().map(|row| row.ticket.clone()).collect();
    if let Some(verdicts) = verdicts.verdicts(writer.project(), &tickets).await? {
        if verdicts.len() != rows.len() {
            return Err(VerdictError(format!(
                "{} verdicts for {} tickets",
                verdicts.len(),
                rows.len()
            ))
            .into());
        }
        for (row, verdict) in rows.iter_mut().zip(verdicts) {
            row.verdict = Some(verdict);
        }
    }
    writer.write(rows).await?;
    Ok(())
}
