//! The assistant's pipeline, stage by stage: pretrain on labelled source
//! domains, improve by Q-learning from the environment's rewards, fine-tune
//! to new target domains with a new output layer, evaluate. Each stage is a
//! function here; `cargo xtask pipeline` runs them in order and writes files.

use std::path::Path;
use std::sync::Arc;

use crate::{AsrNoise, Domain, IntentCorpus, IntentEnv, IntentRewards, Split};
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use rlhf_model::checkpoint::{self, CheckpointInfo, CheckpointMeta, Expectation};
use rlhf_model::text::{FeaturizerConfig, HashedNgrams, TextFeaturizer};
use rlhf_model::{QNetwork, QNetworkConfig};
use serde::{Deserialize, Serialize};

use crate::AssistantError;
use crate::classifier::IntentClassifier;
use crate::encoder::adapt::{AdaptConfig, adapt_last_layer, save_layer};
use crate::encoder::{TransformerEncoder, hex};
use crate::features::{
    Embedder, EncoderConfig, EncoderSpec, IntentFeatures, load_transformer, read_through, spelling_lexicon,
    with_adapted_layer,
};
use crate::online::{noisy_draws, spoken_and_heard};
use crate::pretrain::PretrainConfig;
use crate::spelling::Lexicon;
use rayon::prelude::*;
use rlhf_algo::callbacks::Callback;
use rlhf_algo::callbacks::progress_bar;
use rlhf_algo::dqn::{Dqn, DqnConfig, LossKind};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use sha2::{Digest, Sha256};

/// Utterances the embedding's standardisation is fitted on. They are the
/// first draws of the all-intent assistant's pretraining pool (same corpus,
/// noise and seed), so their embeddings are computed once for both.
pub const STANDARDIZATION_DRAWS: usize = 16_384;

/// Settings of the whole pipeline. Every field has a default, so an empty
/// TOML table is the built-in run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Seed of every stage (each derives its own).
    pub seed: u64,
    /// Recogniser noise rate while training and evaluating.
    pub noise: f64,
    /// Text features.
    pub featurizer: FeaturizerConfig,
    /// A pretrained sentence encoder's embedding with the n-grams, or
    /// instead of them (`[encoder]`); absent, the n-grams alone.
    pub encoder: Option<EncoderConfig>,
    /// Hidden layer widths of the Q-network.
    pub net_arch: Vec<usize>,
    /// Domains of pretraining and the RL stage.
    pub source_domains: Vec<Domain>,
    /// Domains fine-tuned to.
    pub target_domains: Vec<Domain>,
    /// Step 1: supervised pretraining (of the transfer study's source model).
    pub pretrain: PretrainConfig,
    /// Pretraining of the deployable all-intent assistant model: longer and
    /// with more recogniser noise than the study's, since the model is the
    /// product (see docs/BENCHMARKS.md for what each lever bought).
    pub assistant_pretrain: PretrainConfig,
    /// Step 2: environment interactions of Q-learning on the source domains (0 skips it).
    pub rl_steps: u64,
    /// Step 2: Adam's step size. Small: a reward scores only the action
    /// taken, and Adam moves every weight by about its step size per update
    /// whatever the gradient's scale, so the pretrained weights drift. In the
    /// smoke test's setting, 1,000 interactions took source test accuracy from
    /// 0.64 to 0.50 at 1e-4; at 2e-5 it held.
    pub rl_learning_rate: f64,
    /// Step 3: environment interactions of fine-tuning on the target domains
    /// (0 keeps the transferred network as it is).
    pub finetune_steps: u64,
    /// Step 3: Adam's step size while fine-tuning (lower than from scratch).
    pub finetune_learning_rate: f64,
    /// Step 3: hidden layers kept frozen while fine-tuning.
    pub freeze_layers: usize,
    /// Step 4: utterances rendered per test phrasing (slot values differ).
    pub eval_per_phrase: usize,
    /// Dialogue: environment interactions of DQN on [`rlhf_env::DialogEnv`] (0 skips the stage).
    pub dialog_steps: u64,
    /// Dialogue: utterances heard at most per episode.
    pub dialog_max_turns: usize,
    /// Dialogue: the noise rates to train and compare at.
    pub dialog_noise: Vec<f64>,
    /// Dialogue: discount of the multi-turn task.
    pub dialog_gamma: f64,
    /// Dialogue: evaluation episodes per policy.
    pub dialog_eval_episodes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            noise: 0.1,
            featurizer: FeaturizerConfig::default(),
            encoder: None,
            net_arch: vec![256],
            source_domains: vec![Domain::SmartHome, Domain::Media, Domain::Info],
            target_domains: vec![Domain::Phone, Domain::Navigation],
            pretrain: PretrainConfig::default(),
            assistant_pretrain: PretrainConfig { steps: 8_000, noise: 0.2, ..PretrainConfig::default() },
            rl_steps: 5_000,
            rl_learning_rate: 2e-5,
            finetune_steps: 3_000,
            finetune_learning_rate: 5e-4,
            freeze_layers: 0,
            eval_per_phrase: 5,
            dialog_steps: 20_000,
            dialog_max_turns: 3,
            dialog_noise: vec![0.1, 0.3],
            dialog_gamma: 0.9,
            dialog_eval_episodes: 2_000,
        }
    }
}

impl PipelineConfig {
    /// Checks the fields not checked by the stages themselves.
    pub fn validate(&self) -> Result<(), AssistantError> {
        let bad =
            |field: &'static str, reason: &str| Err(AssistantError::InvalidConfig { field, reason: reason.into() });
        if !(0.0..=1.0).contains(&self.noise) {
            return bad("noise", "must be in [0, 1]");
        }
        if self.source_domains.is_empty() || self.target_domains.is_empty() {
            return bad("source_domains/target_domains", "need at least one domain each");
        }
        if self.net_arch.is_empty() || self.net_arch.contains(&0) {
            return bad("net_arch", "needs at least one hidden layer, each at least 1 wide");
        }
        if self.freeze_layers > self.net_arch.len() {
            return bad("freeze_layers", "more than the network's hidden layers");
        }
        if self.dialog_max_turns == 0 || self.dialog_noise.iter().any(|r| !(0.0..=1.0).contains(r)) {
            return bad("dialog_max_turns/dialog_noise", "need at least one turn and rates in [0, 1]");
        }
        self.pretrain.validate()?;
        self.assistant_pretrain.validate()?;
        if let Some(adapt) = self.encoder.as_ref().and_then(|e| e.adapt.as_ref()) {
            adapt.validate()?;
        }
        HashedNgrams::new(self.featurizer)?;
        Ok(())
    }

    /// The features the networks read: the n-grams, with the encoder's
    /// embedding when `[encoder]` is set (its model loaded, and the
    /// embeddings earlier runs saved read back).
    pub fn features(&self) -> Result<IntentFeatures, AssistantError> {
        let Some(encoder) = &self.encoder else {
            return IntentFeatures::ngrams(self.featurizer);
        };
        let path = encoder.model_path()?;
        let cache_dir = encoder_cache_dir(encoder);
        let (transformer, sha256) = load_transformer(&path, &encoder.prefix)?;
        let train = IntentCorpus::builtin(Split::Train)?;
        let lexicon = encoder
            .spelling
            .then(|| spelling_lexicon(&transformer, train.spoken_texts().iter().map(String::as_str)))
            .flatten();
        // The standardisation's and the adaptation's draws: noisy draws of
        // the built-in training phrasings, at the assistant's training noise
        // and from seed 0, the same whatever the run trains on.
        let noise = AsrNoise::new(self.assistant_pretrain.noise);
        let (transformer, adapted_layer) = match &encoder.adapt {
            None => (transformer, None),
            Some(adapt) => {
                let draws = spoken_and_heard(&train, noise, adapt.draws, 0);
                let file = adapted_layer_file(&transformer, &sha256, draws, lexicon.as_ref(), adapt, &cache_dir)?;
                let (transformer, layer) = with_adapted_layer(transformer, &file)?;
                (transformer, Some(layer))
            }
        };
        let mut embedder = Embedder::transformer(transformer, encoder.features, &path, sha256, adapted_layer);
        let read = embedder.keep_in(&cache_dir)?;
        tracing::info!(model = %path.display(), cached = read, "sentence encoder loaded");
        let features = IntentFeatures::with_embedder(self.featurizer, Arc::new(embedder))?.with_spelling(lexicon);
        if !encoder.standardize {
            return Ok(features);
        }
        // Fitted on noisy draws rather than the clean phrasings: the spread
        // of what the networks are shown (on one seed this beat the clean
        // phrasings by 0.4–0.8 points in each cell; docs/BENCHMARKS.md).
        let draws = noisy_draws(&train, noise, STANDARDIZATION_DRAWS, 0);
        features.standardized(&draws.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>())
    }

    /// DQN as a contextual bandit (every episode is one step, so γ plays no
    /// role): one gradient step per interaction on batches of 64, MSE on the
    /// ±1 rewards. `pretrained` starts with little exploration, since the
    /// network already answers well; from scratch ε decays from 1.
    pub fn bandit_dqn(&self, steps: u64, learning_rate: f64, pretrained: bool, seed: u64) -> DqnConfig {
        DqnConfig {
            seed,
            total_timesteps: steps,
            learning_rate,
            buffer_size: 50_000,
            // A few hundred distinct interactions before the first update, so
            // early batches do not replay the same handful over and over.
            learning_starts: 500,
            batch_size: 64,
            gamma: 0.0,
            train_freq: 1,
            gradient_steps: 1,
            target_update_interval: 1,
            exploration_fraction: 0.3,
            exploration_initial_eps: if pretrained { 0.1 } else { 1.0 },
            exploration_final_eps: 0.02,
            net_arch: self.net_arch.clone(),
            loss: LossKind::Mse,
            freeze_layers: if pretrained { self.freeze_layers } else { 0 },
            ..DqnConfig::default()
        }
    }

    /// DQN on the dialogue task: ε decays from 1 over 30% of the run, one
    /// gradient step every second interaction, a target copied every 500 steps.
    pub fn dialog_dqn(&self, seed: u64) -> DqnConfig {
        DqnConfig {
            seed,
            total_timesteps: self.dialog_steps,
            learning_rate: 1e-3,
            buffer_size: 100_000,
            learning_starts: 500,
            batch_size: 64,
            gamma: self.dialog_gamma,
            train_freq: 2,
            gradient_steps: 1,
            target_update_interval: 500,
            exploration_fraction: 0.3,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.02,
            net_arch: self.net_arch.clone(),
            loss: LossKind::Mse,
            ..DqnConfig::default()
        }
    }
}

/// The built-in corpus of some domains: (train, test) splits.
pub fn domain_corpora(domains: &[Domain]) -> Result<(IntentCorpus, IntentCorpus), AssistantError> {
    let train = IntentCorpus::builtin_domains(Split::Train, domains)?;
    let test = IntentCorpus::builtin_domains(Split::Test, domains)?;
    Ok((train, test))
}

/// An [`IntentEnv`] over `corpus` with the pipeline's noise and features.
pub fn intent_env(
    corpus: Arc<IntentCorpus>,
    featurizer: &IntentFeatures,
    noise: f64,
) -> Result<IntentEnv<IntentFeatures>, AssistantError> {
    Ok(IntentEnv::new(corpus, featurizer.clone(), AsrNoise::new(noise), IntentRewards::default())?)
}

/// A fresh network from `featurizer.dim()` features to `n_actions` outputs.
pub fn new_network<B: AutodiffBackend>(
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    n_actions: usize,
    device: &B::Device,
    seed: u64,
) -> QNetwork<B> {
    QNetworkConfig::new(featurizer.dim(), n_actions).with_hidden(config.net_arch.clone()).init::<B>(device, seed)
}

/// Q-learning from rewards on `env` for `config.total_timesteps`
/// interactions, starting from `start`; `callbacks` see every event (probe
/// held-out data with [`crate::callbacks::every`], stop early by returning `Break`).
pub fn learn_from_rewards<B: AutodiffBackend>(
    start: QNetwork<B>,
    env: &mut IntentEnv<IntentFeatures>,
    config: DqnConfig,
    callbacks: &mut [&mut dyn Callback<B>],
) -> Result<Dqn<B>, AssistantError> {
    let device = start.devices().into_iter().next().unwrap_or_default();
    let total = config.total_timesteps;
    let mut agent = Dqn::<B>::for_env(config, env, device)?;
    agent.init_from(start)?;
    agent.learn(env, total, callbacks)?;
    Ok(agent)
}

/// For each target label, the index of the same label among the source
/// labels (its Q-network output is kept), or `None` (a fresh output).
pub fn shared_outputs(source: &[String], target: &[String]) -> Vec<Option<usize>> {
    target.iter().map(|t| source.iter().position(|s| s == t)).collect()
}

/// For each of `corpus`'s labels, the model output of the same label; the
/// error (on `field`) names the first label the model does not have.
pub fn output_indices(
    corpus: &IntentCorpus,
    model_labels: &[String],
    field: &'static str,
) -> Result<Vec<usize>, AssistantError> {
    let outputs = shared_outputs(model_labels, corpus.labels());
    corpus
        .labels()
        .iter()
        .zip(outputs)
        .map(|(label, output)| {
            output.ok_or_else(|| AssistantError::InvalidConfig {
                field,
                reason: format!("intent `{label}` is not one of the model's labels"),
            })
        })
        .collect()
}

/// What a saved intent model needs besides its weights (`intent.json` in the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentModelSpec {
    /// The intents, in output order.
    pub labels: Vec<String>,
    /// How text becomes the network's input: the n-grams' settings...
    pub featurizer: FeaturizerConfig,
    /// ...and the sentence encoder, if the network reads its embedding
    /// (absent in models trained on n-grams alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
}

impl IntentModelSpec {
    /// The spec of a network over `labels` reading `features`.
    pub fn new(labels: Vec<String>, features: &IntentFeatures) -> Self {
        Self { labels, featurizer: features.ngram_config(), encoder: features.encoder_spec() }
    }

    /// The features this spec describes, its encoder loaded from the model file it names.
    pub fn features(&self) -> Result<IntentFeatures, AssistantError> {
        IntentFeatures::for_spec(self.featurizer, self.encoder.as_ref())
    }

    /// [`Self::features`], but `current` itself when it is what the spec
    /// describes (a model's encoder is loaded once, not per saved version).
    pub fn features_like(&self, current: &IntentFeatures) -> Result<IntentFeatures, AssistantError> {
        if current.ngram_config() == self.featurizer && current.encoder_spec() == self.encoder {
            return Ok(current.clone());
        }
        self.features()
    }

    /// The length of the network's input.
    pub fn input_dim(&self) -> usize {
        let ngrams = match &self.encoder {
            Some(EncoderSpec { features: crate::EmbeddingUse::Alone, .. }) => 0,
            _ => self.featurizer.dim,
        };
        ngrams + self.encoder.as_ref().map_or(0, |e| e.dim)
    }
}

/// The file of `encoder`'s last layer adapted ([`adapt_last_layer`]) on
/// `draws` of (intent, spoken, heard) text, each heard text read through
/// `lexicon` first as the features will read it. Computed once and kept in
/// `dir`, named by everything it is computed from: the model, the
/// settings and the pairs themselves.
fn adapted_layer_file(
    encoder: &TransformerEncoder,
    model_sha256: &str,
    draws: Vec<(usize, String, String)>,
    lexicon: Option<&Lexicon>,
    config: &AdaptConfig,
    dir: &Path,
) -> Result<std::path::PathBuf, AssistantError> {
    config.validate()?;
    let pairs: Vec<(String, String)> = draws
        .into_par_iter()
        .map(|(_, spoken, heard)| match lexicon {
            Some(lexicon) => (read_through(lexicon, encoder, &heard).into_owned(), spoken),
            None => (heard, spoken),
        })
        .collect();
    let mut key = Sha256::new();
    key.update(format!("{model_sha256}\n{}\n{config:?}\n", encoder.prefix()));
    for (heard, spoken) in &pairs {
        key.update(format!("{heard}\t{spoken}\n"));
    }
    let file = dir.join(format!("last-layer-{}.safetensors", &hex(&key.finalize())[..16]));
    if file.exists() {
        return Ok(file);
    }
    let steps = config.epochs * (2 * pairs.len()).div_ceil(config.batch_size);
    let bar = progress_bar(steps as u64, "steps").with_message("adapting the encoder's last layer");
    let mut recent_loss = 0.0;
    let weights = adapt_last_layer::<AutodiffCpu>(encoder, &pairs, config, &cpu_device(), |step, loss| {
        recent_loss = if step == 1 { loss } else { 0.95 * recent_loss + 0.05 * loss };
        bar.set_position(step as u64);
        bar.set_message(format!("adapting the encoder's last layer, loss {recent_loss:.4}"));
    })?;
    bar.finish_and_clear();
    let sha256 = save_layer(&file, encoder.last_layer()?, &weights)?;
    tracing::info!(file = %file.display(), %sha256, pairs = pairs.len(), loss = recent_loss, "encoder's last layer adapted");
    Ok(file)
}

/// Where the embeddings of `encoder`'s model are kept between runs.
pub fn encoder_cache_dir(encoder: &EncoderConfig) -> std::path::PathBuf {
    if encoder.cache_dir.as_os_str().is_empty() {
        crate::encoder::default_cache().join("encoder").join("embeddings")
    } else {
        encoder.cache_dir.clone()
    }
}

const SPEC_FILE: &str = "intent.json";
/// The environment id intent checkpoints record.
pub const INTENT_ENV_ID: &str = "intent";

/// Saves an intent network and its spec to the checkpoint directory `dir`, atomically.
pub fn save_intent_model<B: burn::tensor::backend::Backend>(
    dir: &Path,
    network: &QNetwork<B>,
    spec: &IntentModelSpec,
    step: u64,
    backend: String,
    run_config: serde_json::Value,
) -> Result<CheckpointMeta, AssistantError> {
    if spec.labels.len() != network.n_actions() || spec.input_dim() != network.obs_dim() {
        let reason = format!(
            "{} labels for {} outputs, {} features for {} inputs",
            spec.labels.len(),
            network.n_actions(),
            spec.input_dim(),
            network.obs_dim()
        );
        return Err(AssistantError::InvalidConfig { field: "labels", reason });
    }
    let shape = network.config();
    let spec_json = serde_json::to_vec_pretty(spec)
        .map_err(|e| AssistantError::InvalidConfig { field: "labels", reason: e.to_string() })?;
    let info = CheckpointInfo { env_id: INTENT_ENV_ID.into(), step, backend, run_config };
    Ok(checkpoint::save_with_extras(dir, network, &shape, info, &[(SPEC_FILE, &spec_json)])?)
}

/// Loads an intent model saved by [`save_intent_model`], checking that the
/// network fits its spec.
pub fn load_intent_model<B: burn::tensor::backend::Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(QNetwork<B>, IntentModelSpec, CheckpointMeta), AssistantError> {
    let meta = checkpoint::read_meta(dir)?;
    let bytes = checkpoint::read_extra(dir, &meta, SPEC_FILE)?;
    let path = dir.join(SPEC_FILE);
    let spec: IntentModelSpec = serde_json::from_slice(&bytes).map_err(|e| AssistantError::InvalidConfig {
        field: "checkpoint",
        reason: format!("{}: {e}", path.display()),
    })?;
    if spec.labels.len() != meta.n_actions {
        let reason = format!("{}: {} labels for {} network outputs", path.display(), spec.labels.len(), meta.n_actions);
        return Err(AssistantError::InvalidConfig { field: "checkpoint", reason });
    }
    let expected = Expectation { env_id: INTENT_ENV_ID, obs_dim: spec.input_dim(), n_actions: spec.labels.len() };
    let (network, meta) = checkpoint::load::<B>(dir, &expected, device)?;
    Ok((network, spec, meta))
}

/// A classifier from a saved model's network and spec (its encoder, if
/// any, loaded from the file the spec names).
pub fn classifier_of<B: burn::tensor::backend::Backend>(
    network: &QNetwork<B>,
    spec: &IntentModelSpec,
) -> Result<IntentClassifier, AssistantError> {
    IntentClassifier::new(spec.labels.clone(), spec.features()?, network.to_host()?)
}

/// Step 1 alone: a network pretrained on the built-in training split of
/// `domains` with `config`'s settings, and its spec.
pub fn pretrain_domains<B: AutodiffBackend>(
    config: &PipelineConfig,
    domains: &[Domain],
    device: &B::Device,
) -> Result<(QNetwork<B>, IntentModelSpec), AssistantError> {
    let featurizer = config.features()?;
    let train = IntentCorpus::builtin_domains(Split::Train, domains)?;
    let network = new_network::<B>(config, &featurizer, train.labels().len(), device, config.seed);
    let pretrain_config = PretrainConfig { seed: config.seed, ..config.pretrain.clone() };
    let network = crate::pretrain(network, &train, &featurizer, &pretrain_config, |_, _| {})?;
    Ok((network, IntentModelSpec::new(train.labels().to_vec(), &featurizer)))
}
