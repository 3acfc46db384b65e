"""Old import path of :mod:`llms_from_scratch.training.pretrain`, kept for one release; import from there instead.

This name is the same module object as the new one (not a copy), so patching either patches both.
"""

import sys

from .training import pretrain as _moved

sys.modules[__name__] = _moved
