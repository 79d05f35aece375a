"""A model factory that records being called: a spec must not reach it without opt-in."""

from __future__ import annotations

from torch import nn

CALLS: list[str] = []


def make() -> nn.Module:
    """Record the call, then build the small test CNN."""
    CALLS.append("make")
    from tests.models.factories import small_cnn

    return small_cnn()
