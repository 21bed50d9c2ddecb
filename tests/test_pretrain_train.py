"""Objectives and the training loop: UTA ignores masked positions, exact resume, NaN stop, DDP == 1 process."""
import json
import os
import socket

import pytest
import torch

from uta_bench.models.uta import build_visual
from uta_bench.pretrain.config import PretrainConfig
from uta_bench.pretrain.data import TensorImages
from uta_bench.pretrain.masking import MaskGenerator
from uta_bench.pretrain.objectives import FrozenTeacher, Student, pretrain_loss
from uta_bench.pretrain.train import DivergedError, pretrain

ARCH = "uta_tiny_p16"   # 64 px, patch 16 -> 4x4 grid


def _student(seed=0, **kw):
    torch.manual_seed(seed)
    return Student(build_visual(ARCH, **kw))


def _teacher():
    torch.manual_seed(123)
    return FrozenTeacher(build_visual(ARCH))


def _cfg(tmp_path, **kw):
    base = dict(student_arch=ARCH, objective="uta", mask_kind="block_reversed", mask_ratio=0.5, steps=6,
                global_batch_size=8, lr=2e-3, warmup_steps=2, precision="fp32", output_dir=str(tmp_path / "run"),
                ckpt_every=3, workers=0, seed=0)
    base.update(kw)
    return PretrainConfig(**base)


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 64, 64, generator=g)


def test_uta_loss_ignores_masked_positions():
    student, teacher = _student(), _teacher()
    images = _images(4).requires_grad_(True)
    mask = MaskGenerator("block_reversed", 4, 0.5, seed=0).batch(0, 4)
    targets = teacher(images.detach())
    loss = pretrain_loss("uta", student, images, targets, mask)
    loss.backward()
    # pixels of masked patches get exactly zero gradient; kept patches do not
    g = images.grad.abs().reshape(4, 3, 4, 16, 4, 16).sum((1, 3, 5)).reshape(4, 16)
    assert torch.all(g[mask] == 0) and torch.all(g[~mask] > 0)
    # changing the teacher's targets at masked positions does not change the loss; at kept ones it does
    t2 = targets.clone()
    t2[:, 1:][mask] = torch.randn_like(t2[:, 1:][mask])
    assert pretrain_loss("uta", student, images, t2, mask).item() == pytest.approx(loss.item(), abs=1e-6)
    t3 = targets.clone()
    t3[:, 1:][~mask] = torch.randn_like(t3[:, 1:][~mask])
    assert abs(pretrain_loss("uta", student, images, t3, mask).item() - loss.item()) > 1e-3
    # value = mean negative cosine over [CLS] + kept tokens, computed by hand from the dropped forward
    v = student.visual
    keep = [torch.nonzero(~m).squeeze(1) for m in mask]
    manual = []
    for b in range(4):   # independent forward: the same image with only its kept patches (batch of one)
        pred = student(images[b:b + 1], mask[b:b + 1], "drop")[0]
        tgt = torch.cat([targets[b, :1], targets[b, 1:][keep[b]]])
        manual.append(-torch.nn.functional.cosine_similarity(pred, tgt, dim=-1))
    assert loss.item() == pytest.approx(torch.cat(manual).mean().item(), abs=1e-5)
    assert v.patch_embed.grid_size == (4, 4)


def test_uta_dropped_forward_matches_attention_masked_full_forward():
    """Dropping tokens == running the full sequence with attention restricted to CLS + kept tokens."""
    student = _student().eval()
    images = _images(2)
    mask = MaskGenerator("random", 4, 0.5, seed=1).batch(0, 2)
    dropped = student(images, mask, "drop")
    v = student.visual
    for b in range(2):
        allowed = torch.cat([torch.tensor([True]), ~mask[b]])
        attn = torch.zeros(17, 17)
        attn[:, ~allowed] = float("-inf")
        x, rope = v._pos_embed(v.patch_embed(images[b:b + 1]))
        for blk in v.blocks:
            x = blk(x, rope=rope, attn_mask=attn)
        full = v.head(v.norm(x))[0][allowed]
        torch.testing.assert_close(dropped[b], full, atol=1e-5, rtol=1e-4)


def test_mim_loss_only_on_masked_positions():
    student = _student()
    images = _images(2)
    mask = MaskGenerator("block", 4, 0.5, seed=0).batch(0, 2)
    targets = _teacher()(images).requires_grad_(True)
    pretrain_loss("mim", student, images, targets, mask).backward()
    g = targets.grad.abs().sum(-1)                   # [B, 1 + N]
    assert torch.all(g[:, 0] == 0)                   # [CLS] unsupervised in MIM
    assert torch.all(g[:, 1:][~mask] == 0) and torch.all(g[:, 1:][mask] > 0)
    targets.grad = None
    pretrain_loss("uta_mim", student, images, targets, mask).backward()
    assert torch.all(targets.grad.abs().sum(-1) > 0)  # UTA+MIM: every position


def test_resume_reproduces_uninterrupted_curve(tmp_path):
    data = TensorImages(_images())
    kw = dict(student_overrides={}, steps=6, ckpt_every=3)
    full = pretrain(_cfg(tmp_path / "a", **kw), data, _teacher(), _student(drop_path_rate=0.2), progress=False)
    part = pretrain(_cfg(tmp_path / "b", **kw), data, _teacher(), _student(drop_path_rate=0.2),
                    stop_after=3, progress=False)
    assert part.final_step == 3
    torch.manual_seed(999)   # the resumed run must not depend on the caller's RNG: it is restored
    rest = pretrain(_cfg(tmp_path / "b", **kw), data, _teacher(), _student(seed=5, drop_path_rate=0.2),
                    resume="auto", progress=False)
    a = [r["train_loss"] for r in full.history]
    b = [r["train_loss"] for r in rest.history]
    assert len(a) == len(b) == 6
    assert a == b                                     # bit-identical
    assert [r["lr"] for r in full.history] == [r["lr"] for r in rest.history]
    lo, hi = 1e-5, 2e-3        # warm-up 2 steps at lr*(step+1)/2, then cosine to min_lr at the last step (5)
    assert [r["lr"] for r in full.history] == pytest.approx([1e-3, hi, hi, lo + (hi - lo) * 0.75,
                                                             lo + (hi - lo) * 0.25, lo])
    for k, v in full.student.state_dict().items():
        assert torch.equal(v, rest.student.state_dict()[k]), k
    log = [json.loads(x) for x in (tmp_path / "b" / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]            # the resumed run's log reads as one run
    assert [r["train_loss"] for r in log] == a
    if __import__("importlib").util.find_spec("tensorboard"):     # same curve in TensorBoard, resume included
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(tmp_path / "b" / "run" / "tensorboard"))
        acc.Reload()
        events = acc.Scalars("train_loss")
        assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
        assert [e.value for e in events] == pytest.approx(a)          # float32 in the event file


class _NaNAfter(torch.nn.Module):
    def __init__(self, inner, step):
        super().__init__()
        self.inner, self.step, self.calls = inner, step, 0

    def forward(self, images, indices=None):
        self.calls += 1
        out = self.inner(images)
        return out * float("nan") if self.calls > self.step else out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, steps=10, ckpt_every=2)
    with pytest.raises(DivergedError, match=r"loss is nan at step 5.*last good checkpoint is .*last\.pt"):
        pretrain(cfg, TensorImages(_images()), _NaNAfter(_teacher(), 5), _student(), progress=False)
    blob = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert blob["step"] == 4 and len(blob["extra"]["history"]) == 4
    assert all(torch.isfinite(v).all() for v in blob["model"].values())


def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from pathlib import Path

    cfg = _cfg(Path(out_dir), objective="uta", steps=4, ckpt_every=0)
    res = pretrain(cfg, TensorImages(_images()), _teacher(), _student(), progress=False)
    if rank == 0:
        torch.save({"losses": [r["train_loss"] for r in res.history], "state": res.student.state_dict()},
                   Path(out_dir) / "result.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def test_ddp_two_gloo_processes_equal_one_process(tmp_path, one_thread):
    # the reference runs single-threaded like each worker, so both sum in the same order per process
    single = pretrain(_cfg(tmp_path / "one", steps=4, ckpt_every=0), TensorImages(_images()), _teacher(),
                      _student(), progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = torch.multiprocessing.get_context("spawn")
    (tmp_path / "two").mkdir()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, str(tmp_path / "two"))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    result = torch.load(tmp_path / "two" / "result.pt", weights_only=True)
    losses, state = result["losses"], result["state"]
    ref = [r["train_loss"] for r in single.history]
    assert losses == pytest.approx(ref, rel=1e-5, abs=1e-6)
    for k, v in single.student.state_dict().items():
        torch.testing.assert_close(state[k], v, rtol=1e-4, atol=1e-6)
