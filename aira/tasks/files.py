"""Shared checks for tasks whose proposal is one editable file: `{"files": {name: code}}`."""

from __future__ import annotations

import ast
from typing import Any

from aira.errors import UsageError
from aira.userfiles import read_text


def parse_single_file(proposal: Any, editable: str) -> tuple[ast.Module | None, str | None]:
    """(syntax tree, None) for a proposal that edits exactly `editable` with parseable Python, else
    (None, one-line error for the debug operator)."""
    files = proposal.get("files") if isinstance(proposal, dict) else None
    if not isinstance(files, dict):
        return None, f"the proposal must be {{'files': {{'{editable}': code}}}}"
    if other := sorted(set(files) - {editable}):
        return None, f"only {editable} may be edited; {', '.join(other)} is frozen or not part of the task"
    code = files.get(editable)
    if not isinstance(code, str) or not code.strip():
        return None, f"{editable} is missing or empty"
    try:
        tree = ast.parse(code, editable)
        compile(tree, editable, "exec")  # also catches what only the compiler sees ('return' outside a def)
        return tree, None
    except SyntaxError as e:
        return None, f"{editable} does not parse: line {e.lineno}: {e.msg}"


def proposal_from_file(task, file: str | None, editable: str) -> Any:
    """`aira design eval`'s proposal: the user's --file as the editable file, or the task's baseline;
    a missing file or one the task rejects is a UsageError (one line, exit 2)."""
    if file:
        proposal = {"files": {editable: read_text(file, "--file")}}
    else:
        proposal = task.reference()
    if err := task.validate(proposal):
        raise UsageError(f"{file or editable}: {err}")
    return proposal
