//! The home page (projects) and the embedded static files.

use super::auth::CurrentUser;
use super::{WebError, WebResult, render_page};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use datasets::store::prelude::*;
use minijinja::context;
use rust_embed::RustEmbed;

/// CSS, JavaScript and icons, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "static/"]
struct StaticFiles;

pub async fn static_file(Path(path): Path<String>) -> Response {
    let Some(file) = StaticFiles::get(&path) else {
        return WebError::NotFound(format!("static file {path:?}")).into_response();
    };
    let content_type = match path.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[derive(Debug, serde::Deserialize)]
pub struct HomeQuery {
    /// The project switcher's choice when JavaScript is off.
    project: Option<String>,
}

pub async fn home(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Query(query): axum::extract::Query<HomeQuery>,
) -> WebResult {
    if let Some(id) = query.project.as_deref().and_then(|p| p.parse::<i64>().ok()) {
        return Ok(axum::response::Redirect::to(&format!("/p/{id}/dashboard")).into_response());
    }
    let projects = state.store.list_projects().await?;
    let projects: Vec<_> = projects
        .iter()
        .map(|p| {
            context! {
                id => p.project.id.0,
                name => p.project.name.as_str(),
                tickets => p.tickets,
                tags => p.tags,
                mode => p.project.label_mode.as_str(),
            }
        })
        .collect();
    render_page(
        &state,
        &user,
        None,
        "home",
        "home.html",
        context! { projects => projects },
    )
    .await
}
