"""torchrun-style sharding: 2 CPU (gloo) processes give exactly the 1-process numbers, no duplicates."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from zs_helpers import TEMPLATES, rows, write_card
from uta_bench.data import synthetic as syn

SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from uta_bench.zeroshot.run import RunConfig, run_zeroshot
cfg = RunConfig(model="uta_tiny", tasks=sys.argv[1].split(","), data_root=sys.argv[2], progress=False,
                pretrained=False, batch_size=2, feature_chunk=2, use_cache=False)
print("RUN", run_zeroshot(cfg))
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one(tmp_path):
    from uta_bench.predictions import load_predictions
    from uta_bench.zeroshot.run import RunConfig, run_zeroshot
    from uta_bench.store import ResultsStore

    syn.make_imagefolder(tmp_path / "data" / "f", ["a", "b", "c"], per_class=3)            # 9 images
    syn.make_wds_retrieval(tmp_path / "data" / "r", n_images=5, maxcount=2)
    cards = [write_card(tmp_path, "f", type="classification", dataset={"path": "f"}, classes="folder",
                        templates=TEMPLATES),
             write_card(tmp_path, "r", type="retrieval", dataset={"path": "r", "formats": ["wds"]},
                        metrics=["image_retrieval_recall@1", "text_retrieval_recall@5"])]
    tasks = ",".join(str(c) for c in cards)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run_zeroshot(RunConfig(model="uta_tiny", tasks=tasks.split(","), data_root=str(tmp_path / "data"),
                                        progress=False, pretrained=False, batch_size=2, feature_chunk=2,
                                        use_cache=False))
    finally:
        torch.set_num_threads(threads)
    port = _port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", SCRIPT, tasks, str(tmp_path / "data")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    run_ids = {ln.split()[1] for out, _ in outs for ln in out.splitlines() if ln.startswith("RUN ")}
    assert len(run_ids) == 1                      # rank 0's run id on both ranks
    sharded = run_ids.pop()
    a, b = rows(single), rows(sharded)
    assert set(a) == set(b) and len(a) == 5      # f: top1, top5, mean_per_class_recall; r: two recalls
    for key in a:
        assert a[key].value == b[key].value and a[key].n == b[key].n
    per_rank = json.loads(b[("f", "top1")].extra_json)["images_encoded_per_rank"]
    assert per_rank == [5, 4]                     # chunks of 2 round-robin: 9 images, each encoded once
    assert json.loads(b[("r", "image_retrieval_recall@1")].extra_json)["images_encoded_per_rank"] == [3, 2]
    store = ResultsStore()
    for task in ("f", "r"):
        p1, p2 = load_predictions(store, single, task), load_predictions(store, sharded, task)
        assert p1.keys() == p2.keys() and all((p1[k] == p2[k]).all() for k in p1)
