"""Helpers of the folder-dataset tests (a module, not a conftest.py, so suites merge cleanly)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def write_image(path: Path, color=(10, 20, 30), size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def make_dataset(
    root: Path,
    splits: dict[str, dict[str, int]],
    flat_test: int = 0,
    colors: dict | None = None,
    size: int = 8,
) -> Path:
    """root/<split>/<class>/<class>_<i>.jpg for each count (and root/test/t<i>.png if flat_test)."""
    colors = colors or {}
    for split, classes in splits.items():
        for name, n in classes.items():
            for i in range(n):
                write_image(
                    root / split / name / f"{name}_{i}.jpg", colors.get(name, (10, 20, 30)), size
                )
    for i in range(flat_test):
        write_image(root / "test" / f"t{i}.png", size=size)
    return root
