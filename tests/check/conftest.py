"""Fixtures shared by the checker tests."""

from __future__ import annotations

import pytest
from small_model import Small, make_small


@pytest.fixture
def small() -> Small:
    """The small planted CNN (fresh per test: TensorBound counts fetches)."""
    return make_small()
