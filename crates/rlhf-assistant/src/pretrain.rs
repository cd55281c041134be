//! Step 1 of the pipeline: supervised pretraining of a Q-network on labelled
//! utterances.
//!
//! The loss is the mean squared error between the network's Q-values and the
//! vector that is +1 at the labelled intent and −1 elsewhere, over every
//! output: θ ← θ − α∇L with L = mean((Q(s) − y)²). Regression to the
//! reward scale, rather than cross-entropy, is chosen so that the pretrained
//! outputs *are* Q-values of the bandit (reward +1 right, −1 wrong): the RL
//! stage that follows continues from them without a change of scale.

use crate::{AsrNoise, IntentCorpus};
use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rlhf_env::rng::{seeded_rng, uniform_index};
use rlhf_model::QNetwork;
use rlhf_model::text::TextFeaturizer;
use serde::{Deserialize, Serialize};

use crate::AssistantError;
use crate::features::IntentFeatures;
use crate::online::noisy_draws;

/// Settings of [`pretrain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Gradient steps.
    pub steps: usize,
    /// Utterances per step, each freshly sampled (class-balanced) with noise.
    pub batch_size: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Recogniser noise rate of the training utterances.
    pub noise: f64,
    /// Seed of the utterance stream.
    pub seed: u64,
    /// With a sentence encoder's features: utterances drawn once (from seed
    /// 0, the same for every run, so their embeddings are computed once and
    /// kept) that the batches sample from. N-gram features cost microseconds,
    /// and draw fresh utterances every step. The pool is what the network
    /// learns noise from: on one seed of the assistant model, 16,384 gave
    /// 0.922 at noise 0.1 and 65,536 gave 0.934 (docs/BENCHMARKS.md).
    pub encoder_pool: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self { steps: 1500, batch_size: 64, learning_rate: 1e-3, noise: 0.1, seed: 0, encoder_pool: 131_072 }
    }
}

impl PretrainConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), AssistantError> {
        let bad =
            |field: &'static str, reason: &str| Err(AssistantError::InvalidConfig { field, reason: reason.into() });
        if self.batch_size == 0 {
            return bad("pretrain.batch_size", "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("pretrain.learning_rate", "must be positive and finite");
        }
        if !(0.0..=1.0).contains(&self.noise) {
            return bad("pretrain.noise", "must be in [0, 1]");
        }
        if self.encoder_pool == 0 {
            return bad("pretrain.encoder_pool", "must be at least 1");
        }
        Ok(())
    }
}

/// Trains `network` to output +1 for each utterance's intent and −1 for the
/// others; calls `observer(step, loss)` after every step. The network's
/// outputs are the corpus's labels, in order (extra outputs, if any, are
/// regressed to −1 too).
pub fn pretrain<B: AutodiffBackend>(
    mut network: QNetwork<B>,
    corpus: &IntentCorpus,
    featurizer: &IntentFeatures,
    config: &PretrainConfig,
    mut observer: impl FnMut(usize, f64),
) -> Result<QNetwork<B>, AssistantError> {
    config.validate()?;
    let (dim, n_out) = (featurizer.dim(), network.n_actions());
    if network.obs_dim() != dim || n_out < corpus.labels().len() {
        let reason = format!(
            "the network maps {} inputs to {n_out} outputs; the data has {dim} features and {} labels",
            network.obs_dim(),
            corpus.labels().len()
        );
        return Err(AssistantError::InvalidConfig { field: "net_arch", reason });
    }
    let device = network.devices().into_iter().next().unwrap_or_default();
    let mut optimizer = AdamConfig::new().init::<B, QNetwork<B>>();
    let noise = AsrNoise::new(config.noise);
    let mut rng = seeded_rng(config.seed);
    let (mut clean, mut heard, mut row) = (String::new(), String::new(), Vec::new());
    let pool = match featurizer.embedder() {
        None => Vec::new(),
        Some(_) => {
            let pool = noisy_draws(corpus, noise, config.encoder_pool, 0);
            let texts: Vec<&str> = pool.iter().map(|(_, text)| text.as_str()).collect();
            let computed = featurizer.prepare(&texts)?;
            tracing::info!(pool = pool.len(), computed, "pretraining utterances embedded");
            pool
        }
    };
    let batch = config.batch_size;
    for step in 0..config.steps {
        let mut inputs = Vec::with_capacity(batch * dim);
        let mut targets = vec![-1.0f32; batch * n_out];
        for b in 0..batch {
            let intent = if pool.is_empty() {
                let intent = corpus.sample(&mut rng, &mut clean);
                noise.apply(&clean, &mut rng, &mut heard);
                intent
            } else {
                let (intent, text) = &pool[uniform_index(&mut rng, pool.len())];
                heard.clone_from(text);
                *intent
            };
            featurizer.featurize(&heard, &mut row);
            inputs.extend_from_slice(&row);
            targets[b * n_out + intent] = 1.0;
        }
        let inputs = Tensor::<B, 2>::from_data(TensorData::new(inputs, [batch, dim]), &device);
        let targets = Tensor::<B, 2>::from_data(TensorData::new(targets, [batch, n_out]), &device);
        let loss = MseLoss::new().forward(network.forward(inputs), targets, Reduction::Mean);
        let loss_value = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        network = optimizer.step(config.learning_rate, network, grads);
        observer(step + 1, loss_value);
    }
    Ok(network)
}
