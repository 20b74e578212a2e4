"""Small trained runs shared by the serving tests (trained once per session, in a tmp dir)."""

from __future__ import annotations

import faiss
import pytest

from cranerec.train import build_config, train_run

FAST = [
    "train.epochs=3",
    "train.batch_size=512",
    "train.progress=false",
    "train.threads=1",
    "eval.ks=[10, 20]",
]
#: Per model: settings that keep the tiny runs fast.
EXTRA = {
    "crane": ["model.rca_rounds=1", "model.rca_width=16", "model.embedding_dim=16"],
    "freedom": ["model.embedding_dim=16"],
    "vbpr": ["model.embedding_dim=16"],
    "lightgcn": ["model.embedding_dim=16"],
    "lattice": ["model.embedding_dim=16", "model.projection_dim=16"],
    "crane_official": ["model.embedding_dim=16"],
    "bm3": ["model.embedding_dim=16"],
    "mmgcn": ["model.embedding_dim=16", "model.latent_dim=32"],
    "camgr": ["model.embedding_dim=16"],
}


@pytest.fixture(scope="session", autouse=True)
def _one_faiss_thread():
    faiss.omp_set_num_threads(1)


@pytest.fixture(scope="session")
def make_run(tiny_data, tmp_path_factory):
    """``make_run(model, seed=1)`` -> the directory of a small run of ``model`` on ``tiny_data``."""
    runs = {}

    def make(model: str = "lightgcn", seed: int = 1):
        if (model, seed) not in runs:
            config = build_config(model=model, overrides=FAST + EXTRA.get(model, []), seed=seed)
            run_dir = tmp_path_factory.mktemp(f"run-{model}-{seed}")
            train_run(config, run_dir, tiny_data)
            runs[model, seed] = run_dir
        return runs[model, seed]

    return make
