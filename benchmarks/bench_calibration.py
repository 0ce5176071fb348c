"""How well calibrated confidences are on products the calibration never saw, and how much a catalog's own
calibration beats the shipped one.

For each named dev set: the ECE of the values and of the categories of its judged eval run (seed-0 sample), with
(a) the calibration fitted on every fit run (what tagger ships) and (b) one fitted on that dev set's own fit runs only
(what `tagger calibrate` on a catalog's reviewed gold gives). The eval runs' samples keep each value's kind, score
and verdict, so any calibration is applied to them here without tagging again.

    python benchmarks/bench_calibration.py --set flipkart=FIT_DIR[,FIT_DIR]:JUDGE_DIR[,JUDGE_DIR] --set ... \
        [--exclude IDS_FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.calibrate import Calibration  # noqa: E402
from tagger.calibrate.fit import Observation, fit, observations  # noqa: E402
from tagger.evals.metrics import calibration_noise, expected_calibration_error  # noqa: E402
from tagger.evals.output import load_samples  # noqa: E402


def _observed(folders: list[Path], left_out: set[str]) -> list[Observation]:
    return [o for folder in folders for o in observations([s for s in load_samples(folder) if s.id not in left_out])]


def _pairs(calibration: Calibration, judged: list[Observation], categories: bool) -> list[tuple[float, bool]]:
    pairs = []
    for o in judged:
        if o.kind.startswith("category:") != categories:
            continue
        confidence = calibration.probability(o.kind, o.score)
        if confidence is not None:
            pairs.append((confidence, o.correct))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="NAME=FIT_DIRS:JUDGE_DIRS (comma-separated)")
    parser.add_argument("--exclude", type=Path, help="A file of ids the fits leave out (the judged products)")
    args = parser.parse_args()
    left_out = set(args.exclude.read_text().split()) if args.exclude else set()
    sets = {}
    for spec in args.set:
        name, _, dirs = spec.partition("=")
        fits, _, judged = dirs.partition(":")
        sets[name] = ([Path(d) for d in fits.split(",")], [Path(d) for d in judged.split(",")])
    shipped = fit([o for fits, _ in sets.values() for o in _observed(fits, left_out)])
    # noise: what a perfectly calibrated confidence would show on as many values at the shipped confidences
    print("| dev set | values: ECE shipped / own (n; noise) | categories: ECE shipped / own (n; noise) |")
    print("|---|---|---|")
    for name, (fits, judged_dirs) in sets.items():
        own = fit(_observed(fits, left_out))
        judged = _observed(judged_dirs, set())
        cells = []
        for categories in (False, True):
            pairs = _pairs(shipped, judged, categories)
            a, b = expected_calibration_error(pairs), expected_calibration_error(_pairs(own, judged, categories))
            cells.append(f"{_fmt(a)} / {_fmt(b)} ({len(pairs)}; {_fmt(calibration_noise(pairs))})")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
