"""The paper's table layouts: titles, row-label (stub) columns, data columns with their header groups.

Data columns are the ``column`` paths of the paper rows (header levels joined by ``/``); rows keep the
order of the CSV files, which is the paper's order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def _attr(name: str) -> Callable[[dict], str]:
    return lambda r: r[name]


def _method_with_mark(r: dict) -> str:   # "UTA † B" -> "UTA †"
    return r["paper_row"].rsplit(" ", 1)[0]


def _config_value(r: dict) -> str:      # "mask_ratio=0.4" -> "0.4"
    return r["config"].split("=", 1)[1]


@dataclass(frozen=True)
class Layout:
    table: str
    title: str
    stubs: tuple                 # ((header, fn(row attrs) -> text), ...)
    columns: tuple               # data column paths, in print order
    average: tuple = ()          # (average column, member columns): ours is derived from the members

    @property
    def depth(self) -> int:
        return max(len(c.split("/")) for c in self.columns)

    def header_rows(self) -> list[list[tuple[str, int]]]:
        """Header lines as (text, colspan) cells, stubs first; shorter paths print on the top line."""
        d = self.depth
        lines = []
        for level in range(d):
            line = [(h if level == 0 else "", 1) for h, _ in self.stubs]
            i = 0
            cols = [c.split("/") for c in self.columns]
            while i < len(cols):
                parts = cols[i]
                if level >= len(parts):
                    line.append(("", 1))
                    i += 1
                    continue
                j = i + 1
                if level < len(parts) - 1:   # a group: span the columns sharing this prefix
                    while j < len(cols) and len(cols[j]) > level + 1 and cols[j][:level + 1] == parts[:level + 1]:
                        j += 1
                line.append((parts[level], j - i))
                i = j
            lines.append(line)
        return lines


_T1_COLS = ("IN-1K", "IN-A", "IN-R", "IN-V2", "IN-S", "ObjectNet")
_T2_COLS = tuple(f"{d}/{ds}/R@{k}" for d in ("Text Retrieval", "Image Retrieval") for ds in ("Flickr30k", "COCO")
                 for k in (1, 5, 10))
_ABL = ("ImageNet/ZS", "ImageNet/FT", "COCO/AP box", "COCO/AP mask")

LAYOUTS: dict[str, Layout] = {
    "1": Layout("1", "Table 1: Zero-shot classification on ImageNet-1K, -A, -R, -V2, -Sketch and ObjectNet "
                     "(top-1 %), with the average over the 6 datasets.",
                (("Method", _attr("method")), ("Model", _attr("model")), ("# I-T Pairs", _attr("it_pairs"))),
                _T1_COLS + ("Average",), average=("Average", _T1_COLS)),
    "2": Layout("2", "Table 2: Zero-shot retrieval on Flickr30k and COCO (recall@1/5/10 %).",
                (("Method", _attr("method")), ("Model", _attr("model")), ("# I-T Pairs", _attr("it_pairs"))),
                _T2_COLS),
    "3": Layout("3", "Table 3: LLaVA-Bench (conversation, detail, reasoning, overall).",
                (("Method", _attr("method")), ("Model", _attr("model"))),
                ("Conversation", "Detail", "Reasoning", "Overall")),
    "4": Layout("4", "Table 4: ImageNet zero-shot (ZS) / fine-tuning (FT) top-1 and ADE20K mIoU. "
                     "† after contrastive fine-tuning; ‡ equal to random choice.",
                (("Method", _method_with_mark), ("Model", _attr("model")), ("#Params", _attr("params"))),
                ("ImageNet/Input Size", "ImageNet/ZS", "ImageNet/FT", "ADE20K/Input Size", "ADE20K/mIoU")),
    "5": Layout("5", "Table 5: Object detection and instance segmentation on COCO and LVIS. "
                     "† after contrastive fine-tuning.",
                (("Method", _method_with_mark), ("Model", _attr("model")), ("#Enc. Params", _attr("params"))),
                ("COCO/AP box", "COCO/AP mask", "LVIS/AP box", "LVIS/AP mask")),
    "6": Layout("6", "Table 6: The effect of pre-training objectives (ViT-B, 90 epochs).",
                (("Config", _attr("paper_row")),),
                ("FLOPs",) + _ABL + ("LVIS/AP box", "LVIS/AP mask", "ADE20K mIoU")),
    "7": Layout("7", "Table 7: The effect of the pre-trained CLIP (teacher) model.",
                (("CLIP Model", _attr("paper_row")),),
                ("ImageNet ZS",) + _ABL + ("ADE20K mIoU",)),
    "8a": Layout("8a", "Table 8 (left): The effect of mask ratio.",
                 (("Ratio", _config_value),), ("FLOPs",) + _ABL + ("ADE20K mIoU",)),
    "8b": Layout("8b", "Table 8 (right): The effect of mask type (mask ratio 0.5; Block-R = reversed block-wise).",
                 (("Mask", _config_value),), _ABL + ("ADE20K mIoU",)),
}


def get_layout(table: str) -> Layout:
    from uta_bench.errors import UtaBenchError

    if str(table) not in LAYOUTS:
        raise UtaBenchError(f"unknown paper table {table!r}; choose from {', '.join(LAYOUTS)}")
    return LAYOUTS[str(table)]
