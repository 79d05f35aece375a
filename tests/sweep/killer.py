"""A model factory that kills the process calling it: a worker that dies mid-sweep."""

import os


def build() -> None:
    os._exit(3)
