//! The voice assistant: it maps what people say ("打开灯", "turn the volume
//! up") to intents, asks when unsure, and learns from their feedback.
//!
//! The pieces, from data to product:
//!
//! - [`corpus`]: the built-in 24 intents in Chinese and English
//!   ([`IntentCorpus::builtin`], split into train and test by phrasing), or a
//!   user's own JSON-lines or CSV file ([`IntentCorpus::from_path`]).
//! - [`AsrNoise`]: dropped, repeated and misheard characters, cut-off tails.
//! - [`IntentEnv`] (one utterance, one action: a contextual bandit) and
//!   [`DialogEnv`] (the same with a *clarify* action that asks for a
//!   rephrasing), behind `rlhf_env::Env`.
//! - [`pretrain()`]: supervised regression of Q-values to ±1 on labelled utterances.
//! - [`pipeline`]: the stages (learning from rewards, output-layer surgery
//!   with [`pipeline::shared_outputs`]), and saving and loading intent models.
//! - [`IntentClassifier`]: featuriser + network + labels, answering text;
//!   [`ClassificationReport`]: accuracy, macro recall and F1, confusion matrix.
//! - [`dialog`]: when to ask for a rephrasing: the learned policy and fixed rules.
//! - [`feedback`]: the human-feedback log and the lessons of each answer.
//! - [`online`]: learning from feedback as it comes, with replay and rehearsal.
//! - [`assistant`]: answering, logging and learning from feedback; a simulated user.
//! - [`model`]: an intent checkpoint loaded for use, new intents added.
//! - [`simulate`]: feedback sessions with a scripted user, measured as they go.
//! - [`finetune`]: learning offline from a feedback log.
//! - [`study`]: the pipeline's runs over seeds: the transfer study, the
//!   dialogue policy, and the all-intent assistant model.
//!
//! Text reaches networks through [`features::IntentFeatures`]: hashed
//! character and word n-grams, a pretrained sentence encoder's embedding
//! ([`encoder`]), or both side by side; with the encoder, misheard English
//! words are put back first ([`spelling`]).
//!
//! Architecture invariant: this crate is the only one that knows intents,
//! corpora and feedback; the crates below it stay generic, and `xtask` only
//! parses arguments and talks to the terminal.

pub mod assistant;
mod classifier;
pub mod corpus;
pub mod dialog;
pub mod encoder;
mod env;
mod error;
pub mod features;
pub mod feedback;
pub mod finetune;
mod metrics;
pub mod model;
mod noise;
pub mod online;
pub mod pipeline;
mod pretrain;
pub mod qa;
pub mod serve;
pub mod simulate;
pub mod spelling;
pub mod study;

pub use classifier::IntentClassifier;
pub use corpus::{BUILTIN_INTENTS, DatasetError, Domain, IntentCorpus, Language, Phrase, Split, Utterance};
pub use env::{ConversationState, DialogEnv, IntentEnv, IntentInfo, IntentRewards};
pub use error::AssistantError;
pub use features::{Embedder, EmbeddingUse, EncoderConfig, EncoderSpec, IntentFeatures};
pub use metrics::{ClassificationReport, IntentScore, language_accuracy};
pub use noise::{AsrNoise, Cuts};
pub use pipeline::{IntentModelSpec, PipelineConfig};
pub use pretrain::{PretrainConfig, pretrain};
