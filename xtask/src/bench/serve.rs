//! `cargo xtask bench serve`: the assistant's HTTP server under load.
//!
//! The server runs in this process (its own tokio runtime, one worker per
//! core) on loopback with a fresh store; the load generator
//! (`rlhf_bench::load`) runs on its own thread with `--clients` keep-alive
//! connections for `--seconds`, 90% predictions and 10% feedback by
//! default. After the run the server shuts down gracefully and every
//! acknowledged feedback is looked up in the store: the count missing must
//! be zero. With `--peer-python`, the FastAPI + scikit-learn peer
//! (`benches/peers/fastapi_intent_server.py`) is measured the same way in
//! the same run. Writes `serve.json` and `serve.md` in `--out`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rlhf_assistant::model::DEFAULT_MODEL_DIR;
use rlhf_assistant::serve::store::{default_store_path, sqlite_url};
use rlhf_assistant::serve::{ServeConfig, Service};
use rlhf_assistant::{IntentCorpus, Split};
use rlhf_bench::load::{LoadConfig, LoadReport, run_load};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use serde::Serialize;

use super::report::{Provenance, provenance, workspace_root};
use crate::train::write_atomically;

/// Arguments of `bench serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeBench {
    /// The intent model served.
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    checkpoint: PathBuf,
    /// The store: by default a fresh SQLite file in `--out`; `postgres://...`
    /// for PostgreSQL (an empty database, or one this model's runs used).
    #[arg(long)]
    db: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long the load runs.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Share of requests that are feedback on an earlier prediction.
    #[arg(long, default_value_t = 0.1)]
    feedback_share: f64,
    /// Also measure the FastAPI + scikit-learn peer with this Python (which
    /// has its packages: benches/peers/README.md).
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// Folder of the report and the scratch stores (replaced each run).
    #[arg(long, default_value = "runs/bench-serve")]
    out: PathBuf,
}

/// One server under load.
#[derive(Debug, Clone, Serialize)]
pub struct ServeRow {
    /// Which server.
    pub server: String,
    /// Its store.
    pub store: String,
    /// What the load measured.
    pub load: LoadReport,
    /// Feedback the server acknowledged.
    pub acknowledged: usize,
    /// Of those, how many are not in the store.
    pub missing: usize,
}

#[derive(Debug, Serialize)]
struct ServeReport {
    provenance: Provenance,
    seconds: f64,
    clients: usize,
    feedback_share: f64,
    rows: Vec<ServeRow>,
}

/// `cargo xtask bench serve`.
pub fn bench_serve(args: &ServeBench) -> anyhow::Result<Vec<ServeRow>> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be in (0, 3600], not {}",
        args.seconds
    );
    let test = IntentCorpus::builtin(Split::Test)?;
    let load = LoadConfig {
        clients: args.clients,
        duration: Duration::from_secs_f64(args.seconds),
        feedback_share: args.feedback_share,
        texts: test.utterances(3, 0).into_iter().map(|u| u.text).collect(),
        token: None,
        seed: 0,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut rows = vec![bench_ours(args, &load)?];
    if let Some(python) = &args.peer_python {
        rows.push(bench_peer(args, python, &load)?);
    }
    let mut markdown = format!(
        "# Serving under load\n\n{} clients, {} s, {:.0}% feedback; server and load generator on one machine.\n\n",
        args.clients,
        args.seconds,
        args.feedback_share * 100.0
    );
    markdown.push_str(&markdown_table(&rows));
    let report = ServeReport {
        provenance: provenance(),
        seconds: args.seconds,
        clients: args.clients,
        feedback_share: args.feedback_share,
        rows,
    };
    let _ = writeln!(
        markdown,
        "\nmachine: {} ({} cores), commit {}, {}",
        report.provenance.cpu, report.provenance.cores, report.provenance.commit, report.provenance.date
    );
    print!("{markdown}");
    write_atomically(&args.out.join("serve.md"), markdown.as_bytes())?;
    write_atomically(&args.out.join("serve.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report.rows)
}

/// A fresh scratch folder `name` in `--out`.
fn scratch(args: &ServeBench, name: &str) -> anyhow::Result<PathBuf> {
    let dir = args.out.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs `load` against `addr` on a thread of its own, as a separate client would.
fn drive(addr: SocketAddr, load: &LoadConfig) -> anyhow::Result<LoadReport> {
    let load = load.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(runtime.block_on(run_load(addr, &load))?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
}

fn bench_ours(args: &ServeBench, load: &LoadConfig) -> anyhow::Result<ServeRow> {
    let mut config = ServeConfig::new(&args.checkpoint);
    config.run_dir = scratch(args, "rlhf")?;
    if let Some(db) = &args.db {
        config.store_url = db.clone();
    } else {
        config.store_url = sqlite_url(&default_store_path(&config.run_dir));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (service, listener) = runtime.block_on(async {
        let service = Service::start::<AutodiffCpu>(&config, cpu_device()).await?;
        anyhow::Ok((service, tokio::net::TcpListener::bind("127.0.0.1:0").await?))
    })?;
    let store = service.state.store.name().to_owned();
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(service.serve(listener, async {
        let _ = stopped.await;
    }));
    let report = drive(addr, load)?;
    let _ = stop.send(());
    runtime.block_on(server)??;
    let stored = runtime.block_on(stored_feedback(&config.store_url))?;
    Ok(row("rlhf (axum, Rust)", store, report, &stored))
}

fn bench_peer(args: &ServeBench, python: &PathBuf, load: &LoadConfig) -> anyhow::Result<ServeRow> {
    let db = scratch(args, "peer")?.join("feedback.db");
    let script = workspace_root().join("benches/peers/fastapi_intent_server.py");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = Command::new(python)
        .arg(&script)
        .args(["--port", &port.to_string(), "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
    let stdout = child.stdout.take().context("the peer's stdout")?;
    let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.starts_with("listening on"));
    let result = (|| {
        anyhow::ensure!(ready, "the peer exited before listening (see its messages above)");
        let report = drive(SocketAddr::from(([127, 0, 0, 1], port)), load)?;
        let url = format!("sqlite://{}?mode=ro", db.display());
        let stored =
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(stored_feedback(&url))?;
        Ok(row("FastAPI + scikit-learn (Python)", db.display().to_string(), report, &stored))
    })();
    // Killed outright: feedback it acknowledged was committed first, so nothing acknowledged can go missing.
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The ids of every feedback event in the store at `url` (both servers' schemas name them so).
async fn stored_feedback(url: &str) -> anyhow::Result<HashSet<i64>> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.with_context(|| format!("opening {url} to count the feedback"))?;
    let rows = sqlx::query("SELECT id FROM events WHERE kind = 'feedback'").fetch_all(&pool).await?;
    pool.close().await;
    Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
}

fn row(server: &str, store: String, load: LoadReport, stored: &HashSet<i64>) -> ServeRow {
    let missing = load.acknowledged.iter().filter(|id| !stored.contains(id)).count();
    ServeRow { server: server.into(), store, acknowledged: load.acknowledged.len(), missing, load }
}

fn markdown_table(rows: &[ServeRow]) -> String {
    let mut table = String::from(
        "| server | store | predictions/s | p50 | p99 | p99.9 | feedback/s | p50 | p99 | p99.9 | errors (requests, connections) | feedback acknowledged | missing from the store |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (p, f) = (&r.load.predict, &r.load.feedback);
        let store = if r.store.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
        let _ = writeln!(
            table,
            "| {} | {store} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} | {} |",
            r.server,
            p.per_second,
            p.p50_ms,
            p.p99_ms,
            p.p999_ms,
            f.per_second,
            f.p50_ms,
            f.p99_ms,
            f.p999_ms,
            p.errors + f.errors + r.load.failed_clients.len() as u64,
            r.acknowledged,
            r.missing
        );
    }
    table
}
