"""bf16 on CPU: weights stored in bf16 once agree with per-call autocast at bf16 resolution; bf16 really runs."""
from __future__ import annotations

import copy

import torch


def test_prepared_bf16_matches_autocast(one_thread):
    from uta_bench.models.loader import load_model
    from uta_bench.models.precision import prepare_for_inference

    torch.manual_seed(0)
    ref = load_model("uta_tiny", precision="bf16", pretrained=False)
    fast = copy.copy(ref)
    fast.model = copy.deepcopy(ref.model)
    prepare_for_inference(fast)
    linear = next(m for m in fast.model.modules() if isinstance(m, torch.nn.Linear))
    assert linear.weight.dtype == torch.bfloat16 and fast.precision_run == "bf16-autocast"
    size = ref.card.image_size if isinstance(ref.card.image_size, int) else ref.card.image_size[0]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    tok = ref.tokenizer(["a photo of a cat.", "a dog."])
    for a, b in ((ref.encode_image(x), fast.encode_image(x)), (ref.encode_text(tok), fast.encode_text(tok))):
        assert (a * b).sum(-1).min() > 0.999           # unit vectors: cosine at bf16 resolution
    fp32 = load_model("uta_tiny", precision="fp32", pretrained=False)
    fp32.model.load_state_dict(ref.model.state_dict())
    assert not torch.equal(fp32.encode_image(x), fast.encode_image(x))     # bf16 really ran
