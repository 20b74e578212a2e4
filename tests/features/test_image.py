"""Image features with a local transformers vision model (a tiny random ResNet built here)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from cranerec.cli import main
from cranerec.data.errors import DataError
from cranerec.features import build_image_features

pytest.importorskip("transformers", reason="image features need the text extra")
pytest.importorskip("PIL", reason="image features need pillow")

COLOURS = {"a": (220, 30, 30), "b": (30, 200, 40), "c": (20, 40, 230), "d": (250, 250, 250)}
WIDTH = 16  # the last of the ResNet's hidden_sizes


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory):
    """A randomly initialised 2-stage ResNet (8 -> 16 channels) and a 32x32 processor."""
    import torch
    import transformers
    from transformers import ResNetConfig, ResNetModel

    processor_cls = (
        getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    )
    path = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(0)
    ResNetModel(
        ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    ).save_pretrained(path)
    processor_cls(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture
def images(tmp_path):
    """img/<id>.png, one colour each, with a gradient so that the images are not flat."""
    from PIL import Image

    (tmp_path / "img").mkdir()
    ramp = np.linspace(0.3, 1.0, 40)[None, :, None]
    for sku, colour in COLOURS.items():
        pixels = (np.ones((30, 40, 3)) * np.array(colour) * ramp).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "img" / f"{sku}.png")
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png")
    return tmp_path


def table(directory, rows, name="items.csv"):
    path = directory / name
    pd.DataFrame(rows, columns=["sku", "path"]).to_csv(path, index=False)
    return path


def good_rows(order="dbca"):
    return [(sku, f"img/{sku}.png") for sku in order]


def build(items, out, model, **kw):
    report = build_image_features(items, "sku", "path", out, model=model, progress=False, **kw)
    return report, np.load(out / "image_feat.npy")


def test_one_row_per_item_of_the_models_width(images, vision_model):
    report, feat = build(
        table(images, good_rows()), images / "out", vision_model, item_ids=np.array(list("abcd"))
    )
    assert feat.shape == (4, WIDTH) and feat.dtype == np.float32
    assert (report.rows, report.width) == (4, WIDTH)
    assert (images / "out" / "item_ids.txt").read_text().split() == list("abcd")


def test_the_same_images_give_the_same_bytes(images, vision_model):
    items = table(images, good_rows())
    build(items, images / "one", vision_model)
    build(items, images / "two", vision_model)
    assert (images / "one" / "image_feat.npy").read_bytes() == (
        images / "two" / "image_feat.npy"
    ).read_bytes()


def test_different_images_give_different_rows(images, vision_model):
    _, feat = build(table(images, good_rows()), images / "out", vision_model)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(feat[i], feat[j], atol=1e-4), (i, j)


def test_rows_follow_the_items_not_the_table_order(images, vision_model):
    ids = np.array(list("cadb"))
    _, feat = build(table(images, good_rows("dbca")), images / "one", vision_model, item_ids=ids)
    _, again = build(
        table(images, good_rows("abcd"), "again.csv"), images / "two", vision_model, item_ids=ids
    )
    assert np.allclose(feat, again, atol=1e-6)
    for i, sku in enumerate(ids):  # each row is its item's image, embedded on its own
        _, alone = build(table(images, good_rows("dbca")), images / f"alone_{sku}", vision_model,
                         item_ids=np.array([sku]))  # fmt: skip
        assert np.allclose(feat[i], alone[0], atol=1e-5)


def test_paths_are_relative_to_image_root(images, vision_model):
    (images / "tables").mkdir()
    items = table(images / "tables", good_rows())
    # by default relative to the table's folder, where they are not: the error says where it looked
    with pytest.raises(DataError, match="none of the 4 item") as e:
        build(items, images / "out", vision_model)
    assert f"paths relative to {images / 'tables'}" in str(e.value) and "--image-root" in str(
        e.value
    )
    _, feat = build(items, images / "out", vision_model, image_root=images)
    _, expected = build(table(images, good_rows()), images / "ref", vision_model)
    assert np.array_equal(feat, expected)


@pytest.mark.parametrize("bad", [("e", "img/nowhere.png"), ("e", "img/bad.png"), ("e", "")])
def test_an_item_without_a_readable_image_is_an_error_naming_it(images, vision_model, capsys, bad):
    items = table(images, [*good_rows("ab"), bad, *good_rows("cd")])
    argv = ["features", "image", str(items), "--id-col", "sku", "--image-col", "path",
            "--model", str(vision_model), "--out", str(images / "out"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cranerec: error: ") and err.count("\n") == 1, err
    assert "1 item(s) have a missing or unreadable image (column 'path'" in err and "['e']" in err
    assert not (images / "out").exists()


def test_a_missing_image_file_is_refused_before_any_image_is_embedded(
    images, vision_model, monkeypatch
):
    # bug: with --on-missing error, every image was embedded before the missing one was reported
    import cranerec.features.image as image_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("images were embedded before the missing file was reported")

    monkeypatch.setattr(image_module, "embed_images", must_not_run)
    items = table(images, [*good_rows("ab"), ("e", "img/nowhere.png"), *good_rows("cd")])
    with pytest.raises(DataError, match=r"1 item\(s\) have a missing or unreadable image"):
        build(items, images / "out", vision_model)
    assert not (images / "out").exists()


def test_on_missing_zero_gives_zero_rows_and_leaves_the_others_alone(images, vision_model, capsys):
    rows = [
        *good_rows("ab"),
        ("gone", "img/nowhere.png"),
        ("broken", "img/bad.png"),
        *good_rows("cd"),
    ]
    argv = ["features", "image", str(table(images, rows)), "--id-col", "sku", "--image-col", "path",
            "--model", str(vision_model), "--out", str(images / "out"), "--on-missing", "zero", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "2 item(s) without content got a row of zeros" in capsys.readouterr().out
    feat = np.load(images / "out" / "image_feat.npy")
    ids = (images / "out" / "item_ids.txt").read_text().split()
    assert ids == ["a", "b", "broken", "c", "d", "gone"]
    assert not feat[[2, 5]].any()
    _, good = build(table(images, good_rows("abcd"), "good.csv"), images / "good", vision_model)
    assert np.array_equal(feat[[0, 1, 3, 4]], good)
    side = json.loads((images / "out" / "image_feat.json").read_text())
    assert sorted(side["missing_items"]) == ["broken", "gone"]


def test_sidecar_names_the_model_and_the_input(images, vision_model):
    items = table(images, good_rows())
    build(items, images / "out", vision_model, normalize="l2")
    side = json.loads((images / "out" / "image_feat.json").read_text())
    assert side["kind"] == "image" and side["model"]["architecture"] == "ResNetModel"
    assert len(side["model"]["sha256"]) == 64
    assert side["input"]["sha256"] == hashlib.sha256(items.read_bytes()).hexdigest()
    assert side["input"]["columns"] == ["path"] and (side["rows"], side["width"]) == (4, WIDTH)
    assert side["normalisation"] == "l2"
    assert np.allclose(
        np.linalg.norm(np.load(images / "out" / "image_feat.npy"), axis=1), 1.0, atol=1e-6
    )


@pytest.mark.parametrize(
    "files, message",
    [(None, "no such directory"), ({"weights.bin": "x"}, "not a transformers vision model directory"),
     ({"config.json": "{}"}, "cannot load it as a vision model")],
)  # fmt: skip
def test_a_model_path_that_is_not_a_vision_model_is_an_error(images, files, message, capsys):
    model = images / "model"
    if files is not None:
        model.mkdir()
        for name, text in files.items():
            (model / name).write_text(text, encoding="utf-8")
    argv = ["features", "image", str(table(images, good_rows())), "--id-col", "sku", "--image-col", "path",
            "--model", str(model), "--out", str(images / "out"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"cranerec: error: --model {model}: {message}") and err.count("\n") == 1
    ), err


def test_a_16_bit_greyscale_image_keeps_its_grey_levels(tmp_path):
    # Pillow's convert("RGB") clips 16-bit pixels at 255: a gradient became two grey levels
    from PIL import Image

    from cranerec.features.image import open_image

    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = np.asarray(open_image(tmp_path / "deep.png"))
    assert rgb.shape == (8, 64, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and len(np.unique(rgb)) == 64
    assert np.all(np.diff(rgb[0, :, 0].astype(int)) > 0)  # the ramp still rises


def test_in_a_log_file_progress_is_lines(images, vision_model, capsys):
    """Where stderr is not a terminal, the embedding says how far it is in lines."""
    items = table(images, good_rows())
    build_image_features(
        items, "sku", "path", images / "out", model=vision_model, progress="lines", batch_size=3
    )
    assert "images (img): 4 / 4 (100%)" in capsys.readouterr().err
