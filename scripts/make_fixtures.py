"""Write the small dataset fixtures in tests/fixtures/ from the dev sets (a few dozen rows each, several categories).

    python scripts/make_fixtures.py --data-root ../shared/data

Rows are copied unchanged and kept in their source order; the choice is deterministic (see each picker).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
Row = dict[str, Any]


def by_category(rows: list[Row]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(row["category_path"][0], []).append(index)
    return groups


def pick_wdc(rows: list[Row]) -> set[int]:
    """6 of each of the 5 categories: titles with scraping leftovers first (" Null", "| shop", "- Shop.com"),
    for the cleaning tests, then the first others."""
    picked: set[int] = set()
    for indexes in by_category(rows).values():
        titles = {i: rows[i]["title"] for i in indexes}
        ordered = [
            *[i for i in indexes if titles[i].endswith(" Null")][:2],
            *[i for i in indexes if "| " in titles[i]][:2],
            *[i for i in indexes if titles[i].endswith("OnTimeSupplies.com")][:1],
            *indexes,
        ]
        picked |= set(list(dict.fromkeys(ordered))[:6])
    return picked


def pick_oa_mine(rows: list[Row]) -> set[int]:
    """The first 3 of each of the 10 product types."""
    return {i for indexes in by_category(rows).values() for i in indexes[:3]}


def pick_flipkart(rows: list[Row]) -> set[int]:
    """The first 6 rows (the pipeline test tags those), then the first row mapped to Shopify of each of the 24
    largest top-level categories."""
    groups = sorted(by_category(rows).values(), key=len, reverse=True)[:24]
    firsts = [next((i for i in g if rows[i].get("shopify_category")), g[0]) for g in groups]
    return set(range(6)) | set(firsts)


PICKERS: dict[str, Callable[[list[Row]], set[int]]] = {
    "wdc-pave": pick_wdc,
    "oa-mine": pick_oa_mine,
    "flipkart": pick_flipkart,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True)
    args = parser.parse_args()
    for name, pick in PICKERS.items():
        lines = (args.data_root / name / "dev.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines]
        chosen = sorted(pick(rows))
        (OUT / f"{name}.jsonl").write_text("".join(lines[i] + "\n" for i in chosen), encoding="utf-8")
        print(f"{name}: {len(chosen)} of {len(rows)} rows, {len(by_category([rows[i] for i in chosen]))} categories")


if __name__ == "__main__":
    main()
