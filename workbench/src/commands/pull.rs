//! `tagger models pull [REPO] [--revision REV]`: downloads a sentence encoder from the
//! Hugging Face Hub (or the mirror `HF_ENDPOINT` names) into the local cache, with a
//! progress bar, so training and serving find it there, also on a machine without network
//! that later gets a copy of the cache.

use crate::cli::PullArgs;
use indicatif::{ProgressBar, ProgressStyle};
use inference::encoder::hub::HubCache;
use inference::encoder::pull::{ENCODER_FILES, PullEvent, PullOptions, pull};

pub async fn run(args: PullArgs) -> anyhow::Result<()> {
    let cache = HubCache::from_env();
    if let Some(remote) = cache.remote() {
        eprintln!(
            "pulling {} from {} into {}",
            args.repo,
            remote.endpoint,
            cache.root().display()
        );
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let reporter = bar.clone();
    let snapshot = pull(
        &cache,
        &args.repo,
        args.revision.as_deref(),
        &ENCODER_FILES,
        &PullOptions::default(),
        &mut move |event| match event {
            PullEvent::Started {
                file,
                size,
                resumed_from,
            } => {
                reporter.reset();
                reporter.set_length(size);
                reporter.set_position(resumed_from);
                reporter.set_message(file.to_string());
            }
            PullEvent::Progress { done, .. } => reporter.set_position(done),
            PullEvent::Cached { file, size } => {
                reporter.println(format!("{file}: already in the cache ({size} bytes)"));
            }
            PullEvent::Verified { file } => {
                reporter.println(format!("{file}: checked"));
            }
        },
    )
    .await;
    bar.finish_and_clear();
    let snapshot = snapshot?;
    println!(
        "{} at commit {} is in {}",
        snapshot.repo,
        snapshot.revision,
        snapshot.dir.display()
    );
    Ok(())
}
