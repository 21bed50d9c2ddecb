"""The shared training core (uta_bench.training): schedule values worked by hand, exact state round trips,
atomic writes, precision choices, the JSONL/TensorBoard log, and the torchrun set-up."""
import json
import math
import os
import random
import socket
import sys

import numpy as np
import pytest
import torch

from uta_bench.errors import CheckpointError, UtaBenchError
from uta_bench.training import (DistEnv, TrainLogger, autocast, backward, grad_scaler, load_training_state,
                                optimizer_step, save_training_state, set_lr, setup_distributed,
                                teardown_distributed, warmup_cosine_lr)


# ---------------------------------------------------------------- schedule
def test_warmup_is_step_plus_one_over_warmup():
    lr = [warmup_cosine_lr(s, base_lr=1.0, total_steps=11, warmup_steps=4) for s in range(4)]
    assert lr == [0.25, 0.5, 0.75, 1.0]             # the first update already moves; the 4th uses base_lr


def test_cosine_boundaries_by_hand():
    # total 11, warm-up 2: cosine over steps 2..10 (8 intervals), min reached at step 10 = total - 1
    f = lambda s, **kw: warmup_cosine_lr(s, base_lr=1.0, total_steps=11, warmup_steps=2, **kw)  # noqa: E731
    assert f(2) == 1.0
    assert f(4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))   # 0.853553...
    assert f(4) == pytest.approx(0.8535533905932737)
    assert f(6) == pytest.approx(0.5)                                   # half-way
    assert f(10) == pytest.approx(0.0) and f(25) == pytest.approx(0.0)  # clamped after the end
    assert f(6, min_lr=0.1) == pytest.approx(0.55) and f(10, min_lr=0.1) == pytest.approx(0.1)
    assert warmup_cosine_lr(0, base_lr=3e-4, total_steps=5, warmup_steps=0) == 3e-4
    assert warmup_cosine_lr(4, base_lr=3e-4, total_steps=5, warmup_steps=0) == pytest.approx(0.0)


def test_set_lr_applies_each_groups_scale():
    w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    opt = torch.optim.SGD([{"params": [w[0]], "lr_scale": 0.25}, {"params": [w[1]], "lr_scale": 1.0},
                           {"params": [w[2]]}], lr=9.0)
    set_lr(opt, 0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.025, 0.1, 0.1]


# ---------------------------------------------------------------- state
def _model_opt(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def _draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.randint(0, 1000, (4,)).tolist()


def test_round_trip_restores_everything_and_the_next_random_draws(tmp_path):
    model, opt = _model_opt(0)
    scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draws()                                                      # advance the generators somewhere
    path = tmp_path / "sub" / "state.pt"
    save_training_state(path, model=model, optimizer=opt, step=7, data_position={"epoch": 1, "index": 12},
                        scaler=scaler, extra={"history": [{"step": 1, "loss": 0.5}]})
    expected = _draws()

    other, other_opt = _model_opt(1)                              # different weights and moments
    other_scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    _draws()
    st = load_training_state(path, model=other, optimizer=other_opt, scaler=other_scaler)
    assert _draws() == expected                                   # python, numpy, torch draws continue exactly
    assert (st.step, st.data_position, st.extra) == (7, {"epoch": 1, "index": 12},
                                                     {"history": [{"step": 1, "loss": 0.5}]})
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert other_scaler.state_dict()["scale"] == 512.0
    blob = torch.load(path, weights_only=True)                   # no pickled code inside
    assert blob["step"] == 7 and blob["data_position"]["index"] == 12


def test_load_errors_are_one_line(tmp_path):
    model, opt = _model_opt()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_training_state(tmp_path / "none.pt", model=model, optimizer=opt)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read training state"):
        load_training_state(tmp_path / "junk.pt", model=model, optimizer=opt)
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a uta-bench training state"):
        load_training_state(tmp_path / "foreign.pt", model=model, optimizer=opt)
    save_training_state(tmp_path / "s.pt", model=model, optimizer=opt, step=1, data_position=1)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_training_state(tmp_path / "s.pt", model=torch.nn.Linear(4, 2), optimizer=opt)


def test_failed_write_leaves_previous_file_and_no_partial_one(tmp_path, monkeypatch):
    import uta_bench.training.state as state

    model, opt = _model_opt()
    tmp_path = tmp_path / "out"
    path = tmp_path / "last.pt"
    save_training_state(path, model=model, optimizer=opt, step=3, data_position=3)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(state.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(path, model=model, optimizer=opt, step=4, data_position=4)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(tmp_path / "new.pt", model=model, optimizer=opt, step=4, data_position=4)
    assert path.read_bytes() == before                             # old state intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no new.pt, no temp files


# ---------------------------------------------------------------- precision
def test_precision_choices():
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(cpu, "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(cpu, "fp16"):
        assert (a @ b).dtype == torch.float16
    assert grad_scaler(cpu, "fp32") is None and grad_scaler(cpu, "bf16") is None
    assert isinstance(grad_scaler(cpu, "fp16"), torch.amp.GradScaler)
    with pytest.raises(ValueError, match="not one of fp32, bf16, fp16"):
        autocast(cpu, "fp8")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_step_unscales_before_clipping(precision):
    """grad 1000 on 4 weights (norm 2000) clipped to norm 1 -> 0.5 each; SGD lr 1 -> w = -0.5, with or
    without the fp16 scaler (scale 65536): the scaler must unscale before the clip."""
    w = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=1.0)
    scaler = grad_scaler(torch.device("cpu"), precision)
    backward((w * 1000.0).sum(), scaler)
    optimizer_step(opt, [w], scaler=scaler, max_norm=1.0)
    assert torch.allclose(w.detach(), torch.full((4,), -0.5))
    if scaler is not None:
        assert scaler.get_scale() == 65536.0             # finite gradients: the step was taken, scale kept


# ---------------------------------------------------------------- log
def test_train_log_jsonl_lines_and_resume_trim(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)    # as if tensorboard were not installed
    with TrainLogger(tmp_path, start_step=0) as lg:
        for step in (1, 2, 3):
            lg.log(step, loss=torch.tensor(1.0 / step), lr=0.1 * step, epoch=0)
    lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    assert lines[1]["loss"] == 0.5 and lines[2]["lr"] == pytest.approx(0.3) and lines[0]["epoch"] == 0
    assert set(lines[0]) == {"step", "loss", "lr", "epoch", "time"} and lines[0]["time"] > 1.7e9
    assert not (tmp_path / "tensorboard").exists()
    with TrainLogger(tmp_path, start_step=2) as lg:                # resumed from the state saved at step 2
        lg.log(3, loss=9.0)
    assert [json.loads(x)["loss"] for x in (tmp_path / "train_log.jsonl").read_text().splitlines()] == [1.0, 0.5, 9.0]
    with pytest.raises(UtaBenchError, match="'tensorboard' package is not installed"):
        TrainLogger(tmp_path / "x", tensorboard=True)
    TrainLogger(tmp_path / "off", enabled=False).log(1, loss=1.0)   # a non-main rank writes nothing
    assert not (tmp_path / "off").exists()


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with TrainLogger(tmp_path) as lg:
        lg.log(1, loss=2.0, lr=0.5)
        lg.log(2, loss=1.5, lr=0.25)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 2.0), (2, 1.5)]
    assert [e.value for e in acc.Scalars("lr")] == [0.5, 0.25]
    with TrainLogger(tmp_path, tensorboard=False) as lg:
        lg.log(3, loss=1.0)
    assert len(list((tmp_path / "tensorboard").glob("events*"))) == 1
    with TrainLogger(tmp_path, start_step=1) as lg:                # resumed at step 1: step 2 is re-done
        lg.log(2, loss=0.75)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 2.0), (2, 0.75)]


# ---------------------------------------------------------------- distributed
def test_single_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = setup_distributed("cpu")
    assert env == DistEnv(0, 1, 0, torch.device("cpu")) and env.is_main
    assert not torch.distributed.is_initialized()
    teardown_distributed(env)


def _dist_worker(rank, port, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    env = setup_distributed("cpu")
    t = torch.tensor([float(rank + 1)])
    torch.distributed.all_reduce(t)
    q.put((env.rank, env.world_size, env.local_rank, env.is_main, torch.distributed.get_backend(), float(t)))
    teardown_distributed(env)
    assert not torch.distributed.is_initialized()


def test_torchrun_env_joins_a_gloo_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = torch.multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_dist_worker, args=(r, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    got = sorted(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert got == [(0, 2, 0, True, "gloo", 3.0), (1, 2, 1, False, "gloo", 3.0)]
