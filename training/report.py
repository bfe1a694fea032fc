"""Evaluation outputs: a table on screen, JSON for machines, Markdown and PNG plots for
analysts. Plots are drawn with matplotlib's file-only backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from training.evaluate import Evaluation, GateResult

TABLE_METRICS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate",
                 "coverage", "diversity", "novelty", "popular_share")
GROUP_METRICS = ("precision", "recall", "ndcg", "hit_rate")


def main_k(evaluation: Evaluation) -> int:
    """The k shown in tables: 10 when evaluated, else the largest."""
    return 10 if 10 in evaluation.ks else evaluation.ks[-1]


def as_json(evaluation: Evaluation, gate: GateResult | None = None,
            **context: Any) -> dict[str, Any]:
    """The blend's metrics as plain top-level numbers (`precision@10`, ...), then every
    algorithm's, the groups', the test set's description and the gate, if any."""
    out: dict[str, Any] = {**{k: round(v, 6) for k, v in evaluation.metrics.items()},
                           "model_version": evaluation.model_version, "k": evaluation.ks,
                           **context,
                           "test": evaluation.test,
                           "models": _rounded(evaluation.models),
                           "groups": _rounded(evaluation.groups)}
    if gate is not None:
        out["gate"] = gate.summary()
    return out


def _rounded(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {name: {k: round(v, 6) for k, v in row.items()} for name, row in table.items()}


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _rows(table: dict[str, dict[str, float]], metrics: tuple[str, ...], k: int,
          first: str) -> tuple[list[str], list[list[str]]]:
    present = [m for m in metrics if any(f"{m}@{k}" in row for row in table.values())]
    header = [first, *([] if first == "model" else ["users"]), *[f"{m}@{k}" for m in present]]
    rows = []
    for name, row in table.items():
        cells = [name] + ([] if first == "model" else [str(int(row["users"]))])
        rows.append(cells + [_cell(row.get(f"{m}@{k}")) for m in present])
    return header, rows


def format_table(evaluation: Evaluation) -> str:
    """Fixed-width tables for a terminal: algorithms side by side, then groups."""
    k = main_k(evaluation)
    parts = []
    for title, table, metrics, first in (
        ("models", evaluation.models, TABLE_METRICS, "model"),
        ("groups (blend)", evaluation.groups, GROUP_METRICS, "group"),
    ):
        if not table:
            continue
        header, rows = _rows(table, metrics, k, first)
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
        lines = [f"{title}:",
                 "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                           for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def format_gate(result: GateResult) -> str:
    verdict = "passed" if result.passed else "FAILED"
    return (f"gate {verdict}: {result.metric} candidate {result.candidate:.4f} vs baseline "
            f"{result.baseline:.4f} (tolerance {result.tolerance:.1%})")


def markdown(evaluation: Evaluation, gate: GateResult | None, plots: list[str],
             title: str) -> str:
    k = main_k(evaluation)
    lines = [f"# {title}", "", f"Model `{evaluation.model_version}`; k = "
             f"{', '.join(map(str, evaluation.ks))}. Metric definitions: docs/metrics.md.", ""]
    test = evaluation.test
    lines += [f"Test: {test.get('users', 0):,} users, {test.get('relevant_pairs', 0):,} "
              f"relevant (user, item) pairs, {test.get('relevant_items_unknown_to_model', 0):,}"
              " of them on items the model has never seen.", ""]
    for heading, table, metrics, first in (
        ("Algorithms side by side", evaluation.models, TABLE_METRICS, "model"),
        ("Groups (the blend)", evaluation.groups, GROUP_METRICS, "group"),
    ):
        if not table:
            continue
        header, rows = _rows(table, metrics, k, first)
        lines += [f"## {heading} (k = {k})", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    if len(evaluation.ks) > 1:
        lines += ["## The blend at every k", "",
                  "| k | precision | recall | ndcg | map | coverage |", "|---|---|---|---|---|---|"]
        m = evaluation.metrics
        for kk in evaluation.ks:
            lines.append(f"| {kk} | " + " | ".join(
                _cell(m.get(f"{name}@{kk}"))
                for name in ("precision", "recall", "ndcg", "map", "coverage")) + " |")
        lines.append("")
    if gate is not None:
        lines += ["## Gate", "", format_gate(gate), ""]
    if "light_users_max_items" in test:
        lines += [f"Light users had at most {test['light_users_max_items']:g} items in "
                  f"training, heavy users more than {test['heavy_users_above_items']:g}.", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def plot(evaluation: Evaluation, directory: Path) -> list[Path]:
    """Precision and recall against k per algorithm; accuracy against coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ks = evaluation.ks
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, row in evaluation.models.items():
        style = {"linewidth": 2.5, "color": "black"} if name == "blend" else {"alpha": 0.8}
        for ax, metric in zip(axes, ("precision", "recall"), strict=True):
            ax.plot(ks, [row[f"{metric}@{k}"] for k in ks], marker="o", label=name, **style)
    for ax, metric in zip(axes, ("precision", "recall"), strict=True):
        ax.set_xlabel("k")
        ax.set_ylabel(f"{metric}@k")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Precision and recall at k — model {evaluation.model_version}")
    fig.tight_layout()
    path = directory / "precision_recall_at_k.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    k = main_k(evaluation)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, row in evaluation.models.items():
        x, y = row.get(f"coverage@{k}", 0.0), row[f"ndcg@{k}"]
        ax.scatter([x], [y], s=80 if name == "blend" else 40,
                   color="black" if name == "blend" else None)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel(f"catalog coverage@{k}")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("Accuracy against coverage")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = directory / "accuracy_vs_coverage.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def write_report(evaluation: Evaluation, directory: Path, gate: GateResult | None = None,
                 title: str = "Evaluation", **context: Any) -> list[Path]:
    """JSON, Markdown and PNGs in `directory`; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = plot(evaluation, directory)
    json_path = directory / "evaluation.json"
    json_path.write_bytes(orjson.dumps(as_json(evaluation, gate, **context),
                                       option=orjson.OPT_INDENT_2))
    md_path = directory / "evaluation.md"
    md_path.write_text(markdown(evaluation, gate, [p.name for p in plots], title),
                       encoding="utf-8")
    return [json_path, md_path, *plots]
