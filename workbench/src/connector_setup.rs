//! Setting a connector up: the checks and the sealing that `tagger connectors add` and the
//! workbench's Connectors page share, so a connector made either way is the same connector.

use crate::credentials::{CredentialError, CredentialKey, Credentials};
use connectors::System;
use datasets::ProjectId;
use datasets::connector::{Connector, ConnectorName, ConnectorSettings, NewConnector};

/// The ServiceNow table a connector reads when none is given.
pub const DEFAULT_SERVICENOW_TABLE: &str = "incident";

/// What a person typed to create a connector (the command line's flags or the page's form).
pub struct ConnectorSpec {
    pub system: System,
    pub name: String,
    pub base_url: String,
    pub webhook_secret: String,
    pub user: Option<String>,
    pub token: Option<String>,
    pub table: Option<String>,
    pub write_back: bool,
    /// Whether people's corrections are written back too (on when unset).
    pub corrections: Option<bool>,
    pub field: Option<String>,
    pub requests_per_minute: Option<u32>,
    /// Fields whose values are imported as labels too (`connectors::importable_fields`).
    pub import_fields: Vec<String>,
}

/// Why a connector cannot be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
}

/// The most requests a minute a connector may be set to send.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 100_000;

/// Checks what was typed and seals the secrets with the server's key.
pub fn new_connector(
    project: ProjectId,
    spec: ConnectorSpec,
    key: &CredentialKey,
) -> Result<NewConnector, SetupError> {
    let name = ConnectorName::parse(&spec.name).map_err(|e| SetupError::Invalid(e.to_string()))?;
    if spec.webhook_secret.trim().is_empty() {
        return Err(SetupError::Invalid(
            "the webhook secret is empty: the help desk must sign its webhooks".into(),
        ));
    }
    if spec.user.is_some() != spec.token.is_some() {
        return Err(SetupError::Invalid(
            "an API user and an API token go together: give both or neither".into(),
        ));
    }
    let table = table(spec.system, spec.table)?;
    let field = field(spec.system, spec.field)?;
    let requests_per_minute = requests_per_minute(spec.requests_per_minute)?;
    let import_fields = import_fields(spec.system, spec.import_fields)?;
    let credentials = Credentials {
        webhook_secret: spec.webhook_secret,
        user: spec.user,
        token: spec.token,
    };
    let sealed_credentials = key.seal(name.as_str(), &credentials)?;
    Ok(NewConnector {
        project_id: project,
        name,
        system: spec.system,
        base_url: spec.base_url.trim().to_string(),
        settings: ConnectorSettings {
            table,
            write_back: spec.write_back,
            field,
            requests_per_minute,
            mapping: Default::default(),
            corrections: spec.corrections,
            import_fields,
        },
        sealed_credentials,
    })
}

/// What a person may change on an existing connector; `None` keeps what is stored. Secrets
/// are replaced only when typed again: they are never shown back to be edited.
#[derive(Default)]
pub struct ConnectorEdit {
    pub base_url: Option<String>,
    pub write_back: Option<bool>,
    pub corrections: Option<bool>,
    pub field: Option<String>,
    pub requests_per_minute: Option<u32>,
    pub import_fields: Option<Vec<String>>,
    pub webhook_secret: Option<String>,
    pub user: Option<String>,
    pub token: Option<String>,
}

/// The connector with the edit applied, its credentials sealed again if any changed.
pub fn edited(
    mut connector: Connector,
    edit: ConnectorEdit,
    key: &CredentialKey,
) -> Result<Connector, SetupError> {
    if let Some(base_url) = edit.base_url {
        connector.base_url = base_url.trim().to_string();
    }
    if let Some(write_back) = edit.write_back {
        connector.settings.write_back = write_back;
    }
    if let Some(corrections) = edit.corrections {
        connector.settings.corrections = Some(corrections);
    }
    if edit.field.is_some() {
        connector.settings.field = field(connector.system, edit.field)?;
    }
    if edit.requests_per_minute.is_some() {
        connector.settings.requests_per_minute = requests_per_minute(edit.requests_per_minute)?;
    }
    if let Some(fields) = edit.import_fields {
        connector.settings.import_fields = import_fields(connector.system, fields)?;
    }
    if edit.webhook_secret.is_some() || edit.user.is_some() || edit.token.is_some() {
        let mut credentials = key.open(connector.name.as_str(), &connector.sealed_credentials)?;
        if let Some(secret) = edit.webhook_secret {
            if secret.trim().is_empty() {
                return Err(SetupError::Invalid("the webhook secret is empty".into()));
            }
            credentials.webhook_secret = secret;
        }
        if let Some(user) = edit.user {
            credentials.user = Some(user);
        }
        if let Some(token) = edit.token {
            credentials.token = Some(token);
        }
        if credentials.user.is_some() != credentials.token.is_some() {
            return Err(SetupError::Invalid(
                "an API user and an API token go together: give both".into(),
            ));
        }
        connector.sealed_credentials = key.seal(connector.name.as_str(), &credentials)?;
    }
    Ok(connector)
}

/// A backfill's start: a day (midnight UTC) or an RFC 3339 time.
pub fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&chrono::Utc))
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

fn table(system: System, table: Option<String>) -> Result<Option<String>, SetupError> {
    match (system, table) {
        (System::ServiceNow, table) => Ok(Some(
            table
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| DEFAULT_SERVICENOW_TABLE.to_string()),
        )),
        (_, Some(_)) => Err(SetupError::Invalid(
            "a table is for ServiceNow connectors only".into(),
        )),
        (_, None) => Ok(None),
    }
}

fn field(system: System, field: Option<String>) -> Result<Option<String>, SetupError> {
    match (system, field) {
        (System::ServiceNow, Some(field)) => {
            let field = field.trim().to_string();
            let valid = !field.is_empty()
                && field.len() <= 80
                && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || field.starts_with("sys_") {
                return Err(SetupError::Invalid(format!(
                    "the field {field:?} is not a writable ServiceNow field name \
                     (letters, digits and '_', not a sys_ field)"
                )));
            }
            Ok(Some(field))
        }
        (_, Some(_)) => Err(SetupError::Invalid(
            "a write-back field is for ServiceNow connectors only".into(),
        )),
        (_, None) => Ok(None),
    }
}

/// Field names as typed (trimmed, lower-case, duplicates dropped), each one the system has.
fn import_fields(system: System, fields: Vec<String>) -> Result<Vec<String>, SetupError> {
    let known = connectors::importable_fields(system);
    let mut chosen: Vec<String> = Vec::new();
    for field in fields {
        let field = field.trim().to_lowercase();
        if field.is_empty() || chosen.contains(&field) {
            continue;
        }
        if !known.contains(&field.as_str()) {
            return Err(SetupError::Invalid(if known.is_empty() {
                format!("{system} connectors import their tags only, not {field:?}")
            } else {
                format!(
                    "{system} has no importable field {field:?} (known: {})",
                    known.join(", ")
                )
            }));
        }
        chosen.push(field);
    }
    Ok(chosen)
}

fn requests_per_minute(value: Option<u32>) -> Result<Option<u32>, SetupError> {
    match value {
        Some(n) if n == 0 || n > MAX_REQUESTS_PER_MINUTE => Err(SetupError::Invalid(format!(
            "requests a minute must be between 1 and {MAX_REQUESTS_PER_MINUTE}"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key() -> CredentialKey {
        CredentialKey::parse(&"22".repeat(32)).unwrap()
    }

    fn spec(system: System) -> ConnectorSpec {
        ConnectorSpec {
            system,
            name: "desk".into(),
            base_url: " https://acme.example ".into(),
            webhook_secret: "s3cret".into(),
            user: Some("bot@acme.example".into()),
            token: Some("tok".into()),
            table: None,
            write_back: true,
            corrections: None,
            field: None,
            requests_per_minute: None,
            import_fields: Vec::new(),
        }
    }

    #[test]
    fn import_fields_are_those_the_system_has() {
        let mut jira = spec(System::Jira);
        jira.import_fields = vec![" IssueType".into(), "components".into(), "issuetype".into()];
        let made = new_connector(ProjectId(1), jira, &key()).unwrap();
        assert_eq!(made.settings.import_fields, ["issuetype", "components"]);
        let mut zendesk = spec(System::Zendesk);
        zendesk.import_fields = vec!["priority".into()];
        assert!(new_connector(ProjectId(1), zendesk, &key()).is_err());
        let mut unknown = spec(System::Jira);
        unknown.import_fields = vec!["assignee".into()];
        assert!(new_connector(ProjectId(1), unknown, &key()).is_err());
    }

    #[test]
    fn servicenow_gets_its_default_table_and_others_refuse_one() {
        let made = new_connector(ProjectId(1), spec(System::ServiceNow), &key()).unwrap();
        assert_eq!(made.settings.table.as_deref(), Some("incident"));
        assert_eq!(made.base_url, "https://acme.example");
        let mut jira = spec(System::Jira);
        jira.table = Some("incident".into());
        assert!(matches!(
            new_connector(ProjectId(1), jira, &key()),
            Err(SetupError::Invalid(_))
        ));
    }

    #[test]
    fn a_user_without_a_token_and_an_empty_secret_are_refused() {
        let mut half = spec(System::Zendesk);
        half.token = None;
        assert!(new_connector(ProjectId(1), half, &key()).is_err());
        let mut unsigned = spec(System::Zendesk);
        unsigned.webhook_secret = "  ".into();
        assert!(new_connector(ProjectId(1), unsigned, &key()).is_err());
    }

    #[test]
    fn an_edit_keeps_the_secrets_not_typed_again() {
        let key = key();
        let made = new_connector(ProjectId(1), spec(System::Zendesk), &key).unwrap();
        let connector = Connector {
            id: datasets::ConnectorId(1),
            project_id: made.project_id,
            name: made.name,
            system: made.system,
            base_url: made.base_url,
            settings: made.settings,
            sealed_credentials: made.sealed_credentials,
            created_at: chrono::Utc::now(),
        };
        let edit = ConnectorEdit {
            token: Some("new-token".into()),
            write_back: Some(false),
            ..Default::default()
        };
        let after = edited(connector, edit, &key).unwrap();
        assert!(!after.settings.write_back);
        let credentials = key.open("desk", &after.sealed_credentials).unwrap();
        assert_eq!(credentials.webhook_secret, "s3cret");
        assert_eq!(credentials.user.as_deref(), Some("bot@acme.example"));
        assert_eq!(credentials.token.as_deref(), Some("new-token"));
    }
}
