"""A default torch thread count that does not oversubscribe a shared machine.

torch starts one intra-op thread per core it sees; on a machine shared by several jobs
that ran 4-20x slower than one thread (issue 18). Unless the user chose (``OMP_NUM_THREADS``
or ``CIRCUITDSL_THREADS``), commands that run models use ``min(cores available, 4)``.
"""

from __future__ import annotations

import os

MAX_DEFAULT_THREADS = 4


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Set and return torch's intra-op threads (see the module doc)."""
    import torch

    chosen = os.environ.get("CIRCUITDSL_THREADS")
    if chosen and chosen.isdigit() and int(chosen) > 0:
        n = int(chosen)
    elif os.environ.get("OMP_NUM_THREADS"):
        return int(torch.get_num_threads())  # the user's choice, which torch already read
    else:
        n = min(cores(), MAX_DEFAULT_THREADS)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n
