"""Write the demo recordings the project ships by generating them (espeak-ng), never by copying.

    python -m devkit.demo_audio --out build/demo

writes, at 16 kHz mono 16-bit:
  sentence.wav                the demo sentence alone (notebook, sample-client)
  keyword_then_sentence.wav   silence, the keyword, a pause, the sentence, silence (the edge app demo)
  demo.json                   the texts, so a test can compare the transcript with the sentence
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from devkit.speech import KEYWORD, SENTENCE, VOICE
from edgeml.audioformat import write_wav
from kwtrain.tts import silence, synthesize


def build(out_dir: Path, keyword: str = KEYWORD, sentence: str = SENTENCE) -> dict:
    """Generate the demo WAVs into `out_dir`; return what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    said = synthesize(sentence, VOICE) * 0.7
    kw = synthesize(keyword, VOICE) * 0.7
    combined = np.concatenate([silence(1.0), kw, silence(0.4), said, silence(2.0)])
    files = {
        "sentence_wav": out_dir / "sentence.wav",
        "keyword_then_sentence_wav": out_dir / "keyword_then_sentence.wav",
    }
    write_wav(files["sentence_wav"], np.concatenate([silence(0.3), said, silence(0.3)]))
    write_wav(files["keyword_then_sentence_wav"], combined)
    meta = {
        "keyword": keyword,
        "sentence": sentence,
        "voice": str(VOICE),
        **{k: str(v) for k, v in files.items()},
    }
    (out_dir / "demo.json").write_text(json.dumps(meta, indent=2))
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("build/demo"), help="output folder (default build/demo)"
    )
    parser.add_argument("--keyword", default=KEYWORD)
    parser.add_argument("--sentence", default=SENTENCE)
    args = parser.parse_args()
    meta = build(args.out, args.keyword, args.sentence)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
