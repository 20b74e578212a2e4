"""Loading a pickled-matrix directory (trnMat/valMat/tstMat.pkl) and refusing unsafe pickles."""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from cranerec.data import (
    DataConfig,
    DataError,
    DataWarning,
    detect_format,
    load_dataset,
    load_matrices,
)

from .builders import N_ITEMS, N_USERS, TOY_SPLITS, coo, pairs_of, write_matrices

pytestmark = pytest.mark.filterwarnings("error::cranerec.data.DataWarning")


def test_loads_splits_and_features(matrices_dir):
    ds = load_dataset(path=str(matrices_dir))
    assert detect_format(matrices_dir) == "matrices"
    assert ds.name == "mats"
    assert (ds.n_users, ds.n_items) == (N_USERS, N_ITEMS)
    for split, pairs in TOY_SPLITS.items():
        assert pairs_of(ds.split(split)) == set(pairs)
    assert ds.modalities == ["audio"]
    assert ds.features["audio"].dtype == np.float32
    np.testing.assert_array_equal(ds.features["audio"], np.load(matrices_dir / "audio_feat.npy"))


def test_csr_pickles_are_accepted_and_values_binarised(matrices_dir):
    users, items = zip(*TOY_SPLITS["train"], strict=True)
    ratings = np.arange(1.0, len(users) + 1)  # explicit ratings 1..12
    m = sp.csr_matrix((ratings, (users, items)), shape=(N_USERS, N_ITEMS))
    (matrices_dir / "trnMat.pkl").write_bytes(pickle.dumps(m))
    ds = load_matrices(DataConfig(path=str(matrices_dir)))
    assert set(ds.train.data.tolist()) == {1.0}
    assert pairs_of(ds.train) == set(TOY_SPLITS["train"])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_binary_pickle_protocol_loads(tmp_path, protocol):
    # Protocol 5 is pickle.HIGHEST_PROTOCOL (numpy pickles arrays via _frombuffer there);
    # protocol 2 pickles bytes via _codecs.encode.
    d = tmp_path / "m"
    d.mkdir()
    for split, fname in (("train", "trnMat.pkl"), ("valid", "valMat.pkl"), ("test", "tstMat.pkl")):
        (d / fname).write_bytes(pickle.dumps(coo(TOY_SPLITS[split]), protocol=protocol))
    ds = load_matrices(DataConfig(path=str(d)))
    for split, pairs in TOY_SPLITS.items():
        assert pairs_of(ds.split(split)) == set(pairs)


# ---------------------------------------------------------------------------- unsafe pickles


class ShellPayload:
    """Unpickling this runs a shell command (os.system) that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {shlex.quote(str(self.marker))}",))


class TouchPayload:
    """Unpickling this calls Path.touch(marker), no shell involved."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class Harmless:
    """A custom class pickled by reference: not a sparse matrix, so it must be refused."""

    def __init__(self) -> None:
        self.shape = (N_USERS, N_ITEMS)


def test_payload_really_runs_code_under_plain_pickle(tmp_path):
    # Sanity check of the test payload itself: a plain pickle.loads executes it.
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(ShellPayload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("payload", [ShellPayload, TouchPayload])
@pytest.mark.parametrize("fname", ["trnMat.pkl", "tstMat.pkl"])
def test_code_executing_pickle_is_refused_and_not_run(matrices_dir, tmp_path, payload, fname):
    marker = tmp_path / "marker"
    (matrices_dir / fname).write_bytes(pickle.dumps(payload(marker), protocol=2))
    with pytest.raises(DataError, match="refused to unpickle") as e:
        load_dataset(path=str(matrices_dir))
    assert fname in str(e.value)
    assert not marker.exists()


def test_custom_class_is_refused(matrices_dir):
    (matrices_dir / "valMat.pkl").write_bytes(pickle.dumps(Harmless()))
    with pytest.raises(DataError, match=r"valMat\.pkl: refused to unpickle .*Harmless"):
        load_matrices(DataConfig(path=str(matrices_dir)))


def test_pickled_dense_array_is_not_a_sparse_matrix(matrices_dir):
    (matrices_dir / "trnMat.pkl").write_bytes(pickle.dumps(np.ones((N_USERS, N_ITEMS))))
    with pytest.raises(DataError, match=r"trnMat\.pkl: expected a scipy sparse matrix, found nd"):
        load_matrices(DataConfig(path=str(matrices_dir)))


def test_truncated_pickle_is_a_data_error(matrices_dir):
    path = matrices_dir / "tstMat.pkl"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"tstMat\.pkl: not a readable pickle"):
        load_matrices(DataConfig(path=str(matrices_dir)))


def test_split_matrices_of_different_shapes_are_refused(tmp_path):
    d = write_matrices(tmp_path / "m")
    small = sp.coo_matrix(([1.0], ([0], [0])), shape=(N_USERS, N_ITEMS - 1))
    (d / "valMat.pkl").write_bytes(pickle.dumps(small))
    with pytest.raises(DataError, match="different shapes"):
        load_matrices(DataConfig(path=str(d)))


# ---------------------------------------------------------------------------- a real release


def test_shared_tiktok_release_loads():
    path = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "tiktok"
    if not (path / "trnMat.pkl").is_file():
        pytest.skip(f"the TikTok release is not at {path}")
    with pytest.warns(DataWarning):  # its valid/test splits hold a few cold users and items
        ds = load_dataset(path=str(path))
    assert ds.n_users > 1000 and ds.n_items > 1000
    assert all(ds.split(s).nnz > 0 for s in ("train", "valid", "test"))
    assert {"image", "audio"} <= set(ds.modalities)
    for feat in ds.features.values():
        assert feat.shape[0] == ds.n_items and feat.dtype == np.float32
