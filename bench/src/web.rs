//! `bench web`: server time of the workbench pages on a project of 100,000 tickets (the
//! issue's budget is 50 ms per page). Builds the project with the demo generator in a scratch
//! SQLite file (and a scratch PostgreSQL database when a URL is given), serves the app in
//! process on loopback, logs in and times each page; writes a table to docs/benchmarks.md.

use anyhow::Context;
use clap::Args;
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::{AnyStore, LabelMode, NewQueueEntry, NewUser, ProjectName, Role, Username};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workbench::app::Application;
use workbench::config::Config;
use workbench::state::AppState;

const MARKERS: super::Markers = super::Markers {
    start: "<!-- bench:web:start -->",
    end: "<!-- bench:web:end -->",
};
const BUDGET_MS: f64 = 50.0;

#[derive(Debug, Args)]
pub struct WebBench {
    /// Tickets in the project.
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    /// Requests per page (after one warm-up).
    #[arg(long, default_value_t = 30)]
    repeats: usize,
    /// Also measure on PostgreSQL, in a scratch database on the server TEST_DATABASE_URL names.
    #[arg(long)]
    postgres: bool,
    /// Markdown file whose web section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// Tickets two synthetic people label before the pages are timed.
const DOUBLE_LABELLED: u32 = 500;

pub fn run(args: &WebBench) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_async(args))
}

struct Row {
    backend: &'static str,
    page: &'static str,
    median_ms: f64,
    p95_ms: f64,
}

impl Row {
    fn new(backend: &'static str, page: &'static str, mut times: Vec<Duration>) -> Row {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Row {
            backend,
            page,
            median_ms: ms(times[times.len() / 2]),
            p95_ms: ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
        }
    }
}

/// What a bulk load of the bench project cost (the count triggers of migration 0006 run in it).
struct Load {
    backend: &'static str,
    seconds: f64,
}

async fn run_async(args: &WebBench) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut loads = Vec::new();
    let sqlite = TestDatabase::sqlite()?;
    let (measured, load) = measure("SQLite", sqlite.store().await?, args, None).await?;
    rows.extend(measured);
    loads.push(load);
    if args.postgres {
        let postgres = TestDatabase::postgres("bench_web").await?.context(
            "--postgres needs TEST_DATABASE_URL (a server where a scratch database is created)",
        )?;
        let result = measure(
            "PostgreSQL",
            postgres.store().await?,
            args,
            Some(&postgres.url),
        )
        .await;
        postgres.drop_database().await?;
        let (measured, load) = result?;
        rows.extend(measured);
        loads.push(load);
    }
    let mut table = format!(
        "### Workbench pages on {} tickets\n\n`cargo run {}--bin bench -- web{}` ({}; {} requests per page after a warm-up, \
         loopback, one client). Budget: {BUDGET_MS} ms per page. The rows \"recount\" time \
         `Store::rebuild_dashboard_counts`, the aggregation over every label that the dashboard and \
         taxonomy pages ran on each request before migration 0006 (the baseline, same run). \
         Bulk load of the project (demo import, count triggers included): {}.\n\n\
         | database | page | median ms | p95 ms |\n|---|---|---:|---:|\n",
        args.tickets,
        // Dev builds optimise dependencies (SQLite, argon2) but not our code.
        if cfg!(debug_assertions) {
            ""
        } else {
            "--release "
        },
        if args.postgres { " --postgres" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d"),
        args.repeats,
        loads
            .iter()
            .map(|l| format!("{} {:.1} s", l.backend, l.seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for row in &rows {
        table.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} |\n",
            row.backend, row.page, row.median_ms, row.p95_ms
        ));
        println!(
            "{:<10} {:<44} median {:>7.1} ms  p95 {:>7.1} ms",
            row.backend, row.page, row.median_ms, row.p95_ms
        );
    }
    super::write_section(&args.output, &table, MARKERS, None)?;
    Ok(())
}

async fn measure(
    backend: &'static str,
    store: AnyStore,
    args: &WebBench,
    postgres_url: Option<&str>,
) -> anyhow::Result<(Vec<Row>, Load)> {
    let started = Instant::now();
    let project = datasets::demo_project::install_demo_project(
        &store,
        &ProjectName::parse("Bench")?,
        LabelMode::Multi,
        args.tickets,
        7,
    )
    .await?;
    let load = Load {
        backend,
        seconds: started.elapsed().as_secs_f64(),
    };
    println!(
        "{backend}: {} tickets stored in {:.1} s",
        args.tickets, load.seconds
    );
    if let Some(url) = postgres_url {
        // A production database has statistics and a merged full-text index (autovacuum); a
        // fresh bulk load has neither yet, so PostgreSQL would plan blind and scan the GIN
        // index's pending list.
        let analyzed = std::process::Command::new("psql")
            .args([url, "-qc", "VACUUM ANALYZE"])
            .status()
            .context("psql is needed to VACUUM ANALYZE the scratch database")?;
        anyhow::ensure!(analyzed.success(), "VACUUM ANALYZE failed");
    }
    let mut rows = Vec::new();
    let mut recount = Vec::with_capacity(args.repeats.min(10));
    for _ in 0..args.repeats.min(10) {
        let started = Instant::now();
        store.rebuild_dashboard_counts(project.id).await?;
        recount.push(started.elapsed());
    }
    rows.push(Row::new(
        backend,
        "recount of the dashboard figures (baseline)",
        recount,
    ));
    let tags = store.list_tags(project.id).await?;
    let tag = tags.first().context("the demo taxonomy is empty")?;
    let first = store.tickets_after(project.id, None, 1000).await?;
    let queue: Vec<NewQueueEntry> = first
        .iter()
        .map(|t| NewQueueEntry {
            ticket_id: t.ticket.id,
            score: 0.5,
            strategy: "margin".into(),
            reason: "bench".into(),
        })
        .collect();
    store.replace_review_queue(project.id, &queue).await?;
    // 500 tickets answered by two people, one in six differently: the Agreement page's kappa
    // and its list of disagreements (the first 20 shown) have real work to do.
    workbench::commands::demo::seed_double_labelling(&store, project.id, DOUBLE_LABELLED).await?;
    let password = "bench password 123";
    store
        .create_user(&NewUser {
            username: Username::parse("bench")?,
            role: Role::Admin,
            password_hash: workbench::web::hash_password(password).map_err(anyhow::Error::msg)?,
        })
        .await?;
    let application = Application::bind(
        AppState::new(store.clone(), Config::default()),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let base = format!("http://{}", application.local_addr()?);
    let server = tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = login(&client, &base, password).await?;
    let p = format!("{base}/p/{}", project.id);
    let ticket = first.first().context("no tickets")?.ticket.id;
    let tag_name = workbench::web::encode_component(tag.name.as_str());
    let pages: Vec<(&'static str, String)> = vec![
        ("review (lease + ticket)", format!("{p}/review")),
        ("tickets, newest page", format!("{p}/tickets")),
        ("tickets, page 20", format!("{p}/tickets?page=20")),
        (
            "tickets, full-text \"refund\"",
            format!("{p}/tickets?q=refund"),
        ),
        (
            "tickets, full-text, no match",
            format!("{p}/tickets?q=zyxwvut"),
        ),
        ("tickets, tag filter", format!("{p}/tickets?tag={tag_name}")),
        (
            "tickets, labelled by a person",
            format!("{p}/tickets?label_source=human"),
        ),
        (
            "tickets, tag + model confidence ≥ 0.9",
            format!("{p}/tickets?tag={tag_name}&min=0.9"),
        ),
        (
            "tickets, date range",
            format!("{p}/tickets?from=2020-01-01&to=2100-01-01"),
        ),
        ("ticket page", format!("{p}/tickets/{ticket}")),
        ("taxonomy", format!("{p}/taxonomy")),
        (
            "tag edit + rule preview",
            format!("{p}/taxonomy/{}?include=refund%0Acharged", tag.id),
        ),
        ("models", format!("{p}/models")),
        ("dashboard, 30 days", format!("{p}/dashboard")),
        ("dashboard, 365 days", format!("{p}/dashboard?days=365")),
        (
            "agreement (500 double-labelled, 84 disagreements)",
            format!("{p}/agreement"),
        ),
        ("projects and API keys", format!("{base}/admin/projects")),
    ];
    for (page, url) in pages {
        let mut times = Vec::with_capacity(args.repeats);
        for i in 0..=args.repeats {
            let started = Instant::now();
            let response = client.get(&url).header("cookie", &cookie).send().await?;
            let status = response.status();
            response.bytes().await?;
            let elapsed = started.elapsed();
            anyhow::ensure!(status.is_success(), "{page}: {url} answered {status}");
            if i > 0 {
                times.push(elapsed);
            }
        }
        rows.push(Row::new(backend, page, times));
    }
    server.abort();
    Ok((rows, load))
}

async fn login(client: &reqwest::Client, base: &str, password: &str) -> anyhow::Result<String> {
    let form = client.get(format!("{base}/login")).send().await?;
    let csrf_cookie = cookie_pair(&form, "tagger_login_csrf")?;
    let html = form.text().await?;
    let start = html
        .find("name=\"csrf\" value=\"")
        .context("no CSRF field")?
        + 19;
    let csrf = &html[start..start + 64];
    let response = client
        .post(format!("{base}/login"))
        .header("cookie", csrf_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&username=bench&password={}&next=/",
            workbench::web::encode_component(password)
        ))
        .send()
        .await?;
    cookie_pair(&response, "tagger_session")
}

fn cookie_pair(response: &reqwest::Response, name: &str) -> anyhow::Result<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .with_context(|| format!("no {name} cookie in the answer ({})", response.status()))
}
