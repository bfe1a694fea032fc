"""A report (`analytics.kpis.build`) as Markdown for people, and as PNG plots of the
daily series with their 95% bands (when matplotlib, of the training extra, is there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

KPI_COLUMNS = (("impressions", "impressions", "{:,}"), ("shoppers", "shoppers", "{:,}"),
               ("ctr", "CTR", "{:.2%}"), ("add_to_cart_rate", "add to cart", "{:.2%}"),
               ("conversion", "conversion", "{:.2%}"),
               ("attributed_revenue", "attributed revenue", "{:,.2f}"),
               ("revenue_share", "share of revenue", "{:.1%}"),
               ("coverage", "catalog coverage", "{:.1%}"))


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _table(rows: dict[str, dict[str, Any]], label: str) -> list[str]:
    head = f"| {label} | " + " | ".join(title for _, title, _ in KPI_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(KPI_COLUMNS) + 1)]
    for name, kpis in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(kpis.get(key), fmt)
                                                 for key, _, fmt in KPI_COLUMNS) + " |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    period = report["period"]
    overall = report["overall"]
    lines = [f"# What recommendations earned, {period['start'][:10]} to {period['end'][:10]}",
             "", f"Events attributed to a list shown: by its `recommendation_id`, or else "
             f"the last showing of the item to the shopper within "
             f"{report['attribution_window_hours']:g} hours.", "",
             *_table({"all": overall}, "overall"), "",
             f"Orders: {overall['orders']:,}; average order value with a recommended item "
             f"{_cell(overall['aov_with_recommended'], '{:,.2f}')}, without "
             f"{_cell(overall['aov_without_recommended'], '{:,.2f}')}; repeat-purchase rate "
             f"{_cell(overall['repeat_purchase_rate'], '{:.1%}')}; revenue "
             f"{overall['revenue']:,.2f}.", ""]
    for group in ("variant", "surface", "segment", "lifecycle"):
        lines += [f"## By {group}", "", *_table(report[f"by_{group}"], group), ""]
    explored = report.get("exploration")
    if explored and explored["lists"]:
        lines += ["## Exploring new arrivals", "",
                  f"{explored['lists']:,} lists gave their last place to a new arrival "
                  f"({explored['items']:,} items): CTR of that place "
                  f"{_cell(explored['ctr'], '{:.1%}')}, against "
                  f"{_cell(explored['last_place_ctr_otherwise'], '{:.1%}')} for the last "
                  "place of the other lists.", ""]
    ab = report["ab"]
    lines += ["## A/B", ""]
    if not ab["comparisons"]:
        lines += [ab.get("note", "no comparison"), ""]
    else:
        srm = ab["sample_ratio"]
        mismatch = (f"**yes** (p = {srm['p_value']:.2g}): stop and find why"
                    if srm["mismatch"] else f"no (p = {srm['p_value']:.2g})")
        lines += [f"Shoppers per variant: {ab['shoppers']} (configured shares "
                  f"{srm['expected_shares']}); sample ratio mismatch: {mismatch}.",
                  "", "| variant vs control | metric | control | variant | difference (95% CI) "
                  "| p | p (Holm) | detectable now | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in ab["comparisons"]:
            lines.append(
                f"| {c['variant']} vs {c['control']} | {c['metric']} | {c['a']:.4g} | "
                f"{c['b']:.4g} | {c['diff']:+.4g} ({c['ci_low']:+.4g}, {c['ci_high']:+.4g}) | "
                f"{c['p_value']:.3g} | {c['p_adjusted']:.3g} | "
                f"{_cell(c['mde'], '{:.3g}')} | **{c['verdict']}** |")
        lines.append("")
    return "\n".join(lines)


def plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Daily click-through and conversion per variant with 95% bands, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric in ("ctr", "conversion"):
        fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
        for variant in sorted({d["variant"] for d in report["daily"]}):
            days = [d for d in report["daily"] if d["variant"] == variant
                    and d[metric] is not None]
            if not days:
                continue
            x = [d["day"] for d in days]
            y = [d[metric] for d in days]
            low = [d[f"{metric}_band"][0] for d in days]
            high = [d[f"{metric}_band"][1] for d in days]
            line = ax.errorbar(x, y, yerr=[[v - lo for v, lo in zip(y, low, strict=True)],
                                           [hi - v for v, hi in zip(y, high, strict=True)]],
                               marker="o", capsize=4, label=variant)
            ax.fill_between(x, low, high, alpha=0.15, color=line[0].get_color())
        ax.set_title(f"{'Click-through' if metric == 'ctr' else 'Conversion'} per list "
                     "shown, by day (95% bands)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.legend()
        fig.autofmt_xdate()
        fig.tight_layout()
        path = out / f"daily_{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
