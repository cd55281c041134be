//! The voice assistant's learning: pretraining, Q-learning from rewards,
//! fine-tuning to new domains, and classification metrics.
//!
//! - [`pretrain`]: supervised regression of Q-values to ±1 on labelled utterances.
//! - [`pipeline`]: the stages (`learn_from_rewards`, output-layer surgery
//!   with [`pipeline::shared_outputs`]), and saving and loading intent models.
//! - [`feedback`]: the human-feedback log and the lessons of each answer.
//! - [`assistant`]: answering, logging and learning from feedback; a simulated user.
//! - [`online`]: learning from feedback as it comes, with replay and rehearsal.
//! - [`dialog`]: when to ask for a rephrasing: the learned policy and fixed rules.
//! - [`IntentClassifier`]: featuriser + network + labels, answering text.
//! - [`ClassificationReport`]: accuracy, macro recall and F1, per-intent
//!   precision and recall, confusion matrix.

pub mod assistant;
mod classifier;
pub mod dialog;
pub mod feedback;
mod metrics;
pub mod online;
pub mod pipeline;
pub mod pretrain;

pub use classifier::IntentClassifier;
pub use metrics::{ClassificationReport, IntentScore};
pub use pipeline::{IntentModelSpec, PipelineConfig};
pub use pretrain::{PretrainConfig, pretrain};
