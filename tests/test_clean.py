"""Cleaning before generation, on real scraped titles and on the real tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagger.backends.llamacpp import LlamaCppBackend
from tagger.clean import Cleaner, CleaningConfig, content_key, cut_to_tokens, html_to_text
from tagger.product import Product
from tests.conftest import WDC_PAVE_ROWS


def test_html_becomes_visible_text() -> None:
    html = "<div><style>p{color:red}</style><p>Soft&nbsp;cotton &amp; linen</p><ul><li>S</li><li>M</li></ul></div>"
    assert Cleaner().text(html, keep_lines=True) == "Soft cotton & linen\nS\nM"
    assert html_to_text("5 < 6 and R&D") == "5 < 6 and R&D"  # not markup: untouched
    assert html_to_text("Tom &amp; Jerry") == "Tom & Jerry"


def test_unicode_and_whitespace() -> None:
    cleaner = Cleaner()
    full_width = "\uff37\uff49\uff44\uff45"  # "Wide" in full-width letters
    ligature = "\ufb01"  # "fi" as one character
    assert cleaner.text(f"{full_width}\u00a0 screen\t\n {ligature}lter") == "Wide screen filter"  # NFKC
    assert cleaner.text("  null ") == ""
    assert Cleaner(CleaningConfig(unicode_form="")).text(ligature) == ligature


def _wdc_titles(path: Path) -> tuple[list[str], list[str]]:
    titles = {}
    for line in path.open():
        row = json.loads(line)
        titles[row["id"]] = row["title"]
    cleaner = Cleaner()
    return list(titles.values()), [cleaner.title(t) for t in titles.values()]


def test_boilerplate_is_trimmed_from_real_wdc_titles(data_root: Path) -> None:
    titles, cleaned = _wdc_titles(data_root / "wdc-pave" / "dev.jsonl")  # the whole dev set, where it is here
    assert sum(t.endswith(" Null") for t in titles) >= 80
    assert not [t for t in cleaned if t.endswith(" Null")]
    assert sum("| " in t for t in titles) > sum("| " in t for t in cleaned) + 100
    assert not [t for t in cleaned if t.endswith("OnTimeSupplies.com")]
    assert all(len(t) >= 3 for t in cleaned)


def test_boilerplate_is_trimmed_from_wdc_titles() -> None:
    titles, cleaned = _wdc_titles(WDC_PAVE_ROWS)  # 30 rows of the dev set, chosen to carry such leftovers
    assert sum(t.endswith(" Null") for t in titles) == 2
    assert not [t for t in cleaned if t.endswith(" Null")]
    assert (sum("| " in t for t in titles), sum("| " in t for t in cleaned)) == (10, 0)
    assert sum(t.endswith("OnTimeSupplies.com") for t in titles) == 4
    assert not [t for t in cleaned if t.endswith("OnTimeSupplies.com")]
    assert all(len(t) >= 3 for t in cleaned)
    cleaner = Cleaner()
    assert cleaner.title("Diamond Stud Earrings 14k | Midtown Jewelers") == "Diamond Stud Earrings 14k"
    assert cleaner.title("Ink Cartridge Black Null | Shop") == "Ink Cartridge Black"
    assert cleaner.title("Mug | XL") == "Mug"
    assert cleaner.title("| Racks") == "| Racks"  # never trimmed to nothing


def test_token_budget_with_the_model_tokenizer(backend: LlamaCppBackend) -> None:
    tokenizer = backend.tokenizer
    text = " ".join(f"word{i}" for i in range(5_000))
    cut = cut_to_tokens(text, 100, tokenizer)
    assert cut is not None and text.startswith(cut)
    assert 90 <= len(tokenizer.encode(cut)) <= 100
    assert cut_to_tokens("a short text", 100, tokenizer) is None
    assert cut_to_tokens("x" * 1000, 10, None) == "x" * 40  # no tokenizer: 4 characters a token


def test_clean_records_truncation_and_keys_ignore_markup(backend: LlamaCppBackend) -> None:
    cleaner = Cleaner(CleaningConfig(description_tokens=20), backend.tokenizer)
    long = Product("a", "Kettle", "<p>" + "boils water fast " * 200 + "</p>", {"brand": "Acme"})
    cleaned = cleaner.clean(long)
    assert [(t.field, t.kept_tokens) for t in cleaned.truncated] == [("description", 20)]
    assert cleaned.truncated[0].chars == len(("boils water fast " * 200).strip())
    same = cleaner.clean(Product("b", " Kettle ", "<div>" + "boils  water fast " * 200 + "</div>", {"brand": "Acme"}))
    assert content_key(same.product) == content_key(cleaned.product)
    other = cleaner.clean(Product("c", "Kettle", "boils", {"brand": "Acme"}))
    assert content_key(other.product) != content_key(cleaned.product)
    assert Cleaner(CleaningConfig(enabled=False)).clean(long).product is long
    assert CleaningConfig().hash != CleaningConfig(description_tokens=20).hash


def test_a_closed_backend_s_tokenizer_raises_instead_of_crashing() -> None:
    engine = LlamaCppBackend()
    tokenizer = engine.tokenizer
    assert tokenizer.encode("kettle")
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        tokenizer.encode("kettle")  # llama.cpp has freed the model: touching it would be a segfault
