"""The API against its own OpenAPI description: property-based requests generated from
it by schemathesis, every check on, with credentials and without, on a real server. A
small budget here (`RECSVC_FUZZ_EXAMPLES`, default 8 a route); the longer run is in
SECURITY.md."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.test_service import Service, start_service, train_planted

EXAMPLES = int(os.environ.get("RECSVC_FUZZ_EXAMPLES", "8"))
CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make dev` installs it)
SCREENSHOTS = Path(os.environ.get("RECSVC_SCREENSHOTS", tempfile.gettempdir()))
OPERATOR = {"X-API-Key": "s3cret"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Service:
    tmp = tmp_path_factory.mktemp("fuzz")
    store, _ = train_planted(tmp)
    # Locked (a client key is set), and failed attempts never limited: the fuzzer
    # sends many wrong keys on purpose, and each must be answered as such.
    svc = start_service(tmp, store, client_key="client-key-0123456789",
                        auth_failures_per_minute=10**9)
    yield svc
    svc.http.close()
    svc.server.stop()


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def check_case(case, headers: dict[str, str]) -> None:  # noqa: ANN001
    """Every check on one generated request; for `POST /events`, see below."""
    if case.operation.label != "POST /events":
        case.call_and_validate(headers=headers)
        return
    # Events the schema admits may still break the rules the trainer applies, which no
    # schema can say (a timestamp ahead of the clock, a rating without a value or off
    # the scale, an absurd quantity; an item for every event but a search, a query for a
    # search only): those, and only those, are refused with a 422 naming the event's
    # timestamp, value, item_id or query.
    response = case.call_and_validate(headers=headers,
                                      excluded_checks=[positive_data_acceptance])
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and response.status_code == 422:
        problems = response.json()["detail"]
        assert all(p["loc"][-1] in ("timestamp", "value", "item_id", "query")
                   for p in problems), problems


def fuzzer(operation, headers: dict[str, str]):  # noqa: ANN001, ANN201
    @FUZZ
    @given(case=operation.as_strategy())
    def run(case) -> None:  # noqa: ANN001
        check_case(case, headers)

    return run


def fuzz(service: Service, headers: dict[str, str]) -> list[str]:
    """Every operation of the description, fuzzed; the failures found, one line each.
    (schemathesis' strategies driven by hypothesis directly: its pytest plugin does not
    run under pytest 9.)"""
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            fuzzer(operation, headers)()
        except Exception as exc:  # noqa: BLE001 - each operation's findings, reported together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    return failures


def test_with_the_operators_key_every_answer_keeps_to_the_description(fuzzed) -> None:
    failures = fuzz(fuzzed, OPERATOR)
    assert not failures, "\n\n".join(failures)


def test_without_credentials_every_answer_keeps_to_the_description(fuzzed) -> None:
    failures = fuzz(fuzzed, {})
    assert not failures, "\n\n".join(failures)


def test_the_description_names_every_status_a_route_answers(fuzzed: Service) -> None:
    spec = fuzzed.http.get("/openapi.json").json()
    events = spec["paths"]["/events"]["post"]["responses"]
    assert set(events) == {"200", "401", "403", "413", "422", "429", "503"}
    assert events["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ValidationProblems")
    assert events["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorMessage")
    assert "Retry-After" in events["429"]["headers"]
    assert set(spec["paths"]["/recommend"]["get"]["responses"]) >= {"200", "401", "422",
                                                                    "503"}
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_a_422_always_lists_its_problems(fuzzed: Service) -> None:
    client = {"X-Client-Key": "client-key-0123456789"}
    for response in (
            fuzzed.http.get("/recommend", params={"n": 0}, headers=client),
            fuzzed.http.post("/events", json=[], headers=client),
            fuzzed.http.post("/events", json={"user_id": "u", "item_id": "a1",
                                              "event_type": "teleport"}, headers=client)):
        assert response.status_code == 422
        problems = response.json()["detail"]
        assert isinstance(problems, list) and problems
        assert all({"loc", "msg", "type"} <= set(p) for p in problems), problems
    badly = fuzzed.http.get("/recommend", params={"n": 0}, headers=client)
    assert badly.json()["detail"][0]["loc"] == ["query", "n"]


def test_docs_pages_load_nothing_from_elsewhere(fuzzed: Service, tmp_path: Path) -> None:
    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
                         ("/redoc", ("redoc.standalone.js",))):
        html = fuzzed.http.get(page).text
        assert "http://" not in html and "https://" not in html, html
        for asset in assets:
            assert f"/docs-assets/{asset}" in html
            response = fuzzed.http.get(f"/docs-assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 100_000


def test_docs_render_in_a_real_browser_offline(fuzzed: Service, tmp_path: Path) -> None:
    """Headless Chromium (Debian's package), every request outside the service refused:
    Swagger UI and ReDoc still draw the API, from the service's own assets."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def only_the_service(route) -> None:  # noqa: ANN001
                if route.request.url.startswith(fuzzed.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_service)
            page.goto(f"{fuzzed.url}/docs")
            page.wait_for_selector("text=/recommend", timeout=60_000)
            page.wait_for_selector("text=DELETE", timeout=60_000)
            page.screenshot(path=str(SCREENSHOTS / "docs.png"))
            page.goto(f"{fuzzed.url}/redoc")
            page.wait_for_selector("text=Forget the shopper", timeout=60_000)
            page.screenshot(path=str(SCREENSHOTS / "redoc.png"))
        finally:
            browser.close()
    # ReDoc's own badge (an <img> that hides itself when it does not load) is the only
    # thing either page asks of the outside: offline, both pages draw the whole API.
    assert set(outside) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, outside
