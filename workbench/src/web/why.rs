//! The words behind a ticket's tags, as the ticket and review pages show them: the model text
//! with each tag's top words marked (`<mark>`, the contribution in its title) and a line per
//! tag. `ngram` explanations cost microseconds and are always shown; an encoder model's cost a
//! forward pass per word (`inference::explain`), so those pages offer a link instead.

use crate::state::AppState;
use datasets::{ModelKind, ProjectId, Tag, TagName};
use inference::explain::{DEFAULT_TOP_WORDS, ExplanationMethod};
use inference::service::{ExplainRequest, Explained, Tagged};
use minijinja::{Value, context};

/// Whether a page explains a model of `kind` without being asked: only when it is cheap.
pub fn explains_unasked(kind: ModelKind) -> bool {
    match kind {
        ModelKind::Ngram => true,
        ModelKind::EncoderHead | ModelKind::Finetune | ModelKind::Setfit => false,
    }
}

/// What a page does about explanations for the project's model in service.
pub enum Offer {
    /// No model in service here (or a second opinion, blind to the model): nothing.
    Nothing,
    /// Explain now.
    Explain,
    /// An encoder model and the page was not asked: show a link that asks.
    Link,
}

impl Offer {
    /// For the project's model in service, on a page asked (`?explain=true`) or not.
    pub fn for_project(state: &AppState, project: ProjectId, asked: bool) -> Self {
        match state.tagging.serving(project) {
            None => Self::Nothing,
            Some(serving) if asked || explains_unasked(serving.kind) => Self::Explain,
            Some(_) => Self::Link,
        }
    }
}

/// Tags `text` with the project's model in service and explains `tags` (the tags in force),
/// or the model's own tags when `tags` is empty; `None` when the model cannot answer now (the
/// page shows the ticket without).
pub async fn explain_ticket(
    state: &AppState,
    project: ProjectId,
    text: String,
    tags: &[TagName],
) -> Option<Tagged> {
    let request = ExplainRequest {
        top_k: DEFAULT_TOP_WORDS,
        tags: (!tags.is_empty()).then(|| tags.to_vec()),
    };
    match state
        .tagging
        .tag_explained(project, vec![text], true, request)
        .await
    {
        Ok(mut tagged) => tagged.pop(),
        Err(error) => {
            tracing::warn!(%error, %project, "no explanation for the page");
            None
        }
    }
}

/// One mark on a word: a tag it pushed up, and by how much.
struct Mark<'a> {
    tag: &'a str,
    color: &'a str,
    contribution: f32,
}

/// The page's view of an explanation: `tags` (a line per tag with its top words) and
/// `segments` (the model text cut at the marked words, each with its marks).
pub fn view(explained: &Explained, taxonomy: &[Tag]) -> Value {
    let color = |name: &TagName| {
        taxonomy
            .iter()
            .find(|t| t.name == *name)
            .map_or(datasets::tag::DEFAULT_TAG_COLOR, |t| t.color.as_str())
    };
    // Only words that pushed a tag up are marked: they are what "why" asks.
    let mut marks: Vec<((usize, usize), Mark<'_>)> = Vec::new();
    for tag in &explained.tags {
        for word in tag
            .explanation
            .words
            .iter()
            .filter(|w| w.contribution > 0.0)
        {
            marks.push((
                (word.start, word.end),
                Mark {
                    tag: tag.tag.as_str(),
                    color: color(&tag.tag),
                    contribution: word.contribution,
                },
            ));
        }
    }
    marks.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.contribution.total_cmp(&a.1.contribution))
    });
    let chars: Vec<char> = explained.text.chars().collect();
    let mut segments = Vec::new();
    let mut at = 0;
    let mut index = 0;
    while index < marks.len() {
        let (start, end) = marks[index].0;
        let same = marks[index..]
            .iter()
            .take_while(|(span, _)| *span == (start, end))
            .count();
        // Spans are disjoint words; one that overlaps what is already shown is skipped
        // rather than shown twice.
        if start >= at && end <= chars.len() {
            if start > at {
                segments.push(segment(&chars[at..start], &[]));
            }
            segments.push(segment(&chars[start..end], &marks[index..index + same]));
            at = end;
        }
        index += same;
    }
    segments.push(segment(&chars[at..], &[]));
    let tags: Vec<Value> = explained
        .tags
        .iter()
        .map(|tag| {
            let words: Vec<Value> = tag
                .explanation
                .words
                .iter()
                .filter(|w| w.contribution > 0.0)
                .map(|w| context! { phrase => w.phrase.as_str(), contribution => signed(w.contribution) })
                .collect();
            context! {
                name => tag.tag.as_str(),
                color => color(&tag.tag),
                words => words,
            }
        })
        .collect();
    let first = explained.tags.first().map(|t| &t.explanation);
    context! {
        tags => tags,
        segments => segments,
        exact => first.is_some_and(|e| e.method == ExplanationMethod::Exact),
        examined => first.map(|e| e.words_examined),
        capped => first.is_some_and(|e| e.words_examined < e.words_total),
    }
}

fn segment(chars: &[char], marks: &[((usize, usize), Mark<'_>)]) -> Value {
    let title = marks
        .iter()
        .map(|(_, m)| format!("{} {}", m.tag, signed(m.contribution)))
        .collect::<Vec<_>>()
        .join(" · ");
    context! {
        text => chars.iter().collect::<String>(),
        color => marks.first().map(|(_, m)| m.color),
        title => title,
        marked => !marks.is_empty(),
    }
}

/// A contribution with its sign, as the pages show it.
fn signed(contribution: f32) -> String {
    format!("{contribution:+.2}")
}
