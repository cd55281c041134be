//! The served assistant, called in-process through its router: the API's
//! answers, feedback committed to a real store, bad input answered with 4xx
//! JSON naming the field, and a restart that resumes the model.
//!
//! The tests that exercise the store run against SQLite, and against
//! PostgreSQL too when `RLHF_TEST_POSTGRES_URL` names a server (`.ci/run`
//! starts one on loopback): each gets a fresh database there.

mod common;

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use rlhf_assistant::IntentFeatures;
use rlhf_assistant::PipelineConfig;
use rlhf_assistant::pipeline::{IntentModelSpec, new_network, save_intent_model};
use rlhf_assistant::serve::store::{default_store_path, sqlite_url};
use rlhf_assistant::serve::{ServeConfig, Service};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use rlhf_model::text::FeaturizerConfig;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{serve_config, serve_config_with_answers};

/// The stores a test runs against, each with its own run folder under `root`:
/// SQLite, and a fresh PostgreSQL database when `RLHF_TEST_POSTGRES_URL` is set.
async fn backends(root: &Path) -> Vec<ServeConfig> {
    stores(root, serve_config(root)).await
}

/// `base` with each store [`backends`] gives.
async fn stores(root: &Path, base: ServeConfig) -> Vec<ServeConfig> {
    let sqlite = root.join("sqlite");
    let mut configs =
        vec![ServeConfig { store_url: sqlite_url(&default_store_path(&sqlite)), run_dir: sqlite, ..base.clone() }];
    if let Ok(admin) = std::env::var("RLHF_TEST_POSTGRES_URL") {
        configs.push(ServeConfig {
            store_url: fresh_postgres_database(&admin).await,
            run_dir: root.join("postgres"),
            ..base
        });
    }
    configs
}

/// Creates an empty database on the server of `admin_url` and returns its URL.
async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name =
        format!("rlhf_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("RLHF_TEST_POSTGRES_URL={admin_url}: {e}"));
    // The name is ours: digits and underscores.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let (without_query, query) = admin_url.split_once('?').map_or((admin_url, None), |(u, q)| (u, Some(q)));
    let (server, _) = without_query.rsplit_once('/').filter(|(s, _)| s.ends_with(|c: char| c != '/')).unwrap();
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    raw(app, request).await
}

async fn raw(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Waits until the learner serves `version`: up to a minute, because the
/// learner runs at idle priority and the tests beside it can take every core.
async fn serving(app: &Router, version: i64) {
    for _ in 0..6_000 {
        let (_, health) = call(app, "GET", "/healthz", None).await;
        if health["model_version"].as_i64() >= Some(version) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the learner never published version {version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_feedback_undo_and_new_intents_are_stored_and_learned() {
    let root = tempfile::tempdir().unwrap();
    for config in backends(root.path()).await {
        teach_through_the_api(&config).await;
    }
}

async fn teach_through_the_api(config: &ServeConfig) {
    let service = Service::start::<AutodiffCpu>(config, cpu_device()).await.unwrap();
    let app = service.router();

    let (status, answer) =
        call(&app, "POST", "/v1/predict", Some(json!({"text": "打开客厅的灯", "session": "t"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["intent"], "light_on", "{answer}");
    assert_eq!(answer["model_version"], 300, "the checkpoint's step, nothing learned yet");
    let top = answer["top"].as_array().unwrap();
    assert_eq!(top.len(), 4);
    let margin = top[0]["q"].as_f64().unwrap() - top[1]["q"].as_f64().unwrap();
    assert!((answer["confidence"].as_f64().unwrap() - margin).abs() < 1e-5, "confidence is the margin: {answer}");
    let first = answer["interaction_id"].as_i64().unwrap();

    let (status, ack) =
        call(&app, "POST", "/v1/feedback", Some(json!({"interaction_id": first, "feedback": "right"}))).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["lessons"], json!([{"intent": "light_on", "reward": 1.0}]));
    assert_eq!(ack["model_version"], 301, "base step + event 1");
    let (status, again) =
        call(&app, "POST", "/v1/feedback", Some(json!({"interaction_id": first, "feedback": "wrong"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // A correction teaches both lessons (hindsight relabeling).
    let (_, second) = call(&app, "POST", "/v1/predict", Some(json!({"text": "声音大一点"}))).await;
    let second_id = second["interaction_id"].as_i64().unwrap();
    let other = if second["intent"] == "volume_down" { "volume_up" } else { "volume_down" };
    let (status, ack) = call(
        &app,
        "POST",
        "/v1/feedback",
        Some(json!({"interaction_id": second_id, "feedback": "corrected", "intent": other})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["lessons"], json!([{"intent": second["intent"], "reward": -1.0}, {"intent": other, "reward": 1.0}]));
    serving(&app, 302).await;

    let (status, undone) = call(&app, "POST", "/v1/undo", Some(json!({"interaction_id": second_id}))).await;
    assert_eq!((status, undone["undone"].as_str()), (StatusCode::OK, Some("corrected")), "{undone}");
    let (status, _) = call(&app, "POST", "/v1/undo", Some(json!({"interaction_id": second_id}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "already undone");

    let (status, added) = call(&app, "POST", "/v1/intents", Some(json!({"name": "book_taxi"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let (status, _) = call(&app, "POST", "/v1/intents", Some(json!({"name": "book_taxi"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, intents) = call(&app, "GET", "/v1/intents", None).await;
    assert_eq!(intents["intents"].as_array().unwrap().len(), 5);
    let (_, taxi) = call(&app, "POST", "/v1/predict", Some(json!({"text": "帮我叫一辆出租车"}))).await;
    let taxi_id = taxi["interaction_id"].as_i64().unwrap();
    let (status, ack) = call(
        &app,
        "POST",
        "/v1/feedback",
        Some(json!({"interaction_id": taxi_id, "feedback": "corrected", "intent": "book_taxi"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    serving(&app, ack["model_version"].as_i64().unwrap()).await;
    let (_, answer) = call(&app, "POST", "/v1/predict", Some(json!({"text": "帮我叫一辆出租车"}))).await;
    assert_eq!(answer["top"].as_array().unwrap().len(), 5, "the new intent is scored: {answer}");

    // A fresh output may already win: naming the answer given confirms it.
    let taxi_right = taxi["intent"] == "book_taxi";
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = call(&app, "GET", "/v1/stats", None).await.1;
        if stats["interactions"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stats["interactions"], 4, "interactions are written within milliseconds: {stats}");
    let expected = if taxi_right {
        json!({"right": 2, "wrong": 0, "corrected": 0})
    } else {
        json!({"right": 1, "wrong": 0, "corrected": 1})
    };
    assert_eq!(stats["feedback"], expected, "{stats}");
    assert_eq!(stats["undone"], 1);
    assert_eq!(stats["recent"], json!([true, taxi_right]));
    assert_eq!(stats["accuracy_last_50"], if taxi_right { 1.0 } else { 0.5 });
    let (_, history) = call(&app, "GET", "/v1/history?limit=2", None).await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["interaction_id"], taxi_id, "newest first: {history}");
    assert_eq!(items[0]["feedback"], Value::Null);
    if !taxi_right {
        assert_eq!(items[1]["corrected_intent"], "book_taxi");
    }

    let (status, saved) = call(&app, "POST", "/v1/model/save", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert!(config.run_dir.join(saved["checkpoint"].as_str().unwrap()).join("meta.json").exists());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_replays_the_feedback_and_answers_as_before() {
    let root = tempfile::tempdir().unwrap();
    for config in backends(root.path()).await {
        restart_and_resume(root.path(), &config).await;
    }
}

async fn restart_and_resume(root: &Path, config: &ServeConfig) {
    let texts = ["把灯关了", "turn the lights off", "音量调低", "louder please", "开灯"];
    let service = Service::start::<AutodiffCpu>(config, cpu_device()).await.unwrap();
    let app = service.router();
    let mut last = 0;
    for (k, text) in texts.iter().enumerate() {
        let (_, answer) = call(&app, "POST", "/v1/predict", Some(json!({"text": text}))).await;
        let feedback = if k % 2 == 0 { json!("right") } else { json!("wrong") };
        let (_, ack) = call(
            &app,
            "POST",
            "/v1/feedback",
            Some(json!({"interaction_id": answer["interaction_id"], "feedback": feedback})),
        )
        .await;
        last = ack["model_version"].as_i64().unwrap();
    }
    serving(&app, last).await;
    let (_, before) = call(&app, "POST", "/v1/predict", Some(json!({"text": "把音乐声音调小"}))).await;
    service.stop().await;
    drop(app);

    let service = Service::start::<AutodiffCpu>(config, cpu_device()).await.unwrap();
    let app = service.router();
    let (_, after) = call(&app, "POST", "/v1/predict", Some(json!({"text": "把音乐声音调小"}))).await;
    assert_eq!(after["model_version"], last, "the version continues: {after}");
    assert_eq!(after["top"], before["top"], "the same model, bit for bit");
    assert!(after["interaction_id"].as_i64() > before["interaction_id"].as_i64(), "ids continue");
    service.stop().await;

    // A store of another model is refused, and left as it was.
    let other = root.join("other");
    if !other.exists() {
        save_model_with(&other, &["light_on", "light_off"]);
    }
    let refused =
        Service::start::<AutodiffCpu>(&ServeConfig { checkpoint: other, ..config.clone() }, cpu_device()).await;
    let message = refused.err().unwrap().to_string();
    let store_named = if config.store_url.starts_with("sqlite") { "feedback.db" } else { "rlhf_test_" };
    assert!(message.contains(store_named) && message.contains("other intents"), "{message}");
}

fn save_model_with(dir: &Path, intents: &[&str]) {
    let featurizer = FeaturizerConfig { dim: 1024, ..Default::default() };
    let config = PipelineConfig { featurizer, net_arch: vec![8], ..Default::default() };
    let features = IntentFeatures::ngrams(featurizer).unwrap();
    let network = new_network::<AutodiffCpu>(&config, &features, intents.len(), &cpu_device(), 0);
    let spec = IntentModelSpec::new(intents.iter().map(|s| (*s).to_owned()).collect(), &features);
    save_intent_model(dir, &network, &spec, 0, "cpu".into(), json!({})).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_naming_the_field() {
    let root = tempfile::tempdir().unwrap();
    let service = Service::start::<AutodiffCpu>(&serve_config(root.path()), cpu_device()).await.unwrap();
    let app = service.router();
    let cases = [
        ("/v1/predict", json!({"text": ""}), "text"),
        ("/v1/predict", json!({"text": 5}), "text"),
        ("/v1/predict", json!({"text": "x".repeat(2001)}), "text"),
        ("/v1/predict", json!({"text": "hi", "extra": 1}), "extra"),
        ("/v1/predict", json!({}), "text"),
        ("/v1/feedback", json!({"interaction_id": 99, "feedback": "right"}), "interaction_id"),
        ("/v1/feedback", json!({"interaction_id": 1, "feedback": "maybe"}), "feedback"),
        ("/v1/feedback", json!({"interaction_id": 1, "feedback": "corrected"}), "intent"),
        ("/v1/intents", json!({"name": "has space"}), "name"),
    ];
    for (uri, body, field) in cases {
        let (status, error) = call(&app, "POST", uri, Some(body.clone())).await;
        assert!(status.is_client_error(), "{uri} {body}: {status}");
        assert_eq!(error["error"]["field"], field, "{uri} {body}: {error}");
    }
    let (status, error) = call(
        &app,
        "POST",
        "/v1/feedback",
        Some(json!({"interaction_id": 1, "feedback": "corrected", "intent": "nope"})),
    )
    .await;
    assert!(status.is_client_error(), "{error}");
    let (status, _) = call(&app, "GET", "/v1/history?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let big = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .body(Body::from(vec![b' '; 10 * 1024 * 1024]))
        .unwrap();
    let (status, _) = raw(&app, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, error) = raw(
        &app,
        Request::post("/v1/predict").header("content-type", "application/json").body(Body::from("{\"text\":")).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // Arbitrary JSON never makes a handler fail on the server side.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let values = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|v| json!(v)),
        ".{0,20}".prop_map(|s| json!(s)),
        Just(json!([1, 2]))
    ];
    let bodies = (
        prop::sample::select(vec!["/v1/predict", "/v1/feedback", "/v1/undo", "/v1/intents"]),
        prop::sample::select(vec!["text", "interaction_id", "feedback", "intent", "name", "session", "zz"]),
        values,
    );
    let handle = tokio::runtime::Handle::current();
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        runner
            .run(&bodies, |(uri, key, value)| {
                let (status, body) = handle.block_on(call(&app2, "POST", uri, Some(json!({ key: value }))));
                prop_assert!(!status.is_server_error(), "{} {}={}: {} {}", uri, key, value, status, body);
                Ok(())
            })
            .unwrap();
    })
    .await
    .unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_when_the_server_has_one_and_the_page_is_served_escaped() {
    let root = tempfile::tempdir().unwrap();
    let config = ServeConfig { token: Some("s3cret".into()), ..serve_config(root.path()) };
    let service = Service::start::<AutodiffCpu>(&config, cpu_device()).await.unwrap();
    let app = service.router();
    let (status, error) = call(&app, "POST", "/v1/predict", Some(json!({"text": "开灯"}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let request = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .header("authorization", "Bearer s3cret")
        .body(Body::from(json!({"text": "开灯"}).to_string()))
        .unwrap();
    assert_eq!(raw(&app, request).await.0, StatusCode::OK);
    let (status, _) = call(&app, "GET", "/v1/stats", None).await;
    assert_eq!(status, StatusCode::OK, "reads need no token");
    let page = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = String::from_utf8(page.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(html.contains("app.js") && !html.contains("<script>"), "no inline script");
    let (status, doc) = call(&app, "GET", "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "the document is public");
    assert_openapi_documents_the_api(&doc);
    let script = include_str!("../assets/app.js");
    assert!(!script.contains(".innerHTML") && !script.contains("eval("), "user text goes in as text, never as HTML");
    service.stop().await;
}

/// The endpoints, each documented with its methods, bodies and the
/// error body; the schemas say which fields are required.
fn assert_openapi_documents_the_api(doc: &Value) {
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let endpoints = [
        ("/v1/predict", "post"),
        ("/v1/feedback", "post"),
        ("/v1/undo", "post"),
        ("/v1/intents", "get"),
        ("/v1/intents", "post"),
        ("/v1/stats", "get"),
        ("/v1/history", "get"),
        ("/v1/model/save", "post"),
        ("/v1/answer", "post"),
        ("/v1/answer/feedback", "post"),
        ("/v1/openapi.json", "get"),
        ("/healthz", "get"),
    ];
    for (path, method) in endpoints {
        let operation = &doc["paths"][path][method];
        assert!(operation["responses"].is_object(), "{method} {path} is documented");
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, endpoints.len(), "nothing undocumented, nothing extra");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["PredictRequest"]["required"], json!(["text"]));
    assert_eq!(schemas["FeedbackRequest"]["properties"]["feedback"]["$ref"], "#/components/schemas/FeedbackKind");
    assert_eq!(schemas["FeedbackKind"]["enum"], json!(["right", "wrong", "corrected"]));
    assert!(schemas["ErrorResponse"].is_object());
    let limit = doc["paths"]["/v1/history"]["get"]["parameters"][0].clone();
    assert_eq!((limit["name"].as_str(), limit["in"].as_str()), (Some("limit"), Some("query")), "{limit}");
    assert_eq!(limit["required"], false, "{limit}");
    assert_eq!(doc["components"]["securitySchemes"]["token"]["scheme"], "bearer");
}

#[tokio::test]
async fn a_store_that_is_not_a_database_or_from_a_newer_program_is_refused_and_kept() {
    use rlhf_assistant::serve::store::{MIGRATIONS, Store, sqlite_url};
    let root = tempfile::tempdir().unwrap();
    let labels = vec!["light_on".to_owned()];
    let garbage = root.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database, and it is mine").unwrap();
    let error = Store::open(&sqlite_url(&garbage), &labels, 0).await.unwrap_err().to_string();
    assert!(error.contains("garbage.db"), "{error}");
    assert_eq!(std::fs::read(&garbage).unwrap(), b"this is not a database, and it is mine", "nothing overwritten");

    let newer = root.path().join("newer.db");
    let store = Store::open(&sqlite_url(&newer), &labels, 0).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len());
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&sqlite_url(&newer)).await.unwrap();
    sqlx::query("UPDATE schema_version SET version = 99").execute(&pool).await.unwrap();
    pool.close().await;
    let error = Store::open(&sqlite_url(&newer), &labels, 0).await.unwrap_err().to_string();
    assert!(error.contains("newer.db") && error.contains("version 99, newer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_learner_picks_up_a_newer_saved_version() {
    let root = tempfile::tempdir().unwrap();
    for config in backends(root.path()).await {
        follow_the_learner(config).await;
    }
}

/// Two services share `config`'s store: one learns, one only serves.
async fn follow_the_learner(config: ServeConfig) {
    let learning = Service::start::<AutodiffCpu>(&config, cpu_device()).await.unwrap();
    let teacher = learning.router();
    let follower_config = ServeConfig { learner: false, reload_every: std::time::Duration::from_millis(20), ..config };
    let following = Service::start::<AutodiffCpu>(&follower_config, cpu_device()).await.unwrap();
    let follower = following.router();
    assert_eq!(call(&follower, "GET", "/healthz", None).await.1["model_version"], 300);

    let (_, answer) = call(&teacher, "POST", "/v1/predict", Some(json!({"text": "关灯"}))).await;
    let (_, ack) = call(
        &teacher,
        "POST",
        "/v1/feedback",
        Some(json!({"interaction_id": answer["interaction_id"], "feedback": "right"})),
    )
    .await;
    serving(&teacher, ack["model_version"].as_i64().unwrap()).await;
    let (status, saved) = call(&teacher, "POST", "/v1/model/save", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    serving(&follower, saved["model_version"].as_i64().unwrap()).await;
    let (status, _) = call(&follower, "POST", "/v1/model/save", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "only the learner saves");
    following.stop().await;
    learning.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_refuses_writes_with_503_and_predictions_go_on() {
    let root = tempfile::tempdir().unwrap();
    let config = serve_config(root.path());
    Service::start::<AutodiffCpu>(&config, cpu_device()).await.unwrap().stop().await;
    let path = default_store_path(&config.run_dir);
    let read_only = ServeConfig { store_url: format!("sqlite://{}?mode=ro", path.display()), ..config };
    let service = Service::start::<AutodiffCpu>(&read_only, cpu_device()).await.unwrap();
    let app = service.router();
    let (status, answer) = call(&app, "POST", "/v1/predict", Some(json!({"text": "开灯"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, error) = call(
        &app,
        "POST",
        "/v1/feedback",
        Some(json!({"interaction_id": answer["interaction_id"], "feedback": "right"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "store_unavailable");
    let (status, again) = call(&app, "POST", "/v1/predict", Some(json!({"text": "关灯"}))).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_are_answered_and_feedback_teaches_with_hindsight_and_survives_a_restart() {
    let root = tempfile::tempdir().unwrap();
    for config in stores(root.path(), serve_config_with_answers(root.path())).await {
        answer_and_learn(&config).await;
    }
}

/// The Q-value of each candidate entry in an answer.
fn q_of(answer: &Value) -> Vec<(String, f64)> {
    let candidates = answer["candidates"].as_array().unwrap();
    candidates.iter().map(|c| (c["entry_id"].as_str().unwrap().to_owned(), c["q"].as_f64().unwrap())).collect()
}

/// Asks `text` until the answer model that answers has learned `version`
/// feedback (up to a minute, as [`serving`]).
async fn answered_by(app: &Router, text: &str, version: i64) -> Value {
    for _ in 0..6_000 {
        let (status, answer) = call(app, "POST", "/v1/answer", Some(json!({"text": text}))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if answer["model_version"].as_i64() >= Some(version) {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the answer learner never published version {version}");
}

async fn answer_and_learn(config: &ServeConfig) {
    let kb = rlhf_assistant::qa::KnowledgeBase::builtin().unwrap();
    let question = kb.questions(rlhf_assistant::Split::Test).remove(0);
    let service = Service::start::<AutodiffCpu>(config, cpu_device()).await.unwrap();
    let app = service.router();

    let (status, answer) = call(&app, "POST", "/v1/answer", Some(json!({"text": question.text, "session": "t"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model_version"], 0, "nothing learned yet");
    let before = q_of(&answer);
    assert_eq!(before.len(), 10, "k candidates: {answer}");
    assert!(before.windows(2).all(|w| w[0].1 >= w[1].1), "best first: {answer}");
    let abstain_q = answer["abstain_q"].as_f64().unwrap();
    if before[0].1 >= abstain_q {
        assert_eq!(answer["entry_id"], before[0].0.as_str(), "the best candidate answers: {answer}");
        assert!(answer["answer"].as_str().is_some_and(|a| !a.is_empty()));
    } else {
        assert_eq!((answer["entry_id"].clone(), answer["answer"].clone()), (Value::Null, Value::Null));
    }

    // "This one" on a candidate the model ranked last: hindsight teaches
    // it as right and every other candidate as wrong.
    let answered = answer["entry_id"].as_str().map(str::to_owned);
    let chosen = before[9].0.clone();
    let id = answer["answer_id"].as_i64().unwrap();
    let body = json!({"answer_id": id, "feedback": "this_one", "entry_id": chosen});
    let (status, ack) = call(&app, "POST", "/v1/answer/feedback", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!((ack["feedback_id"].as_i64(), ack["model_version"].as_i64()), (Some(1), Some(1)), "{ack}");
    let mut expected = vec![json!({"entry_id": answered, "target": if answered.is_some() { -1.0 } else { -0.1 }})];
    expected.push(json!({"entry_id": chosen, "target": 1.0}));
    for (entry, _) in &before {
        if Some(entry) != answered.as_ref() && *entry != chosen {
            expected.push(json!({"entry_id": entry, "target": -1.0}));
        }
    }
    let lessons = ack["lessons"].as_array().unwrap();
    assert_eq!(lessons.len(), expected.len(), "{ack}");
    assert_eq!(lessons[..2], expected[..2], "the choice made, then the one revealed: {ack}");
    for lesson in &expected[2..] {
        assert!(lessons.contains(lesson), "{lesson} among {ack}");
    }
    // One gradient step (with rehearsal and replay) moves the entry chosen
    // up against the candidates taught as wrong.
    let after = q_of(&answered_by(&app, &question.text, 1).await);
    let lead = |list: &[(String, f64)]| {
        let chosen_q = list.iter().find(|(e, _)| *e == chosen).map(|(_, q)| *q).unwrap();
        let others: Vec<f64> = list.iter().filter(|(e, _)| *e != chosen).map(|(_, q)| *q).collect();
        chosen_q - others.iter().sum::<f64>() / others.len() as f64
    };
    let (lead_before, lead_after) = (lead(&before), lead(&after));
    assert!(lead_after > lead_before, "the entry chosen gained on the others: {lead_before} -> {lead_after}");

    // Each answer takes one feedback; bad feedback names its field.
    let (status, again) =
        call(&app, "POST", "/v1/answer/feedback", Some(json!({"answer_id": id, "feedback": "right"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    for (body, code, field) in [
        (json!({"answer_id": 999_999, "feedback": "wrong"}), StatusCode::NOT_FOUND, "answer_id"),
        (json!({"answer_id": id, "feedback": "this_one"}), StatusCode::BAD_REQUEST, "entry_id"),
        (json!({"answer_id": id, "feedback": "this_one", "entry_id": "no_such"}), StatusCode::BAD_REQUEST, "entry_id"),
        (json!({"answer_id": id, "feedback": "wrong", "entry_id": chosen}), StatusCode::BAD_REQUEST, "entry_id"),
        (json!({"answer_id": id, "feedback": "maybe"}), StatusCode::BAD_REQUEST, "feedback"),
    ] {
        let (status, error) = call(&app, "POST", "/v1/answer/feedback", Some(body.clone())).await;
        assert_eq!((status, error["error"]["field"].as_str()), (code, Some(field)), "{body} -> {error}");
    }
    let (status, error) = call(&app, "POST", "/v1/answer", Some(json!({"text": " "}))).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("text")));

    // "None of these" on a fresh answer, then a restart: the version saved
    // at stop is loaded and the model answers bit for bit as before.
    let (_, other) = call(&app, "POST", "/v1/answer", Some(json!({"text": "which colour is the moon tonight"}))).await;
    let body = json!({"answer_id": other["answer_id"], "feedback": "none_of_these"});
    let (status, ack) = call(&app, "POST", "/v1/answer/feedback", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let learned = answered_by(&app, &question.text, 2).await;
    service.stop().await;
    drop(app);

    let service = Service::start::<AutodiffCpu>(config, cpu_device()).await.unwrap();
    let app = service.router();
    let (_, replayed) = call(&app, "POST", "/v1/answer", Some(json!({"text": question.text}))).await;
    assert_eq!(replayed["model_version"], 2, "{replayed}");
    assert_eq!(replayed["candidates"], learned["candidates"], "the same model, bit for bit");
    assert!(replayed["answer_id"].as_i64() > learned["answer_id"].as_i64(), "ids continue");
    service.stop().await;
    drop(app);

    // Without the saved version (as after a kill), every stored feedback
    // is replayed onto the answer model given: the same model again.
    let saved = config.run_dir.join("answer-versions");
    assert!(saved.join("2").join("qa.json").exists(), "version 2 saved at the first stop");
    std::fs::remove_dir_all(&saved).unwrap();
    let service = Service::start::<AutodiffCpu>(config, cpu_device()).await.unwrap();
    let (_, replayed) = call(&service.router(), "POST", "/v1/answer", Some(json!({"text": question.text}))).await;
    assert_eq!(replayed["model_version"], 2, "{replayed}");
    assert_eq!(replayed["candidates"], learned["candidates"], "the same model, bit for bit");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_an_answer_model_says_so() {
    let root = tempfile::tempdir().unwrap();
    let service = Service::start::<AutodiffCpu>(&serve_config(root.path()), cpu_device()).await.unwrap();
    let (status, error) =
        call(&service.router(), "POST", "/v1/answer", Some(json!({"text": "how do I pair my phone"}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("no_answer_model")), "{error}");
    service.stop().await;
}
