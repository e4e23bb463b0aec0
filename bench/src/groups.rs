//! `bench groups`: per-group accuracy on the demo project with tag groups (Type and Priority
//! single-choice, Topics multi-choice), for each kind asked, against two baselines measured
//! in the same run: the majority tag of each single-choice group, and the same kind trained
//! flat — every tag in one multi-label head, the model as it was before groups — with each
//! single-choice group read by its likeliest tag.

use super::{Markers, ScratchDir, load_average, machine, write_section};
use anyhow::Context;
use clap::Args;
use datasets::store::prelude::*;
use datasets::{AnyStore, GroupChoice, ModelKind, Project, ProjectName, TagGroup, TagUpdate};
use inference::TaggingModel;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use trainer::examples::{Example, load_training_data};

const MARKERS: Markers = Markers {
    start: "<!-- bench:groups:start -->",
    end: "<!-- bench:groups:end -->",
};
const AFTER_MARKER: &str = "<!-- bench:normalise:end -->";

#[derive(Debug, Args)]
pub struct GroupsBench {
    /// Demo tickets to generate (a share stays unlabelled, as in `tagger demo`).
    #[arg(long, default_value_t = 3000)]
    tickets: usize,
    /// Seed of the generator and of the train/test split.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Model kinds to train, comma-separated (`encoder-head` needs all-MiniLM-L6-v2 in the
    /// hub cache).
    #[arg(long, value_delimiter = ',', default_value = "ngram")]
    kinds: Vec<ModelKind>,
    /// Markdown file whose tag-groups section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// One group of the grouped project, with its tags' names.
struct Group {
    name: String,
    choice: GroupChoice,
    tags: Vec<String>,
}

/// A kind's figures per group name: (accuracy, test tickets judged).
type PerGroup = BTreeMap<String, (f64, usize)>;

pub fn run(args: &GroupsBench) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = ScratchDir::create()?;
    let load_before = load_average();
    let (grouped_store, grouped) = runtime.block_on(demo(&work.0, "grouped", args, false))?;
    let (flat_store, flat) = runtime.block_on(demo(&work.0, "flat", args, true))?;
    let groups = runtime.block_on(groups_of(&grouped_store, &grouped))?;
    let data = runtime.block_on(load_training_data(&grouped_store, &grouped))?;
    let majority = majority_baseline(&groups, &names(&data.tags), &data.train, &data.test);
    let mut columns: Vec<(String, PerGroup)> = Vec::new();
    let mut macro_f1: BTreeMap<String, f64> = BTreeMap::new();
    for &kind in &args.kinds {
        let request = trainer::TrainRequest {
            kind,
            ..trainer::TrainRequest::default()
        };
        eprintln!("training {kind}, one head per group");
        let outcome = runtime
            .block_on(trainer::train(
                &grouped_store,
                &grouped,
                &request,
                work.0.join("models-grouped").as_path(),
                |_| {},
            ))
            .context(format!("training {kind} on the grouped project"))?;
        let per_group: PerGroup = outcome
            .evaluation
            .groups
            .iter()
            .map(|g| (g.group.clone(), (g.accuracy, g.examples)))
            .collect();
        for g in &outcome.evaluation.groups {
            macro_f1.insert(format!("{kind}/{}", g.group), g.macro_f1);
        }
        eprintln!("training {kind}, flat");
        let flat_outcome = runtime
            .block_on(trainer::train(
                &flat_store,
                &flat,
                &request,
                work.0.join("models-flat").as_path(),
                |_| {},
            ))
            .context(format!("training {kind} on the flat project"))?;
        let model = trainer::load_version(&flat_outcome.version)?;
        let flat_data = runtime.block_on(load_training_data(&flat_store, &flat))?;
        let flat_per_group = read_flat(&model, &groups, &names(&flat_data.tags), &flat_data.test)?;
        columns.push((
            format!("{kind}, flat (one sigmoid per tag)"),
            flat_per_group,
        ));
        columns.push((format!("{kind}, one head per group"), per_group));
    }
    let load_after = load_average();
    let section = section(
        args,
        &groups,
        &majority,
        &columns,
        &macro_f1,
        (load_before.as_str(), load_after.as_str()),
    );
    println!("\n{section}");
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

/// A fresh SQLite store with the grouped demo project; `flat` then moves every tag into
/// the default group, so the model trains one multi-label head as before groups.
async fn demo(
    work: &Path,
    name: &str,
    args: &GroupsBench,
    flat: bool,
) -> anyhow::Result<(AnyStore, Project)> {
    let url = format!("sqlite://{}", work.join(format!("{name}.db")).display());
    let store = AnyStore::open(&url).await?;
    store.migrate().await?;
    let project = datasets::demo_project::install_grouped_demo_project(
        &store,
        &ProjectName::parse("Demo")?,
        args.tickets,
        args.seed,
    )
    .await?;
    if flat {
        let groups = store.list_tag_groups(project.id).await?;
        let default = groups
            .iter()
            .find(|g| g.is_default)
            .context("the demo project has no default group")?;
        for tag in store.list_tags(project.id).await? {
            if tag.group_id != default.id {
                let update = TagUpdate {
                    group: Some(default.name.clone()),
                    ..TagUpdate::default()
                };
                store.update_tag(project.id, tag.id, &update).await?;
            }
        }
    }
    Ok((store, project))
}

async fn groups_of(store: &AnyStore, project: &Project) -> anyhow::Result<Vec<Group>> {
    let groups: Vec<TagGroup> = store.list_tag_groups(project.id).await?;
    let tags = store.list_tags(project.id).await?;
    Ok(groups
        .iter()
        .map(|g| Group {
            name: g.name.as_str().to_string(),
            choice: g.choice,
            tags: tags
                .iter()
                .filter(|t| t.group_id == g.id && !t.archived)
                .map(|t| t.name.as_str().to_string())
                .collect(),
        })
        .filter(|g| !g.tags.is_empty())
        .collect())
}

fn names(tags: &[inference::TagRef]) -> Vec<String> {
    tags.iter().map(|t| t.name.as_str().to_string()).collect()
}

/// The names of a group's tags among `tags` (output order), as indices.
fn indices(group: &Group, tags: &[String]) -> Vec<usize> {
    tags.iter()
        .enumerate()
        .filter(|(_, t)| group.tags.contains(t))
        .map(|(i, _)| i)
        .collect()
}

/// Per single-choice group: the accuracy of always answering its most frequent training tag.
fn majority_baseline(
    groups: &[Group],
    tags: &[String],
    train: &[Example],
    test: &[Example],
) -> PerGroup {
    let mut baseline = PerGroup::new();
    for group in groups.iter().filter(|g| g.choice == GroupChoice::Single) {
        let members = indices(group, tags);
        let truth = |e: &Example| e.targets.iter().copied().find(|t| members.contains(t));
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for tag in train.iter().filter_map(truth) {
            *counts.entry(tag).or_default() += 1;
        }
        let Some((&majority, _)) = counts
            .iter()
            .max_by_key(|(tag, n)| (**n, usize::MAX - **tag))
        else {
            continue;
        };
        let judged: Vec<usize> = test.iter().filter_map(truth).collect();
        let right = judged.iter().filter(|&&t| t == majority).count();
        baseline.insert(
            group.name.clone(),
            (ratio(right, judged.len()), judged.len()),
        );
    }
    baseline
}

/// A flat model's per-group accuracy, judged as the grouped evaluation judges: a
/// single-choice group's likeliest tag on tickets that have one of its tags, a multi-choice
/// group's set at 0.5 on every ticket.
fn read_flat(
    model: &TaggingModel,
    groups: &[Group],
    tags: &[String],
    test: &[Example],
) -> anyhow::Result<PerGroup> {
    let texts: Vec<&str> = test.iter().map(|e| e.text.as_str()).collect();
    let heads = model.card.heads();
    let probabilities: Vec<Vec<f32>> = model
        .score_batch(&texts)?
        .iter()
        .map(|s| heads.probabilities(&s.logits, model.card.temperature))
        .collect();
    let mut per_group = PerGroup::new();
    for group in groups {
        let members = indices(group, tags);
        let (mut judged, mut right) = (0, 0);
        for (example, p) in test.iter().zip(&probabilities) {
            let truth: Vec<usize> = example
                .targets
                .iter()
                .copied()
                .filter(|t| members.contains(t))
                .collect();
            let guess: Vec<usize> = match group.choice {
                GroupChoice::Single => {
                    if truth.is_empty() {
                        continue;
                    }
                    members
                        .iter()
                        .copied()
                        .max_by(|a, b| p[*a].total_cmp(&p[*b]))
                        .into_iter()
                        .collect()
                }
                GroupChoice::Multi => members.iter().copied().filter(|&i| p[i] >= 0.5).collect(),
            };
            judged += 1;
            if guess == truth {
                right += 1;
            }
        }
        per_group.insert(group.name.clone(), (ratio(right, judged), judged));
    }
    Ok(per_group)
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn section(
    args: &GroupsBench,
    groups: &[Group],
    majority: &PerGroup,
    columns: &[(String, PerGroup)],
    macro_f1: &BTreeMap<String, f64>,
    load: (&str, &str),
) -> String {
    let mut table = String::from("| group | choice | tags | test tickets judged | majority tag |");
    for (title, _) in columns {
        write!(table, " {title} |").ok();
    }
    table.push_str("\n|---|---|---:|---:|---:|");
    for _ in columns {
        table.push_str("---:|");
    }
    table.push('\n');
    for group in groups {
        let judged = columns
            .iter()
            .find_map(|(_, c)| c.get(&group.name).map(|(_, n)| *n))
            .unwrap_or(0);
        let majority = majority
            .get(&group.name)
            .map_or_else(|| "–".to_string(), |(a, _)| format!("{a:.3}"));
        write!(
            table,
            "| {} | {} | {} | {judged} | {majority} |",
            group.name,
            group.choice.as_str(),
            group.tags.len()
        )
        .ok();
        for (_, column) in columns {
            match column.get(&group.name) {
                Some((accuracy, _)) => write!(table, " {accuracy:.3} |").ok(),
                None => write!(table, " – |").ok(),
            };
        }
        table.push('\n');
    }
    let f1: Vec<String> = macro_f1
        .iter()
        .map(|(key, value)| format!("{key} {value:.3}"))
        .collect();
    format!(
        "## Tag groups: per-group accuracy on the demo project\n\n\
         Measured {} on {}, with:\n\n```sh\n{}\n```\n\n\
         The demo project with tag groups (`tagger demo`'s taxonomy: Type and Priority \
         single-choice, Topics multi-choice), {} generated tickets, seed {}, in a fresh SQLite \
         store; each kind trained with its default settings by `trainer::train` (what `tagger \
         train` runs) and judged on the project's test split. A single-choice group's \
         accuracy is its likeliest tag against the ticket's tag of that group, on the test \
         tickets that have one; a multi-choice group's is its predicted set (p ≥ 0.5) \
         exactly right, on every test ticket. Baselines from the same run: the group's most \
         frequent training tag, and the same kind trained **flat** on the same tickets — \
         every tag moved into one multi-label group, so the model has one sigmoid per tag as \
         before groups — read per group the same way. Load average (1 min) {} before, {} \
         after.\n\n{table}\nMacro-F1 per group, one head per group: {}.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        command(),
        args.tickets,
        args.seed,
        load.0,
        load.1,
        f1.join("; ")
    )
}

fn command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if cfg!(debug_assertions) {
        format!("cargo run --bin bench -- {}", args.join(" "))
    } else {
        format!(
            "cargo build --release --bins && cargo run --release --bin bench -- {}",
            args.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(targets: &[usize]) -> Example {
        Example {
            ticket: datasets::TicketId(1),
            text: String::new(),
            targets: targets.to_vec(),
        }
    }

    #[test]
    fn the_majority_baseline_answers_the_most_frequent_training_tag_of_each_single_group() {
        let tags: Vec<String> = ["Bug", "Question", "Login", "High", "Low"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let groups = [
            Group {
                name: "Type".into(),
                choice: GroupChoice::Single,
                tags: vec!["Bug".into(), "Question".into()],
            },
            Group {
                name: "Topics".into(),
                choice: GroupChoice::Multi,
                tags: vec!["Login".into()],
            },
            Group {
                name: "Priority".into(),
                choice: GroupChoice::Single,
                tags: vec!["High".into(), "Low".into()],
            },
        ];
        let train = [example(&[0, 2, 4]), example(&[0]), example(&[1, 3])];
        let test = [example(&[0, 3]), example(&[1, 4]), example(&[2])];
        let baseline = majority_baseline(&groups, &tags, &train, &test);
        // Type: Bug twice in training; the test has a Bug and a Question, the third ticket no type.
        assert_eq!(baseline["Type"], (0.5, 2));
        // Priority: High and Low once each: the tie goes to the first tag (High).
        assert_eq!(baseline["Priority"], (0.5, 2));
        assert!(
            !baseline.contains_key("Topics"),
            "multi-choice groups have no majority tag"
        );
    }
}
