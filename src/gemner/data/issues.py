"""Problems found in input data: where they are, what was done about them.

Readers never raise a bare exception on bad data. Each problem becomes a `DataIssue` naming the file
and line (or the post id) and the action taken (`dropped post`, `repaired`, ...). In strict mode the
first issue is raised as a `DataError` instead; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataIssue:
    message: str
    action: str
    path: str | None = None
    line: int | None = None
    post_id: str | None = None

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        if self.post_id is not None:
            where += f" (post {self.post_id})"
        return f"{where}: {self.message} -> {self.action}"


class DataError(ValueError):
    """Bad input that the caller asked not to repair (strict mode), or that cannot be read at all."""

    def __init__(self, issue: DataIssue | str):
        self.issue = issue if isinstance(issue, DataIssue) else None
        super().__init__(str(issue))


@dataclass
class IssueLog:
    """Collects issues; raises on the first one when `strict`."""

    strict: bool = False
    issues: list[DataIssue] = field(default_factory=list)

    def report(
        self,
        message: str,
        action: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        post_id: str | None = None,
    ) -> None:
        issue = DataIssue(message, action, str(path) if path is not None else None, line, post_id)
        if self.strict:
            raise DataError(issue)
        self.issues.append(issue)

    def summary(self) -> str:
        counts = Counter(issue.action for issue in self.issues)
        return ", ".join(f"{n} {action}" for action, n in counts.most_common()) or "no issues"

    def __len__(self) -> int:
        return len(self.issues)

    def __bool__(self) -> bool:
        # A log is an object to report into, not a collection: an empty one must not read as "no log"
        # (`log or IssueLog()` would otherwise silently drop the caller's log).
        return True
