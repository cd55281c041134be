//! A progress bar over environment steps (indicatif).

use std::collections::VecDeque;
use std::ops::ControlFlow;

use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Callback, CallbackContext, TrainEvent};
use crate::error::AlgoError;

/// A bar of `total` `unit`s with the project's one style: position, rate, message.
pub fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {unit} {{per_sec}} {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style)
}

/// Shows steps, speed, the mean return of the last 20 episodes and ε.
#[derive(Debug)]
pub struct ProgressCallback {
    bar: ProgressBar,
    recent_returns: VecDeque<f64>,
}

impl ProgressCallback {
    /// A bar from `start` to `total` environment steps.
    pub fn new(total: u64, start: u64) -> Self {
        Self { bar: progress_bar(total, "steps").with_position(start), recent_returns: VecDeque::new() }
    }

    /// Drives `bar` (styled and sized by the caller).
    pub fn from_bar(bar: ProgressBar) -> Self {
        Self { bar, recent_returns: VecDeque::new() }
    }

    /// The bar, to finish or abandon it.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl<B: AutodiffBackend> Callback<B> for ProgressCallback {
    fn on_event(&mut self, event: &TrainEvent, _: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        match event {
            TrainEvent::Step { step, .. } => self.bar.set_position(*step),
            TrainEvent::Episode { episode_return, epsilon, .. } => {
                if self.recent_returns.len() == 20 {
                    self.recent_returns.pop_front();
                }
                self.recent_returns.push_back(*episode_return);
                let mean = self.recent_returns.iter().sum::<f64>() / self.recent_returns.len() as f64;
                self.bar.set_message(format!("return(20) {mean:.1} eps {epsilon:.3}"));
            }
            _ => {}
        }
        Ok(ControlFlow::Continue(()))
    }
}
