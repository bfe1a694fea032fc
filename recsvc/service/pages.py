"""The dashboard's pages: plain server-rendered HTML, readable on a phone, with one small
chart library served by the service itself (uPlot, in `static/`: no CDN, works offline).
Every figure shown carries `data-kpi` naming where it comes from in the report, so a
test can compare the page with `recsvc report`'s JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

import orjson

from recsvc.analytics.render import KPI_COLUMNS

STATIC = "/dashboard/static"
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em}
header a{color:#cfe3ff;text-decoration:none}header b{margin-right:auto}
main{padding:1em;max-width:1100px;margin:auto}
section{background:#fff;border-radius:8px;padding:.8em 1em;margin:0 0 1em;
box-shadow:0 1px 2px #0001;overflow-x:auto}
table{border-collapse:collapse;width:100%}td,th{padding:.3em .6em;text-align:right;
border-bottom:1px solid #eee;white-space:nowrap}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left;white-space:normal}
.win{color:#17803d;font-weight:600}.stop{color:#b42318;font-weight:600}.muted{color:#667}
form{display:flex;gap:.5em;flex-wrap:wrap}input{font:inherit;padding:.3em .5em}
button{font:inherit;padding:.3em .8em}
"""


def layout(title: str, body: str, charts: bool = False) -> str:
    scripts = (f'<link rel="stylesheet" href="{STATIC}/uPlot.min.css">'
               f'<script src="{STATIC}/uPlot.iife.min.js"></script>') if charts else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)} · recsvc</title><style>{STYLE}</style>{scripts}</head>
<body><header><b>recsvc</b><a href="/dashboard">KPIs &amp; A/B</a>
<a href="/dashboard/shopper">Shopper</a><a href="/dashboard/product">Product</a>
<a href="/dashboard/models">Models</a></header><main><h1>{escape(title)}</h1>
{body}</main></body></html>"""


def _fmt(value: Any, fmt: str) -> str:
    """A figure as shown (escaped where it is put in the page)."""
    return "–" if value is None else fmt.format(value)


def td(text: Any, kpi: str | None = None, cls: str | None = None) -> str:
    """A cell (text escaped), naming the report figure it shows (`kpi`)."""
    attrs = (f' data-kpi="{escape(kpi)}"' if kpi else "") + (f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{escape(str(text))}</td>"


def span(text: str, kpi: str) -> str:
    return f'<span data-kpi="{escape(kpi)}">{escape(text)}</span>'


def rows(*cells: list[str]) -> str:
    return "".join("<tr>" + "".join(row) + "</tr>" for row in cells)


def header(*titles: str) -> str:
    return "<tr>" + "".join(f"<th>{escape(t)}</th>" for t in titles) + "</tr>"


def _when(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)


def _reasons(item: dict[str, Any]) -> str:
    return ", ".join(r["code"] + (" " + r["item_id"] if "item_id" in r else "")
                     for r in item["reasons"])


def login(error: str | None = None) -> str:
    note = f'<p class="stop">{escape(error)}</p>' if error else ""
    return layout("Sign in", f"""<section>{note}<form method="post" action="/dashboard/login">
<input type="password" name="key" placeholder="operator key" autocomplete="current-password"
 aria-label="operator key" required><button type="submit">Sign in</button></form></section>""")


def _kpi_table(groups: dict[str, dict[str, Any]], label: str, where: str) -> str:
    body = [[td(name), *(td(_fmt(kpis.get(key), fmt), f"{where}.{name}.{key}")
                         for key, _, fmt in KPI_COLUMNS)] for name, kpis in groups.items()]
    head = header(label, *(title for _, title, _ in KPI_COLUMNS))
    return f"<table>{head}{rows(*body)}</table>"


def overview(report: dict[str, Any] | None, source: str | None, serving: str | None) -> str:
    if report is None:
        return layout("KPIs & A/B", """<section><p>No report yet. Run
<code>recsvc report --model-root ...</code> (the nightly job can: docs/analytics.md).</p>
</section>""")
    o = report["overall"]
    period = report["period"]
    sections = [f"""<section><p class="muted">{escape(period['start'][:10])} to
{escape(period['end'][:10])} · model served now: {escape(serving or "none")} ·
from {escape(source or "")}</p>{_kpi_table({"all": o}, "overall", "overall")}
<p>Orders {span(_fmt(o.get("orders"), "{:,}"), "overall.all.orders")} ·
average order with a recommended item {span(_fmt(o.get("aov_with_recommended"), "{:,.2f}"),
                                            "overall.all.aov_with_recommended")},
without {span(_fmt(o.get("aov_without_recommended"), "{:,.2f}"),
              "overall.all.aov_without_recommended")}
· repeat purchases {span(_fmt(o.get("repeat_purchase_rate"), "{:.1%}"),
                         "overall.all.repeat_purchase_rate")}</p></section>"""]
    sections.append(_ab(report["ab"]))
    sections.append('<section><h2>Daily</h2><div id="ctr"></div><div id="conversion"></div>'
                    '</section>')
    for group in ("variant", "surface", "segment", "lifecycle"):
        sections.append(f"<section><h2>By {group}</h2>"
                        f"{_kpi_table(report[f'by_{group}'], group, f'by_{group}')}</section>")
    daily = orjson.dumps(report["daily"]).decode().replace("</", "<\\/")
    sections.append(f"<script>const daily = {daily};\n{CHART_SCRIPT}</script>")
    return layout("KPIs & A/B", "".join(sections), charts=True)


def _ab(ab: dict[str, Any]) -> str:
    if not ab["comparisons"]:
        return f"<section><h2>A/B</h2><p>{escape(ab.get('note', 'no comparison'))}</p></section>"
    srm = ab["sample_ratio"]
    if srm["mismatch"]:
        alarm = (f'<p class="stop" data-kpi="ab.srm">Sample ratio mismatch (p = '
                 f'{srm["p_value"]:.2g}): stop the test and find why.</p>')
    else:
        alarm = (f'<p class="muted" data-kpi="ab.srm">Shoppers per variant '
                 f'{escape(str(ab["shoppers"]))} match the configured shares '
                 f'(p = {srm["p_value"]:.2g}).</p>')

    def verdict_class(verdict: str) -> str:
        return "win" if verdict.endswith("wins") else (
            "stop" if verdict.startswith("stop") else "muted")

    body = [[td(f'{c["variant"]} vs {c["control"]}'), td(c["metric"]), td(f'{c["a"]:.4g}'),
             td(f'{c["b"]:.4g}'),
             td(f'{c["diff"]:+.4g}', f'ab.{c["variant"]}.{c["metric"]}.diff'),
             td(f'{c["ci_low"]:+.4g} … {c["ci_high"]:+.4g}'), td(f'{c["p_adjusted"]:.3g}'),
             td(_fmt(c["mde"], "{:.3g}")),
             td(c["verdict"], f'ab.{c["variant"]}.{c["metric"]}.verdict',
                verdict_class(c["verdict"]))]
            for c in ab["comparisons"]]
    head = header("test", "metric", "control", "variant", "difference", "95% interval",
                  "p (Holm)", "detectable now", "verdict")
    return f"<section><h2>A/B</h2>{alarm}<table>{head}{rows(*body)}</table></section>"


CHART_SCRIPT = """
for (const metric of ["ctr", "conversion"]) {
  const variants = [...new Set(daily.map(d => d.variant))];
  const days = [...new Set(daily.map(d => d.day))];
  const x = days.map(d => Date.parse(d) / 1000);
  const series = [{}], data = [x];
  const colours = ["#2563eb", "#d97706", "#16a34a", "#9333ea"];
  variants.forEach((v, i) => {
    const rows = days.map(day => daily.find(d => d.day === day && d.variant === v));
    data.push(rows.map(r => r ? r[metric] : null));
    series.push({label: v, stroke: colours[i % colours.length], width: 2,
                 value: (u, y) => y == null ? "–" : (100 * y).toFixed(2) + "%"});
  });
  const width = Math.min(document.querySelector("main").clientWidth - 40, 1000);
  new uPlot({title: (metric === "ctr" ? "Click-through" : "Conversion") +
             " per list, by day", width, height: 220, series,
             scales: {x: {time: true, range: [x[0] - 43200, x[x.length - 1] + 43200]}},
             axes: [{}, {size: 60,
                         values: (u, v) => v.map(y => (100 * y).toFixed(1) + "%")}]},
            data, document.getElementById(metric));
}
"""


def shopper(view: dict[str, Any] | None, user_id: str = "") -> str:
    form = (f'<section><form method="get"><input name="user_id" value="{escape(user_id)}" '
            'placeholder="user id" aria-label="user id"><button>Look up</button></form></section>')
    if view is None:
        return layout("Shopper", form)
    consent = view["consent"]
    items = rows(*([td(i["item_id"]), td(f'{i["score"]:.4g}'), td(_reasons(i), cls="text")]
                   for i in view["items"]))
    events = rows(*([td(e.get("event_type")), td(e.get("item_id")),
                     td(_when(e.get("timestamp")))] for e in view["events"]))
    said = ", ".join(f"{purpose} {'–' if given is None else 'yes' if given else 'no'}"
                     for purpose, given in consent["consent"].items())
    body = (f"{form}<section><p>Known to the model: <b>{'yes' if view['known'] else 'no'}"
            f"</b> · variant <b data-kpi='shopper.variant'>{escape(view['variant'])}</b> · "
            f"consent: {escape(said)} ({escape(consent['source'])}) · personal lists: "
            f"<b>{'yes' if view['personal'] else 'no'}</b> · fresh events waiting for the "
            f"next training: {len(view['fresh'])}</p></section>"
            f"<section><h2>Their list</h2><table>{header('item', 'score', 'reasons')}{items}"
            f"</table></section><section><h2>Recent events</h2><table>"
            f"{header('event', 'item', 'time')}{events}</table></section>")
    return layout(f"Shopper {view['user_id']}", body)


def product(view: dict[str, Any] | None, item_id: str = "") -> str:
    form = (f'<section><form method="get"><input name="item_id" value="{escape(item_id)}" '
            'placeholder="item id" aria-label="item id"><button>Look up</button></form></section>')
    if view is None:
        return layout("Product", form)
    if not view["known"]:
        return layout("Product", form + f"<section><p>{escape(item_id)} is not in the model's "
                      "catalog.</p></section>")
    related = rows(*([td(i["item_id"]), td(f'{i["score"]:.4g}'), td(_reasons(i), cls="text")]
                     for i in view["related"]))
    surfaces = rows(*([td(where), td(f"{n:,}")] for where, n in view["by_surface"].items()))
    body = (f"{form}<section><p>{escape(str(view['category']))} · price {view['price']:.2f} · "
            f"{'live' if view['live'] else '<span class=stop>not live</span>'} · shown in "
            f"<b data-kpi='product.impressions'>{view['impressions']:,}</b> recent lists</p>"
            f"<table><tr><th>where</th><th>lists</th></tr>{surfaces}</table></section>"
            f"<section><h2>Related items</h2><table><tr><th>item</th><th>score</th>"
            f"<th>reasons</th></tr>{related}</table></section>")
    return layout(f"Product {view['item_id']}", body)


def models(view: dict[str, Any]) -> str:
    versions = rows(*(
        [td(v["version"] + (" ★" if v["current"] else "")), td(v.get("state")),
         td(str(v.get("created_at") or "")[:19]), td(_fmt(v.get("users"), "{:,}")),
         td(_fmt(v.get("items"), "{:,}")),
         td(_fmt((v.get("validation") or {}).get("ndcg@10"), "{:.4f}"))]
        for v in view["versions"]))
    runs = rows(*(
        [td(str(r.get("finished_at") or r.get("started_at") or "")[:19]),
         td(r.get("exit_code"), cls="muted" if r.get("exit_code") in (0, 3) else "stop"),
         td(str(r.get("decision") or "")[:120])] for r in view["runs"]))
    problem = (f'<p class="stop">{escape(view["problem"])}</p>' if view["problem"] else "")
    body = (f"<section>{problem}<p>Serving <b data-kpi='models.serving'>"
            f"{escape(str(view['serving']))}</b></p><table><tr><th>version</th><th>state</th>"
            f"<th>trained</th><th>users</th><th>items</th><th>NDCG@10</th></tr>{versions}</table>"
            f"</section><section><h2>Nightly job</h2><table><tr><th>finished</th><th>exit</th>"
            f"<th>decision</th></tr>{runs}</table></section>")
    return layout("Models", body)
