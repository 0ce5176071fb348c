"""The review app in a real browser: Debian's chromium driven by Playwright, against a real `tagger review` server
process. Without chromium or Playwright these tests skip, unless TAGGER_REQUIRE_BROWSER=1 (CI sets it) makes that a
failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.review.conftest import XSS_ID, ReviewFiles, Server

if os.environ.get("TAGGER_REQUIRE_BROWSER") != "1":
    pytest.importorskip("playwright.sync_api", reason="pip install 'tagger[dev]'")
    pytest.importorskip("fastapi", reason="pip install 'tagger[review]'")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import BrowserContext, Page, sync_playwright

BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]  # fmt: skip


@pytest.fixture
def server(files: ReviewFiles) -> Iterator[Server]:
    running = Server(files)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=shutil.which("chromium"),
            headless=True,
            args=BROWSER_ARGS,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    opened = browser.new_page()
    yield opened
    opened.close()


def events(files: ReviewFiles) -> list[dict[str, Any]]:
    with sqlite3.connect(files.store) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM events ORDER BY seq")]


def status_of(files: ReviewFiles, record_id: str) -> dict[str, Any]:
    with sqlite3.connect(files.store) as db:
        (tags,) = db.execute("SELECT tags FROM state WHERE id = ?", [record_id]).fetchone()
    return json.loads(tags)


def open_record(page: Page, server: Server, record_id: str, tab: str) -> None:
    page.goto(f"{server.url}r/{record_id}?tab={tab}")
    assert page.inner_text("#record-id") == record_id


def test_review_with_keyboard_picker_undo_and_export(page: Page, server: Server, files: ReviewFiles) -> None:
    page.goto(server.url)
    assert "0 of 28 reviewed" in page.inner_text("#progress-text")
    first_in_queue = page.locator("#queue tbody tr td a").first.inner_text()
    tab = re.search(r"tab=(\w+)", page.url).group(1)  # type: ignore[union-attr]
    with page.expect_navigation():
        page.keyboard.press("n")
    assert page.inner_text("#record-id") == first_in_queue  # least confident first
    with page.expect_navigation():
        page.keyboard.press("a")  # accept the whole record with one key
    assert status_of(files, first_in_queue)["status"] == "accepted"
    assert page.inner_text("#record-id") != first_in_queue  # on to the next one
    assert "1 of 28 reviewed" in page.inner_text("#progress-text")

    # Change a value with the picker: only the taxonomy's values for this attribute are offered.
    open_record(page, server, "sku-001", tab)
    row = page.locator('#values tr[data-attribute="color"]')
    options = row.locator("select[name=new_value] option").all_inner_texts()
    assert "Navy" in options and len(options) == len(files.taxonomy.attributes["color"].values)
    row.locator("select[name=new_value]").select_option("Navy")
    with page.expect_navigation():
        row.get_by_role("button", name="Change").click()
    assert page.locator('#values tr[data-attribute="color"] td.value').inner_text() == "Navy"

    # The category picker searches the taxonomy as one types; choosing drops values the new category lacks.
    page.fill("#cat-q", "dress")
    choice = page.locator("#cat-results button", has_text="Dresses")
    choice.wait_for()
    with page.expect_navigation():
        choice.click()
    assert page.inner_text("#category").startswith("Apparel & Accessories > Clothing > Dresses")
    assert status_of(files, "sku-001")["category"] == "dresses"

    # Add a missing value, remove one.
    with page.expect_navigation():
        page.select_option("#add-attribute", "pattern")  # choosing the attribute reloads with its values
    page.select_option("#add-value", "Solid")
    with page.expect_navigation():
        page.click("#add-form button")
    assert status_of(files, "sku-001")["attributes"]["pattern"] == ["Solid"]
    with page.expect_navigation():
        page.locator('#values tr[data-attribute="material"] .remove button').click()
    assert "material" not in status_of(files, "sku-001")["attributes"]

    # Reject, then undo it.
    open_record(page, server, "sku-003", tab)
    with page.expect_navigation():
        page.keyboard.press("r")
    assert status_of(files, "sku-003")["status"] == "rejected"
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.inner_text("#record-id") == "sku-003"  # undo goes back to the record
    assert page.inner_text("#status") == "pending"
    assert status_of(files, "sku-003")["status"] == "pending"
    history = page.locator("#history tbody tr").all_inner_texts()
    assert "undo" in history[0] and "reject (undone)" in history[1]

    open_record(page, server, "sku-001", tab)
    with page.expect_navigation():
        page.keyboard.press("a")

    # Every decision is an event with who, when, before and after.
    log = events(files)
    assert [e["action"] for e in log] == [
        "accept", "set_value", "set_category", "add_value", "remove_value", "reject", "undo", "accept",
    ]  # fmt: skip
    assert {e["reviewer"] for e in log} == {"ann"}
    change = log[1]
    assert (change["record_id"], change["attribute"], json.loads(change["before"]), json.loads(change["after"])) == (
        "sku-001", "color", "Black", "Navy",
    )  # fmt: skip
    assert log[5]["undone_by"] == log[6]["seq"]

    with page.expect_navigation():
        page.click("#export-form button")
    pool_path = Path(page.inner_text("#pool-path"))
    pool = {row["id"]: row for row in map(json.loads, pool_path.read_text().splitlines())}
    assert set(pool) == {first_in_queue, "sku-001"}
    assert pool["sku-001"]["category"] == "dresses"
    assert pool["sku-001"]["attributes"]["color"] == ["Navy"]
    assert pool["sku-001"]["attributes"]["pattern"] == ["Solid"]
    assert pool["sku-001"]["title"].startswith("Northwind Men's Classic Crew Neck T-Shirt")


def test_script_in_product_text_renders_as_text(page: Page, server: Server) -> None:
    page.goto(server.url + "queue?status=all&q=kettle")
    assert page.locator("#queue tbody tr").count() == 1
    with page.expect_navigation():
        page.locator("#queue tbody tr td a").first.click()
    assert page.inner_text("#record-id") == XSS_ID
    title = page.locator("#product-text .field p").first.inner_text()
    assert title.startswith("<script>window.pwned=2</script> Steel kettle <img")
    page.goto(server.url + "queue?status=unreadable")
    assert "2 records match" in page.inner_text("main")
    page.goto(server.url + "r/line-7")
    assert page.inner_text("pre.raw") == "<script>window.pwned=4</script>"
    assert page.evaluate("window.pwned") is None  # no product text ever ran


def test_two_tabs_do_not_overwrite_each_other(browser: BrowserContext, server: Server, files: ReviewFiles) -> None:
    first, second = browser.new_page(), browser.new_page()
    open_record(first, server, "sku-002", "tab-one")
    open_record(second, server, "sku-002", "tab-two")
    assert "open in another tab" in second.inner_text("#held")
    second.keyboard.press("a")
    second.locator("#message").wait_for()
    assert "another tab" in second.inner_text("#message")
    assert status_of(files, "sku-002")["status"] == "pending"
    with first.expect_navigation():
        first.keyboard.press("a")
    assert status_of(files, "sku-002")["status"] == "accepted"
    assert first.inner_text("#record-id") != "sku-002"
    first.close()
    second.close()


def test_sigkill_mid_review_loses_no_confirmed_decision(page: Page, files: ReviewFiles) -> None:
    server = Server(files)
    try:
        page.goto(server.url)
        with page.expect_navigation():
            page.keyboard.press("n")
        decided = []
        for _ in range(5):
            decided.append(page.inner_text("#record-id"))
            with page.expect_navigation():
                page.keyboard.press("a")  # the page shows the next record only once the decision is committed
        server.kill()
    finally:
        server.stop()
    accepted = [e["record_id"] for e in events(files) if e["action"] == "accept"]
    assert accepted == decided
    again = Server(files)
    try:
        page.goto(again.url)
        assert "5 of 28 reviewed" in page.inner_text("#progress-text")
    finally:
        again.stop()
