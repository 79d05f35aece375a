"""Fixtures for `circ inputs` / `circ suggest`: the planted CNN, saved and loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# `circ ... planted_nets:planted_cnn` imports the factory by module name.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from planted_nets import FACTORY, save_weights  # noqa: E402


@pytest.fixture(scope="session")
def planted_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted CNN's state dict on disk."""
    return save_weights(tmp_path_factory.mktemp("planted") / "planted.pt")


@pytest.fixture(scope="session")
def moved_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, with relu2:5's excitation moved from the top to the bottom."""
    return save_weights(tmp_path_factory.mktemp("moved") / "moved.pt", moved=True)


@pytest.fixture(scope="session")
def planted_adapter(planted_weights: Path):  # type: ignore[no-untyped-def]
    """The adapter `circ` builds for the planted CNN."""
    from circuitdsl.models.registry import load_model

    return load_model(FACTORY, planted_weights)
