"""`train --distributed`: 2 gloo ranks train the same run as one process with the same global
batch (within float tolerance), CRANE with its RCA rows sharded; rank 0 alone writes the run
directory; a run resumes on a different number of ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cranerec.data import make_synthetic
from cranerec.train import build_config, train_run
from cranerec.train.distributed import close, current_ranks
from cranerec.train.run import extend_run

# 290 batches of interactions a 6-epoch run; batch 250 leaves an uneven last batch to split
FAST = ["train.batch_size=250", "train.progress=false", "eval.ks=[10, 20]", "train.threads=1"]
CRANE = ["model.cl_weight=0", "model.embedding_dim=16", "model.rca_width=8", "model.knn_k=5",
         "model.rca_block_size=32"]  # fmt: skip


def _data():
    return make_synthetic(n_users=120, n_items=80, n_topics=4, mean_interactions=10, seed=3)


def _config(model: str, epochs: int, extra: list[str]):
    return build_config(model=model, overrides=[*FAST, f"train.epochs={epochs}", *extra], seed=1)


def _worker(rank, world, init, run_dir, model, epochs, extra):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    rows = _count_attention_rows()
    try:
        train_run(_config(model, epochs, extra), run_dir, _data(), ranks=current_ranks())
        Path(f"{run_dir}.rows-{rank}.json").write_text(json.dumps(rows))
    finally:
        close()  # the product's exit path


def _count_attention_rows() -> dict[str, int]:
    """Count the query rows the sharded attention is asked for ("full") and those this rank
    computes itself ("local")."""
    import cranerec.nn.sharded as sharded

    rows = {"full": 0, "local": 0}
    kernel, call = sharded.blocked_tanh_attention, sharded.ShardedTanhAttention.__call__

    def local(q, k, v, *args):
        rows["local"] += q.shape[0]
        return kernel(q, k, v, *args)

    def full(self, q, k, v):
        rows["full"] += q.shape[0]
        return call(self, q, k, v)

    sharded.blocked_tanh_attention, sharded.ShardedTanhAttention.__call__ = local, full
    return rows


def _train(tmp_path: Path, name: str, world: int, model="lightgcn", epochs=4, extra=()):
    run_dir = tmp_path / name
    if world == 1:
        train_run(_config(model, epochs, list(extra)), run_dir, _data())
    else:
        init = f"file://{tmp_path}/pg-{name}"
        mp.spawn(_worker, args=(world, init, str(run_dir), model, epochs, list(extra)),
                 nprocs=world)  # fmt: skip
    return _outputs(run_dir)


def _outputs(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    emb = np.load(run_dir / "embeddings.npz")
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").open()]
    return {"results": results, "user": emb["user_emb"], "item": emb["item_emb"], "loss": losses}


def _assert_same_run(a: dict, b: dict) -> None:
    assert a["results"]["epochs_run"] == b["results"]["epochs_run"]
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_allclose(a["user"], b["user"], atol=2e-5)
    np.testing.assert_allclose(a["item"], b["item"], atol=2e-5)
    for split in ("valid", "test"):
        for key, value in a["results"][split].items():
            assert b["results"][split][key] == pytest.approx(value, abs=1e-3), (split, key)


def test_two_ranks_train_lightgcn_as_one_process(tmp_path):
    one = _train(tmp_path, "one", 1)
    two = _train(tmp_path, "two", 2)
    _assert_same_run(one, two)
    # rank 0 alone wrote the log: one line per epoch, not two
    assert len(two["loss"]) == two["results"]["epochs_run"] == 4


def test_two_ranks_train_crane_with_sharded_rca_as_one_process(tmp_path):
    """RCA's rows split over the ranks (and its parameters updated through the gathered rows on
    each epoch's rebuild step) give the same run as one process computing them all."""
    one = _train(tmp_path, "one", 1, model="crane", epochs=3, extra=CRANE)
    two = _train(tmp_path, "two", 2, model="crane", epochs=3, extra=CRANE)
    _assert_same_run(one, two)
    rows = [json.loads((tmp_path / f"two.rows-{r}.json").read_text()) for r in range(2)]
    assert rows[0]["full"] == rows[1]["full"] > 0  # RCA ran on both ranks, over all its rows,
    assert rows[0]["local"] + rows[1]["local"] == rows[0]["full"]  # each computing its half
    assert abs(rows[0]["local"] - rows[1]["local"]) <= rows[0]["full"] // 50
    one_w = torch.load(tmp_path / "one" / "model.pt", weights_only=True)["state_dict"]
    two_w = torch.load(tmp_path / "two" / "model.pt", weights_only=True)["state_dict"]
    rca = [k for k in one_w if ".rca." in k]
    assert rca  # RCA was trained, and the same way
    for key in rca:
        torch.testing.assert_close(two_w[key], one_w[key], atol=2e-5, rtol=1e-4)
    assert not torch.equal(one_w[rca[0]], _initial_rca(rca[0]))


def _initial_rca(key: str) -> torch.Tensor:
    from cranerec.models import get_model_class
    from cranerec.train.trainer import seed_everything

    config = _config("crane", 1, CRANE)
    seed_everything(config.seed)
    return get_model_class("crane")(_data(), config.model).state_dict()[key]


def test_a_two_rank_run_resumes_on_one_process(tmp_path):
    """Two epochs on 2 ranks, then two more on 1 process from the checkpoint: the run of four
    epochs on one process (the checkpoint holds nothing rank-specific)."""
    straight = _train(tmp_path, "straight", 1, epochs=4)
    _train(tmp_path, "split", 2, epochs=2)
    run_dir = tmp_path / "split"
    train_run(extend_run(run_dir, epochs=4), run_dir, _data(), extend=True)
    _assert_same_run(straight, _outputs(run_dir))


def test_torchrun_launches_a_distributed_cli_run(tmp_path):
    """`torchrun --nproc-per-node 2 -m cranerec.cli train --distributed` as the README says;
    without torchrun, --distributed is a one-line error naming the launch command."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "cranerec.cli", "train", "--distributed", "--data", "synthetic", "--seed", "1",
           "--threads", "1", "--out", str(out), "--set", "train.epochs=2",
           "--set", "train.progress=false"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("model lightgcn on") == 1  # rank 0 reports, once
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    alone = subprocess.run(
        [sys.executable, "-m", "cranerec.cli", "train", "--distributed", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert alone.returncode != 0
    assert "torchrun" in alone.stderr and "Traceback" not in alone.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [(["--seeds", "1", "2"], "--distributed trains one run"), ([], "torchrun")],
)
def test_distributed_misuse_is_a_one_line_error(tmp_path, capsys, monkeypatch, flags, says):
    """--seeds with --distributed, or --distributed outside torchrun: exit 2, one line naming
    what to do, nothing written."""
    from cranerec.cli import main

    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "run"
    assert main(["train", "--distributed", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and err.strip().count("\n") == 0
    assert not out.exists()
