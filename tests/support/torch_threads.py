"""Run PyTorch on one thread for tests of tiny models.

On tiny tensors, handing work between threads costs more than the arithmetic, and on a busy machine a waiting thread
can stall a two-thread matmul for milliseconds; one thread keeps such tests fast and their timing steady.
A test module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")`` (the fixture is in
``tests/conftest.py``); code that needs it for one block uses :func:`single_thread`.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def single_thread():
    """Run the block on one PyTorch thread, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
