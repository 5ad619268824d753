"""The one resumable writer of predictions JSONL files (every stage writes through it).

Guarantees:

* **Flushed per post**: each record is one line, flushed at once (fsync every `fsync_every` lines and
  on close), so a killed run (kill -9, Ctrl-C, a crash) keeps every finished post.
* **Resume**: on open, a last line torn by a crash is cut off and the ids already written are known
  (`done_ids`); `pending()` skips them. Records that carry an `"error"` are dropped and redone when
  `retry_errors` is on (the default: a fixed image or a reachable server is picked up by the rerun),
  or count as done when it is off.
* **One writer per file**: an exclusive `flock` on the sidecar `<output>.lock` refuses a second run on
  the same output; the OS releases it when the process ends in any way, so a killed run never
  leaves a stale lock behind.
* **Never destroys other data**: the output may not be one of the run's input files; an output that
  is a folder, holds bytes that are not UTF-8, or holds no prediction record at all is refused with a
  one-line `DataError` and left untouched. Lines of an existing output that are not prediction
  records are kept as they are. Dropping a torn line or retried errors rewrites the file through a
  temporary file and an atomic rename; the existing output is read line by line (memory stays flat).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .issues import DataError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the writer still works, unlocked
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
STDOUT = "-"  # as the output path: write the records to standard output


@dataclass
class WriteCounts:
    """What one run did to its output file."""

    written: int = 0  # records written by this run
    resumed: int = 0  # posts found finished in the output and skipped
    errors: int = 0  # records written with an "error"
    retried: int = 0  # error records of an earlier run dropped to be redone

    def summary(self) -> str:
        retried = f", {self.retried} earlier errors retried" if self.retried else ""
        return f"{self.written} posts ({self.resumed} already there, {self.errors} with an error{retried})"


def _record_id(line: str) -> tuple[str, bool] | None:
    """(id, has error) of a prediction line, None for a line that is not a prediction record."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("id") is None or not isinstance(data.get("entities", []), list):
        return None
    return str(data["id"]), bool(data.get("error"))


def check_not_an_input(output: Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is one of the inputs (it would be rewritten while being read)."""
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        same = output.resolve() == source.resolve()
        if not same and output.exists() and source.exists():
            same = os.path.samefile(output, source)
        if same:
            raise DataError(f"--output {output} is also an input file; write the output to another file")


class _Lock:
    """An exclusive advisory lock on `<output>.lock`, held from open to close (or until the process ends,
    or the writer is garbage-collected: the lock belongs to the open file)."""

    def __init__(self, output: Path | None):
        self.handle: Any = None
        if output is None or fcntl is None:  # None: standard output, nothing to lock
            return
        self.path = output.with_name(output.name + ".lock")
        while True:
            handle = open(self.path, "a+b")  # noqa: SIM115 - held open while the lock is held
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise DataError(f"another run is writing {output} (it holds {self.path}); wait for it to "
                                "finish or choose another --output") from None
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file that its last owner removed after we opened it
                break
            handle.close()
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)  # while still locked: a waiting opener sees the inode change
            self.handle.close()
            self.handle = None


class PredictionWriter:
    """Append prediction records to a JSONL file, one flushed line per post; locked and resumable.

    `inputs`: the files the run reads (refused as output). `resume=False` starts the file over
    (still only a file that holds predictions). `counts` tells what this run did. A path of `-` writes
    to standard output (every post, nothing to resume).
    """

    def __init__(self, path: str | Path, resume: bool = True, *, inputs: Sequence[str | Path | None] = (),
                 retry_errors: bool = True, fsync_every: int = 50):
        self.path = Path(path)
        self.done_ids: set[str] = set()
        self.counts = WriteCounts()
        self._fsync_every = fsync_every
        self._since_sync = 0
        self._to_stdout = str(path) == STDOUT
        if self._to_stdout:  # a stream: nothing to resume, lock or fsync; records are flushed as written
            self._lock = _Lock(None)
            self._handle = sys.stdout
            return
        if self.path.is_dir():
            raise DataError(f"--output {self.path} is a folder; give a file name")
        check_not_an_input(self.path, inputs)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _Lock(self.path)
        try:
            if self.path.exists():
                self._recover(retry_errors)
                if not resume:  # checked like a resumed file, then emptied
                    self.done_ids.clear()
                    self.counts.retried = 0
                    self._truncate()
            self._handle = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        except BaseException:
            self._lock.release()
            raise

    # ----------------------------------------------------------------- opening an existing output
    def _recover(self, retry_errors: bool) -> None:
        """Read the existing output line by line (memory flat for any size): collect the finished ids,
        refuse a foreign file, and rewrite it when a torn last line or retried errors must go."""
        has_records = has_other = rewrite = False
        torn = b""
        offset = 0
        with open(self.path, "rb") as handle:
            for raw in handle:  # binary lines end at b"\n" only (a record may hold U+2028)
                if not raw.endswith(b"\n"):
                    torn, rewrite = raw, True
                    break
                record = _record_id(self._decode(raw, offset))
                offset += len(raw)
                has_other = has_other or (record is None and bool(raw.strip()))
                if record is None:
                    continue
                has_records = True
                if record[1] and retry_errors:
                    self.counts.retried += 1
                    rewrite = True
                else:
                    self.done_ids.add(record[0])
        if (has_other or torn.strip()) and not has_records and not torn.lstrip().startswith(b"{"):
            raise DataError(f"--output {self.path} holds no prediction record: choose another --output "
                            "(the file is left as it is)")
        if rewrite:
            self._rewrite(retry_errors)

    def _decode(self, raw: bytes, offset: int) -> str:
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"--output {self.path} holds bytes that are not UTF-8 (byte {offset + err.start}): it "
                            "is not a predictions file; choose another --output (the file is left as it is)") from None

    def _rewrite(self, retry_errors: bool) -> None:
        """Copy the complete lines worth keeping to a temporary file, fsync, rename over the output."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(self.path, "rb") as source, open(temporary, "wb") as target:
            for raw in source:
                if not raw.endswith(b"\n"):
                    break
                record = _record_id(raw[:-1].decode("utf-8"))
                if record is None or not (record[1] and retry_errors):
                    target.write(raw)
            target.flush()
            os.fsync(target.fileno())
        os.replace(temporary, self.path)

    def _truncate(self) -> None:
        with open(self.path, "wb") as handle:
            os.fsync(handle.fileno())

    # ----------------------------------------------------------------- writing
    def skip(self, post_id: Any) -> bool:
        """Whether the post is finished already (then it counts as resumed)."""
        done = str(post_id) in self.done_ids
        self.counts.resumed += done
        return done

    def pending(self, items: Iterable[T], key: Callable[[T], Any] = lambda item: item.id) -> Iterator[T]:
        """The items whose id (`key(item)`) is not finished yet; the others count as resumed."""
        return (item for item in items if not self.skip(key(item)))

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.done_ids.add(str(record["id"]))
        self.counts.written += 1
        self.counts.errors += bool(record.get("error"))
        self._since_sync += 1
        if self._since_sync >= self._fsync_every and not self._to_stdout:
            os.fsync(self._handle.fileno())
            self._since_sync = 0

    def write_error(self, post_id: str, error: str) -> None:
        """An error record for a post that could not be processed (or read) at all."""
        self.write({"id": post_id, "tokens": [], "image": None, "entities": [], "error": error})

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        if self._to_stdout:
            self._handle.flush()
        elif not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        self._lock.release()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
