"""The web app over HTTP (no browser): security checks, JSON decisions, the category search, escaping."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from tagger.product import Columns
from tagger.review.app import Settings, create_app
from tagger.review.categories import CategoryIndex
from tagger.review.products import catalog_products
from tagger.review.store import ReviewStore
from tagger.taxonomy import Taxonomy
from tests.review.conftest import XSS_ID, ReviewFiles, Server

JSON = {"accept": "application/json"}


def _client(store: ReviewStore, files: ReviewFiles, token: str | None = None) -> tuple[TestClient, Settings]:
    store.load_products(catalog_products(files.catalog, Columns(), clean=False))
    settings = Settings(store, files.taxonomy, None, files.output.parent / "export", "ann", token=token)
    return TestClient(create_app(settings)), settings


def test_decisions_need_the_csrf_token_and_the_same_origin(store: ReviewStore, files: ReviewFiles) -> None:
    client, settings = _client(store, files)
    form = {"action": "accept", "version": "0"}
    assert client.post("/r/sku-001/decide", data=form, headers=JSON).status_code == 403
    bad = client.post("/r/sku-001/decide", data=form | {"csrf": "guess"}, headers=JSON)
    assert bad.status_code == 403
    elsewhere = {"origin": "http://evil.example"} | JSON
    assert client.post("/r/sku-001/decide", data=form | {"csrf": settings.csrf}, headers=elsewhere).status_code == 403
    assert store.events() == []
    ok = client.post("/r/sku-001/decide", data=form | {"csrf": settings.csrf}, headers=JSON)
    assert ok.status_code == 200
    assert ok.json()["tags"]["status"] == "accepted"
    assert ok.json()["next"] not in (None, "sku-001")


def test_a_token_guards_every_request(store: ReviewStore, files: ReviewFiles) -> None:
    client, _ = _client(store, files, token="s3cret")
    assert client.get("/queue?tab=a").status_code == 401
    assert client.get("/static/review.js").status_code == 401
    assert client.get("/api/categories?q=shirt").status_code == 401
    assert client.get("/queue?tab=a&token=wrong").status_code == 401
    assert client.get("/queue?tab=a&token=s3cret").status_code == 200  # sets the cookie the next requests carry
    assert client.get("/api/categories?q=shirt").status_code == 200
    other = TestClient(client.app)
    assert other.get("/queue?tab=a", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_conflicts_are_answered_409(store: ReviewStore, files: ReviewFiles) -> None:
    client, settings = _client(store, files)
    change = {"action": "set_value", "attribute": "color", "value": "Black", "new_value": "Navy", "version": "0"}
    assert client.post("/r/sku-001/decide", data=change | {"csrf": settings.csrf}, headers=JSON).status_code == 200
    stale = client.post("/r/sku-001/decide", data={"action": "accept", "version": "0", "csrf": settings.csrf})
    assert stale.status_code == 409
    assert "was changed by ann" in stale.text  # shown on the record's page
    outside = change | {"value": "Navy", "new_value": "Invisible", "version": "1", "csrf": settings.csrf}
    refused = client.post("/r/sku-001/decide", data=outside, headers=JSON)
    assert refused.status_code == 400
    assert "not a value of color" in refused.json()["error"]


def test_product_text_is_escaped(store: ReviewStore, files: ReviewFiles) -> None:
    client, _ = _client(store, files)
    for url in ("/queue?tab=a&q=kettle", "/r/" + XSS_ID.replace("/", "%2F") + "?tab=a", "/r/line-7?tab=a"):
        page = client.get(url)
        assert page.status_code == 200, url
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert scripts == ['<script src="/static/review.js" defer>'], url  # ours only
        assert "<img" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    page = client.get("/r/" + XSS_ID.replace("/", "%2F") + "?tab=a")
    assert "&lt;script&gt;window.pwned=2&lt;/script&gt;" in page.text


def test_category_search(files: ReviewFiles, taxonomy: Taxonomy) -> None:
    index = CategoryIndex(taxonomy)
    hits = index.search("jeans")
    assert hits[0][0] == "jeans"
    assert all("jeans" in path.lower() for _, path in hits)
    assert index.search("") == []


def test_category_search_on_shopify() -> None:
    from tagger.taxonomy import load_taxonomy

    shopify = load_taxonomy("shopify")  # the copy shipped with tagger
    assert len(shopify.categories) > 10_000
    hits = CategoryIndex(shopify).search("athletic shoes", limit=30)
    assert hits
    assert all("athletic" in p.lower() and "shoes" in p.lower() for _, p in hits)


def test_the_server_with_a_token_refuses_requests_without_it(files: ReviewFiles) -> None:
    import httpx

    server = Server(files, "--token", "s3cret")
    try:
        assert server.url.endswith("/?token=s3cret")  # the printed address carries it
        base = server.url.split("?")[0]
        assert httpx.get(base + "queue?tab=a").status_code == 401
        with httpx.Client() as browser:
            assert browser.get(server.url, follow_redirects=True).status_code == 200  # the cookie is set
            assert browser.get(base + "api/categories?q=jeans").json()[0]["id"] == "jeans"
        assert httpx.get(base + "queue", headers={"host": "evil.example"}).status_code == 421  # DNS rebinding
    finally:
        server.stop()


def test_only_loopback_listens_without_a_token() -> None:
    from tagger.review.cli import _loopback

    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost") and _loopback("127.0.0.2")
    assert not _loopback("0.0.0.0") and not _loopback("192.168.1.5") and not _loopback("example.com")


def test_a_value_row_says_what_found_it_and_who_decided() -> None:
    from tagger.review.view import value_rows

    span = {"field": "title", "start": 0, "end": 6, "text": "Zephyr"}
    record = {
        "attributes": {"brand": ["Zephyr"], "color": ["Navy"]},
        "evidence": [
            {"attribute": "brand", "value": "Zephyr", "source": "text", "matched": "segment", "decided": "judge",
             "confidence": 0.71, "spans": [span]},
            {"attribute": "color", "value": "Navy", "source": "text", "matched": "name", "decided": "evidence",
             "spans": [span | {"text": "Navy"}]},
        ],
    }  # fmt: skip
    rows = value_rows(record, {"brand": ["Zephyr"], "color": ["Navy"], "size": ["M"]})
    assert [(r.value, r.source, r.confidence) for r in rows] == [
        ("Zephyr", "text, segment, judge", 0.71),
        ("Navy", "text, name", None),
        ("M", "reviewer", None),
    ]
