"""torchvision ImageFolder datasets (synset/class dirs), with the class names used for prompts."""
from __future__ import annotations

from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError


def read_classnames(root: Path, class_dirs: list[str]) -> list[str]:
    """``classnames.txt`` (one per class dir, sorted dir order) if present, else the dir names."""
    f = root / "classnames.txt"
    if f.is_file():
        names = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
        if len(names) != len(class_dirs):
            raise UtaBenchError(f"{f} lists {len(names)} class names but {root} has {len(class_dirs)} "
                                "class folders; make them match")
        return names
    return [d.replace("_", " ") for d in class_dirs]


def image_folder(root: str | Path, transform=None):
    """A torchvision ImageFolder with a clear error for a missing/empty folder."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"dataset folder {root} does not exist; check --data-root / the task path")
    try:
        return ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise UtaBenchError(f"{root} is not an ImageFolder (class sub-folders with images): "
                            f"{str(e).splitlines()[0]}") from None
