//! A project's connectors to help desks (admins only): add one, edit its address, write-back
//! and secrets, test the connection, read the last deliveries and the write-back queue with
//! the help desk's reasons for failures, and start a backfill whose progress the page shows.
//! The same set-up as `tagger connectors` (`connector_setup`); secrets are never shown back.

use super::auth::CurrentUser;
use super::{WebError, WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::commands::connectors::webhook_path;
use crate::connector_jobs::{ConnectorRunner, mapped_labels};
use crate::connector_setup::{ConnectorEdit, ConnectorSpec, SetupError, edited, new_connector};
use crate::credentials::masked;
use crate::state::AppState;
use axum::extract::{Form, Path, State};
use connectors::{System, WriteOutcome};
use datasets::connector::{Connector, ConnectorName};
use datasets::store::prelude::*;
use datasets::{BackfillStore, ConnectorStore, Project, Role, WriteBackStore};
use minijinja::{Value, context};
use serde::Deserialize;

/// How many deliveries and write-backs the page shows per connector.
const RECENT: u32 = 15;

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn page_path(project: &Project) -> String {
    format!("/p/{}/connectors", project.id.0)
}

impl From<SetupError> for WebError {
    fn from(error: SetupError) -> Self {
        match error {
            SetupError::Invalid(message) => Self::BadRequest(message),
            SetupError::Credentials(error) => Self::Internal(format!("credentials: {error}")),
        }
    }
}

/// One connector as the page shows it, with its recent activity.
async fn connector_view(
    state: &AppState,
    connector: &Connector,
    tags: &[String],
) -> WebResult<Value> {
    let credentials = state.connectors.key(&state.config).ok().and_then(|key| {
        key.open(connector.name.as_str(), &connector.sealed_credentials)
            .ok()
    });
    let (secret, user, token) = match &credentials {
        Some(credentials) => (
            masked(&credentials.webhook_secret),
            credentials.user.clone(),
            credentials.token.as_deref().map(masked),
        ),
        // The server's key changed since the connector was made: say so, show nothing.
        None => ("cannot be opened with this server's key".into(), None, None),
    };
    let deliveries: Vec<Value> = state
        .store
        .deliveries(connector.id, RECENT)
        .await?
        .iter()
        .map(|delivery| {
            context! {
                at => time(delivery.received_at),
                event => delivery.event.as_str(),
                status => delivery.status.as_str(),
                ticket => delivery.ticket_id.map(|id| id.0),
            }
        })
        .collect();
    let writebacks: Vec<Value> = state
        .store
        .writebacks(connector.id, RECENT)
        .await?
        .iter()
        .map(|writeback| {
            context! {
                at => time(writeback.updated_at),
                external_id => writeback.external_id.as_str(),
                ticket => writeback.ticket_id.0,
                labels => writeback.labels.join(", "),
                status => writeback.status.as_str(),
                attempts => writeback.attempts,
                error => writeback.last_error.as_deref(),
            }
        })
        .collect();
    let backfill = state.store.backfill(connector.id).await?.map(|backfill| {
        context! {
            status => backfill.status.as_str(),
            since => time(backfill.since),
            pages => backfill.pages,
            tickets => backfill.tickets,
            skipped => backfill.skipped,
            error => backfill.error,
            started => time(backfill.started_at),
            updated => time(backfill.updated_at),
        }
    });
    let mapping: Vec<Value> = mapped_labels(connector, tags)
        .into_iter()
        .map(|(tag, label)| context! { tag => tag, label => label })
        .collect();
    Ok(context! {
        name => connector.name.as_str(),
        system => connector.system.as_str(),
        is_servicenow => connector.system == System::ServiceNow,
        base_url => connector.base_url.as_str(),
        webhook => webhook_path(&connector.name),
        write_back => connector.settings.write_back,
        corrections => connector.settings.corrections.unwrap_or(true),
        table => connector.settings.table.as_deref(),
        field => connector.settings.field.as_deref(),
        requests_per_minute => connector.settings.requests_per_minute,
        import_fields => connector.settings.import_fields.join(", "),
        importable => connectors::importable_fields(connector.system).join(", "),
        secret => secret,
        user => user,
        token => token,
        mapping => mapping,
        deliveries => deliveries,
        writebacks => writebacks,
        backfill => backfill,
        created => time(connector.created_at),
    })
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let tags: Vec<String> = state
        .store
        .list_tags(project.id)
        .await?
        .into_iter()
        .filter(|tag| !tag.archived)
        .map(|tag| tag.name.as_str().to_string())
        .collect();
    let mut connectors = Vec::new();
    for connector in state.store.connectors().await? {
        if connector.project_id == project.id {
            connectors.push(connector_view(&state, &connector, &tags).await?);
        }
    }
    let systems: Vec<&str> = System::ALL.iter().map(|s| s.as_str()).collect();
    render_page(
        &state,
        &user,
        Some(&project),
        "connectors",
        "connectors.html",
        context! {
            connectors => connectors,
            systems => systems,
            can_backfill => state.jobs.is_some(),
            max_rate => crate::connector_setup::MAX_REQUESTS_PER_MINUTE,
        },
    )
    .await
}

/// A number field that may be left empty.
fn optional_number(value: &Option<String>, what: &str) -> WebResult<Option<u32>> {
    non_empty(value)
        .map(|text| {
            text.parse::<u32>()
                .map_err(|_| WebError::BadRequest(format!("{what} must be a whole number")))
        })
        .transpose()
}

/// A secret field: kept exactly as typed (a secret may have spaces), empty means absent.
fn secret(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    system: String,
    name: String,
    base_url: String,
    webhook_secret: Option<String>,
    user: Option<String>,
    token: Option<String>,
    table: Option<String>,
    field: Option<String>,
    write_back: Option<String>,
    corrections: Option<String>,
    requests_per_minute: Option<String>,
    import_fields: Option<String>,
}

/// A comma-separated list of field names as typed.
fn field_list(value: &Option<String>) -> Vec<String> {
    super::list_field(value.as_deref(), &[','])
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<CreateForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let system: System = form
        .system
        .parse()
        .map_err(|e: connectors::UnknownSystem| WebError::BadRequest(e.to_string()))?;
    let spec = ConnectorSpec {
        system,
        name: form.name.trim().to_string(),
        base_url: form.base_url,
        webhook_secret: secret(form.webhook_secret).unwrap_or_default(),
        user: non_empty(&form.user).map(str::to_string),
        token: secret(form.token),
        table: non_empty(&form.table).map(str::to_string),
        write_back: form.write_back.as_deref() == Some("on"),
        corrections: Some(form.corrections.as_deref() == Some("on")),
        field: non_empty(&form.field).map(str::to_string),
        requests_per_minute: optional_number(&form.requests_per_minute, "requests a minute")?,
        import_fields: field_list(&form.import_fields),
    };
    let key = state
        .connectors
        .key(&state.config)
        .map_err(|e| WebError::BadRequest(format!("connectors need an encryption key: {e}")))?;
    let created = state
        .store
        .create_connector(&new_connector(project.id, spec, &key)?)
        .await?;
    Ok(redirect_with_flash(
        &page_path(&project),
        "ok",
        &format!(
            "Connector {} added. Point the {} webhook at {} on this server.",
            created.name,
            created.system,
            webhook_path(&created.name)
        ),
    ))
}

/// The checks every action on one connector starts with: the form's CSRF token, the admin
/// role, the project, and the connector, which must be the project's.
async fn admin_connector(
    state: &AppState,
    user: &CurrentUser,
    csrf: &Option<String>,
    (project, name): (i64, String),
) -> WebResult<(Project, Connector)> {
    user.check_csrf(non_empty(csrf))?;
    super::require(user, Role::Admin)?;
    let project = load_project(state, project).await?;
    let connector = project_connector(state, &project, &name).await?;
    Ok((project, connector))
}

/// The connector a URL names, refused when it belongs to another project.
async fn project_connector(
    state: &AppState,
    project: &Project,
    name: &str,
) -> WebResult<Connector> {
    let name = ConnectorName::parse(name).map_err(|e| WebError::BadRequest(e.to_string()))?;
    match state.store.connector_by_name(&name).await? {
        Some(connector) if connector.project_id == project.id => Ok(connector),
        _ => Err(WebError::NotFound(format!("connector {:?}", name.as_str()))),
    }
}

#[derive(Deserialize)]
pub struct UpdateForm {
    csrf: Option<String>,
    base_url: Option<String>,
    write_back: Option<String>,
    corrections: Option<String>,
    field: Option<String>,
    requests_per_minute: Option<String>,
    import_fields: Option<String>,
    webhook_secret: Option<String>,
    user: Option<String>,
    token: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(path): Path<(i64, String)>,
    Form(form): Form<UpdateForm>,
) -> WebResult {
    let (project, connector) = admin_connector(&state, &user, &form.csrf, path).await?;
    let switch = |value: &Option<String>, what: &str| match value.as_deref() {
        None | Some("") => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(other) => Err(WebError::BadRequest(format!(
            "{what} is on or off, not {other:?}"
        ))),
    };
    let write_back = switch(&form.write_back, "write-back")?;
    let corrections = switch(&form.corrections, "writing corrections back")?;
    let edit = ConnectorEdit {
        base_url: non_empty(&form.base_url).map(str::to_string),
        write_back,
        corrections,
        field: non_empty(&form.field).map(str::to_string),
        requests_per_minute: optional_number(&form.requests_per_minute, "requests a minute")?,
        // Sent by every edit form (empty: none); absent only from a hand-made request.
        import_fields: form
            .import_fields
            .as_ref()
            .map(|_| field_list(&form.import_fields)),
        webhook_secret: secret(form.webhook_secret),
        user: non_empty(&form.user).map(str::to_string),
        token: secret(form.token),
    };
    let key = state
        .connectors
        .key(&state.config)
        .map_err(|e| WebError::BadRequest(format!("connectors need an encryption key: {e}")))?;
    let saved = state
        .store
        .update_connector(&edited(connector, edit, &key)?)
        .await?;
    Ok(redirect_with_flash(
        &page_path(&project),
        "ok",
        &format!("Connector {} saved.", saved.name),
    ))
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    /// For a backfill: tickets created since this day (YYYY-MM-DD); empty resumes or starts
    /// from the beginning.
    since: Option<String>,
}

pub async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(path): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> WebResult {
    let (project, connector) = admin_connector(&state, &user, &form.csrf, path).await?;
    state.store.remove_connector(&connector.name).await?;
    Ok(redirect_with_flash(
        &page_path(&project),
        "ok",
        &format!(
            "Connector {} removed; the tickets it delivered stay.",
            connector.name
        ),
    ))
}

/// Test the connection: one cheap read from the help desk with the stored credentials,
/// within the connector's request rate; the answer (or the help desk's reason) is shown.
pub async fn test(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(path): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> WebResult {
    let (project, connector) = admin_connector(&state, &user, &form.csrf, path).await?;
    let runner = ConnectorRunner::new(state.store.clone(), (*state.config).clone())
        .map_err(|e| WebError::Internal(format!("HTTP client: {e}")))?;
    let probe = connectors::probe_request(connector.system, connector.settings.table.as_deref());
    let (kind, message) = match runner.call(&connector, &probe, 64 * 1024).await {
        Ok(answer) => match answer.outcome {
            WriteOutcome::Written => (
                "ok",
                format!(
                    "{} answered: the address and the credentials work.",
                    connector.system
                ),
            ),
            WriteOutcome::RetryAfter(wait, reason) => (
                "error",
                format!(
                    "{} is rate-limiting us ({reason}); try again in {} s.",
                    connector.system,
                    wait.as_secs()
                ),
            ),
            WriteOutcome::Transient(reason) | WriteOutcome::Permanent(reason) => {
                ("error", format!("The connection failed: {reason}"))
            }
        },
        Err(reason) => ("error", format!("The connection cannot be tried: {reason}")),
    };
    Ok(redirect_with_flash(&page_path(&project), kind, &message))
}

/// Queues a backfill job for the worker; the page shows its progress as pages come in.
pub async fn backfill(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(path): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> WebResult {
    let (project, connector) = admin_connector(&state, &user, &form.csrf, path).await?;
    let Some(queue) = state.jobs.clone() else {
        return Err(WebError::Unavailable {
            message: "this server runs no job queue; run `tagger connectors backfill` instead"
                .into(),
            retry_after_seconds: 60,
        });
    };
    let since = match non_empty(&form.since) {
        Some(text) => crate::connector_setup::parse_since(text).map_err(WebError::BadRequest)?,
        None => crate::connector_backfill::default_since(&state.store, &connector).await?,
    };
    queue
        .push_connector(
            trainer::jobs::ConnectorJob::Backfill {
                connector_id: connector.id,
                since,
            },
            std::time::Duration::ZERO,
        )
        .await
        .map_err(|e| WebError::Unavailable {
            message: format!("the job queue refused the backfill: {e}"),
            retry_after_seconds: 5,
        })?;
    Ok(redirect_with_flash(
        &page_path(&project),
        "ok",
        &format!(
            "Backfill of {} queued; reload to follow its progress.",
            connector.name
        ),
    ))
}
