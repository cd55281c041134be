//! Periodic greedy evaluation with best-model saving, and stopping on a
//! threshold (Stable-Baselines3's `EvalCallback` and
//! `StopTrainingOnRewardThreshold`).

use std::ops::ControlFlow;
use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use rlhf_env::{Env, EpisodeOutcome};
use serde::{Deserialize, Serialize};

use super::{Callback, CallbackContext, TrainEvent};
use crate::dqn::{Dqn, FlatObs};
use crate::error::AlgoError;
use crate::evaluation::EvalReport;

/// Evaluates the greedy policy every `every` environment steps on its own
/// environment and emits [`TrainEvent::Eval`]; with
/// [`with_best_model`](Self::with_best_model) it saves the network of the
/// best evaluation so far (success rate first, then mean return).
pub struct EvalCallback<E> {
    env: E,
    every: u64,
    episodes: usize,
    seed: u64,
    best_dir: Option<PathBuf>,
    best_score: Option<f64>,
    reports: Vec<(u64, EvalReport)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalState {
    best_score: Option<f64>,
}

impl<E> EvalCallback<E> {
    /// `episodes` greedy episodes on `env` every `every` steps; the
    /// evaluation at step `t` seeds its first reset with `seed + t`.
    pub fn new(env: E, every: u64, episodes: usize, seed: u64) -> Self {
        Self { env, every: every.max(1), episodes, seed, best_dir: None, best_score: None, reports: Vec::new() }
    }

    /// Saves the network of every evaluation better than all before it into `dir`.
    pub fn with_best_model(mut self, dir: impl Into<PathBuf>) -> Self {
        self.best_dir = Some(dir.into());
        self
    }

    /// The evaluations of this process, with their steps.
    pub fn reports(&self) -> &[(u64, EvalReport)] {
        &self.reports
    }

    /// The evaluation environment.
    pub fn env_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// The score evaluations are ranked by: success rate first (goal tasks),
    /// then mean return.
    pub fn score(report: &EvalReport) -> f64 {
        report.success_rate.unwrap_or(0.0) * 1e9 + report.mean_return
    }
}

impl<B, E> Callback<B> for EvalCallback<E>
where
    B: AutodiffBackend,
    E: Env<Action = usize>,
    E::Obs: FlatObs,
    E::Info: EpisodeOutcome,
{
    fn on_event(&mut self, event: &TrainEvent, ctx: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        if !event.crosses(self.every) {
            return Ok(ControlFlow::Continue(()));
        }
        let step = event.step();
        let agent = ctx.agent();
        let report = agent.evaluate(&mut self.env, self.episodes, self.seed.wrapping_add(step))?;
        tracing::debug!(step, mean_return = report.mean_return, success_rate = report.success_rate, "evaluation");
        let score = Self::score(&report);
        if self.best_score.is_none_or(|best| score > best) {
            self.best_score = Some(score);
            if let Some(dir) = &self.best_dir {
                agent.save_network(dir, self.env.id())?;
            }
        }
        self.reports.push((step, report.clone()));
        ctx.emit(TrainEvent::Eval { step, report });
        Ok(ControlFlow::Continue(()))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!(EvalState { best_score: self.best_score })
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), AlgoError> {
        let state: EvalState = serde_json::from_value(state).map_err(|e| super::state_error("EvalCallback", e))?;
        self.best_score = state.best_score;
        Ok(())
    }
}

/// When an evaluation is good enough.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Threshold {
    /// The mean return reaches this value.
    MeanReturn(f64),
    /// The success rate (goal tasks) reaches this value.
    SuccessRate(f64),
}

impl Threshold {
    /// Whether `report` reaches the threshold.
    pub fn reached(&self, report: &EvalReport) -> bool {
        match *self {
            Threshold::MeanReturn(value) => report.mean_return >= value,
            Threshold::SuccessRate(value) => report.success_rate.is_some_and(|rate| rate >= value),
        }
    }
}

type Confirm<B> = Box<dyn FnMut(&Dqn<B>, u64) -> Result<EvalReport, AlgoError>>;

/// Stops training once a [`TrainEvent::Eval`] reaches a threshold and,
/// with [`confirm_on`](Self::confirm_on), a second evaluation on more fresh
/// episodes reaches its own threshold too (one lucky evaluation of a few
/// episodes is not enough: a 0.97 policy scores 1.00 on 100 episodes one
/// time in twenty).
pub struct StopOnThreshold<B: AutodiffBackend> {
    threshold: Threshold,
    confirm: Option<(Confirm<B>, Threshold)>,
    seed: u64,
    stopped: bool,
}

impl<B: AutodiffBackend> StopOnThreshold<B> {
    /// Stops at the first evaluation that reaches `threshold`.
    pub fn new(threshold: Threshold) -> Self {
        Self { threshold, confirm: None, seed: 0, stopped: false }
    }

    /// Confirms on `episodes` episodes of `env` (the one at step `t` seeded
    /// with `seed + t`) that must reach `threshold`.
    pub fn confirm_on<E>(mut self, mut env: E, episodes: usize, seed: u64, threshold: Threshold) -> Self
    where
        E: Env<Action = usize> + 'static,
        E::Obs: FlatObs,
        E::Info: EpisodeOutcome,
    {
        self.confirm =
            Some((Box::new(move |agent: &Dqn<B>, seed| agent.evaluate(&mut env, episodes, seed)), threshold));
        self.seed = seed;
        self
    }

    /// Whether it has stopped training.
    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

impl<B: AutodiffBackend> Callback<B> for StopOnThreshold<B> {
    fn on_event(&mut self, event: &TrainEvent, ctx: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        if let TrainEvent::Eval { step, report } = event
            && !self.stopped
            && self.threshold.reached(report)
        {
            self.stopped = match &mut self.confirm {
                None => true,
                Some((evaluate, threshold)) => {
                    let check = evaluate(ctx.agent(), self.seed.wrapping_add(*step))?;
                    let confirmed = threshold.reached(&check);
                    tracing::info!(
                        mean_return = check.mean_return,
                        success_rate = check.success_rate,
                        confirmed,
                        "confirming the early stop"
                    );
                    confirmed
                }
            };
        }
        Ok(if self.stopped { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "stopped": self.stopped })
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), AlgoError> {
        let stopped = state.get("stopped").and_then(serde_json::Value::as_bool);
        self.stopped =
            stopped.ok_or_else(|| super::state_error("StopOnThreshold", format!("no `stopped` in {state}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callbacks::dispatch;
    use crate::dqn::DqnConfig;
    use rlhf_env::CartPole;
    use rlhf_model::backend::{AutodiffCpu, cpu_device};

    fn untrained() -> Dqn<AutodiffCpu> {
        Dqn::for_env(DqnConfig::default(), &CartPole::v1(), cpu_device()).unwrap()
    }

    fn eval_event(mean_return: f64) -> TrainEvent {
        let report = EvalReport {
            returns: vec![mean_return],
            lengths: vec![1],
            mean_return,
            std_return: 0.0,
            success_rate: None,
        };
        TrainEvent::Eval { step: 100, report }
    }

    #[test]
    fn a_stop_needs_the_threshold_and_then_the_confirmation() {
        let agent = untrained();
        let mut stop = StopOnThreshold::new(Threshold::MeanReturn(475.0));
        assert!(dispatch(&agent, &mut [&mut stop], [eval_event(400.0)]).unwrap().flow.is_continue());
        assert!(dispatch(&agent, &mut [&mut stop], [eval_event(480.0)]).unwrap().flow.is_break());

        // An untrained network scores far below 475 on the confirming episodes.
        let mut confirmed = StopOnThreshold::new(Threshold::MeanReturn(475.0)).confirm_on(
            CartPole::v1(),
            20,
            7,
            Threshold::MeanReturn(475.0),
        );
        assert!(dispatch(&agent, &mut [&mut confirmed], [eval_event(500.0)]).unwrap().flow.is_continue());
        assert!(!confirmed.stopped());
        // A run resumed after the stop stays stopped.
        confirmed.restore(serde_json::json!({ "stopped": true })).unwrap();
        assert!(dispatch(&agent, &mut [&mut confirmed], [eval_event(0.0)]).unwrap().flow.is_break());
        assert!(confirmed.restore(serde_json::json!({})).unwrap_err().to_string().contains("callbacks.json"));
    }

    #[test]
    fn evaluations_come_at_their_period_and_the_best_network_is_saved() {
        let agent = untrained();
        let tmp = tempfile::TempDir::new().unwrap();
        let best = tmp.path().join("best");
        let mut eval = EvalCallback::new(CartPole::v1(), 500, 3, 1).with_best_model(&best);
        let mut seen = Vec::new();
        let mut record = crate::callbacks::observer(|e: &TrainEvent| seen.push(e.clone()));
        let step = |step| TrainEvent::Step { step, n_envs: 8 };
        dispatch(&agent, &mut [&mut eval, &mut record], [step(496), step(504)]).unwrap();
        assert_eq!(eval.reports().len(), 1, "only the vector step that crossed 500 evaluates");
        assert_eq!(eval.reports()[0].0, 504);
        assert!(matches!(seen.last(), Some(TrainEvent::Eval { step: 504, .. })), "the others see the evaluation");
        assert!(best.join("meta.json").exists());
        assert!(Callback::<AutodiffCpu>::state(&eval)["best_score"].as_f64().is_some());
    }
}
