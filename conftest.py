"""Test-wide settings: quick mode on, so notebooks run by nbval and the tests use small data and models.

Kernels started by nbval inherit this process's environment, so setting the variables here reaches them.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("LLMS_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")  # plots render to files, never to a window

# tests import small helpers that sit beside them (notebook_defs, local servers)
sys.path.insert(0, str(Path(__file__).parent / "tests"))
