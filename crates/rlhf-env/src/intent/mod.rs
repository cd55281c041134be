//! The voice assistant's world: intent corpora, recogniser noise, and the
//! environments that ask an agent to map what it heard to an action.
//!
//! - [`IntentCorpus`]: the built-in 24 intents in Chinese and English
//!   ([`IntentCorpus::builtin`], split into train and test by phrasing), or a
//!   user's own JSON-lines or CSV file ([`IntentCorpus::from_path`]).
//! - [`AsrNoise`]: dropped, repeated and misheard characters, cut-off tails.
//! - [`IntentEnv`]: one utterance, one action (a contextual bandit).
//! - [`DialogEnv`]: the same with a *clarify* action that asks for a rephrasing.
//!
//! Text reaches the agent through a [`TextFeaturizer`], which this crate only
//! names: the model crate implements it (hashed n-grams), so environments stay
//! free of model code.

mod dataset;
mod env;
mod noise;

pub use dataset::{BUILTIN_INTENTS, DatasetError, Domain, IntentCorpus, Language, Phrase, Split, Utterance};
pub use env::{ConversationState, DialogEnv, IntentEnv, IntentInfo, IntentRewards};
pub use noise::AsrNoise;

/// Turns text into a fixed-size vector of floats.
pub trait TextFeaturizer {
    /// Length of every vector written.
    fn dim(&self) -> usize;

    /// Writes the features of `text` into `out`, replacing its contents with
    /// exactly [`TextFeaturizer::dim`] values, each in `[-1, 1]`.
    fn featurize(&self, text: &str, out: &mut Vec<f32>);
}
