"""llms_from_scratch: the code of the LLMs-from-scratch notebooks as an installable package.

Each chapter's final code lives in ``llms_from_scratch.chNN``; ``llms_from_scratch.data`` fetches every file
the book needs (cache, local mirror, network); ``llms_from_scratch.settings`` holds the quick-mode switch.
"""

__version__ = "0.1.0"
