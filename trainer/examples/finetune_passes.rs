//! A few `finetune` steps on a project's longest training tickets, to measure a token
//! budget's step time and peak memory with and without passes (docs/models.md):
//!
//! ```sh
//! cargo build --example finetune_passes -p trainer
//! /usr/bin/time -v target/debug/examples/finetune_passes sqlite://tagger.db PROJECT 256 2048 2
//! ```
//!
//! Arguments: database URL, project, token budget, pass budget in tokens (a large number
//! runs each batch in one pass), steps. The encoder comes from the hub cache (`HF_HOME`).
use datasets::AnyStore;
use datasets::store::prelude::*;
use inference::encoder::{Encoder, EncoderFiles};
use std::ops::ControlFlow;
use trainer::examples::{Example, load_training_data};
use trainer::finetune::{FinetuneParams, finetune_until};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, project, max_tokens, pass_tokens, steps] = args.as_slice() else {
        anyhow::bail!("usage: finetune_passes DATABASE_URL PROJECT MAX_TOKENS PASS_TOKENS STEPS");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let store = runtime.block_on(AnyStore::open(url))?;
    let name = datasets::ProjectName::parse(project)?;
    let project = runtime
        .block_on(store.project_by_name(&name))?
        .ok_or_else(|| anyhow::anyhow!("no project {name}"))?;
    let data = runtime.block_on(load_training_data(&store, &project))?;
    let params = FinetuneParams {
        max_tokens: max_tokens.parse()?,
        pass_tokens: pass_tokens.parse()?,
        max_steps: Some(steps.parse()?),
        ..FinetuneParams::default()
    };
    let snapshot = params.cache().snapshot(&params.encoder, None)?;
    let files = EncoderFiles::read(&snapshot, None)?;
    let encoder = Encoder::from_files(&files, &params.encoder_options())?;
    // The longest tickets, so that every batch pads to the budget.
    let mut train: Vec<&Example> = data.train.iter().collect();
    train.sort_by_key(|example| std::cmp::Reverse(example.text.len()));
    train.truncate(params.batch_size * params.max_steps.unwrap_or(1));
    finetune_until(
        &encoder,
        &files,
        &data.heads,
        data.tags.len(),
        &train,
        &[],
        None,
        &params,
        |step| {
            println!(
                "step {}: {} tokens, loss {:.4}, {:.1} s",
                step.step, step.tokens, step.loss, step.seconds
            );
            ControlFlow::Continue(())
        },
        |_| ControlFlow::Continue(()),
    )?;
    Ok(())
}
