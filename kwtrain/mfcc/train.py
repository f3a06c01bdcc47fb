"""Train the keyword network with torch (developer machine only; the device gets numpy weights).

Studio's recipe: MFCC features (`features.Mfcc`), the 1-D conv network of `network.py`, Adam,
batch 32, cross-entropy; here with class weights (datasets are rarely balanced), a cosine
learning-rate decay, and the augmentation of `augment.py` redrawn every epoch. The held-out
split (whole voices or speakers, see `dataset.py`) is never trained on; the final weights are
kept (no model selection on the test split), so the reported figures are honest.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwtrain.augment import Augmenter, AugmentSettings
from kwtrain.clips import active_bounds, windows
from kwtrain.dataset import Dataset, read_clip
from kwtrain.mfcc.features import Mfcc, MfccConfig
from kwtrain.mfcc.network import NetSpec, forward
from kwtrain.mfcc.runtime import KeywordModel
from kwtrain.report import threshold_table, write_report

NOISE_LABEL = "noise"


@dataclass(frozen=True)
class TrainSettings:
    keyword: str = "listen"
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 0.005
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    window_increase: float = 0.5  # Studio's default: longer samples give a window every 0.5 s
    channels: tuple[int, ...] = (8, 16)
    kernel_size: int = 3
    dropout: float = 0.25
    name: str = ""
    mfcc: MfccConfig = field(default_factory=MfccConfig)
    augment: AugmentSettings = field(default_factory=AugmentSettings)


@dataclass
class Windows:
    """1 s training windows of one split, with what augmentation and the report need."""

    audio: np.ndarray  # (N, window) float32 in [-1, 1]
    label: np.ndarray  # (N,) int
    group: list[str]
    source: list[str]
    bounds: np.ndarray  # (N, 2) active-speech start/end samples

    def __len__(self) -> int:
        return len(self.label)


def load_windows(dataset: Dataset, split: str, cfg: MfccConfig, increase: float) -> Windows:
    """Every sample of `split` as 1 s windows (longer samples give several, as in Studio)."""
    size = cfg.window_samples
    hop = max(1, int(increase * cfg.sample_rate))
    audio, label, group, source, bounds = [], [], [], [], []
    samples = dataset.of(split)
    for s in tqdm(samples, desc=f"loading {split}", unit="clip", disable=len(samples) < 500):
        for w in windows(read_clip(s.path, cfg.sample_rate), size, hop):
            audio.append(w)
            label.append(dataset.labels.index(s.label))
            group.append(s.group)
            source.append(str(s.path))
            bounds.append(active_bounds(w, cfg.sample_rate))
    return Windows(
        audio=np.stack(audio).astype(np.float32) if audio else np.zeros((0, size), np.float32),
        label=np.asarray(label, dtype=np.int64),
        group=group,
        source=source,
        bounds=np.asarray(bounds, dtype=np.int64).reshape(-1, 2),
    )


def build_torch_net(spec: NetSpec):
    """Studio's keyword network in torch, with parameter names the numpy forward pass reads."""
    import torch
    from torch import nn

    class KwsNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.spec = spec
            in_ch = spec.num_cepstral
            for i, out_ch in enumerate(spec.channels):
                conv = nn.Conv1d(in_ch, out_ch, spec.kernel_size, padding=spec.kernel_size // 2)
                setattr(self, f"conv{i + 1}", conv)
                in_ch = out_ch
            self.drop = nn.Dropout(spec.dropout)
            self.dense = nn.Linear(spec.flat_size(), spec.num_labels)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.view(-1, spec.num_frames, spec.num_cepstral).transpose(1, 2)
            for i in range(len(spec.channels)):
                x = torch.relu(getattr(self, f"conv{i + 1}")(x))
                x = self.drop(nn.functional.max_pool1d(x, 2, 2, ceil_mode=True))
            return self.dense(x.transpose(1, 2).flatten(1))  # time-major, as Keras' Flatten

    return KwsNet()


def _features(mfcc: Mfcc, audio: np.ndarray, batch: int = 128) -> np.ndarray:
    """Float windows in [-1, 1] -> flattened MFCCs, computed on int16 sample values."""
    out = [mfcc.flat(np.round(audio[i : i + batch] * 32768.0)) for i in range(0, len(audio), batch)]
    return np.concatenate(out) if out else np.zeros((0, mfcc.cfg.num_features), np.float32)


def _augmented(
    data: Windows, aug: Augmenter, keyword_idx: int, rng: np.random.Generator
) -> np.ndarray:
    return np.stack(
        [
            aug(data.audio[i], tuple(data.bounds[i]), data.label[i] == keyword_idx, rng)
            for i in range(len(data))
        ]
    )


def train(dataset: Dataset, out_dir: Path, settings: TrainSettings = TrainSettings()) -> dict:
    """Train, write model.npz + report.json + report.png into `out_dir`, return the report."""
    import torch

    torch.set_num_threads(max(1, settings.threads))
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()

    labels = list(dataset.labels)
    keyword_idx = labels.index(settings.keyword)
    cfg = settings.mfcc
    mfcc = Mfcc(cfg)
    train_w = load_windows(dataset, "train", cfg, settings.window_increase)
    test_w = load_windows(dataset, "test", cfg, settings.window_increase)
    if len(train_w) == 0:
        raise ValueError("the training split is empty: add samples or lower --test-fraction")

    noise_pool = (
        train_w.audio[train_w.label == labels.index(NOISE_LABEL)]
        if (NOISE_LABEL in labels)
        else np.zeros((0, cfg.window_samples), np.float32)
    )
    aug = Augmenter(noise_pool, cfg.sample_rate, settings.augment)

    spec = NetSpec(
        num_frames=cfg.num_frames,
        num_cepstral=cfg.num_cepstral,
        channels=tuple(settings.channels),
        kernel_size=settings.kernel_size,
        num_labels=len(labels),
        dropout=settings.dropout,
    )
    net = build_torch_net(spec)
    counts = np.bincount(train_w.label, minlength=len(labels)).astype(np.float64)
    class_weight = torch.tensor(
        counts.sum() / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
    opt = torch.optim.Adam(
        net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, settings.epochs))

    test_x = torch.from_numpy(_features(mfcc, test_w.audio))
    test_y = torch.from_numpy(test_w.label)
    history = []
    bar = tqdm(range(settings.epochs), desc="training", unit="epoch")
    for epoch in bar:
        x = torch.from_numpy(_features(mfcc, _augmented(train_w, aug, keyword_idx, rng)))
        y = torch.from_numpy(train_w.label)
        net.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            logits = net(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
            total += len(idx)
        sched.step()
        row = {"epoch": epoch + 1, "loss": loss_sum / total, "accuracy": correct / total}
        row.update(_evaluate(net, loss_fn, test_x, test_y))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val_acc=f"{row.get('val_accuracy', 0):.3f}")

    net.eval()
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    with torch.no_grad():
        torch_probs = torch.softmax(net(test_x), 1).numpy() if len(test_x) else np.zeros((0,))
    numpy_probs = forward(spec, weights, test_x.numpy()) if len(test_x) else np.zeros((0,))
    name = settings.name or settings.keyword
    model = KeywordModel(
        labels=labels,
        mfcc=cfg,
        net=spec,
        weights=weights,
        name=name,
        keyword=settings.keyword,
    )
    report = {
        "name": name,
        "keyword": settings.keyword,
        "labels": labels,
        "dataset": str(dataset.root),
        "samples": dataset.counts(),
        "windows": {"train": len(train_w), "test": len(test_w)},
        "test_groups": sorted(set(test_w.group)),
        "settings": _jsonable(asdict(settings)),
        "parameters": int(sum(v.size for v in weights.values())),
        "history": history,
        "train_seconds": round(time.time() - started, 1),
    }
    if len(test_w):
        report.update(
            _test_report(labels, keyword_idx, numpy_probs, test_w),
            numpy_vs_torch_max_abs_diff=float(np.max(np.abs(numpy_probs - torch_probs))),
        )
    if len(test_w):
        report["streaming"] = _streaming_report(dataset, model, settings.keyword)
    model.info = {k: report[k] for k in ("samples", "windows", "parameters") if k in report} | {
        "test_accuracy": report.get("test_accuracy")
    }
    model.save(out_dir / "model.npz")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    write_report(report, out_dir / "report.png")
    return report


def _evaluate(net, loss_fn, x, y) -> dict:
    import torch

    if len(y) == 0:
        return {}
    net.eval()
    with torch.no_grad():
        logits = net(x)
        return {
            "val_loss": float(loss_fn(logits, y)),
            "val_accuracy": float((logits.argmax(1) == y).float().mean()),
        }


def _test_report(labels: list[str], kw: int, probs: np.ndarray, test: Windows) -> dict:
    pred = probs.argmax(1)
    n = len(labels)
    confusion = np.zeros((n, n), dtype=int)
    for t, p in zip(test.label, pred, strict=True):
        confusion[t, p] += 1
    is_kw = test.label == kw
    table = threshold_table(probs[is_kw, kw], probs[~is_kw, kw])
    missed = sorted(
        {
            f"{test.group[i]}: {Path(test.source[i]).name}"
            for i in np.flatnonzero(is_kw)
            if probs[i, kw] < 0.85
        }
    )
    false_alarms = sorted(
        {Path(test.source[i]).name for i in np.flatnonzero(~is_kw) if probs[i, kw] >= 0.85}
    )
    return {
        "test_accuracy": float((pred == test.label).mean()),
        "confusion_matrix": {"labels": labels, "rows_true_cols_predicted": confusion.tolist()},
        "threshold_table": table,
        "missed_at_0.85": missed[:50],
        "false_alarms_at_0.85": false_alarms[:50],
    }


def _streaming_report(dataset: Dataset, model: KeywordModel, keyword: str) -> dict:
    """Held-out clips as the edge app hears them: in a quiet stream, a window every 250 ms;
    a clip is detected (or a false alarm) when any window reaches the threshold."""
    from kwtrain.evaluate import InProcessScorer, score_clips, summarize

    scorer = InProcessScorer(model, keyword)
    clips = [(s.path, "keyword" if s.label == keyword else s.label) for s in dataset.of("test")]
    return summarize(score_clips(scorer, clips, scorer.window, model.mfcc.sample_rate))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
