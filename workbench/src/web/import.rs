//! Bringing tickets in from the browser: a CSV or JSON Lines file uploaded on the import
//! page goes through `datasets::import::import_file`, the code `tagger import` runs, with the
//! same column choices, and the page shows what it stored and every row it left out.
//! ML engineers and admins may import (they also train and promote); labelers may not.

use super::auth::CurrentUser;
use super::{WebError, WebResult, load_project, render_page};
use crate::state::AppState;
use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use datasets::import::{
    ColumnMap, FileFormat, GroupColumn, ImportError, ImportOptions, ImportReport, OnBadRow,
    SplitChoice, import_file,
};
use datasets::store::prelude::*;
use datasets::{Project, Role};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;

/// The most bytes a form field other than the file may hold.
const MAX_FIELD_BYTES: usize = 4096;
/// The most fields a form may send (it has eleven); the file is the only large one.
const MAX_FIELDS: usize = 32;
/// Skipped rows listed on the page; the rest are counted.
const ROWS_LISTED: usize = 200;

/// The form's choices, as typed: shown again after every answer so nothing typed is lost.
#[derive(Debug, Clone, Serialize)]
pub struct ImportChoices {
    format: String,
    text_columns: String,
    label_column: String,
    label_separator: String,
    /// `GROUP=COLUMN` pairs, comma-separated, as `--group-column` takes them.
    group_columns: String,
    id_column: String,
    source: String,
    split: String,
    on_bad_row: String,
    create_tags: bool,
}

impl ImportChoices {
    /// What a first visit shows: the defaults of `tagger import`, except that bad rows are
    /// skipped and reported (a person sees the report; the CLI aborts because a script may
    /// not look), and tags are created when the project has none yet.
    fn defaults(project_has_tags: bool) -> Self {
        Self {
            format: "auto".into(),
            text_columns: "text".into(),
            label_column: "label".into(),
            label_separator: String::new(),
            group_columns: String::new(),
            id_column: String::new(),
            source: "import".into(),
            split: "auto".into(),
            on_bad_row: "skip".into(),
            create_tags: !project_has_tags,
        }
    }

    /// The import options these choices ask for, or what is wrong with them.
    fn options(&self, project: &Project, file_name: &str) -> Result<ImportOptions, String> {
        let format = match self.format.as_str() {
            "auto" => FileFormat::from_path(std::path::Path::new(file_name)),
            other => other.parse()?,
        };
        let text: Vec<String> = self
            .text_columns
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        if text.is_empty() {
            return Err("name at least one text column".into());
        }
        let optional = |value: &str| Some(value.trim().to_string()).filter(|v| !v.is_empty());
        let mut options = ImportOptions::new(
            project.name.clone(),
            format,
            ColumnMap {
                text,
                label: optional(&self.label_column),
                id: optional(&self.id_column),
                groups: Vec::new(),
            },
            file_name,
        );
        // A separator is taken as typed: " " or ";" may be exactly what the file uses.
        options.label_separator = Some(self.label_separator.clone()).filter(|s| !s.is_empty());
        options.group_columns = self
            .group_columns
            .split(',')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| pair.parse::<GroupColumn>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("group columns: {e}"))?;
        options.source = optional(&self.source).unwrap_or_else(|| "import".into());
        options.split = self.split.parse::<SplitChoice>()?;
        options.on_bad_row = self.on_bad_row.parse::<OnBadRow>()?;
        options.create_tags = self.create_tags;
        datasets::limits::check_chars("source", &options.source, datasets::limits::MAX_KEY_CHARS)
            .map_err(|e| e.to_string())?;
        Ok(options)
    }
}

async fn has_tags(state: &AppState, project: &Project) -> WebResult<bool> {
    Ok(!state.store.list_tags(project.id).await?.is_empty())
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    project: &Project,
    status: StatusCode,
    choices: &ImportChoices,
    outcome: Value,
) -> WebResult {
    // The project's groups, named beside the group-columns field.
    let groups: Vec<Value> = state
        .store
        .list_tag_groups(project.id)
        .await?
        .iter()
        .map(|g| context! { name => g.name.as_str(), choice => g.choice.as_str() })
        .collect();
    let mut response = render_page(
        state,
        user,
        Some(project),
        "tickets",
        "import.html",
        context! {
            choices => Value::from(Serde(choices)),
            groups => groups,
            max_bytes => state.config.upload_max_bytes,
            max_size => human_size(state.config.upload_max_bytes),
            outcome => outcome,
        },
    )
    .await?;
    *response.status_mut() = status;
    Ok(response)
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.0} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.0} KiB", bytes as f64 / f64::from(1 << 10))
    } else {
        format!("{bytes} bytes")
    }
}

/// The import form.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let choices = ImportChoices::defaults(has_tags(&state, &project).await?);
    page(
        &state,
        &user,
        &project,
        StatusCode::OK,
        &choices,
        Value::UNDEFINED,
    )
    .await
}

/// Why an upload was refused before anything was imported.
enum Refusal {
    /// Not a multipart form, a field too long, a broken body: 400.
    BadForm(String),
    /// The file is larger than `upload_max_bytes`: 413.
    TooLarge,
}

impl From<MultipartError> for Refusal {
    fn from(error: MultipartError) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::TooLarge
        } else {
            Self::BadForm(format!(
                "the upload could not be read: {}",
                error.body_text()
            ))
        }
    }
}

/// Reads a field, refusing it once it passes `limit` bytes without reading further.
async fn read_limited(field: &mut Field<'_>, limit: usize) -> Result<Vec<u8>, Refusal> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if bytes.len() + chunk.len() > limit {
            return Err(Refusal::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn read_text(field: &mut Field<'_>) -> Result<String, Refusal> {
    let name = field.name().unwrap_or_default().to_string();
    let bytes = read_limited(field, MAX_FIELD_BYTES)
        .await
        .map_err(|e| match e {
            Refusal::TooLarge => Refusal::BadForm(format!(
                "the field {name:?} is longer than {MAX_FIELD_BYTES} bytes"
            )),
            other => other,
        })?;
    String::from_utf8(bytes)
        .map_err(|_| Refusal::BadForm(format!("the field {name:?} is not text")))
}

/// The uploaded file: its name and bytes.
struct Upload {
    name: String,
    bytes: Vec<u8>,
}

/// Reads the form. The CSRF token must come before the file (browsers send fields in the
/// form's order, and the token is its first field), so a forged upload is refused before
/// its file is read.
async fn read_form(
    user: &CurrentUser,
    mut multipart: Multipart,
    limit: usize,
    choices: &mut ImportChoices,
) -> WebResult<Result<Upload, Refusal>> {
    let mut csrf_checked = false;
    let mut upload = None;
    // Checkboxes send nothing when unticked.
    choices.create_tags = false;
    let mut fields = 0;
    loop {
        fields += 1;
        if fields > MAX_FIELDS {
            return Ok(Err(Refusal::BadForm(format!(
                "the form sent more than {MAX_FIELDS} fields"
            ))));
        }
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return Ok(Err(error.into())),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if !csrf_checked {
                return Err(WebError::BadCsrf);
            }
            let file_name = field
                .file_name()
                .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string())
                .filter(|n| !n.is_empty());
            let bytes = match read_limited(&mut field, limit).await {
                Ok(bytes) => bytes,
                Err(refusal) => return Ok(Err(refusal)),
            };
            if let Some(file_name) = file_name {
                upload = Some(Upload {
                    name: file_name,
                    bytes,
                });
            }
            continue;
        }
        let value = match read_text(&mut field).await {
            Ok(value) => value,
            Err(refusal) => return Ok(Err(refusal)),
        };
        match name.as_str() {
            "csrf" => {
                user.check_csrf(Some(value.trim()))?;
                csrf_checked = true;
            }
            "format" => choices.format = value,
            "text_columns" => choices.text_columns = value,
            "label_column" => choices.label_column = value,
            "label_separator" => choices.label_separator = value,
            "group_columns" => choices.group_columns = value,
            "id_column" => choices.id_column = value,
            "source" => choices.source = value,
            "split" => choices.split = value,
            "on_bad_row" => choices.on_bad_row = value,
            "create_tags" => choices.create_tags = true,
            // Unknown fields are ignored, as the other forms' extra fields are.
            _ => {}
        }
    }
    if !csrf_checked {
        return Err(WebError::BadCsrf);
    }
    Ok(upload.ok_or_else(|| Refusal::BadForm("choose a CSV or JSON Lines file to upload".into())))
}

fn report_value(report: &ImportReport) -> Value {
    context! {
        ok => true,
        rows_read => report.rows_read,
        imported => report.rows_read - report.skipped_count,
        created => report.created,
        updated => report.updated,
        labels => report.labels,
        train => report.train,
        test => report.test,
        tags_created => report.tags_created.clone(),
        groups_created => report.groups_created.clone(),
        skipped_count => report.skipped_count,
        skipped => report.skipped.iter().take(ROWS_LISTED).map(|p| context! { line => p.line, reason => p.reason.as_str() }).collect::<Vec<_>>(),
        skipped_unlisted => report.skipped_count.saturating_sub(ROWS_LISTED.min(report.skipped.len()) as u64),
    }
}

fn failure(message: String) -> Value {
    context! { ok => false, message => message }
}

/// Imports an uploaded file and shows the report: 200 with what was stored and every row
/// left out; 400 when the form or the file cannot be imported (with the reason and the
/// choices kept); 413 when the file is larger than `upload_max_bytes`.
#[tracing::instrument(skip_all, fields(project = project))]
pub async fn upload(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> WebResult {
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let mut choices = ImportChoices::defaults(has_tags(&state, &project).await?);
    let limit = state.config.upload_max_bytes;
    let refused = |status, message: String| (status, failure(message));
    let outcome = match multipart {
        Err(rejection) => Err(refused(
            StatusCode::BAD_REQUEST,
            format!(
                "send the file from the import form (multipart/form-data): {}",
                rejection.body_text()
            ),
        )),
        Ok(multipart) => match read_form(&user, multipart, limit, &mut choices).await? {
            Err(Refusal::TooLarge) => Err(refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file is larger than the {} this server accepts from the browser; \
                     nothing was imported. Split it, or import it with `tagger import`, which \
                     takes files of any size",
                    human_size(limit)
                ),
            )),
            Err(Refusal::BadForm(message)) => Err(refused(StatusCode::BAD_REQUEST, message)),
            Ok(upload) => import(&state, &project, &choices, upload).await?,
        },
    };
    let (status, outcome) = match outcome {
        Ok(report) => (StatusCode::OK, report_value(&report)),
        Err(refusal) => refusal,
    };
    page(&state, &user, &project, status, &choices, outcome).await
}

/// Runs the import. A file or form problem is the person's to fix (400, with the reason);
/// a store failure is the server's (the usual error page).
async fn import(
    state: &AppState,
    project: &Project,
    choices: &ImportChoices,
    upload: Upload,
) -> WebResult<Result<ImportReport, (StatusCode, Value)>> {
    let bad = |message: String| Ok(Err((StatusCode::BAD_REQUEST, failure(message))));
    let options = match choices.options(project, &upload.name) {
        Ok(options) => options,
        Err(message) => return bad(message),
    };
    tracing::info!(
        file = %upload.name,
        bytes = upload.bytes.len(),
        format = ?options.format,
        "import from the browser"
    );
    let verdicts = crate::ingest::ServiceVerdicts {
        store: &state.store,
        tagging: &state.tagging,
    };
    match import_file(
        &state.store,
        std::io::Cursor::new(upload.bytes),
        &options,
        &verdicts,
    )
    .await
    {
        Ok(report) => Ok(Ok(report)),
        Err(ImportError::Store(error)) => Err(error.into()),
        Err(ImportError::BadRow { problem, imported }) => bad(format!(
            "line {}: {}. {}",
            problem.line,
            problem.reason,
            if imported == 0 {
                "Nothing was imported; choose \"skip and report\" for bad rows to import the other rows.".to_string()
            } else {
                format!(
                    "The {imported} rows before it were imported; fix the line and upload the \
                     file again (stored tickets are updated, not duplicated)."
                )
            }
        )),
        Err(other) => bad(format!("{other}; nothing was imported")),
    }
}
