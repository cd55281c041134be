//! Metrics of a run as CSV rows: one row type, written with `csv` and
//! serde, read back by column name.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::{Callback, CallbackContext, TrainEvent};
use crate::error::AlgoError;

/// One row of `metrics.csv`: an episode end, the mean of the training
/// bursts since the last such row, or an evaluation; the other columns are empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Environment steps so far.
    pub step: u64,
    /// Return of the episode that ended.
    pub episode_return: Option<f64>,
    /// Its length.
    pub episode_length: Option<usize>,
    /// Exploration rate at its end.
    pub epsilon: Option<f64>,
    /// 1 if it reached its goal, 0 if not (goal tasks).
    pub success: Option<u8>,
    /// Mean loss of the bursts since the last loss row.
    pub loss: Option<f64>,
    /// Mean Q(s, a) of those bursts.
    pub mean_q: Option<f64>,
    /// Mean return of an evaluation.
    pub eval_mean_return: Option<f64>,
    /// Success rate of an evaluation (goal tasks).
    pub eval_success_rate: Option<f64>,
    /// Seconds of training so far, across resumes.
    pub wall_seconds: f64,
    /// Environment steps per second since this process started training.
    pub steps_per_second: f64,
}

/// Reads a metrics file; an unreadable row is an error naming the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, AlgoError> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| AlgoError::Io { path: path.to_owned(), source: e.into() })?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.map_err(|e| AlgoError::LogLine {
                path: path.to_owned(),
                line: e.position().map_or(i + 2, |p| p.line() as usize),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Writes `rows` (with a header) to `path` atomically.
pub fn write_metrics(path: &Path, rows: &[MetricsRow]) -> Result<(), AlgoError> {
    let io = |source: std::io::Error| AlgoError::Io { path: path.to_owned(), source };
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row).map_err(|e| io(e.into()))?;
    }
    let bytes = writer.into_inner().map_err(|e| io(e.into_error()))?;
    let bytes = if rows.is_empty() { header() } else { bytes };
    rlhf_env::atomic::write_atomically(path, &bytes).map_err(io)
}

/// The header line alone: csv writes it with the first row, so it is the
/// first line of a default row written out.
fn header() -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = writer.serialize(MetricsRow::default());
    let bytes = writer.into_inner().unwrap_or_default();
    bytes.split_inclusive(|&b| b == b'\n').next().unwrap_or_default().to_vec()
}

/// Keeps a row per episode, per evaluation and per `row_every` steps of
/// training bursts (their mean loss and Q), and writes them to a CSV file
/// after every evaluation and before every checkpoint.
#[derive(Debug)]
pub struct MetricsCallback {
    path: PathBuf,
    row_every: u64,
    rows: Vec<MetricsRow>,
    bursts: BurstMeans,
    started: Instant,
    wall_before: f64,
    steps_at_start: Option<u64>,
}

/// Loss and mean Q of the training bursts since the last loss row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BurstMeans {
    loss: f64,
    mean_q: f64,
    count: u32,
    /// Step of the last loss row.
    since: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsState {
    rows: usize,
    bursts: BurstMeans,
    wall_seconds: f64,
}

impl MetricsCallback {
    /// Rows for `path`; training bursts are averaged over `row_every` steps.
    pub fn new(path: impl Into<PathBuf>, row_every: u64) -> Self {
        Self {
            path: path.into(),
            row_every: row_every.max(1),
            rows: Vec::new(),
            bursts: BurstMeans::default(),
            started: Instant::now(),
            wall_before: 0.0,
            steps_at_start: None,
        }
    }

    /// The rows so far.
    pub fn rows(&self) -> &[MetricsRow] {
        &self.rows
    }

    /// Seconds of training so far, across resumes.
    pub fn wall_seconds(&self) -> f64 {
        self.wall_before + self.started.elapsed().as_secs_f64()
    }

    /// Writes the rows to the file.
    pub fn flush(&self) -> Result<(), AlgoError> {
        write_metrics(&self.path, &self.rows)
    }

    fn row(&mut self, step: u64) -> MetricsRow {
        let start = *self.steps_at_start.get_or_insert(step);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        MetricsRow {
            step,
            wall_seconds: self.wall_seconds(),
            steps_per_second: step.saturating_sub(start) as f64 / seconds,
            ..MetricsRow::default()
        }
    }

    fn burst_row(&mut self, step: u64) {
        let n = f64::from(self.bursts.count.max(1));
        let (loss, mean_q) = (self.bursts.loss / n, self.bursts.mean_q / n);
        let row = MetricsRow { loss: Some(loss), mean_q: Some(mean_q), ..self.row(step) };
        self.rows.push(row);
        self.bursts = BurstMeans { since: step, ..BurstMeans::default() };
    }
}

impl<B: AutodiffBackend> Callback<B> for MetricsCallback {
    fn on_event(&mut self, event: &TrainEvent, _: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        match event {
            TrainEvent::Step { step, n_envs } => {
                self.steps_at_start.get_or_insert(step - n_envs);
            }
            TrainEvent::Episode { step, episode_return, length, epsilon, success, .. } => {
                let row = MetricsRow {
                    episode_return: Some(*episode_return),
                    episode_length: Some(*length),
                    epsilon: Some(*epsilon),
                    success: success.map(u8::from),
                    ..self.row(*step)
                };
                self.rows.push(row);
            }
            TrainEvent::Train { step, loss, mean_q, .. } => {
                self.bursts.loss += loss;
                self.bursts.mean_q += mean_q;
                self.bursts.count += 1;
                if step - self.bursts.since >= self.row_every {
                    self.burst_row(*step);
                }
            }
            TrainEvent::Eval { step, report } => {
                if self.bursts.count > 0 {
                    self.burst_row(*step);
                }
                self.bursts.since = *step;
                let row = MetricsRow {
                    eval_mean_return: Some(report.mean_return),
                    eval_success_rate: report.success_rate,
                    ..self.row(*step)
                };
                self.rows.push(row);
                self.flush()?;
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    fn on_checkpoint(&mut self) -> Result<(), AlgoError> {
        self.flush()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!(MetricsState {
            rows: self.rows.len(),
            bursts: self.bursts.clone(),
            wall_seconds: self.wall_seconds()
        })
    }

    /// Reads back the rows the checkpoint had (later ones, written after
    /// it, are dropped) and continues the clock.
    fn restore(&mut self, state: serde_json::Value) -> Result<(), AlgoError> {
        let state: MetricsState =
            serde_json::from_value(state).map_err(|e| super::state_error("MetricsCallback", e))?;
        let mut rows = read_metrics(&self.path)?;
        if rows.len() < state.rows {
            return Err(AlgoError::BadState {
                path: self.path.clone(),
                reason: format!("holds {} rows, the checkpoint was taken after {}", rows.len(), state.rows),
            });
        }
        rows.truncate(state.rows);
        self.rows = rows;
        self.bursts = state.bursts;
        self.wall_before = state.wall_seconds;
        self.started = Instant::now();
        self.steps_at_start = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_by_name_and_bad_lines_name_their_line() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows = vec![
            MetricsRow {
                step: 10,
                episode_return: Some(12.0),
                episode_length: Some(12),
                epsilon: Some(0.5),
                ..Default::default()
            },
            MetricsRow { step: 20, loss: Some(0.25), mean_q: Some(1.5), wall_seconds: 0.5, ..Default::default() },
            MetricsRow { step: 30, eval_mean_return: Some(9.5), eval_success_rate: Some(1.0), ..Default::default() },
        ];
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("step,episode_return,episode_length,epsilon,success,loss,mean_q,"), "{text}");

        write_metrics(&path, &[]).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), vec![]);

        std::fs::write(
            &path,
            format!("{}10,,,,,,,,,0.1,5\n20,oops,,,,,,,,0.1,5\n", String::from_utf8(header()).unwrap()),
        )
        .unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(err.contains("metrics.csv:3:"), "{err}");
    }
}
