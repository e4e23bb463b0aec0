//! The tagging dashboard: tags in use, the most frequent tags over a chosen period, volume per
//! tag over time, per-tag precision/recall of the promoted model, how often people corrected
//! auto-applied tags, and areas of concern. Each chart has its table and a CSV export. A
//! project with tag groups sees its tags in use group by group (one chart per group: how
//! Type, Priority and Topics are spread), and the counts' CSV gains a `group` column.

use super::auth::CurrentUser;
use super::charts::{Bar, Series, bar_chart, line_chart};
use super::concern_clusters::{ClusterSettings, TicketText, find_clusters};
use super::{WebError, WebResult, load_project, render_page};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use chrono::{Duration, NaiveDate, Utc};
use datasets::Project;
use datasets::ids::{ProjectId, TagId};
use datasets::store::prelude::*;
use datasets::store::{LabellingTotals, TagCount, TagOutcome, TagVolume, TicketFit};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// Periods the page offers, in days.
const PERIODS: [i64; 4] = [7, 30, 90, 365];
/// Tags drawn in the trend chart (the busiest of the period).
const TREND_TAGS: usize = 6;
/// Rising: the last week's daily volume at least this many times the 4 weeks before.
const RISING_FACTOR: f64 = 2.0;
/// Concerning correction rate, once at least `MIN_REVIEWED` auto tags were reviewed.
const HIGH_CORRECTION_RATE: f64 = 0.3;
const MIN_REVIEWED: i64 = 5;
/// Tickets of the period (the newest) searched for clusters no tag fits: enough for a topic
/// to show, few enough to stay in the page's time budget.
const CLUSTER_SAMPLE: u32 = 800;
/// Example tickets linked per cluster.
const CLUSTER_EXAMPLES: usize = 3;
/// Phrases shown of what is new in a rising tag.
const RISING_PHRASES: usize = 5;

#[derive(Debug, Deserialize)]
pub struct PeriodQuery {
    days: Option<String>,
}

impl PeriodQuery {
    fn days(&self) -> WebResult<i64> {
        match self
            .days
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            None => Ok(30),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|d| PERIODS.contains(d))
                .ok_or_else(|| {
                    WebError::BadRequest(format!(
                        "days must be one of 7, 30, 90 or 365, not {text:?}"
                    ))
                }),
        }
    }
}

struct Data {
    counts: Vec<TagCount>,
    days: Vec<String>,
    volume: Vec<TagVolume>,
    outcomes: Vec<TagOutcome>,
    /// Over the tickets created in the period.
    totals: LabellingTotals,
    /// Every ticket of the project, whenever created: none means an empty project.
    project_tickets: i64,
    performance: Vec<(String, f64, f64, f64, f64)>,
    promoted: Option<i64>,
    names: HashMap<i64, (String, String)>,
    recent_volume: Vec<TagVolume>,
    /// The newest tickets of the period, for the clusters no tag fits.
    fits: Vec<TicketFit>,
    /// The project's groups when it has more than its default one, else empty.
    groups: Vec<datasets::TagGroup>,
    /// Each tag's group, by tag id.
    group_of: HashMap<i64, datasets::TagGroupId>,
}

async fn load(state: &AppState, project: &Project, days: i64) -> WebResult<Data> {
    let now = Utc::now();
    let until = (now.date_naive() + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let from = until - Duration::days(days);
    let counts = state.store.tag_counts(project.id).await?;
    let volume = state.store.tag_volume(project.id, from, until).await?;
    let recent_volume = if days >= 35 {
        volume.clone()
    } else {
        state
            .store
            .tag_volume(project.id, until - Duration::days(35), until)
            .await?
    };
    let outcomes = state.store.tag_outcomes(project.id).await?;
    let totals = state
        .store
        .labelling_totals_between(project.id, from, until)
        .await?;
    let project_tickets = state.store.labelling_totals(project.id).await?.tickets;
    let fits = state
        .store
        .ticket_fits(project.id, from, until, CLUSTER_SAMPLE)
        .await?;
    let promoted = state.store.promoted_model_version(project.id).await?;
    let performance = promoted
        .as_ref()
        .and_then(|v| v.metrics.get("per_tag")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some((
                t.get("tag")?.as_str()?.to_string(),
                t.get("precision")?.as_f64()?,
                t.get("recall")?.as_f64()?,
                t.get("f1")?.as_f64()?,
                t.get("support")?.as_f64()?,
            ))
        })
        .collect();
    let names = counts
        .iter()
        .map(|c| (c.tag_id, (c.name.clone(), c.color.clone())))
        .collect();
    let mut groups = state.store.list_tag_groups(project.id).await?;
    if groups.len() < 2 {
        groups.clear();
    }
    let group_of = match groups.is_empty() {
        true => HashMap::new(),
        false => state
            .store
            .list_tags(project.id)
            .await?
            .into_iter()
            .map(|t| (t.id.0, t.group_id))
            .collect(),
    };
    let first = from.date_naive();
    let days: Vec<String> = (0..days)
        .filter_map(|i| first.checked_add_signed(Duration::days(i)))
        .map(|d: NaiveDate| d.format("%Y-%m-%d").to_string())
        .collect();
    Ok(Data {
        counts,
        days,
        volume,
        outcomes,
        totals,
        project_tickets,
        performance,
        promoted: promoted.map(|v| v.id.0),
        names,
        recent_volume,
        fits,
        groups,
        group_of,
    })
}

impl Data {
    /// The tag counts under their groups, groups in listing order; empty for a project
    /// without groups.
    fn counts_by_group(&self) -> Vec<(&datasets::TagGroup, Vec<&TagCount>)> {
        self.groups
            .iter()
            .map(|group| {
                let counts = self
                    .counts
                    .iter()
                    .filter(|c| self.group_of.get(&c.tag_id) == Some(&group.id))
                    .collect();
                (group, counts)
            })
            .collect()
    }

    fn group_name(&self, tag: i64) -> &str {
        self.group_of
            .get(&tag)
            .and_then(|id| self.groups.iter().find(|g| g.id == *id))
            .map_or("", |g| g.name.as_str())
    }

    fn name(&self, tag: i64) -> String {
        self.names
            .get(&tag)
            .map_or_else(|| format!("tag {tag}"), |n| n.0.clone())
    }

    fn color(&self, tag: i64) -> String {
        self.names
            .get(&tag)
            .map_or_else(|| "#6b7280".to_string(), |n| n.1.clone())
    }

    /// Tickets per tag over the period, busiest first.
    fn period_totals(&self) -> Vec<(i64, i64)> {
        let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
        for row in &self.volume {
            *totals.entry(row.tag_id).or_default() += row.tickets;
        }
        let mut totals: Vec<(i64, i64)> = totals.into_iter().collect();
        totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        totals
    }

    fn series(&self, tag: i64) -> Vec<f64> {
        let index: HashMap<&str, usize> = self
            .days
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i))
            .collect();
        let mut values = vec![0.0; self.days.len()];
        for row in self.volume.iter().filter(|r| r.tag_id == tag) {
            if let Some(i) = index.get(row.day.as_str()) {
                values[*i] = row.tickets as f64;
            }
        }
        values
    }

    /// Tags rising against their own history (from `week_start`, the first of the last seven
    /// days), each with what is new in it: the phrases of its last week against the four
    /// weeks before.
    async fn rising(
        &self,
        state: &AppState,
        project: ProjectId,
        week_start: NaiveDate,
    ) -> WebResult<Vec<Value>> {
        let last_week = week_start.format("%Y-%m-%d").to_string();
        let mut rising = Vec::new();
        for (tag, week, before) in rising_tags(&self.recent_volume, &last_week) {
            let name = self.name(tag);
            let new =
                super::key_phrases::new_in_tag(state, project, TagId(tag), week_start).await?;
            let new = &new[..new.len().min(RISING_PHRASES)];
            rising.push(context! {
                tag => name.as_str(),
                week => week,
                before => before,
                factor => (week as f64 / 7.0) / (before as f64 / 28.0),
                new_phrases => super::key_phrases::view(new, project, Some(&name)),
            });
        }
        Ok(rising)
    }

    /// Clusters of tickets no tag fits, each with its words, size and newest examples.
    fn unfit_clusters(&self) -> Vec<Value> {
        let texts: Vec<String> = self
            .fits
            .iter()
            .map(|t| format!("{} {}", t.subject, t.body))
            .collect();
        let tickets: Vec<TicketText<'_>> = self
            .fits
            .iter()
            .zip(&texts)
            .map(|(t, text)| TicketText {
                id: t.id,
                text,
                fits_no_tag: !t.tagged,
            })
            .collect();
        let subjects: HashMap<i64, &str> = self
            .fits
            .iter()
            .map(|t| (t.id, t.subject.as_str()))
            .collect();
        find_clusters(&tickets, &ClusterSettings::default())
            .into_iter()
            .map(|cluster| {
                context! {
                    query => super::encode_component(&cluster.terms.join(" ")),
                    terms => cluster.terms,
                    size => cluster.tickets.len(),
                    tagged_share => cluster.tagged_share,
                    examples => cluster.tickets.iter().take(CLUSTER_EXAMPLES).map(|id| context! {
                        id => id,
                        subject => subjects.get(id).copied().unwrap_or_default(),
                    }).collect::<Vec<_>>(),
                }
            })
            .collect()
    }

    fn correction_rows(&self) -> Vec<(String, i64, i64, i64, Option<f64>)> {
        self.outcomes
            .iter()
            .map(|o| {
                let reviewed = o.confirmed + o.corrected;
                let rate = (reviewed > 0).then(|| o.corrected as f64 / reviewed as f64);
                (
                    self.name(o.tag_id),
                    o.auto_applied,
                    o.confirmed,
                    o.corrected,
                    rate,
                )
            })
            .collect()
    }
}

/// Tags whose last 7 days (from `last_week`, a `YYYY-MM-DD` day) run at `RISING_FACTOR`
/// times their daily rate of the 28 days before, with at least 5 tickets in the last week:
/// (tag, tickets in the week, tickets in the 28 days before). A tag with no ticket in the 28
/// days before is left out: its first tickets (a new tag, an import) have no history to rise
/// against, and "rising against 0" for every tag of an import is noise, not a concern.
fn rising_tags(recent_volume: &[TagVolume], last_week: &str) -> Vec<(i64, i64, i64)> {
    let mut recent: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for row in recent_volume {
        let entry = recent.entry(row.tag_id).or_default();
        if row.day.as_str() >= last_week {
            entry.0 += row.tickets;
        } else {
            entry.1 += row.tickets;
        }
    }
    recent
        .into_iter()
        .filter(|(_, (week, before))| {
            *before > 0
                && *week >= 5
                && *week as f64 / 7.0 >= RISING_FACTOR * (*before as f64 / 28.0)
        })
        .map(|(tag, (week, before))| (tag, week, before))
        .collect()
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Query(query): Query<PeriodQuery>,
) -> WebResult {
    let days = query.days()?;
    let project = load_project(&state, project).await?;
    let data = load(&state, &project, days).await?;
    let counts_chart = bar_chart(
        "Tickets per tag",
        "tickets carrying the tag",
        &data
            .counts
            .iter()
            .filter(|c| !c.archived)
            .map(|c| Bar {
                label: c.name.clone(),
                value: c.tickets as f64,
                color: c.color.clone(),
            })
            .collect::<Vec<_>>(),
    );
    // One chart per group: a Priority spread read apart from the Topics.
    let count_groups: Vec<Value> = data
        .counts_by_group()
        .into_iter()
        .map(|(group, counts)| {
            let chart = bar_chart(
                &format!("Tickets per tag of {}", group.name.as_str()),
                "tickets carrying the tag",
                &counts
                    .iter()
                    .filter(|c| !c.archived)
                    .map(|c| Bar {
                        label: c.name.clone(),
                        value: c.tickets as f64,
                        color: c.color.clone(),
                    })
                    .collect::<Vec<_>>(),
            );
            context! {
                name => group.name.as_str(),
                choice => group.choice.as_str(),
                chart => Value::from_safe_string(chart),
                counts => counts.iter().map(|c| context! { name => c.name.as_str(), tickets => c.tickets, archived => c.archived }).collect::<Vec<_>>(),
            }
        })
        .collect();
    let period = data.period_totals();
    let frequent_chart = bar_chart(
        &format!("Most frequent tags, last {days} days"),
        "tickets created in the period",
        &period
            .iter()
            .take(15)
            .map(|(tag, n)| Bar {
                label: data.name(*tag),
                value: *n as f64,
                color: data.color(*tag),
            })
            .collect::<Vec<_>>(),
    );
    let trend: Vec<Series> = period
        .iter()
        .take(TREND_TAGS)
        .map(|(tag, _)| Series {
            name: data.name(*tag),
            color: data.color(*tag),
            values: data.series(*tag),
        })
        .collect();
    let trend_chart = line_chart(
        &format!("Tickets per day, busiest {} tags", trend.len()),
        "tickets per day",
        &data.days,
        &trend,
    );
    let corrections = data.correction_rows();
    let high_corrections: Vec<Value> = data
        .outcomes
        .iter()
        .filter(|o| {
            let reviewed = o.confirmed + o.corrected;
            reviewed >= MIN_REVIEWED && o.corrected as f64 / reviewed as f64 >= HIGH_CORRECTION_RATE
        })
        .map(|o| {
            context! {
                tag => data.name(o.tag_id),
                corrected => o.corrected,
                reviewed => o.confirmed + o.corrected,
            }
        })
        .collect();
    let week_start = Utc::now().date_naive() - Duration::days(6);
    let rising = data.rising(&state, project.id, week_start).await?;
    let totals = data.totals;
    let share = |part: i64| (totals.tickets > 0).then(|| part as f64 / totals.tickets as f64);
    render_page(
        &state,
        &user,
        Some(&project),
        "dashboard",
        "dashboard.html",
        context! {
            days => days,
            periods => PERIODS,
            counts_chart => Value::from_safe_string(counts_chart),
            count_groups => count_groups,
            frequent_chart => Value::from_safe_string(frequent_chart),
            trend_chart => Value::from_safe_string(trend_chart),
            counts => data.counts.iter().map(|c| context! { name => c.name.as_str(), color => c.color.as_str(), tickets => c.tickets, archived => c.archived }).collect::<Vec<_>>(),
            period => period.iter().map(|(tag, n)| context! { name => data.name(*tag), tickets => n }).collect::<Vec<_>>(),
            performance => data.performance.iter().map(|(tag, p, r, f, s)| context! { tag => tag, precision => p, recall => r, f1 => f, support => s }).collect::<Vec<_>>(),
            promoted => data.promoted,
            corrections => corrections.iter().map(|(tag, auto, kept, fixed, rate)| context! { tag => tag, auto_applied => auto, confirmed => kept, corrected => fixed, rate => rate }).collect::<Vec<_>>(),
            totals => context! {
                tickets => totals.tickets,
                auto_tagged => totals.auto_tagged,
                human_labelled => totals.human_labelled,
                auto_share => share(totals.auto_tagged),
                human_share => share(totals.human_labelled),
            },
            rising => rising,
            high_corrections => high_corrections,
            unfit_clusters => data.unfit_clusters(),
            sampled => data.fits.len(),
            project_tickets => data.project_tickets,
        },
    )
    .await
}

/// The table behind each chart as CSV: `tag-counts.csv`, `volume.csv`, `corrections.csv`,
/// `performance.csv`.
pub async fn csv(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path((project, file)): Path<(i64, String)>,
    Query(query): Query<PeriodQuery>,
) -> WebResult {
    let days = query.days()?;
    let project = load_project(&state, project).await?;
    let data = load(&state, &project, days).await?;
    let mut out = String::new();
    match file.as_str() {
        "tag-counts.csv" => {
            let grouped = !data.groups.is_empty();
            out.push_str(if grouped {
                "tag,tickets,archived,group\n"
            } else {
                "tag,tickets,archived\n"
            });
            for c in &data.counts {
                out.push_str(&format!(
                    "{},{},{}",
                    super::csv::cell(&c.name),
                    c.tickets,
                    c.archived
                ));
                if grouped {
                    out.push_str(&format!(",{}", super::csv::cell(data.group_name(c.tag_id))));
                }
                out.push('\n');
            }
        }
        "volume.csv" => {
            out.push_str("day,tag,tickets\n");
            for v in &data.volume {
                out.push_str(&format!(
                    "{},{},{}\n",
                    v.day,
                    super::csv::cell(&data.name(v.tag_id)),
                    v.tickets
                ));
            }
        }
        "corrections.csv" => {
            out.push_str("tag,auto_applied,confirmed,corrected,correction_rate\n");
            for (tag, auto, kept, fixed, rate) in data.correction_rows() {
                let rate = rate.map_or_else(String::new, |r| format!("{r:.4}"));
                out.push_str(&format!(
                    "{},{auto},{kept},{fixed},{rate}\n",
                    super::csv::cell(&tag)
                ));
            }
        }
        "performance.csv" => {
            out.push_str("tag,precision,recall,f1,support\n");
            for (tag, p, r, f, s) in &data.performance {
                out.push_str(&format!(
                    "{},{p:.4},{r:.4},{f:.4},{s}\n",
                    super::csv::cell(tag)
                ));
            }
        }
        other => return Err(WebError::NotFound(format!("export {other:?}"))),
    }
    Ok(super::csv::download(out, &file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, tag_id: i64, tickets: i64) -> TagVolume {
        TagVolume {
            day: day.into(),
            tag_id,
            tickets,
        }
    }

    #[test]
    fn a_tags_first_tickets_are_not_an_alarm_and_a_real_rise_is() {
        let volume = [
            // Tag 1: imported this week, nothing before: no history to rise against.
            day("2026-03-25", 1, 40),
            // Tag 2: 4 tickets in the 28 days before, 12 this week: 12/7 ≥ 2 × 4/28.
            day("2026-03-01", 2, 4),
            day("2026-03-26", 2, 12),
            // Tag 3: steady.
            day("2026-03-10", 3, 28),
            day("2026-03-26", 3, 7),
        ];
        assert_eq!(rising_tags(&volume, "2026-03-24"), [(2, 12, 4)]);
    }
}
