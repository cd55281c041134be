//! An HTTP load generator for the assistant's `/v1` API (ours, or a peer
//! serving the same JSON): `clients` keep-alive connections on loopback,
//! each sending one request at a time for a fixed duration, a share of
//! them feedback on the predictions it got, the rest predictions.
//!
//! Latencies are measured per request, from sending to the last byte of the
//! answer, and summarised per kind; the feedback the server acknowledged
//! (a 200 with its `feedback_id`) is returned so the caller can check the
//! store holds every one. A connection that fails (the server killed, say)
//! ends its client; what it measured until then is kept, and the failure
//! reported.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rlhf_env::rng::{seeded_rng, uniform_f64, uniform_index};
use serde::{Deserialize, Serialize};

/// What to send, how hard, for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent keep-alive connections, one request in flight each.
    pub clients: usize,
    /// How long to send (the run stops by itself).
    pub duration: Duration,
    /// The share of requests that are feedback (on a prediction the client got).
    pub feedback_share: f64,
    /// Utterances the predictions draw from.
    pub texts: Vec<String>,
    /// `Authorization: Bearer` token, when the server needs one.
    pub token: Option<String>,
    /// Seeds which text and which feedback each client sends.
    pub seed: u64,
}

/// A load run that cannot run (requests answered with errors and failed
/// connections are counted in the report instead).
#[derive(Debug, thiserror::Error)]
#[error("load: {0}")]
pub struct LoadError(String);

/// Latencies of one kind of request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Requests answered otherwise.
    pub errors: u64,
    /// 2xx answers per second of the run.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile, milliseconds.
    pub p999_ms: f64,
    /// The slowest, milliseconds.
    pub max_ms: f64,
}

impl LatencySummary {
    /// The summary of `micros` (every request's latency) over `seconds`.
    pub fn of(mut micros: Vec<u32>, errors: u64, seconds: f64) -> Self {
        micros.sort_unstable();
        // Nearest rank: the smallest latency at or above the q-th share of requests.
        let quantile = |q: f64| -> f64 {
            if micros.is_empty() {
                return 0.0;
            }
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            f64::from(micros[rank - 1]) / 1000.0
        };
        Self {
            ok: micros.len() as u64,
            errors,
            per_second: micros.len() as f64 / seconds.max(f64::MIN_POSITIVE),
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: micros.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    /// Connections.
    pub clients: usize,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    /// `POST /v1/predict`.
    pub predict: LatencySummary,
    /// `POST /v1/feedback`.
    pub feedback: LatencySummary,
    /// Clients whose connection failed, with why (none in a healthy run).
    pub failed_clients: Vec<String>,
    /// The `feedback_id` of every feedback the server acknowledged.
    #[serde(skip)]
    pub acknowledged: Vec<i64>,
}

#[derive(Default)]
struct ClientLog {
    predict: Vec<u32>,
    predict_errors: u64,
    feedback: Vec<u32>,
    feedback_errors: u64,
    acknowledged: Vec<i64>,
    failure: Option<String>,
}

#[derive(Deserialize)]
struct Predicted {
    interaction_id: i64,
}

#[derive(Deserialize)]
struct Acknowledged {
    feedback_id: i64,
}

/// Runs `config`'s load against the server at `addr` and summarises it.
pub async fn run_load(addr: SocketAddr, config: &LoadConfig) -> Result<LoadReport, LoadError> {
    if config.clients == 0 || config.texts.is_empty() || !(0.0..1.0).contains(&config.feedback_share) {
        return Err(LoadError(format!(
            "needs at least one client ({}), one text ({}) and a feedback share in [0, 1) ({})",
            config.clients,
            config.texts.len(),
            config.feedback_share
        )));
    }
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> = (0..config.clients)
        .map(|index| {
            let config = config.clone();
            tokio::spawn(async move {
                let mut log = ClientLog::default();
                if let Err(why) = client(addr, &config, index, deadline, &mut log).await {
                    log.failure = Some(format!("client {index} ({addr}): {why}"));
                }
                log
            })
        })
        .collect();
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        logs.push(task.await.map_err(|e| LoadError(format!("a client panicked: {e}")))?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let merge = |pick: fn(&mut ClientLog) -> &mut Vec<u32>, logs: &mut [ClientLog]| -> Vec<u32> {
        logs.iter_mut().flat_map(|log| std::mem::take(pick(log))).collect()
    };
    let predict_errors = logs.iter().map(|l| l.predict_errors).sum();
    let feedback_errors = logs.iter().map(|l| l.feedback_errors).sum();
    let predict = LatencySummary::of(merge(|l| &mut l.predict, &mut logs), predict_errors, seconds);
    let feedback = LatencySummary::of(merge(|l| &mut l.feedback, &mut logs), feedback_errors, seconds);
    let failed_clients = logs.iter_mut().filter_map(|l| l.failure.take()).collect();
    let acknowledged = logs.into_iter().flat_map(|l| l.acknowledged).collect();
    Ok(LoadReport { clients: config.clients, seconds, predict, feedback, failed_clients, acknowledged })
}

/// One connection's requests until `deadline`, logged in `log`; an error
/// ends the connection.
async fn client(
    addr: SocketAddr,
    config: &LoadConfig,
    index: usize,
    deadline: Instant,
    log: &mut ClientLog,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut rng = seeded_rng(config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut unjudged: Vec<i64> = Vec::new();
    while Instant::now() < deadline {
        let give_feedback = !unjudged.is_empty() && uniform_f64(&mut rng, 0.0, 1.0) < config.feedback_share;
        let (path, body) = if give_feedback {
            let id = unjudged.swap_remove(uniform_index(&mut rng, unjudged.len()));
            let feedback = if uniform_f64(&mut rng, 0.0, 1.0) < 0.8 { "right" } else { "wrong" };
            ("/v1/feedback", serde_json::json!({"interaction_id": id, "feedback": feedback}))
        } else {
            let text = &config.texts[uniform_index(&mut rng, config.texts.len())];
            ("/v1/predict", serde_json::json!({"text": text}))
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &config.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request =
            request.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| format!("building a request: {e}"))?;
        let start = Instant::now();
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let micros = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        match (give_feedback, status) {
            (false, StatusCode::OK) => {
                log.predict.push(micros);
                if let Ok(answer) = serde_json::from_slice::<Predicted>(&bytes) {
                    unjudged.push(answer.interaction_id);
                }
            }
            (false, _) => log.predict_errors += 1,
            (true, StatusCode::OK) => {
                log.feedback.push(micros);
                let ack = serde_json::from_slice::<Acknowledged>(&bytes)
                    .map_err(|e| format!("a feedback answer without feedback_id: {e}"))?;
                log.acknowledged.push(ack.feedback_id);
            }
            (true, _) => log.feedback_errors += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        // 1..=1000 µs: the median is the 500th, p99 the 990th, p99.9 the 999th.
        let summary = LatencySummary::of((1..=1000).rev().collect(), 3, 2.0);
        assert_eq!(summary.ok, 1000);
        assert_eq!(summary.errors, 3);
        assert_eq!(summary.per_second, 500.0);
        assert_eq!((summary.p50_ms, summary.p99_ms, summary.p999_ms, summary.max_ms), (0.5, 0.99, 0.999, 1.0));
        assert_eq!(LatencySummary::of(vec![], 0, 1.0).p99_ms, 0.0);
    }
}
