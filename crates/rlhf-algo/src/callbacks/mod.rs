//! Training callbacks, as Stable-Baselines3 users know them: pieces that see
//! every [`TrainEvent`] of [`Dqn::learn`](crate::dqn::Dqn::learn) and can stop
//! training.
//!
//! - [`EvalCallback`]: greedy evaluation every N steps on its own
//!   environment, saving the best network ([`TrainEvent::Eval`] for the others).
//! - [`StopOnThreshold`]: stops once an evaluation reaches a mean return or
//!   success rate, confirmed on fresh episodes.
//! - [`CheckpointCallback`]: the whole training state every N steps, for an
//!   exact resume.
//! - [`MetricsCallback`]: one CSV row per event ([`MetricsRow`], read back by
//!   name with [`read_metrics`]).
//! - [`ProgressCallback`]: an indicatif progress bar.
//! - [`every`]: any closure every N steps (probing held-out data); [`observer`]:
//!   any closure on every event, for logging or tests.
//!
//! Callbacks are passed as `&mut [&mut dyn Callback<B>]`, so the caller keeps
//! them and can read them after training (the best evaluation, the rows).
//! Events a callback emits (an evaluation) reach every callback after it
//! has run. State that must survive a resume (the best score so far, the
//! rows' averages) is saved with each checkpoint by [`Callback::state`].
//!
//! ```
//! use rlhf_algo::callbacks::{Callback, EvalCallback, StopOnThreshold, Threshold};
//! use rlhf_algo::dqn::{Dqn, DqnConfig};
//! use rlhf_env::CartPole;
//! use rlhf_model::backend::{AutodiffCpu, cpu_device};
//!
//! let config = DqnConfig { learning_starts: 100, total_timesteps: 1_000, ..DqnConfig::default() };
//! let mut env = CartPole::v1();
//! let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;
//! let mut eval = EvalCallback::new(CartPole::v1(), 500, 5, 42);
//! let mut stop = StopOnThreshold::new(Threshold::MeanReturn(475.0));
//! agent.learn(&mut env, 1_000, &mut [&mut eval, &mut stop])?;
//! assert_eq!(eval.reports().len(), 2); // at steps 500 and 1,000
//! # Ok::<(), rlhf_algo::AlgoError>(())
//! ```

mod checkpoint;
mod eval;
mod metrics;
mod progress;

use std::ops::ControlFlow;
use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;

use crate::dqn::Dqn;
use crate::error::AlgoError;
use crate::evaluation::EvalReport;

pub use checkpoint::CheckpointCallback;
pub use eval::{EvalCallback, StopOnThreshold, Threshold};
pub use metrics::{MetricsCallback, MetricsRow, read_metrics, write_metrics};
pub use progress::{ProgressCallback, progress_bar};

/// What happened during training, for callbacks.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// Every environment took one step (after the episodes and the training
    /// burst of that step were reported).
    Step {
        /// Environment steps so far.
        step: u64,
        /// Environment steps of this vector step (the number of environments).
        n_envs: u64,
    },
    /// A training episode ended.
    Episode {
        /// Environment steps so far.
        step: u64,
        /// Undiscounted return of the episode.
        episode_return: f64,
        /// Its length.
        length: usize,
        /// Exploration rate at its end.
        epsilon: f64,
        /// Whether it reached its goal, for tasks that have one.
        success: Option<bool>,
    },
    /// A burst of gradient steps finished.
    Train {
        /// Environment steps so far.
        step: u64,
        /// Gradient steps so far.
        gradient_updates: u64,
        /// Mean loss over the burst.
        loss: f64,
        /// Mean Q(s, a) of the sampled transitions over the burst.
        mean_q: f64,
    },
    /// A greedy evaluation finished (emitted by [`EvalCallback`]).
    Eval {
        /// Environment steps so far.
        step: u64,
        /// The evaluation episodes.
        report: EvalReport,
    },
}

impl TrainEvent {
    /// Environment steps so far when the event happened.
    pub fn step(&self) -> u64 {
        match self {
            TrainEvent::Step { step, .. }
            | TrainEvent::Episode { step, .. }
            | TrainEvent::Train { step, .. }
            | TrainEvent::Eval { step, .. } => *step,
        }
    }

    /// For a [`TrainEvent::Step`]: whether this vector step crossed a
    /// multiple of `every` environment steps (with one environment: the
    /// step is a multiple of `every`).
    pub fn crosses(&self, every: u64) -> bool {
        match self {
            TrainEvent::Step { step, n_envs } => {
                let every = every.max(1);
                step / every != step.saturating_sub(*n_envs) / every
            }
            _ => false,
        }
    }
}

/// Sees every event of training; returning `ControlFlow::Break` stops it
/// after the current step (Stable-Baselines3's `_on_step` returning `False`).
pub trait Callback<B: AutodiffBackend> {
    /// Handles one event. `ctx` gives the agent, and lets the callback emit
    /// events or ask for a checkpoint.
    fn on_event(&mut self, event: &TrainEvent, ctx: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError>;

    /// Called before a checkpoint is saved: write out what a resumed run will
    /// read back (the metrics rows so far).
    fn on_checkpoint(&mut self) -> Result<(), AlgoError> {
        Ok(())
    }

    /// What this callback must remember across a resume, saved in every
    /// checkpoint (`Null`: nothing).
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Continues from a [`Callback::state`] saved in a checkpoint.
    fn restore(&mut self, state: serde_json::Value) -> Result<(), AlgoError> {
        let _ = state;
        Ok(())
    }
}

/// What a callback may use and ask for while it handles an event.
pub struct CallbackContext<'a, B: AutodiffBackend> {
    agent: &'a Dqn<B>,
    emitted: Vec<TrainEvent>,
    checkpoint: Option<PathBuf>,
}

impl<'a, B: AutodiffBackend> CallbackContext<'a, B> {
    /// The agent being trained (evaluate it, save its network).
    pub fn agent(&self) -> &'a Dqn<B> {
        self.agent
    }

    /// Sends `event` to every callback after this one has returned.
    pub fn emit(&mut self, event: TrainEvent) {
        self.emitted.push(event);
    }

    /// Saves the whole training state (agent, environments, every callback's
    /// state) into `dir` once every callback has seen this step.
    pub fn save_checkpoint(&mut self, dir: impl Into<PathBuf>) {
        self.checkpoint = Some(dir.into());
    }
}

/// What the callbacks asked for at one step.
pub(crate) struct Dispatched {
    pub(crate) flow: ControlFlow<()>,
    pub(crate) checkpoints: Vec<PathBuf>,
}

/// Sends `events` (and whatever the callbacks emit in turn) to every callback in order.
pub(crate) fn dispatch<B: AutodiffBackend>(
    agent: &Dqn<B>,
    callbacks: &mut [&mut dyn Callback<B>],
    events: impl IntoIterator<Item = TrainEvent>,
) -> Result<Dispatched, AlgoError> {
    let mut queue: std::collections::VecDeque<TrainEvent> = events.into_iter().collect();
    let mut dispatched = Dispatched { flow: ControlFlow::Continue(()), checkpoints: Vec::new() };
    while let Some(event) = queue.pop_front() {
        for callback in callbacks.iter_mut() {
            let mut ctx = CallbackContext { agent, emitted: Vec::new(), checkpoint: None };
            if callback.on_event(&event, &mut ctx)?.is_break() {
                dispatched.flow = ControlFlow::Break(());
            }
            queue.extend(ctx.emitted);
            // Two callbacks asking for the same directory at one step get one save.
            if let Some(dir) = ctx.checkpoint
                && !dispatched.checkpoints.contains(&dir)
            {
                dispatched.checkpoints.push(dir);
            }
        }
    }
    Ok(dispatched)
}

/// The states of `callbacks`, in order, for a checkpoint.
pub(crate) fn states<B: AutodiffBackend>(callbacks: &[&mut dyn Callback<B>]) -> serde_json::Value {
    serde_json::Value::Array(callbacks.iter().map(|c| c.state()).collect())
}

/// Gives each of `callbacks` its state from [`states`], in order.
pub(crate) fn restore_states<B: AutodiffBackend>(
    callbacks: &mut [&mut dyn Callback<B>],
    saved: serde_json::Value,
) -> Result<(), String> {
    let serde_json::Value::Array(saved) = saved else { return Err("expected an array of callback states".into()) };
    if saved.len() != callbacks.len() {
        return Err(format!("holds {} callback states, training has {} callbacks", saved.len(), callbacks.len()));
    }
    for (callback, state) in callbacks.iter_mut().zip(saved) {
        callback.restore(state).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A callback state in a checkpoint that cannot be read back.
fn state_error(callback: &str, reason: impl std::fmt::Display) -> AlgoError {
    AlgoError::BadState { path: PathBuf::from(CALLBACKS_FILE), reason: format!("{callback}: {reason}") }
}

/// Where checkpoints keep the callbacks' states.
pub(crate) const CALLBACKS_FILE: &str = "callbacks.json";

/// A closure called every `every` environment steps with the step and the
/// agent (to probe the network on held-out data, say); it may stop training.
pub struct Every<F> {
    every: u64,
    f: F,
}

/// Wraps `f` as a [`Callback`] called every `every` steps:
/// `every(1_000, |step, agent| { ...; Ok(ControlFlow::Continue(())) })`.
pub fn every<F>(every: u64, f: F) -> Every<F> {
    Every { every: every.max(1), f }
}

impl<B, F> Callback<B> for Every<F>
where
    B: AutodiffBackend,
    F: FnMut(u64, &Dqn<B>) -> Result<ControlFlow<()>, AlgoError>,
{
    fn on_event(&mut self, event: &TrainEvent, ctx: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        if event.crosses(self.every) { (self.f)(event.step(), ctx.agent()) } else { Ok(ControlFlow::Continue(())) }
    }
}

/// A closure that sees every event and never stops training.
pub struct Observer<F>(F);

/// Wraps `f` as a [`Callback`]: `agent.learn(&mut env, n, &mut [&mut observer(|e| println!("{e:?}"))])`.
pub fn observer<F: FnMut(&TrainEvent)>(f: F) -> Observer<F> {
    Observer(f)
}

impl<B: AutodiffBackend, F: FnMut(&TrainEvent)> Callback<B> for Observer<F> {
    fn on_event(&mut self, event: &TrainEvent, _: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        (self.0)(event);
        Ok(ControlFlow::Continue(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_step_crosses_a_period_once() {
        let step = |step, n_envs| TrainEvent::Step { step, n_envs };
        // One environment: exactly the multiples.
        assert!(step(500, 1).crosses(500) && !step(501, 1).crosses(500) && !step(499, 1).crosses(500));
        // Eight environments: the vector step that passes the multiple.
        let crossing: Vec<u64> = (1..=200).map(|t| t * 8).filter(|&s| step(s, 8).crosses(500)).collect();
        assert_eq!(crossing, vec![504, 1000, 1504]);
        assert!(!TrainEvent::Train { step: 500, gradient_updates: 1, loss: 0.0, mean_q: 0.0 }.crosses(500));
    }
}
