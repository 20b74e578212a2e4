"""Fixtures of the experiment tests."""

from __future__ import annotations

import pytest

from .specs import tiny_spec


@pytest.fixture
def spec_dict():
    return tiny_spec()
