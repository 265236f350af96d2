"""Task registry: a name (or a task folder's path) to a `Task`.

A factory is a callable `factory(**kwargs) -> Task`, or a "package.module:attr" string imported on
first use, so that listing tasks never imports torch. Task modules may call `register_task` at import;
the built-in names below are registered here so `get_task` finds them without importing them first.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path

from aira.agents.base import Task
from aira.errors import UsageError

_TASKS: dict[str, Callable[..., Task] | str] = {}


def register_task(name: str, factory: Callable[..., Task] | str) -> None:
    """Register (or replace) a task factory under `name`."""
    if not name or "/" in name:
        raise UsageError(f"bad task name {name!r}: use a plain name such as 'synthetic'")
    _TASKS[name] = factory


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def _resolve(factory: Callable[..., Task] | str) -> Callable[..., Task]:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_task(name: str, **kwargs) -> Task:
    """The registered task `name`, or the task folder at path `name` (a folder with task.json)."""
    path = Path(name).expanduser()
    if name not in _TASKS and (path.is_dir() or "/" in name or name.startswith(".")):
        from aira.tasks.folder import FolderTask

        return FolderTask(path, **kwargs)
    if name not in _TASKS:
        raise UsageError(f"unknown task {name!r}: use one of {', '.join(list_tasks())} or a task folder path")
    factory = _resolve(_TASKS[name])
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        raise UsageError(f"bad options for task {name!r}: {e}") from None
    except ValueError:  # a builtin without a signature: let the call itself complain
        pass
    return factory(**_check_types(name, factory, kwargs))


def _simple_types(hint) -> tuple[type, ...] | None:
    """The plain types a hint allows (int, float, bool, str, None), or None for any other hint."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not args or not all(a in (int, float, bool, str, type(None)) for a in args):
        return None
    return tuple(args) + ((int,) if float in args else ())  # JSON's 2 is a fine float


def _check_types(name: str, factory: Callable[..., Task], kwargs: dict) -> dict:
    """Refuse an option of the wrong type (`--task-arg noise=abc`) before the task is built; a number given
    for a text option is read as its text."""
    try:
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:  # hints that do not resolve: the task checks its own options
        return kwargs
    out = dict(kwargs)
    for key, value in kwargs.items():
        allowed = _simple_types(hints.get(key))
        if allowed is None or (isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)):
            continue
        if str in allowed and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = str(value)
            continue
        words = {float: "a number", int: "an integer", bool: "true or false", str: "text", type(None): "null"}
        want = " or ".join(dict.fromkeys(words[float if float in allowed and t is int else t] for t in allowed))
        raise UsageError(f"bad option {key}={value!r} for task {name!r}: expected {want}")
    return out


register_task("synthetic", "aira.tasks.synthetic:SyntheticPatternTask")
register_task("compose", "aira.tasks.compose:ComposeTask")
register_task("autoresearch", "aira.tasks.autoresearch:AutoresearchTask")
for _lra in ("listops", "text", "retrieval", "image", "pathfinder"):
    register_task(f"lra-{_lra}", f"aira.tasks.lra.task:lra_{_lra}")
