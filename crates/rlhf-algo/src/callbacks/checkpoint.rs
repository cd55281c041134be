//! Saving the whole training state every N steps (Stable-Baselines3's
//! `CheckpointCallback`, but exact: a resumed run continues bit for bit).

use std::ops::ControlFlow;
use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;

use super::{Callback, CallbackContext, TrainEvent};
use crate::error::AlgoError;

/// Saves a training checkpoint (agent, replay, environments, every
/// callback's state) into one directory every `every` environment steps,
/// replacing the previous one atomically.
#[derive(Debug, Clone)]
pub struct CheckpointCallback {
    every: u64,
    dir: PathBuf,
}

impl CheckpointCallback {
    /// A checkpoint in `dir` every `every` steps.
    pub fn new(every: u64, dir: impl Into<PathBuf>) -> Self {
        Self { every: every.max(1), dir: dir.into() }
    }
}

impl<B: AutodiffBackend> Callback<B> for CheckpointCallback {
    fn on_event(&mut self, event: &TrainEvent, ctx: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        if event.crosses(self.every) {
            ctx.save_checkpoint(self.dir.clone());
        }
        Ok(ControlFlow::Continue(()))
    }
}
