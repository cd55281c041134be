"""Writes the hub-layout fixtures of the Rust sentence encoder, two tiny
random models saved as Hugging Face saves them (`config.json`,
`model.safetensors`, `tokenizer.json`):

- `tiny-xlmr/`: an XLM-RoBERTa (hidden 32, 2 layers, 4 heads, f16) with a
  Unigram tokenizer of about 150 zh/en pieces;
- `tiny-bert/`: a BERT of the same sizes (bf16) with a WordPiece tokenizer
  and BERT's normaliser and pre-tokenizer;

each with `expected.json`: for a dozen texts, the ids Hugging Face
`tokenizers` gives and the mean-pooled (over every token, the start and end
tokens included), L2-normalised vectors of `transformers`' model.

    python3 -m venv /tmp/hubref && /tmp/hubref/bin/pip install torch transformers tokenizers safetensors
    /tmp/hubref/bin/python scripts/record_hub_fixture.py crates/rlhf-assistant/tests/fixtures

`crates/rlhf-assistant/tests/encoder_hub.rs` loads the folders and checks
the ids exactly and each vector to a cosine of 0.9999.
"""

import json
import sys
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
WORDS = (
    "▁turn ▁the ▁light ▁lights ▁on ▁off ▁volume ▁up ▁down ▁how ▁far ▁is ▁mu seum ▁museum ▁play ▁music "
    "▁what ▁time ▁it ▁now ▁please ▁set ▁an ▁alarm ▁for ▁seven ▁query ▁lig ht ing er ▁and ▁spaces"
).split()
HAN = (
    "▁打开 打 开 灯 关 音 量 大 小 一 点 今 天 天气 气 怎 么 样 播 放 音乐 乐 博 物 馆 多 远 "
    "请 把 调 高 低 现 在 几 钟 的 了 吗 我 很 可 爱"
).split()
# Letters, digits and punctuation after the words, so any Latin text has a path without <unk>.
SINGLES = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + list(",.?!:'") + ["，", "。", "？"]

TEXTS = [
    "query: 打开灯",
    "query: turn the volume up",
    "query: how far is the museum",
    "今天天气怎么样？",
    "Turn  off   the light, please.",
    "ＡＢＣ ①２３",
    "播放音乐 play music",
    "我的猫猫很可爱 😀",
    "  leading and trailing spaces  ",
    "What time is it now?",
    "把音量调高一点",
    "set an alarm for seven",
]


def build_tokenizer() -> Tokenizer:
    generator = torch.Generator().manual_seed(7)
    pieces = ["▁"] + WORDS + HAN + SINGLES
    # Longer pieces score higher, with some noise, so segmentations are not all ties.
    noise = torch.rand(len(pieces), generator=generator).tolist()
    vocab = [(p, 0.0) for p in SPECIALS]
    vocab += [(p, round(-8.0 + 1.5 * len(p) - 2.0 * n, 4)) for p, n in zip(pieces, noise)]
    vocab.append(("<mask>", 0.0))
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIALS + ["<mask>"]])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return tok


BERT_WORDS = (
    "turn on the light lights please play music what time is it now how far museum set an alarm for seven "
    "cafe deja vu ##s ##ing ##er ' , . ! ? ， 。 ？ 打 开 灯 今 天 气 怎 么 样 播 放 音 乐 把 量 调 高 一 点"
).split()
BERT_TEXTS = [
    "Turn ON the lights, please!",
    "打开灯",
    "今天天气怎么样？",
    "Café déjà vu",
    "what's the time now?",
    "playing musics",
    "tab\tseparated\nlines",
    "ＡＢＣ and 😀",
    "how far is the museum",
    "把音量调高一点",
    "set an alarm for seven.",
]


def build_bert_tokenizer() -> Tokenizer:
    letters = list("abcdefghijklmnopqrstuvwxyz")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + BERT_WORDS + letters + ["##" + c for c in letters]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens([AddedToken(t, special=True) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return tok


def randomise(model, seed: int) -> None:
    """Weights far from the default init (std 0.02, unit norms), so every one moves the result."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias") or "LayerNorm" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.4 * torch.randn(p.shape, generator=generator))


def build_bert(vocab_size: int) -> BertModel:
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        pad_token_id=0,
    )
    model = BertModel(config, add_pooling_layer=False)
    randomise(model, 1234)
    with torch.no_grad():
        # Saved in bf16: round now, so the reference sees the weights the file holds.
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    model.eval()
    return model


def record(out: Path, tok: Tokenizer, model, texts: list[str], dtype: torch.dtype) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.config._attn_implementation = "eager"
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tok.encode(text).ids
            input_ids = torch.tensor([ids])
            hidden = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state[0]
            pooled = hidden.mean(dim=0)
            vector = pooled / pooled.norm()
            rows.append({"text": text, "ids": ids, "vector": [round(float(x), 7) for x in vector]})
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    expected = {
        "made_by": "scripts/record_hub_fixture.py",
        "pooling": "mean over all tokens incl. the start and end tokens, then L2",
        "texts": rows,
    }
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")


def build_model(vocab_size: int) -> XLMRobertaModel:
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    model = XLMRobertaModel(config, add_pooling_layer=False)
    randomise(model, 20240611)
    with torch.no_grad():
        # Position rows 0 and 1 (up to pad + 1) are never used by XLM-R: make them large and
        # random (layer norm would cancel a constant), so a reader that forgets the offset
        # gets very different vectors.
        rows = model.embeddings.position_embeddings.weight[:2]
        rows.copy_(25.0 * torch.randn(rows.shape, generator=torch.Generator().manual_seed(5)))
        # Saved in f16: round now, so the reference sees the weights the file holds.
        for p in model.parameters():
            p.copy_(p.half().float())
    model.eval()
    return model


def main() -> None:
    fixtures = Path(sys.argv[1])
    tok = build_tokenizer()
    record(fixtures / "tiny-xlmr", tok, build_model(tok.get_vocab_size()), TEXTS, torch.float16)
    bert_tok = build_bert_tokenizer()
    record(fixtures / "tiny-bert", bert_tok, build_bert(bert_tok.get_vocab_size()), BERT_TEXTS, torch.bfloat16)


if __name__ == "__main__":
    main()
