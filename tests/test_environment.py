"""The development/CI environment is what the README promises."""

import os

import pytest
import torch


def test_torch_is_the_cpu_build():
    """constraints.txt pins the CPU wheel; a CUDA build means the install pulled gigabytes."""
    if os.environ.get("CRANEREC_GPU_TORCH"):
        pytest.skip("CRANEREC_GPU_TORCH is set: a GPU build of torch is expected here")
    assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build"


def test_package_imports_have_no_side_effects(capsys):
    import cranerec.cli  # noqa: F401
    import cranerec.models  # noqa: F401

    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
