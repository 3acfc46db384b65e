"""A fixture for tests of tiny models: run PyTorch on one thread.

On tiny tensors, handing work between threads costs more than the arithmetic, and on a busy machine a waiting thread
can stall a two-thread matmul for milliseconds; one thread keeps such tests fast and their timing steady.
Use it in a test module with ``pytestmark = pytest.mark.usefixtures("one_thread")`` after importing it.
"""

from __future__ import annotations

import contextlib

import pytest
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


@pytest.fixture(scope="module")
def one_thread():
    with single_thread():
        yield
