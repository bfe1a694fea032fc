"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): signed in
with the operator key, each page loaded against a running service with traffic sent
through it; the figures shown equal `recsvc report`'s JSON; screenshots saved."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import httpx
import pytest

from recsvc.analytics.render import KPI_COLUMNS
from recsvc.cli import main
from tests.test_report import send_traffic
from tests.test_service import start_service, train_planted

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("RECSVC_SCREENSHOTS", tempfile.gettempdir()))


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    store, _ = train_planted(tmp)
    rules = tmp / "rules.toml"
    rules.write_text("[variants.control]\nshare = 0.5\n[variants.better]\nshare = 0.5\n")
    svc = start_service(tmp, store, rules_file=rules)
    send_traffic(svc)
    out = svc.state_dir / "reports" / "today"
    assert main(["report", "--model-root", str(svc.root), "--state-dir", str(svc.state_dir),
                 "--rules-file", str(rules), "--days", "1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    yield svc, report
    svc.http.close()
    svc.server.stop()


def expected(report: dict) -> dict[str, str]:
    """What each data-kpi cell of the overview should read, formatted as the page does."""
    out = {}
    groups = {"overall": {"all": report["overall"]},
              **{f"by_{g}": report[f"by_{g}"] for g in ("variant", "surface", "segment",
                                                       "lifecycle")}}
    for where, rows in groups.items():
        for name, kpis in rows.items():
            for key, _, fmt in KPI_COLUMNS:
                value = kpis.get(key)
                out[f"{where}.{name}.{key}"] = "–" if value is None else fmt.format(value)
    for c in report["ab"]["comparisons"]:
        out[f"ab.{c['variant']}.{c['metric']}.verdict"] = c["verdict"]
        out[f"ab.{c['variant']}.{c['metric']}.diff"] = f"{c['diff']:+.4g}"
    return out


def test_pages_need_the_operator(shop) -> None:  # noqa: ANN001
    svc, _ = shop
    with httpx.Client(base_url=svc.url) as http:
        assert http.get("/dashboard").status_code == 303
        assert http.get("/dashboard").headers["location"] == "/dashboard/login"
        wrong = http.post("/dashboard/login", content="key=nope",
                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert wrong.status_code == 401
        assert http.get("/dashboard/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert "/dashboard" not in json.dumps(http.get("/openapi.json").json()["paths"])


def test_the_dashboard_shows_what_the_report_says(shop) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    svc, report = shop
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915})  # a phone
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith(svc.url)
                       else (outside.append(route.request.url), route.abort()))
            page.goto(f"{svc.url}/dashboard")
            assert page.url.endswith("/dashboard/login")
            page.fill("input[name=key]", "s3cret")
            page.click("button[type=submit]")
            page.wait_for_url(f"{svc.url}/dashboard")
            page.wait_for_selector("#ctr canvas", timeout=60_000)  # uPlot drew the chart
            shown = {el.get_attribute("data-kpi"): el.inner_text().strip()
                     for el in page.query_selector_all("[data-kpi]")}
            want = expected(report)
            assert {k: shown.get(k) for k in want} == want
            assert "ab.srm" in shown
            page.screenshot(path=str(SCREENSHOTS / "dashboard-overview.png"), full_page=True)

            user = "au0"
            page.goto(f"{svc.url}/dashboard/shopper?user_id={user}")
            variant = svc.get("/recommend", user_id=user, n=2).json()["variant"]
            assert page.inner_text("[data-kpi='shopper.variant']") == variant
            assert page.query_selector_all("table")[0].inner_text().count("\n") >= 10
            page.screenshot(path=str(SCREENSHOTS / "dashboard-shopper.png"), full_page=True)

            lines = [json.loads(x) for f in (svc.state_dir / "impressions").glob("*.jsonl")
                     for x in f.read_text().splitlines()]
            item = lines[0]["items"][0]
            page.goto(f"{svc.url}/dashboard/product?item_id={item}")
            count = sum(item in line["items"] for line in lines)
            assert page.inner_text("[data-kpi='product.impressions']") == f"{count:,}"
            page.screenshot(path=str(SCREENSHOTS / "dashboard-product.png"), full_page=True)

            page.goto(f"{svc.url}/dashboard/models")
            serving = svc.get("/model").json()["version"]
            assert page.inner_text("[data-kpi='models.serving']") == serving
            page.screenshot(path=str(SCREENSHOTS / "dashboard-models.png"), full_page=True)
        finally:
            browser.close()
    assert outside == []  # nothing from a CDN: it works offline
