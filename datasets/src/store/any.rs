//! `AnyStore`: the backend chosen at run time from the database URL's scheme.

use super::{
    ImportCounts, ImportRow, ImportWriter, PgImport, PgStore, SchemaStore, SqliteImport,
    SqliteStore, Store,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::TagId;
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project};
use std::collections::HashMap;

/// The store behind a `sqlite://` or `postgres://` URL.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects to the database the URL names; does not migrate.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::connect(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(redact_password(url)))
        }
    }

    /// Connects and applies migrations: what every command does before it starts.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// `sqlite` or `postgres`, for logs and the status page.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A URL with its password replaced, safe for error messages and logs.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// An import into whichever backend the store is.
pub enum AnyImport {
    Sqlite(SqliteImport),
    Postgres(PgImport),
}

macro_rules! dispatch_import {
    ($self:ident, $import:ident => $call:expr) => {
        match $self {
            AnyImport::Sqlite($import) => $call,
            AnyImport::Postgres($import) => $call,
        }
    };
}

impl ImportWriter for AnyImport {
    fn project(&self) -> &Project {
        dispatch_import!(self, import => import.project())
    }

    fn tags(&self) -> &HashMap<String, TagId> {
        dispatch_import!(self, import => import.tags())
    }

    async fn create_tag(&mut self, name: &TagName) -> StoreResult<TagId> {
        dispatch_import!(self, import => import.create_tag(name).await)
    }

    fn groups(&self) -> &[crate::tag_group::TagGroup] {
        dispatch_import!(self, import => import.groups())
    }

    fn tag_groups(&self) -> &HashMap<TagId, crate::ids::TagGroupId> {
        dispatch_import!(self, import => import.tag_groups())
    }

    async fn create_tag_group(
        &mut self,
        group: &crate::tag_group::NewTagGroup,
    ) -> StoreResult<crate::tag_group::TagGroup> {
        dispatch_import!(self, import => import.create_tag_group(group).await)
    }

    async fn create_tag_in(
        &mut self,
        name: &TagName,
        group: crate::ids::TagGroupId,
    ) -> StoreResult<TagId> {
        dispatch_import!(self, import => import.create_tag_in(name, group).await)
    }

    async fn write(&mut self, rows: Vec<ImportRow>) -> StoreResult<()> {
        dispatch_import!(self, import => import.write(rows).await)
    }

    async fn commit(self) -> StoreResult<ImportCounts> {
        dispatch_import!(self, import => import.commit().await)
    }
}

/// The one method forwarded by hand: its answer is wrapped in `AnyImport`. Every capability's
/// methods are forwarded by `store_capability!`.
impl Store for AnyStore {
    type Import = AnyImport;

    async fn begin_import(
        &self,
        project: &ProjectName,
        create: Option<LabelMode>,
        set_by: &str,
    ) -> StoreResult<AnyImport> {
        match self {
            AnyStore::Sqlite(store) => Ok(AnyImport::Sqlite(
                store.begin_import(project, create, set_by).await?,
            )),
            AnyStore::Postgres(store) => Ok(AnyImport::Postgres(
                store.begin_import(project, create, set_by).await?,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_password("postgres://user:secret@db:5432/x"),
            "postgres://user:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://user@db/x"),
            "postgres://user@db/x"
        );
    }
}
