"""The category student: a softmax regression over unit vectors learns their categories, and keeps them when saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger.train.category import CategoryStudent


def _clusters(seed: int, n: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:3]
    labels = [f"c{i % 3}" for i in range(n)]
    points = np.stack([centres[i % 3] + 0.35 * rng.standard_normal(8).astype(np.float32) for i in range(n)])
    return points / np.linalg.norm(points, axis=1, keepdims=True), labels


def test_the_student_learns_categories_it_was_not_shown_the_points_of(tmp_path: Path) -> None:
    train, labels = _clusters(0, 90)
    test, truth = _clusters(1, 60)
    student = CategoryStudent.fit(train, labels)
    guesses = student.predict(test)
    assert sum(c == t for (c, _), t in zip(guesses, truth, strict=True)) >= 54  # clusters overlap a little
    assert all(0 < p <= 1 for _, p in guesses)
    student.save(tmp_path / "student.npz")
    again = CategoryStudent.load(tmp_path / "student.npz")
    assert again.predict(test) == guesses
    assert CategoryStudent.fit(train, labels).predict(test) == guesses  # deterministic
