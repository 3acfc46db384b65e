"""File handling that several layers share, with no dependency on the rest of the package.

* :func:`atomic_path` (:mod:`.atomic`): the one way this package writes a file, so that a crash never leaves a
  half-written one where a good one was; :func:`remove_stale_temporaries` clears the temporary files of
  processes that were killed before they could;
* :func:`open_gguf` and :func:`gguf_field` (:mod:`.gguf`): a cached reader of GGUF files, which hold a model's
  weights and its tokenizer side by side.
"""

from .atomic import TEMP_SUFFIX, atomic_path, remove_stale_temporaries, temporary_prefix
from .gguf import gguf_field, open_gguf

__all__ = ["TEMP_SUFFIX", "atomic_path", "gguf_field", "open_gguf", "remove_stale_temporaries", "temporary_prefix"]
