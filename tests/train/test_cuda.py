"""The CUDA path: every model, the RCA kernel, the evaluator and a whole run on a GPU agree with
the CPU. Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
``pytest tests/train/test_cuda.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cranerec.config import from_dict
from cranerec.data import load_dataset
from cranerec.eval.evaluator import Evaluator
from cranerec.models import MODELS
from cranerec.nn import blocked_tanh_attention
from cranerec.serve import Recommender
from cranerec.train import build_config, train_run
from cranerec.train.sampler import InteractionSampler

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device (this torch build or machine has none)"
)
CUDA = torch.device("cuda")


def _pair(name, data):
    """The same freshly initialised model on the CPU and (a copy) on the GPU."""
    torch.manual_seed(0)
    cls = MODELS[name]
    cpu = cls(data, from_dict(cls.Config, {}))
    gpu = cls(data, from_dict(cls.Config, {}))
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.to(CUDA)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_embeddings_on_cuda_equal_the_cpu(name, tiny_data):
    cpu, gpu = _pair(name, tiny_data)
    for a, b in zip(cpu.export_embeddings(), gpu.export_embeddings(), strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_step_on_cuda_keeps_everything_on_the_gpu(name, tiny_data):
    _, model = _pair(name, tiny_data)
    if model.batch_kind == "none":
        pytest.skip(f"{name} is not trained")
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    sampler = InteractionSampler(tiny_data.train)
    batch = next(sampler.epoch(model.batch_kind, 64, np.random.default_rng(0), CUDA))
    loss, parts = model.loss(batch)
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.device.type == "cuda", pname
        assert torch.isfinite(p.grad).all(), pname


def test_blocked_attention_on_cuda_equals_the_cpu_forward_and_backward():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(300, 16, generator=g, dtype=torch.float64) for _ in range(3))
    w = torch.randn(300, 16, generator=g, dtype=torch.float64)
    grads = []
    for device in ("cpu", "cuda"):
        ins = [t.detach().clone().to(device).requires_grad_() for t in (q, k, v)]
        out = blocked_tanh_attention(*ins, 64)
        (out * w.to(device)).sum().backward()
        grads.append([out.detach().cpu()] + [t.grad.cpu() for t in ins])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a)
    small = [torch.randn(5, 3, dtype=torch.float64, device=CUDA, requires_grad=True) for _ in "qkv"]
    assert torch.autograd.gradcheck(lambda a, b, c: blocked_tanh_attention(a, b, c, 2), small)


def test_evaluator_on_cuda_gives_the_cpu_metrics(tiny_data):
    g = torch.Generator().manual_seed(1)
    users = torch.randn(tiny_data.n_users, 8, generator=g)
    items = torch.randn(tiny_data.n_items, 8, generator=g)
    ev = Evaluator(tiny_data)
    for split in ("valid", "test"):
        cpu = ev.evaluate(users, items, split)
        gpu = ev.evaluate(users.to(CUDA), items.to(CUDA), split)
        assert gpu.metrics == pytest.approx(cpu.metrics, abs=1e-12)


class _StopAfter:
    """An epoch callback that interrupts training after epoch ``n`` (as a kill would) and
    counts the epochs it saw."""

    def __init__(self, n: int | None = None) -> None:
        self.n, self.seen = n, 0

    def __call__(self, record: dict) -> None:
        self.seen += 1
        if self.n is not None and record["epoch"] >= self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["lightgcn", "crane"])
def test_a_run_trained_on_cuda_resumes_and_serves_on_the_cpu(name, tmp_path):
    cfg = build_config(
        model=name, data="synthetic",
        overrides=["train.epochs=3", "train.device=cuda", "train.progress=false"],
    )  # fmt: skip
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, run, callbacks=[_StopAfter(1)])
    rest = _StopAfter()
    results = train_run(cfg, run, callbacks=[rest])  # resumes from the checkpoint on the GPU
    assert results["device"] == "cuda" and results["epochs_run"] == 3 and rest.seen == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3

    rec = Recommender.load(run)  # a CPU process serves it
    assert len(rec.recommend(str(rec.user_ids[0]), k=5)) == 5
    if MODELS[name].has_content_path():  # rebuilt on the CPU, it must reproduce the GPU's items
        data = load_dataset(path="synthetic")
        rec.add_items({m: f[:2] for m, f in data.features.items()}, ["new0", "new1"])
        assert rec.n_items == data.n_items + 2


@pytest.mark.parametrize(("first", "then"), [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_run_moves_between_cpu_and_gpu_at_a_checkpoint(first, then, tmp_path):
    def cfg(device):
        return build_config(
            model="crane", data="synthetic",
            overrides=["train.epochs=3", f"train.device={device}", "train.progress=false"],
        )  # fmt: skip

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg(first), run, callbacks=[_StopAfter(1)])
    rest = _StopAfter()
    results = train_run(cfg(then), run, callbacks=[rest])
    assert results["device"] == then and results["epochs_run"] == 3 and rest.seen == 2
