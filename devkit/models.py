"""Build and save CTC models the way a real model folder looks, with no network.

The Hugging Face Hub is unreachable here, so tests save a model with `save_pretrained` and load it
through the service's real loading path. The vocabulary is wav2vec2-base-960h's 32 characters, so
the tokenizer, decoding and upper-case output behave as with the real model.
"""

from __future__ import annotations

import json
from pathlib import Path

# The character vocabulary of facebook/wav2vec2-base-960h, in id order.
VOCAB_960H = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]

TINY_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(32, 32, 32, 32, 32, 32, 32),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def build_ctc_model(out_dir: Path, *, tiny: bool = True, seed: int = 0) -> Path:
    """Save a Wav2Vec2ForCTC (random weights) plus its processor into `out_dir`.

    tiny=True: a 200 KB model that loads in 0.1 s, for tests.
    tiny=False: the default Wav2Vec2Config, which is the wav2vec2-base architecture (94 M
    parameters): random weights but the real model's compute, for benchmarks.
    """
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = out_dir / "vocab.json"
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(VOCAB_960H)}))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out_dir)

    torch.manual_seed(seed)
    config_kwargs = TINY_CONFIG if tiny else {}
    config = Wav2Vec2Config(
        vocab_size=len(VOCAB_960H), pad_token_id=0, ctc_loss_reduction="mean", **config_kwargs
    )
    model = Wav2Vec2ForCTC(config).eval()
    if tiny:
        # Random tiny weights would emit mostly <pad>; scale the head so decodes are non-trivial
        # strings, which makes "served transcript == reference decode" a test that can fail.
        with torch.no_grad():
            model.lm_head.weight.mul_(50.0)
    model.save_pretrained(out_dir)
    return out_dir
