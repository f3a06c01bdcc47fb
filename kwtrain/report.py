"""Training and evaluation reports: a threshold table, and a PNG with curves and confusions.

The threshold table answers the question a user of the edge app has: at `--threshold t`, what
share of keywords is detected, and what share of other sounds fires by mistake.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)


def threshold_table(
    positive_scores: np.ndarray,
    negative_scores: np.ndarray,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> list[dict]:
    """Detection rate on positives and false-alarm rate on negatives at each threshold."""
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    rows = []
    for t in thresholds:
        detected = int((pos >= t).sum())
        false_alarms = int((neg >= t).sum())
        rows.append(
            {
                "threshold": t,
                "detected": detected,
                "positives": int(pos.size),
                "detection_rate": detected / pos.size if pos.size else None,
                "false_alarms": false_alarms,
                "negatives": int(neg.size),
                "false_alarm_rate": false_alarms / neg.size if neg.size else None,
            }
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| threshold | detected | false alarms |", "|---|---|---|"]
    for r in rows:
        det = f"{r['detected']}/{r['positives']} ({100 * (r['detection_rate'] or 0):.1f} %)"
        fa = f"{r['false_alarms']}/{r['negatives']} ({100 * (r['false_alarm_rate'] or 0):.1f} %)"
        lines.append(f"| {r['threshold']:.2f} | {det} | {fa} |")
    return "\n".join(lines)


def write_report(report: dict, path: Path) -> Path:
    """Training curves, confusion matrix and detection/false alarms per threshold as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    hist = report.get("history", [])
    ax = axes[0]
    if hist:
        epochs = [h["epoch"] for h in hist]
        ax.plot(epochs, [h["loss"] for h in hist], label="train loss")
        if "val_loss" in hist[0]:
            ax.plot(epochs, [h["val_loss"] for h in hist], label="held-out loss")
        ax2 = ax.twinx()
        ax2.plot(epochs, [h["accuracy"] for h in hist], "g--", label="train acc")
        if "val_accuracy" in hist[0]:
            ax2.plot(epochs, [h["val_accuracy"] for h in hist], "r--", label="held-out acc")
        ax2.set_ylim(0, 1.01)
        ax2.legend(loc="center right", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_title("training")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[1]
    cm = report.get("confusion_matrix")
    if cm:
        labels = cm["labels"]
        mat = np.asarray(cm["rows_true_cols_predicted"])
        ax.imshow(mat, cmap="Blues")
        for i in range(len(labels)):
            for j in range(len(labels)):
                color = "white" if mat[i, j] > mat.max() / 2 else "black"
                ax.text(j, i, str(mat[i, j]), ha="center", va="center", color=color)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        acc = report.get("test_accuracy")
        ax.set_title(f"held-out confusion (accuracy {acc:.1%})" if acc is not None else "")

    ax = axes[2]
    table = report.get("threshold_table")
    if table:
        th = [r["threshold"] for r in table]
        ax.plot(th, [r["detection_rate"] or 0 for r in table], "o-", label="detection rate")
        ax.plot(th, [r["false_alarm_rate"] or 0 for r in table], "s-", label="false-alarm rate")
        stream = report.get("streaming", {}).get("all_negatives")
        if stream:
            ax.plot(th, [r["detection_rate"] or 0 for r in stream], "o--", color="C0", alpha=0.6,
                    label="detection, streaming (250 ms hop, per clip)")  # fmt: skip
            ax.plot(th, [r["false_alarm_rate"] or 0 for r in stream], "s--", color="C1",
                    alpha=0.6, label="false alarms, streaming (per clip)")  # fmt: skip
        ax.axvline(0.85, color="grey", ls=":", label="default threshold 0.85")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"threshold on '{report.get('keyword', '')}' score")
        ax.set_title("held-out detection vs false alarms")
        ax.legend(fontsize=8)
    fig.suptitle(f"keyword model '{report.get('name', '')}'")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
