//! Scoring a project into its review queue: load the promoted model, score the train-split
//! tickets no person (or import) has labelled, rank them with a strategy and replace the
//! queue. Without a promoted model the project starts cold: diverse sampling on sentence
//! embeddings when the encoder is in the local cache, on hashed n-grams otherwise.
//!
//! Only the train split is queued: labelling test tickets chosen for being hard would
//! make the held-out evaluation unrepresentative.

use super::diversity::hashed_ngram_vectors;
use super::select::{Pool, RuleConflict, SelectError, Selection, Strategy, select};
use super::uncertainty::ModelView;
use datasets::store::prelude::*;
use datasets::{
    AnyStore, LabelSource, LabelledTicket, ModelVersionId, NewQueueEntry, ProjectId, Split,
    StoreError, Tag, TicketId,
};
use inference::artifact_store::{ArtifactStore, ArtifactStoreError};
use inference::decision::{ReviewReason, RuleEffect};
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{Encoder, EncoderError, EncoderOptions};
use inference::model::{Scored, Scorer};
use inference::{Decider, ModelError, TaggingModel};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Width of the hashed n-gram vectors used when there are no embeddings.
const NGRAM_VECTOR_WIDTH: usize = 1024;

/// How a scoring runs.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// How many ranked tickets the queue keeps.
    pub queue_size: usize,
    /// Most unlabelled tickets scored (the newest); bounds the time of one scoring on a
    /// project with a large backlog.
    pub max_candidates: usize,
    pub seed: u64,
    /// Where to find the sentence encoder for a cold start; the environment's when unset.
    pub hub_cache: Option<PathBuf>,
    /// Where the promoted version's files are found (fetched from, when kept in a bucket);
    /// by default only versions whose files are on this machine load.
    pub artifacts: ArtifactStore,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            queue_size: 500,
            max_candidates: 20_000,
            seed: 42,
            hub_cache: None,
            artifacts: ArtifactStore::default(),
        }
    }
}

/// What a scoring did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoreSummary {
    /// The strategy asked for.
    pub requested: Strategy,
    /// The strategy used: `cold-start` when the project has no promoted model yet.
    pub strategy: Strategy,
    pub model_version: Option<ModelVersionId>,
    /// Unlabelled train-split tickets scored.
    pub candidates: usize,
    /// Tickets now in the queue.
    pub queued: u64,
    /// `embeddings` or `ngrams`, for strategies that compare tickets.
    pub vectors: Option<&'static str>,
    /// Tickets queued ahead of the strategy's choice because they are unlike the tickets the
    /// model learned from (at most a quarter of the queue, the most unfamiliar first).
    pub unfamiliar: usize,
    pub seconds: f64,
}

/// Why a scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot load the promoted model: {0}")]
    Model(#[from] ModelError),
    #[error("cannot fetch the promoted model: {0}")]
    Artifacts(#[from] ArtifactStoreError),
    #[error("cannot embed the tickets: {0}")]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("the queue size must be between 1 and {max}, got {got}")]
    QueueSize { got: usize, max: usize },
    #[error("scoring stopped unexpectedly: {0}")]
    Worker(String),
}

/// The unlabelled candidates: train split, no human or imported label.
fn is_candidate(ticket: &LabelledTicket) -> bool {
    ticket.ticket.split == Split::Train
        && !ticket
            .labels
            .iter()
            .any(|l| matches!(l.source, LabelSource::Human | LabelSource::Import))
}

async fn load_candidates(
    store: &AnyStore,
    project: ProjectId,
    max: usize,
) -> Result<Vec<(TicketId, String)>, StoreError> {
    // An answer of "no tags" leaves no label row; the recorded answer says it was reviewed.
    let answered: std::collections::HashSet<TicketId> = store
        .label_submissions(project)
        .await?
        .into_iter()
        .map(|s| s.ticket_id)
        .collect();
    let mut candidates = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .tickets_after(project, after, datasets::store::MAX_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.ticket.id);
        candidates.extend(
            page.iter()
                .filter(|t| is_candidate(t) && !answered.contains(&t.ticket.id))
                .map(|t| (t.ticket.id, t.ticket.text())),
        );
    }
    // Newest first when there are too many; then back in id order for stable ranking.
    if candidates.len() > max {
        candidates.drain(..candidates.len() - max);
    }
    Ok(candidates)
}

/// The strongest disagreement between keyword rules and the model on one ticket.
fn rule_conflict(decider: &Decider, text: &str, probabilities: &[f32]) -> Option<RuleConflict> {
    let with_rules = decider.decide(text, probabilities, true);
    let model_only = decider.decide(text, probabilities, false);
    with_rules
        .scores
        .iter()
        .filter_map(|score| {
            let by_model = model_only.applied.contains(&score.tag);
            match score.rule {
                Some(RuleEffect::Added) if !by_model => Some(RuleConflict {
                    strength: 1.0 - score.probability,
                    reason: format!(
                        "a keyword rule adds {}, the model gives it {:.2}",
                        score.tag.as_str(),
                        score.probability
                    ),
                }),
                Some(RuleEffect::Vetoed) if by_model => Some(RuleConflict {
                    strength: score.probability,
                    reason: format!(
                        "a keyword rule vetoes {}, the model gives it {:.2}",
                        score.tag.as_str(),
                        score.probability
                    ),
                }),
                _ => None,
            }
        })
        .max_by(|a, b| a.strength.total_cmp(&b.strength))
}

/// Scores, vectors and conflicts computed off the async runtime, then the ranking.
fn rank(
    model: Option<&TaggingModel>,
    taxonomy: &[Tag],
    texts: &[&str],
    strategy: Strategy,
    options: &ScoreOptions,
) -> Result<Ranked, ScoreError> {
    let wants_vectors = matches!(strategy, Strategy::Diverse | Strategy::ColdStart);
    let mut vectors: Option<(Vec<Vec<f32>>, &'static str)> = None;
    let mut unfamiliar = Vec::new();
    let (probs, tags, thresholds, mode) = match model {
        Some(model) => {
            let card = &model.card;
            let heads = card.heads();
            let scored: Vec<Scored> = match &model.scorer {
                // Embed once: the same embeddings give the scores and the diversity.
                Scorer::EncoderHead(head) => {
                    let embeddings = head.encoder.embed(texts)?;
                    let scored = embeddings
                        .iter()
                        .map(|e| Scored::encoder(head.head.logits(e), e, &head.centroids, &heads))
                        .collect();
                    if wants_vectors {
                        vectors = Some((embeddings, "embeddings"));
                    }
                    scored
                }
                Scorer::Ngram(_) => model.score_batch(texts)?,
            };
            unfamiliar = scored
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let judged = model.unfamiliarity(s)?;
                    judged
                        .is_beyond()
                        .then_some((i, judged.score - judged.threshold))
                })
                .collect();
            let probs: Vec<Vec<f32>> = scored
                .iter()
                .map(|s| heads.probabilities(&s.logits, card.temperature))
                .collect();
            let tags: Vec<String> = card
                .tags
                .iter()
                .map(|t| t.name.as_str().to_string())
                .collect();
            // With one head per group the queue reads each tag against its threshold, as
            // for several tags per ticket.
            let mode = heads.whole().unwrap_or(datasets::LabelMode::Multi);
            (probs, tags, card.thresholds.clone(), mode)
        }
        None => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            datasets::LabelMode::Multi,
        ),
    };
    if wants_vectors && vectors.is_none() {
        let cache = options
            .hub_cache
            .as_ref()
            .map_or_else(HubCache::from_env, HubCache::at)
            // Scoring answers a person waiting: never a download here (training pulls it).
            .offline();
        vectors = Some(
            match Encoder::load(&cache, DEFAULT_ENCODER_REPO, &EncoderOptions::default()) {
                Ok(encoder) => (encoder.embed(texts)?, "embeddings"),
                // No encoder on this machine: word n-grams still spread the batch.
                Err(_) => (hashed_ngram_vectors(texts, NGRAM_VECTOR_WIDTH), "ngrams"),
            },
        );
    }
    let conflicts: Option<Vec<Option<RuleConflict>>> = match (strategy, model) {
        (Strategy::Disagreement, Some(model)) => {
            let decider = Decider::new(mode, &model.card.tags, &thresholds, taxonomy);
            Some(
                texts
                    .iter()
                    .zip(&probs)
                    .map(|(text, p)| rule_conflict(&decider, text, p))
                    .collect(),
            )
        }
        _ => None,
    };
    let pool = Pool {
        candidates: texts.len(),
        probabilities: &probs,
        view: ModelView {
            mode,
            tags: &tags,
            thresholds: &thresholds,
        },
        vectors: vectors.as_ref().map(|(v, _)| v.as_slice()),
        conflicts: conflicts.as_deref(),
    };
    let selected = select(strategy, &pool, options.queue_size, options.seed)?;
    // The most unfamiliar first.
    unfamiliar.sort_by(|a: &(usize, f32), b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(Ranked {
        selected,
        vectors: vectors.map(|(_, kind)| kind),
        unfamiliar: unfamiliar.into_iter().map(|(i, _)| i).collect(),
    })
}

/// What [`rank`] found.
struct Ranked {
    selected: Vec<Selection>,
    /// Which vectors spread the batch (`embeddings`, `ngrams`), when any did.
    vectors: Option<&'static str>,
    /// Candidates beyond the model's out-of-distribution threshold, most unfamiliar first.
    unfamiliar: Vec<usize>,
}

/// The most of the queue that tickets unlike the training data take ahead of the strategy's
/// choice. They come first because every one of them is a ticket the model cannot tag and
/// may be a topic the taxonomy lacks; the cap keeps a flood of them (a product launch, a
/// spam wave) from crowding out the tickets that teach the model most.
pub const UNFAMILIAR_SHARE: f64 = 0.25;

/// Recomputes the project's review queue with `strategy` (see the module comment).
pub async fn score_project(
    store: &AnyStore,
    project: ProjectId,
    strategy: Strategy,
    options: &ScoreOptions,
) -> Result<ScoreSummary, ScoreError> {
    let max = datasets::review::MAX_LEASE_COUNT as usize * 20;
    if options.queue_size == 0 || options.queue_size > max {
        return Err(ScoreError::QueueSize {
            got: options.queue_size,
            max,
        });
    }
    let started = Instant::now();
    let languages = store.project(project).await?.languages;
    let version = match store.promoted_model_version(project).await? {
        Some(version) if strategy.needs_model() => Some(options.artifacts.fetch(&version).await?),
        other => other,
    };
    let used = match (&version, strategy.needs_model()) {
        (None, true) => Strategy::ColdStart,
        _ => strategy,
    };
    let taxonomy = store.list_tags(project).await?;
    let candidates = load_candidates(store, project, options.max_candidates).await?;
    // Tickets without a single letter cannot be ranked by any model (its scores on them
    // are guesses) and must never be tagged by one: they go first, with their reason.
    let (no_content, candidates): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(_, text)| !inference::decision::has_content(text));
    // Tickets in a language the model does not serve are never tagged by it either: a
    // person must, so they come next, with the language named.
    let (unsupported, candidates): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .map(|(id, text)| {
            let language = datasets::language::unsupported_language(&text, &languages);
            (id, text, language)
        })
        .partition(|(_, _, language)| language.is_some());
    let candidates: Vec<(TicketId, String)> = candidates
        .into_iter()
        .map(|(id, text, _)| (id, text))
        .collect();
    let total_candidates = no_content.len() + unsupported.len() + candidates.len();
    let options_for_worker = options.clone();
    let version_for_worker = version.clone();
    let texts: Vec<String> = candidates.iter().map(|(_, text)| text.clone()).collect();
    let ranked = tokio::task::spawn_blocking(move || {
        let model = match (&version_for_worker, used.needs_model()) {
            (Some(version), true) => Some(crate::run::load_version(version)?),
            _ => None,
        };
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        rank(model.as_ref(), &taxonomy, &texts, used, &options_for_worker)
    })
    .await
    .map_err(|e| ScoreError::Worker(e.to_string()))??;
    let Ranked {
        selected,
        vectors,
        unfamiliar,
    } = ranked;
    // The queue is read in rank order; the score shown beside them is the batch's highest.
    let top = selected.iter().map(|s| s.score).fold(1.0, f32::max);
    let unfamiliar_cap = (options.queue_size as f64 * UNFAMILIAR_SHARE).floor() as usize;
    let unfamiliar: Vec<usize> = unfamiliar.into_iter().take(unfamiliar_cap).collect();
    let placed: std::collections::HashSet<usize> = unfamiliar.iter().copied().collect();
    // An unfamiliar ticket the strategy chose too keeps the strategy's reason after its own.
    let also: std::collections::HashMap<usize, &str> = selected
        .iter()
        .filter(|s| placed.contains(&s.index))
        .map(|s| (s.index, s.reason.as_str()))
        .collect();
    let strange: Vec<NewQueueEntry> = unfamiliar
        .iter()
        .map(|i| NewQueueEntry {
            ticket_id: candidates[*i].0,
            score: top,
            strategy: used.as_str().to_string(),
            reason: match also.get(i) {
                Some(reason) => format!("{}; {reason}", ReviewReason::Unfamiliar.describe()),
                None => ReviewReason::Unfamiliar.describe().to_string(),
            },
        })
        .collect();
    let junk = no_content.iter().map(|(ticket_id, _)| NewQueueEntry {
        ticket_id: *ticket_id,
        score: top,
        strategy: used.as_str().to_string(),
        reason: ReviewReason::NoContent.describe().to_string(),
    });
    let foreign = unsupported.iter().filter_map(|(ticket_id, _, language)| {
        Some(NewQueueEntry {
            ticket_id: *ticket_id,
            score: top,
            strategy: used.as_str().to_string(),
            reason: format!(
                "{} ({})",
                ReviewReason::UnsupportedLanguage.describe(),
                language.as_ref()?.english_name()
            ),
        })
    });
    let entries: Vec<NewQueueEntry> = junk
        .chain(foreign)
        .chain(strange)
        .chain(
            selected
                .into_iter()
                .filter(|s| !placed.contains(&s.index))
                .map(|s| NewQueueEntry {
                    ticket_id: candidates[s.index].0,
                    score: s.score,
                    strategy: used.as_str().to_string(),
                    reason: s.reason,
                }),
        )
        .take(options.queue_size)
        .collect();
    let queued = store.replace_review_queue(project, &entries).await?;
    Ok(ScoreSummary {
        requested: strategy,
        strategy: used,
        model_version: version.map(|v| v.id),
        candidates: total_candidates,
        queued,
        vectors,
        unfamiliar: unfamiliar.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
