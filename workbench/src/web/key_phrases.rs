//! Key phrases on the pages: a tag's (its tickets against the rest of the project), a
//! ticket's (against the project), and a rising tag's on the dashboard (its last week against
//! the four weeks before: what is new in it). The statistic is
//! `datasets::text::key_phrases`; this module samples the tickets, counts them off the async
//! threads and keeps the results a few minutes, so a page view costs a map lookup.

use crate::state::AppState;
use chrono::{Duration, NaiveDate};
use datasets::ids::{ProjectId, TagId, TicketId};
use datasets::store::dashboard::{SampledText, TagCondition, TextSample};
use datasets::store::prelude::*;
use datasets::text::key_phrases::{KeyPhrase, KeyPhraseSettings, PhraseCounts, key_phrases};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::WebError;
use datasets::StoreError;

/// Why key phrases could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum PhraseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("counting key phrases stopped: {0}")]
    Counting(String),
}

impl From<PhraseError> for WebError {
    fn from(error: PhraseError) -> Self {
        match error {
            PhraseError::Store(error) => error.into(),
            PhraseError::Counting(message) => WebError::Internal(message),
        }
    }
}

impl From<PhraseError> for crate::api::ApiError {
    fn from(error: PhraseError) -> Self {
        match error {
            PhraseError::Store(error) => error.into(),
            PhraseError::Counting(message) => {
                tracing::error!(%message, "key phrases");
                Self::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side",
                )
            }
        }
    }
}

type PhraseResult<T> = Result<T, PhraseError>;

/// Tickets sampled per group: the newest this many. Enough for phrases used by 1% of a
/// group to be seen about 20 times; bounded so a page costs the same in a project of a
/// million tickets.
pub const SAMPLE: u32 = 2_000;

/// How long counted phrases are reused. Key phrases move with weeks of tickets, not minutes.
const KEEP_SECONDS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Tag(ProjectId, TagId),
    /// A tag's last seven days (from this day on) against the 28 before.
    Rising(ProjectId, TagId, NaiveDate),
}

/// A project's sampled tickets counted, for one ticket's phrases.
struct Background {
    counts: PhraseCounts,
    /// The texts counted, so a ticket of the sample is taken out before it is compared.
    texts: HashMap<i64, String>,
}

/// Values with the time they were counted.
type Kept<K, V> = Mutex<HashMap<K, (Instant, V)>>;

/// Counted phrases kept for [`KEEP_SECONDS`]; one per server.
#[derive(Default)]
pub struct PhraseCache {
    phrases: Kept<Key, Arc<Vec<KeyPhrase>>>,
    backgrounds: Kept<ProjectId, Arc<Background>>,
}

fn fresh<K: Eq + std::hash::Hash, V: Clone>(map: &Kept<K, V>, key: &K) -> Option<V> {
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key)
        .filter(|(at, _)| at.elapsed().as_secs() < KEEP_SECONDS)
        .map(|(_, value)| value.clone())
}

fn keep<K: Eq + std::hash::Hash, V>(map: &Kept<K, V>, key: K, value: V) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, (at, _)| at.elapsed().as_secs() < KEEP_SECONDS);
    map.insert(key, (Instant::now(), value));
}

/// The text models read of each sampled ticket.
fn model_texts(sample: Vec<SampledText>) -> Vec<(i64, String)> {
    sample
        .into_iter()
        .map(|t| (t.id, datasets::ticket::model_text(&t.subject, &t.body)))
        .collect()
}

/// Counting normalises and splits thousands of texts: tens of milliseconds that must not
/// hold an async worker thread.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> PhraseResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PhraseError::Counting(e.to_string()))
}

async fn compare(
    state: &AppState,
    project: ProjectId,
    focus: TextSample,
    other: TextSample,
) -> PhraseResult<Arc<Vec<KeyPhrase>>> {
    let focus = state.store.sample_texts(project, &focus).await?;
    let other = state.store.sample_texts(project, &other).await?;
    off_thread(move || {
        let focus = model_texts(focus);
        let other = model_texts(other);
        let focus = PhraseCounts::of(focus.iter().map(|(_, t)| t.as_str()));
        let other = PhraseCounts::of(other.iter().map(|(_, t)| t.as_str()));
        Arc::new(key_phrases(&focus, &other, &KeyPhraseSettings::group()))
    })
    .await
}

/// The phrases that set a tag's tickets apart from the project's other tickets.
pub async fn for_tag(
    state: &AppState,
    project: ProjectId,
    tag: TagId,
) -> PhraseResult<Arc<Vec<KeyPhrase>>> {
    let key = Key::Tag(project, tag);
    if let Some(found) = fresh(&state.phrases.phrases, &key) {
        return Ok(found);
    }
    let sample = |tag| TextSample::any_time(tag, SAMPLE);
    let found = compare(
        state,
        project,
        sample(TagCondition::With(tag)),
        sample(TagCondition::Without(tag)),
    )
    .await?;
    keep(&state.phrases.phrases, key, found.clone());
    Ok(found)
}

/// What is new in a tag: the phrases of its tickets created from `week_start` on (seven
/// days) against its tickets of the 28 days before.
pub async fn new_in_tag(
    state: &AppState,
    project: ProjectId,
    tag: TagId,
    week_start: NaiveDate,
) -> PhraseResult<Arc<Vec<KeyPhrase>>> {
    let key = Key::Rising(project, tag, week_start);
    if let Some(found) = fresh(&state.phrases.phrases, &key) {
        return Ok(found);
    }
    let start = week_start
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let recent = TextSample {
        tag: TagCondition::With(tag),
        from: start,
        until: start + Duration::days(7),
        limit: SAMPLE,
    };
    let before = TextSample {
        from: start - Duration::days(28),
        until: start,
        ..recent
    };
    let found = compare(state, project, recent, before).await?;
    keep(&state.phrases.phrases, key, found.clone());
    Ok(found)
}

/// The phrases one ticket uses more than the project's newest tickets do.
pub async fn for_ticket(
    state: &AppState,
    project: ProjectId,
    ticket: TicketId,
    text: String,
) -> PhraseResult<Vec<KeyPhrase>> {
    let background = match fresh(&state.phrases.backgrounds, &project) {
        Some(found) => found,
        None => {
            let sample = state
                .store
                .sample_texts(project, &TextSample::any_time(TagCondition::Any, SAMPLE))
                .await?;
            let background = off_thread(move || {
                let texts: HashMap<i64, String> = model_texts(sample).into_iter().collect();
                Arc::new(Background {
                    counts: PhraseCounts::of(texts.values().map(String::as_str)),
                    texts,
                })
            })
            .await?;
            keep(&state.phrases.backgrounds, project, background.clone());
            background
        }
    };
    off_thread(move || {
        let mine = PhraseCounts::of([text.as_str()]);
        // The ticket itself may be in the sample: compared with itself, every word of it
        // would look used elsewhere.
        let others = match background.texts.get(&ticket.0) {
            Some(own) => {
                let mut others = background.counts.clone();
                others.remove(own);
                others
            }
            None => background.counts.clone(),
        };
        key_phrases(&mine, &others, &KeyPhraseSettings::ticket())
    })
    .await
}

/// Phrases as the templates show them, each with a link to the ticket browser searching for
/// it (`tag`: within that tag's tickets).
pub fn view(phrases: &[KeyPhrase], project: ProjectId, tag: Option<&str>) -> Vec<minijinja::Value> {
    phrases
        .iter()
        .map(|p| {
            let mut link = format!(
                "/p/{}/tickets?q={}",
                project.0,
                super::encode_component(&p.phrase)
            );
            if let Some(tag) = tag {
                link.push_str(&format!("&tag={}", super::encode_component(tag)));
            }
            minijinja::context! {
                phrase => p.phrase.as_str(),
                z => p.z,
                focus_tickets => p.focus_tickets,
                other_tickets => p.other_tickets,
                link => link,
            }
        })
        .collect()
}
