"""Model card of the offline demo (teacher and students share it; weights come via --checkpoint)."""
from __future__ import annotations

from uta_bench.modelcard import ModelCard

CARDS = [ModelCard(
    name="uta_demo", family="uta", arch="uta_demo_p8", image_size=32, embed_dim=64, context_length=16,
    description="demo world: 32 px EVA-02-style ViT (patch 8, dim 64, depth 4) + 2-layer text tower; "
                "weights from `uta-bench demo` (--checkpoint)",
    tags=("test", "demo"))]
