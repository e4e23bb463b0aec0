#![allow(clippy::unwrap_used)]
use datasets::{LabelMode, TicketId};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use trainer::examples::Example;
use trainer::ngram::{NgramParams, train_ngram};
use trainer::ngram_selection::select_ngram;

fn read(path: &str, tags: &mut BTreeMap<String, usize>, offset: i64) -> Vec<Example> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (text, label): (String, String) = serde_json::from_str(line).unwrap();
            let n = tags.len();
            let target = *tags.entry(label).or_insert(n);
            Example {
                ticket: TicketId(offset + i as i64),
                text: datasets::ticket::model_text("", &text),
                targets: vec![target],
            }
        })
        .collect()
}

#[test]
#[ignore]
fn scratch() {
    let name = std::env::var("DS").unwrap();
    let budget: u64 = std::env::var("BUDGET").unwrap().parse().unwrap();
    let all = std::env::var("ALL").is_ok();
    let mut tags = BTreeMap::new();
    let train = read(
        &format!("/work/scratch-ngramcv/{name}.train.jsonl"),
        &mut tags,
        0,
    );
    let test = read(
        &format!("/work/scratch-ngramcv/{name}.test.jsonl"),
        &mut tags,
        1_000_000,
    );
    let outputs = tags.len();
    let base = NgramParams::default();
    let started = std::time::Instant::now();
    let selection = select_ngram(LabelMode::Single, outputs, &train, &base, budget, |r| {
        eprintln!(
            "tried {}/{} at {:.1} s",
            r.tried,
            r.candidates,
            started.elapsed().as_secs_f64()
        );
        ControlFlow::Continue(())
    })
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let score = |params: &NgramParams| {
        let model = train_ngram(LabelMode::Single, outputs, &train, &[], params, |_| {}).model;
        let right = test
            .iter()
            .filter(|e| {
                let l = model.logits(&e.text);
                let best = l
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::MIN),
                        |a, (i, v)| if *v > a.1 { (i, *v) } else { a },
                    )
                    .0;
                e.targets.contains(&best)
            })
            .count();
        right as f64 / test.len() as f64
    };
    eprintln!("selection {:.1} s: {}", secs, selection.summary());
    for (i, trial) in selection.trials.iter().enumerate() {
        let test_acc = if all || i == selection.chosen || i == 0 {
            let mut one = selection.clone();
            one.chosen = i;
            format!("{:.4}", score(&one.apply(&base)))
        } else {
            "-".into()
        };
        eprintln!(
            "{} {:<24} l2 {:e} cv {:.4} loss {:.4} epochs {} M {:.0} test {}",
            if i == selection.chosen { "*" } else { " " },
            trial.features,
            trial.l2,
            trial.accuracy,
            trial.loss,
            trial.epochs,
            trial.updates as f64 / 1e6,
            test_acc
        );
    }
}
