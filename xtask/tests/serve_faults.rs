//! `cargo xtask serve` as a process: killed with SIGKILL in the middle of a
//! load, then restarted; every feedback it acknowledged is in the store and
//! the model version continues. And `cargo xtask bench serve` end to end.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rlhf_assistant::IntentFeatures;
use rlhf_assistant::PipelineConfig;
use rlhf_assistant::pipeline::{IntentModelSpec, new_network, save_intent_model};
use rlhf_bench::load::{LoadConfig, run_load};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use rlhf_model::text::FeaturizerConfig;
use serde_json::{Value, json};
use sqlx::Row as _;

const INTENTS: [&str; 4] = ["light_on", "light_off", "volume_up", "volume_down"];

/// An untrained model of [`INTENTS`] (learning speed is not what is tested).
fn save_model(dir: &Path) {
    let featurizer = FeaturizerConfig { dim: 1024, ..Default::default() };
    let config = PipelineConfig { featurizer, net_arch: vec![32], ..Default::default() };
    let features = IntentFeatures::ngrams(featurizer).unwrap();
    let network = new_network::<AutodiffCpu>(&config, &features, INTENTS.len(), &cpu_device(), 0);
    let spec = IntentModelSpec::new(INTENTS.iter().map(|s| (*s).to_owned()).collect(), &features);
    save_intent_model(dir, &network, &spec, 0, "cpu".into(), json!({})).unwrap();
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn start_server(model: &Path, addr: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["serve", "--addr", &addr.to_string(), "--checkpoint"])
        .arg(model)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// One request over a fresh connection: (status, JSON body).
async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(body.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let json = response.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok())?;
    Some((status, json))
}

/// Waits for the server at `addr` to answer `/healthz`; returns its model version.
async fn healthy(addr: SocketAddr) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, health)) = request(addr, "GET", "/healthz", None).await {
            return health["model_version"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the server at {addr} did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn feedback_ids(store: &Path) -> (Vec<i64>, i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=ro", store.display())).await.unwrap();
    let ids = sqlx::query("SELECT id FROM events WHERE kind = 'feedback' ORDER BY id").fetch_all(&pool).await.unwrap();
    let last = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&pool).await.unwrap();
    pool.close().await;
    (ids.iter().map(|r| r.get::<i64, _>(0)).collect(), last.get::<i64, _>(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_keeps_every_acknowledged_feedback_and_its_version() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    save_model(&model);
    let addr = free_addr();
    let mut server = start_server(&model, addr);
    assert_eq!(healthy(addr).await, 0, "the checkpoint's step");

    let load = LoadConfig {
        clients: 16,
        duration: Duration::from_secs(4),
        feedback_share: 0.3,
        texts: ["开灯", "把灯关了", "turn it up", "quieter please", "声音小一点"].map(String::from).to_vec(),
        token: None,
        seed: 7,
    };
    let running = tokio::spawn(async move { run_load(addr, &load).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap(); // SIGKILL: no shutdown, no save
    server.wait().unwrap();
    let report = running.await.unwrap().unwrap();
    assert!(!report.failed_clients.is_empty(), "the clients saw the server die");
    assert!(report.acknowledged.len() > 10, "feedback was acknowledged before the kill: {}", report.acknowledged.len());

    let store = model.parent().unwrap().join("serve/feedback.db");
    let (stored, last_event) = feedback_ids(&store).await;
    let missing: Vec<&i64> = report.acknowledged.iter().filter(|id| stored.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged feedback missing from the store: {missing:?}");

    // Restarted, it replays everything recorded: its version is the last event's.
    let mut server = start_server(&model, addr);
    assert_eq!(healthy(addr).await, last_event, "base step 0 + the last event");
    let (_, answer) = request(addr, "POST", "/v1/predict", Some(json!({"text": "开灯"}))).await.unwrap();
    let (status, ack) = request(
        addr,
        "POST",
        "/v1/feedback",
        Some(json!({"interaction_id": answer["interaction_id"], "feedback": "right"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["model_version"], last_event + 1, "the version continues");
    assert!(answer["interaction_id"].as_i64().unwrap() > 0);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn bench_serve_reports_latencies_and_finds_every_acknowledged_feedback() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    save_model(&model);
    let out = root.path().join("bench");
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "serve", "--seconds", "1", "--clients", "4", "--checkpoint"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("serve.json")).unwrap()).unwrap();
    let ours = &report["rows"][0];
    assert!(ours["load"]["predict"]["ok"].as_u64().unwrap() > 0, "{ours}");
    assert!(ours["acknowledged"].as_u64().unwrap() > 0, "{ours}");
    assert_eq!(ours["missing"], 0);
    assert_eq!(ours["load"]["failed_clients"], json!([]));
    let p = &ours["load"]["predict"];
    assert!(p["p50_ms"].as_f64() <= p["p99_ms"].as_f64() && p["p99_ms"].as_f64() <= p["max_ms"].as_f64(), "{p}");
    assert!(std::fs::read_to_string(out.join("serve.md")).unwrap().contains("| rlhf (axum, Rust) | SQLite |"));
}

fn xtask(args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).env("RUST_LOG", "warn").output().unwrap();
    assert!(output.status.success(), "xtask {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_export_import_round_trips_and_finetune_reads_the_store() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    save_model(&model);
    let addr = free_addr();
    let mut server = start_server(&model, addr);
    healthy(addr).await;
    let post = |path: &'static str, body: Value| async move { request(addr, "POST", path, Some(body)).await.unwrap() };
    let (_, first) = post("/v1/predict", json!({"text": "开灯"})).await;
    post("/v1/feedback", json!({"interaction_id": first["interaction_id"], "feedback": "right"})).await;
    let (_, second) = post("/v1/predict", json!({"text": "帮我叫车"})).await;
    assert_eq!(post("/v1/intents", json!({"name": "book_taxi"})).await.0, 201);
    let (status, _) = post(
        "/v1/feedback",
        json!({"interaction_id": second["interaction_id"], "feedback": "corrected", "intent": "book_taxi"}),
    )
    .await;
    assert_eq!(status, 200);
    post("/v1/undo", json!({"interaction_id": first["interaction_id"]})).await;
    post("/v1/feedback", json!({"interaction_id": first["interaction_id"], "feedback": "wrong"})).await;
    tokio::time::sleep(Duration::from_millis(20)).await; // the log is in time order
    post("/v1/predict", json!({"text": "no feedback on this one"})).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the unjudged interaction reaches the store
    server.kill().unwrap();
    server.wait().unwrap();

    let model_arg = model.to_str().unwrap();
    let exported = root.path().join("exported.jsonl");
    xtask(&["feedback", "export", "--checkpoint", model_arg, "--out", exported.to_str().unwrap()]);
    let fresh = format!("sqlite://{}?mode=rwc", root.path().join("fresh.db").display());
    let imported =
        xtask(&["feedback", "import", "--checkpoint", model_arg, "--db", &fresh, exported.to_str().unwrap()]);
    let summary: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(summary, json!({"interactions": 4, "feedback": 3, "undos": 1, "intents": 1}), "right, corrected, wrong");
    let again = root.path().join("again.jsonl");
    xtask(&["feedback", "export", "--checkpoint", model_arg, "--db", &fresh, "--out", again.to_str().unwrap()]);
    let log = std::fs::read_to_string(&exported).unwrap();
    assert_eq!(log, std::fs::read_to_string(&again).unwrap(), "exported, imported, exported: the same log");
    let kinds: Vec<String> = log
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!("{}:{}", v["kind"].as_str().unwrap(), v["feedback"].as_str().unwrap_or("-"))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "interaction:right",
            "add_intent:-",
            "interaction:corrected",
            "undo:-",
            "interaction:wrong",
            "interaction:missing"
        ]
    );

    // Fine-tuning reads the store directly, the added intent included.
    let store = format!("sqlite://{}?mode=ro", model.parent().unwrap().join("serve/feedback.db").display());
    let out = root.path().join("finetuned");
    xtask(&[
        "finetune",
        "--checkpoint",
        model_arg,
        "--feedback",
        &store,
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "4",
    ]);
    let (_, spec, _) =
        rlhf_assistant::pipeline::load_intent_model::<rlhf_model::backend::CpuBackend>(&out, &cpu_device()).unwrap();
    assert_eq!(spec.labels.last().map(String::as_str), Some("book_taxi"), "the fine-tuned model has the added intent");
}
