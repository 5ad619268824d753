"""Files by URI: posts read from, and prediction folders mirrored to, any filesystem pyarrow opens.

`s3://bucket/posts.jsonl`, `gs://...`, `hdfs://...` and `file:///...` through pyarrow's own filesystems
(the ones Ray Data uses); any other scheme through fsspec when an implementation is installed
(`memory://`, `abfs://` with adlfs, ...). Credentials come only from the environment those libraries
read (S3: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, an instance role; GCS:
`GOOGLE_APPLICATION_CREDENTIALS` or the metadata server). A URI that carries a secret
(`s3://KEY:SECRET@bucket/...`, `?secret_key=...`) is refused, so that no secret reaches a log line, an
error message or a manifest.

Outputs are written locally first and copied up (`MirroredFolder`): the resumable writer needs a local
file it can lock and append to; a `file://` URI is that local folder itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .issues import DataError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: `C:\...` is a path
_SECRET_NAME = re.compile(r"key|secret|token|password|credential|signature", re.IGNORECASE)
ENVIRONMENT_HINT = ("set credentials in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE "
                    "for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://)")


def is_uri(value: object) -> bool:
    """Whether `value` names a file by URI (`scheme://...`) rather than a local path."""
    return isinstance(value, str) and bool(_SCHEME.match(value))


def check_uri(uri: str) -> str:
    """`uri`, unless it carries credentials (refused: they would be logged and stored with the output)."""
    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        raise DataError(f"{parts.scheme}://... carries credentials before '@'; {ENVIRONMENT_HINT}")
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_NAME.search(name):
            raise DataError(f"{parts.scheme}://... carries a {name!r} parameter; {ENVIRONMENT_HINT}")
    return uri


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) for a URI: pyarrow's own for the schemes it knows, else fsspec's."""
    import pyarrow
    import pyarrow.fs as pafs

    check_uri(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, ValueError):
        pass  # a scheme pyarrow has no filesystem for
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as err:
        raise DataError(f"{uri}: no filesystem for this scheme ({err}); install the fsspec package for it "
                        "(s3fs, gcsfs, adlfs, ...)") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def read_uri(uri: str) -> bytes:
    """The bytes of the file a URI names (compressed files as they are); a `DataError` when unreadable."""
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path, compression=None) as stream:
            return stream.read()
    except (OSError, ValueError) as err:
        raise DataError(f"{uri}: cannot be read ({type(err).__name__}: {err})") from None


def local_path(uri: str) -> Path | None:
    """The local path of a `file://` URI (pyarrow's local filesystem); None for any other filesystem."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    return Path(path) if isinstance(fs, pafs.LocalFileSystem) else None


@dataclass
class MirroredFolder:
    """A local folder whose files are copied to a folder on a remote filesystem, one file at a time."""

    uri: str
    local: Path
    fs: Any
    base: str

    @classmethod
    def open(cls, uri: str, staging: str | Path | None = None) -> MirroredFolder:
        """The mirror of `uri` in `staging` (default: a folder of the user cache named after the URI)."""
        fs, base = filesystem(uri)
        if staging is None:
            from ..converted import cache_root

            staging = cache_root().parent / "staging" / hashlib.sha256(uri.encode()).hexdigest()[:16]
        local = Path(staging)
        local.mkdir(parents=True, exist_ok=True)
        return cls(uri, local, fs, base.rstrip("/"))

    def remote_names(self) -> list[str]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        return sorted(info.base_name for info in infos if info.type == pafs.FileType.File)

    def pull(self) -> list[str]:
        """Copy every file of the remote folder over the local one (the remote is what a rerun resumes)."""
        names = self.remote_names()
        for name in names:
            with self.fs.open_input_stream(f"{self.base}/{name}", compression=None) as stream:
                (self.local / name).write_bytes(stream.read())
        return names

    def push(self, name: str) -> None:
        """Copy the local file `name` up (the whole file: shards are small and written once)."""
        self.fs.create_dir(self.base, recursive=True)
        with self.fs.open_output_stream(f"{self.base}/{name}", compression=None) as stream:
            stream.write((self.local / name).read_bytes())

    def delete(self, name: str) -> None:
        self.fs.delete_file(f"{self.base}/{name}")
