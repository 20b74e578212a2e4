"""Adding a model is writing one file: discovery registers it, the contract suite trains it,
`cranerec models` lists it and `cranerec train` trains it; nothing else lists models."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cranerec
from cranerec.models import MODELS, get_model_class
from cranerec.models.registry import NOT_MODELS

ONE_FILE_MODEL = '''
"""Dot: matrix factorisation in one file, the way a user adds a model."""

from dataclasses import dataclass

from cranerec.models.base import Batch, Model, xavier_embedding
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss, l2_batch


@dataclass
class DotConfig:
    embedding_dim: int = 16
    reg_weight: float = 1e-4


@register
class Dot(Model):
    """Inner products of two embedding tables, trained with BPR."""

    name = "dot_plugin"
    Config = DotConfig

    def __init__(self, dataset, config):
        super().__init__(dataset, config)
        self.user_table = xavier_embedding(self.n_users, config.embedding_dim)
        self.item_table = xavier_embedding(self.n_items, config.embedding_dim)

    def forward(self):
        return self.user_table, self.item_table

    def loss(self, batch: Batch):
        u, i, j = (self.user_table[batch.user_idx], self.item_table[batch.pos_idx],
                   self.item_table[batch.neg_idx])
        bpr = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        reg = self.config.reg_weight * l2_batch(u, i, j)
        return bpr + reg, {"bpr": bpr.detach(), "reg": reg.detach()}
'''


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("user_models")
    (d / "dot_plugin.py").write_text(ONE_FILE_MODEL)
    return d


def run(args: list[str], model_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRANEREC_MODEL_PATH": str(model_dir)}
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_every_model_file_of_the_package_is_registered():
    package = Path(cranerec.__file__).parent / "models"
    files = {p.stem for p in package.glob("*.py")} - {"__init__"} - NOT_MODELS
    modules = {cls.__module__.rsplit(".", 1)[-1] for cls in MODELS.values()}
    assert files == modules


def test_a_model_file_is_listed_trained_and_passes_the_contract_suite(model_dir, tmp_path):
    listed = run([sys.executable, "-m", "cranerec.cli", "models"], model_dir, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "dot_plugin  (Dot; batches: triples)" in listed.stdout
    trained = run(
        [sys.executable, "-m", "cranerec.cli", "train", "--model", "dot_plugin", "--out",
         str(tmp_path / "r"), "--set", "train.epochs=2", "train.progress=false",
         "data.synthetic_users=120", "data.synthetic_items=80"],
        model_dir, tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "r" / "results.json").exists()
    suite = Path(__file__).parent / "test_contract.py"
    contract = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite), "-k",
         "dot_plugin"],
        model_dir, Path(__file__).parents[2],
    )  # fmt: skip
    assert contract.returncode == 0, contract.stdout[-2000:]
    assert " passed" in contract.stdout and "dot_plugin" not in contract.stdout.split("passed")[0]


def test_two_models_with_one_name_is_an_error():
    from cranerec.models.registry import register

    existing = get_model_class("bpr")
    clash = type("Other", (existing,), {"name": "bpr"})
    with pytest.raises(ValueError, match="already registered by BPR"):
        register(clash)
