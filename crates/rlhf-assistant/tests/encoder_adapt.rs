//! Adapting an encoder's last layer to misheard text
//! (`rlhf_assistant::encoder::adapt`), on the tiny XLM-R of `fixtures/`.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use rlhf_assistant::encoder::adapt::{AdaptConfig, TrainableLayer, adapt_last_layer, save_layer};
use rlhf_assistant::encoder::hub::read_layer_file;
use rlhf_assistant::encoder::{SentenceEncoder, TransformerEncoder};
use rlhf_model::backend::{AutodiffCpu, CpuBackend, cpu_device};

const TEXTS: [&str; 4] = ["turn on the light", "打开灯", "the light", "turn on"];

fn tiny() -> TransformerEncoder {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-xlmr");
    TransformerEncoder::from_hub_dir(&dir, "").unwrap()
}

fn encode(encoder: &TransformerEncoder, text: &str) -> Vec<f32> {
    let mut out = Vec::new();
    encoder.encode_into(text, &mut out).unwrap();
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn the_trainable_layer_computes_what_the_encoder_does() {
    // Two implementations of the same layer: the encoder's host arithmetic,
    // and burn's tensors with autodiff. The layers below feed both.
    let encoder = tiny();
    let sizes = *encoder.sizes();
    let last = sizes.layers - 1;
    let device = cpu_device();
    let layer = TrainableLayer::<CpuBackend>::new(
        &encoder.layer_weights(last).unwrap(),
        sizes.heads,
        f64::from(sizes.layer_norm_eps),
        &device,
    )
    .unwrap();
    for text in TEXTS {
        let states = encoder.token_states(text, last).unwrap();
        let tokens = states.len() / sizes.hidden;
        let x = Tensor::from_data(TensorData::new(states, [1, tokens, sizes.hidden]), &device);
        let mask = Tensor::ones([1, tokens], &device);
        let pooled: Vec<f32> = layer.pooled(x, mask).into_data().into_vec().unwrap();
        let cos = cosine(&pooled, &encode(&encoder, text));
        assert!(cos > 0.99999, "{text}: cosine {cos}");
    }
}

#[test]
fn padding_does_not_change_a_text_vector() {
    let encoder = tiny();
    let sizes = *encoder.sizes();
    let last = sizes.layers - 1;
    let device = cpu_device();
    let weights = encoder.layer_weights(last).unwrap();
    let layer = TrainableLayer::<CpuBackend>::new(&weights, sizes.heads, 1e-12, &device).unwrap();
    let short = encoder.token_states("turn on", last).unwrap();
    let tokens = short.len() / sizes.hidden;
    let mut padded = short.clone();
    padded.resize(short.len() + 3 * sizes.hidden, 0.5);
    let alone = layer.pooled(
        Tensor::from_data(TensorData::new(short, [1, tokens, sizes.hidden]), &device),
        Tensor::ones([1, tokens], &device),
    );
    let mut mask = vec![1.0f32; tokens];
    mask.extend([0.0; 3]);
    let with_padding = layer.pooled(
        Tensor::from_data(TensorData::new(padded, [1, tokens + 3, sizes.hidden]), &device),
        Tensor::from_data(TensorData::new(mask, [1, tokens + 3]), &device),
    );
    let (a, b): (Vec<f32>, Vec<f32>) =
        (alone.into_data().into_vec().unwrap(), with_padding.into_data().into_vec().unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn a_layer_replaced_by_its_own_weights_and_saved_reads_back_the_same() {
    let encoder = tiny();
    let sizes = *encoder.sizes();
    let last = sizes.layers - 1;
    let weights = encoder.layer_weights(last).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer.safetensors");
    let sha = save_layer(&path, last, &weights).unwrap();
    assert_eq!(sha.len(), 64);
    let read = read_layer_file(&path, last, sizes.hidden, sizes.intermediate).unwrap();
    assert_eq!(read, weights);
    let replaced = tiny().with_layer(last, read).unwrap();
    for text in TEXTS {
        assert_eq!(encode(&replaced, text), encode(&encoder, text), "{text}");
    }
    // Another layer's number, a damaged file: errors naming the file.
    let err = read_layer_file(&path, 0, sizes.hidden, sizes.intermediate).unwrap_err().to_string();
    assert!(err.contains("layer.safetensors") && err.contains("encoder.layer.0"), "{err}");
    std::fs::write(&path, b"not safetensors").unwrap();
    let err = read_layer_file(&path, last, sizes.hidden, sizes.intermediate).unwrap_err().to_string();
    assert!(err.contains("layer.safetensors"), "{err}");
    assert!(tiny().with_layer(sizes.layers, encoder.layer_weights(0).unwrap()).is_err());
}

#[test]
fn adapting_brings_heard_text_toward_its_clean_vector() {
    let encoder = tiny();
    let pairs: Vec<(String, String)> =
        [("turn om the lihgt", "turn on the light"), ("打开丁", "打开灯"), ("the ligt", "the light")]
            .iter()
            .map(|(heard, clean)| (heard.to_string(), clean.to_string()))
            .collect();
    let mean_cos = |e: &TransformerEncoder| -> f32 {
        pairs.iter().map(|(h, c)| cosine(&encode(e, h), &encode(&encoder, c))).sum::<f32>() / pairs.len() as f32
    };
    let config = AdaptConfig { epochs: 60, learning_rate: 1e-3, batch_size: 2, ..Default::default() };
    let mut losses = Vec::new();
    let weights =
        adapt_last_layer::<AutodiffCpu>(&encoder, &pairs, &config, &cpu_device(), |_, loss| losses.push(loss)).unwrap();
    // Three pairs, twice each, two to a step: three steps an epoch.
    assert_eq!(losses.len(), 3 * 60);
    let last = encoder.sizes().layers - 1;
    let adapted = tiny().with_layer(last, weights.clone()).unwrap();
    let (before, after) = (mean_cos(&encoder), mean_cos(&adapted));
    assert!(after > before && after > 0.99, "cos(heard, clean) {before} → {after}");
    // The same run again: the same weights, bit for bit.
    let again = adapt_last_layer::<AutodiffCpu>(&encoder, &pairs, &config, &cpu_device(), |_, _| {}).unwrap();
    assert_eq!(again, weights);
    // A bad setting names its field.
    let bad = AdaptConfig { epochs: 0, ..config };
    let err = adapt_last_layer::<AutodiffCpu>(&encoder, &pairs, &bad, &cpu_device(), |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("encoder.adapt.epochs"), "{err}");
}
