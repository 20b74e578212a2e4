"""A part used without its optional dependency names the extra to install, in one line."""

import sys

import pytest

from cranerec.utils.extras import MissingExtraError, require


@pytest.mark.parametrize(
    ("module", "extra"), [("optuna", "experiments"), ("matplotlib.figure", "experiments")]
)
def test_a_missing_optional_module_names_its_extra(monkeypatch, module, extra):
    if "." in module:
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, module.split(".")[0], None)  # import raises ImportError
    with pytest.raises(MissingExtraError, match=rf"pip install 'cranerec\[{extra}\]'"):
        require(module, extra, "this part")


def test_the_training_curve_without_matplotlib_costs_no_result(monkeypatch, tmp_path, caplog):
    from cranerec.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "matplotlib.figure", raising=False)
    out = tmp_path / "r"
    args = ["train", "--model", "bpr", "--out", str(out), "--set", "train.epochs=1"]
    assert main([*args, "train.progress=false", "data.synthetic_users=120"]) == 0
    assert (out / "results.json").exists() and not (out / "training_curve.png").exists()
    assert "pip install 'cranerec[experiments]'" in caplog.text


def test_a_search_without_optuna_is_one_line(monkeypatch):
    from cranerec.experiments.search import load_trials

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingExtraError, match="hyper-parameter search needs optuna"):
        load_trials(None, None)
