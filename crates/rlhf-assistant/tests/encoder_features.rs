//! The assistant on `[n-grams ‖ embedding]` features, end to end, with the
//! tiny random XLM-R model of `tests/fixtures/tiny-xlmr` (so it runs on CI,
//! where no real model is installed): pretraining embeds its utterance pool
//! once and keeps it on disk, the saved model names its encoder and answers
//! the same after loading, another model file is refused, and the online
//! learner learns from feedback on these features.

use std::path::{Path, PathBuf};

use rlhf_assistant::encoder::adapt::AdaptConfig;
use rlhf_assistant::model::IntentModel;
use rlhf_assistant::online::OnlineConfig;
use rlhf_assistant::pipeline::{
    IntentModelSpec, classifier_of, encoder_cache_dir, load_intent_model, new_network, save_intent_model,
};
use rlhf_assistant::{
    EmbeddingUse, EncoderConfig, IntentClassifier, IntentCorpus, PipelineConfig, PretrainConfig, Split, pretrain,
};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use rlhf_model::text::{FeaturizerConfig, TextFeaturizer};
use serde_json::json;

const INTENTS: [&str; 3] = ["light_on", "light_off", "play_music"];

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-xlmr")
}

fn config(cache: &Path, features: EmbeddingUse) -> PipelineConfig {
    PipelineConfig {
        featurizer: FeaturizerConfig { dim: 256, ..FeaturizerConfig::default() },
        encoder: Some(EncoderConfig {
            features,
            model: tiny_model(),
            prefix: "query: ".into(),
            cache_dir: cache.to_owned(),
            standardize: true,
            spelling: true,
            adapt: None,
        }),
        net_arch: vec![32],
        pretrain: PretrainConfig { steps: 120, encoder_pool: 300, ..PretrainConfig::default() },
        ..PipelineConfig::default()
    }
}

fn corpus(split: Split) -> IntentCorpus {
    let labels: Vec<String> = INTENTS.iter().map(|s| (*s).to_owned()).collect();
    IntentCorpus::builtin(split).unwrap().restrict(&labels).unwrap()
}

#[test]
fn a_model_on_embeddings_trains_saves_loads_and_learns_from_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("cache"), EmbeddingUse::Concat);
    let features = config.features().unwrap();
    let embedder = features.embedder().expect("an encoder").clone();
    assert_eq!(features.dim(), 256 + embedder.dim());
    assert_eq!(embedder.dim(), 32, "the tiny model's hidden size");

    let train = corpus(Split::Train);
    let network = new_network::<AutodiffCpu>(&config, &features, INTENTS.len(), &cpu_device(), 0);
    let network = pretrain(network, &train, &features, &config.pretrain, |_, _| {}).unwrap();

    // The pool's embeddings were computed once and kept on disk.
    let cache_file = embedder.cache_file(&encoder_cache_dir(config.encoder.as_ref().unwrap()));
    assert!(cache_file.is_file(), "{} was not written", cache_file.display());
    let again = config.features().unwrap();
    let kept = rlhf_assistant::Embedder::open(&tiny_model(), EmbeddingUse::Concat, "query: ").unwrap();
    let read = kept.load_cache(&cache_file).unwrap();
    assert!(read > 50, "only {read} embeddings kept");
    drop(again);

    // Saved, the spec names the encoder; loaded, it answers bit for bit the same.
    let spec = IntentModelSpec::new(train.labels().to_vec(), &features);
    let encoder = spec.encoder.as_ref().expect("the spec records the encoder");
    assert_eq!((encoder.dim, encoder.features), (32, EmbeddingUse::Concat));
    let standardization = encoder.standardization.as_ref().expect("standardised over the built-in phrasings");
    assert_eq!((standardization.center.len(), standardization.scale.len()), (32, 32));
    assert_eq!(encoder.sha256.len(), 64);
    // The tiny model's tokenizer is a unigram model, so the spec carries a spelling lexicon.
    let lexicon = encoder.lexicon.as_ref().expect("a spelling lexicon of the built-in phrasings");
    assert!(lexicon.0.iter().any(|(word, _)| word == "lights"), "{} words", lexicon.0.len());
    let model_dir = dir.path().join("model");
    save_intent_model(&model_dir, &network, &spec, 120, "cpu".into(), json!({})).unwrap();
    let (loaded, loaded_spec, _) = load_intent_model::<AutodiffCpu>(&model_dir, &cpu_device()).unwrap();
    assert_eq!(loaded_spec, spec);
    let mut before = IntentClassifier::new(spec.labels.clone(), features.clone(), network.to_host().unwrap()).unwrap();
    let mut after = classifier_of(&loaded, &loaded_spec).unwrap();
    for text in ["把灯打开", "turn the lights off", "放首歌", "something else entirely"] {
        assert_eq!(before.q_values(text).unwrap(), after.q_values(text).unwrap(), "{text}");
    }

    // It learned something: better than chance on the held-out phrasings.
    let test = corpus(Split::Test);
    let accuracy = after.evaluate(&test.utterances(2, 0), rlhf_assistant::AsrNoise::new(0.0), 1).unwrap().accuracy;
    assert!(accuracy > 0.5, "test accuracy {accuracy}");

    // The online learner learns a correction on these features.
    let model = IntentModel::<AutodiffCpu>::load(&model_dir, &[], 3, &cpu_device()).unwrap();
    let mut learner = model.learner(Some(train.clone()), OnlineConfig::default()).unwrap();
    let odd = "flip the glow thing";
    for _ in 0..30 {
        learner.learn(odd, &[(2, 1.0), (0, -1.0), (1, -1.0)]).unwrap();
    }
    let mut taught =
        IntentClassifier::new(spec.labels.clone(), model.features.clone(), learner.host_network().unwrap()).unwrap();
    assert_eq!(taught.predict(odd).unwrap(), 2, "{:?}", taught.q_values(odd).unwrap());
}

#[test]
fn the_embedding_alone_and_a_foreign_model_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("cache"), EmbeddingUse::Alone);
    let features = config.features().unwrap();
    assert_eq!(features.dim(), 32, "no n-gram buckets");
    let mut spec = IntentModelSpec::new(INTENTS.iter().map(|s| (*s).to_owned()).collect(), &features);
    assert_eq!(spec.input_dim(), 32);
    // A spec whose model has another SHA-256: the file at that path is not the one trained with.
    spec.encoder.as_mut().unwrap().sha256 = "0".repeat(64);
    let message = spec.features().unwrap_err().to_string();
    assert!(message.contains("encoder.model") && message.contains("not the model"), "{message}");
    // A missing model names the path.
    spec.encoder.as_mut().unwrap().model = dir.path().join("absent");
    let message = spec.features().unwrap_err().to_string();
    assert!(message.contains("absent"), "{message}");
}

#[test]
fn a_damaged_embedding_cache_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("cache"), EmbeddingUse::Concat);
    let features = config.features().unwrap();
    let embedder = features.embedder().unwrap();
    embedder.prepare(&["打开灯", "turn it up"]).unwrap();
    let file = embedder.cache_file(&dir.path().join("cache"));
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let message = config.features().unwrap_err().to_string();
    assert!(message.contains(&file.display().to_string()) && message.contains("byte"), "{message}");
}

#[test]
fn an_adapted_last_layer_is_computed_once_recorded_and_checked_on_loading() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut config = config(&cache, EmbeddingUse::Concat);
    // Unstandardised, the test encodes only what it reads.
    config.encoder.as_mut().unwrap().standardize = false;
    let shipped = config.features().unwrap();
    let adapt = AdaptConfig { draws: 1024, batch_size: 128, learning_rate: 1e-3, ..AdaptConfig::default() };
    config.encoder.as_mut().unwrap().adapt = Some(adapt.clone());
    let adapted = config.features().unwrap();

    let spec = IntentModelSpec::new(INTENTS.iter().map(|s| (*s).to_owned()).collect(), &adapted);
    let layer = spec.encoder.as_ref().unwrap().adapted_layer.clone().expect("the spec records the adapted layer");
    assert!(layer.file.starts_with(&cache) && layer.file.is_file(), "{}", layer.file.display());
    assert_eq!(layer.sha256.len(), 64);
    assert_eq!(IntentModelSpec::new(spec.labels.clone(), &shipped).encoder.unwrap().adapted_layer, None);
    // The layer changed what the encoder says, and the embeddings are kept apart from the shipped model's.
    let heard = "turn of the lihgts";
    let (a, b) = (shipped.embedder().unwrap().embed(heard).unwrap(), adapted.embedder().unwrap().embed(heard).unwrap());
    assert_ne!(a, b);
    assert_ne!(shipped.embedder().unwrap().cache_file(&cache), adapted.embedder().unwrap().cache_file(&cache));

    // A second run reads the layer back rather than training it again: the file is untouched.
    let written = std::fs::metadata(&layer.file).unwrap().modified().unwrap();
    let again = config.features().unwrap();
    assert_eq!(again.embedder().unwrap().spec(), adapted.embedder().unwrap().spec());
    assert_eq!(std::fs::metadata(&layer.file).unwrap().modified().unwrap(), written);
    // Other settings are another layer.
    config.encoder.as_mut().unwrap().adapt = Some(AdaptConfig { seed: 1, ..adapt });
    let other = config.features().unwrap();
    let other_layer = other.encoder_spec().unwrap().adapted_layer.unwrap();
    assert_ne!(other_layer.file, layer.file);

    // Loading checks the layer: another file at that path is refused, a damaged one names itself.
    let mut foreign = spec.clone();
    foreign.encoder.as_mut().unwrap().adapted_layer = Some(other_layer.clone());
    foreign.encoder.as_mut().unwrap().adapted_layer.as_mut().unwrap().sha256 = layer.sha256.clone();
    let message = foreign.features().unwrap_err().to_string();
    assert!(message.contains("encoder.adapted_layer") && message.contains("not the last layer"), "{message}");
    let bytes = std::fs::read(&other_layer.file).unwrap();
    std::fs::write(&other_layer.file, &bytes[..bytes.len() / 2]).unwrap();
    let message = foreign.features().unwrap_err().to_string();
    assert!(message.contains(&other_layer.file.display().to_string()), "{message}");
    // The recorded layer loads and answers as the features that recorded it did.
    let loaded = spec.features().unwrap();
    let mut values = Vec::new();
    loaded.featurize(heard, &mut values);
    let mut expected = Vec::new();
    adapted.featurize(heard, &mut expected);
    assert_eq!(values, expected);
}

#[test]
fn an_adapt_table_in_the_pipeline_config_reads_as_the_defaults() {
    let config: PipelineConfig = toml::from_str("[encoder]\n[encoder.adapt]\n").unwrap();
    assert_eq!(config.encoder.unwrap().adapt, Some(AdaptConfig::default()));
    let config: PipelineConfig = toml::from_str("[encoder.adapt]\nepochs = 0\n").unwrap();
    let message = config.validate().unwrap_err().to_string();
    assert!(message.contains("encoder.adapt.epochs"), "{message}");
}
