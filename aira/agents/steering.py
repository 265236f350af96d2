"""Steering a live run through files in its folder: a guidance note and control requests.

    RUN/guidance.md         the researcher's note; LLM operators read the version in force at their next step
    RUN/control/*.json      one request a file: pause, continue, stop (optionally killing in-flight jobs),
                            add-budget; written atomically, applied once, in name (= time) order, then removed

Files, so that the CLI (`aira runs pause|continue|stop|add-budget|guide`), the dashboard and a text editor
all steer the same way, and nothing needs a socket into the orchestrator. One file per request (not one
shared control file) so two writers never race on a read-modify-write. The orchestrator polls both
between jobs (`Steering.poll`), journals each applied request and each new guidance version
(`Journal.add_steering`) and says so on the console.

A guidance version is the note's text as one read saw it: numbered 1, 2, ... per run, with its SHA-256;
an empty or missing file is version 0, no guidance. A note over `MAX_GUIDANCE_BYTES` is refused (the CLI
and the dashboard refuse it before writing; the orchestrator keeps the version in force and warns once).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aira.errors import UsageError
from aira.fileio import write_atomic
from aira.agents.base import Guidance

GUIDANCE_FILE = "guidance.md"
CONTROL_DIR = "control"
MAX_GUIDANCE_BYTES = 16_384  # a note, not a document: it goes into every LLM prompt
ACTIONS = ("pause", "continue", "stop", "add-budget")


@dataclass(kw_only=True)
class Request:
    action: str  # one of ACTIONS
    id: str = ""
    budget: str = ""  # add-budget: what to add, in --budget syntax (10m, 20evals, $5)
    kill: bool = False  # stop: kill in-flight jobs instead of waiting for them
    source: str = "cli"  # cli | dashboard | editor
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


def check_request(action: str, budget: str = "") -> None:
    """UsageError (one line) for an unknown action or an add-budget that does not parse."""
    from aira.agents.budget import Budget

    if action not in ACTIONS:
        raise UsageError(f"unknown control action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "add-budget":
        more = Budget.parse(budget)
        if more.wall_s is None and more.evals is None and more.usd is None:
            raise UsageError(f"add-budget {budget!r} adds nothing: give a time, evaluations or dollars, e.g. 10m")


def write_request(run_dir: str | Path, request: Request) -> Path:
    """Queue a control request for the run's orchestrator; returns its file."""
    check_request(request.action, request.budget)
    d = Path(run_dir) / CONTROL_DIR
    d.mkdir(parents=True, exist_ok=True)
    request.id = request.id or f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    path = d / f"{request.id}.json"
    write_atomic(path, json.dumps(request.to_dict()))
    return path


def check_guidance(text: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_GUIDANCE_BYTES:
        raise UsageError(f"guidance of {size} bytes is over the {MAX_GUIDANCE_BYTES}-byte limit: it goes into every "
                         f"LLM prompt; shorten it")


def write_guidance(run_dir: str | Path, text: str) -> Path:
    """Replace the run's guidance note (atomically: the orchestrator never reads half of it)."""
    check_guidance(text)
    path = Path(run_dir) / GUIDANCE_FILE
    write_atomic(path, text)
    return path


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Steering:
    """The orchestrator's side: reads new guidance versions and pending requests. `poll()` returns
    (a new Guidance or None, a refusal message or None, requests in order)."""

    def __init__(self, run_dir: Path, *, current: Guidance = Guidance(), applied: set[str] | None = None):
        self.run_dir = Path(run_dir)
        self.current = current
        self.applied = set(applied or ())  # request ids already journaled (a crash between journal and unlink)
        self._paths: dict[str, Path] = {}  # the file each pending request was read from
        self._stamp: tuple | None = None
        self._refused_sha = ""

    def _read_guidance(self) -> tuple[Guidance | None, str | None]:
        path = self.run_dir / GUIDANCE_FILE
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return None, None
        self._stamp = stamp
        try:
            raw = path.read_bytes() if stamp else b""
        except OSError:
            return None, None
        text = raw.decode("utf-8", "replace").strip()
        sha = text_hash(text) if text else ""
        if sha == self.current.sha256:
            return None, None
        if len(raw) > MAX_GUIDANCE_BYTES:
            if sha == self._refused_sha:
                return None, None
            self._refused_sha = sha
            return None, (f"{path} is {len(raw)} bytes, over the {MAX_GUIDANCE_BYTES}-byte limit: ignored; "
                          f"guidance v{self.current.version} stays in force")
        self.current = Guidance(self.current.version + 1, text, sha)
        return self.current, None

    def _requests(self) -> list[Request]:
        d = self.run_dir / CONTROL_DIR
        if not d.is_dir():
            return []
        out = []
        for path in sorted(d.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                req = Request(**{k: v for k, v in data.items() if k in Request.__dataclass_fields__})
                check_request(req.action, req.budget)
            except (OSError, ValueError, TypeError, UsageError) as e:
                req = Request(action="invalid", id=path.stem, budget=f"{type(e).__name__}: {e}")
            req.id = req.id or path.stem
            if req.id in self.applied:  # journaled before a crash left its file: remove it now
                path.unlink(missing_ok=True)
            else:
                self._paths[req.id] = path
                out.append(req)
        return out

    def done(self, request: Request) -> None:
        """The request is journaled: never apply it again, and remove its file."""
        self.applied.add(request.id)
        path = self._paths.pop(request.id, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def poll(self) -> tuple[Guidance | None, str | None, list[Request]]:
        guidance, refused = self._read_guidance()
        return guidance, refused, self._requests()


STOPPED_BY_RESEARCHER = "stopped by the researcher"


class RunSteering:
    """Applies steering to one run segment (`aira.agents.orchestrator._Run`): the guidance in force, pause
    (no new submissions, the budget's clock stopped; in-flight jobs finish and are recorded), continue, stop
    (the normal closing: in-flight jobs waited for, or killed with `kill`; every finished result kept;
    summary written) and add-budget (the whole run's budget extended, as `runs resume --add` does).
    Each applied request and each guidance version is journaled and acknowledged on stderr."""

    def __init__(self, run, *, say=None):
        import sys

        self.run = run
        self.say = say or (lambda line: print(f"aira: {line}", file=sys.stderr, flush=True))
        self.paused = False
        self.stopped = False
        self.kill = False
        self._offline_told = False
        current, applied, paused_before = Guidance(), set(), False
        for _, kind, data in run.journal.steering():
            if kind == "guidance" and data.get("version"):
                current = Guidance(int(data["version"]), str(data.get("text", "")), str(data.get("sha256", "")))
            elif kind == "control" and data.get("id"):
                applied.add(str(data["id"]))
                if data.get("applied") and data.get("action") in ("pause", "continue", "stop"):
                    paused_before = data["action"] == "pause"
        if paused_before:  # the earlier segment ended paused; this one starts running, and says so
            self._journal("control", {**Request(action="continue", id=f"segment-{time.time_ns():020d}",
                                                source="resume").to_dict(),
                                      "applied": True, "why": "a new segment starts unpaused"})
            self.say("the run was paused when its last segment ended; this segment runs (pause it again with "
                     f"`aira runs pause {run.run_dir}`)")
        self.files = Steering(run.run_dir, current=current, applied=applied)
        # requests left by a segment that died before reading them are not this segment's to apply
        for req in self.files._requests():
            self._journal("control", {**req.to_dict(), "applied": False, "why": "written before this segment"})
            self.files.done(req)
            self.say(f"ignored a {req.action} request written while no run was live ({req.id})")

    @property
    def guidance(self) -> Guidance:
        return self.files.current

    def _journal(self, kind: str, data: dict) -> None:
        self.run.journal.add_steering(kind, data)

    def poll(self) -> None:
        guidance, refused, requests = self.files.poll()
        if refused:
            self.say(refused)
        if guidance is not None:
            self._journal("guidance", {"version": guidance.version, "sha256": guidance.sha256,
                                       "text": guidance.text, "bytes": len(guidance.text.encode("utf-8"))})
            what = (f"guidance v{guidance.version} ({len(guidance.text)} characters, sha256 "
                    f"{guidance.sha256[:12]}): LLM operators read it from their next step")
            self.say(what if guidance.text else f"guidance v{guidance.version}: the note is empty, no guidance")
        for req in requests:
            self._apply(req)

    def _apply(self, req: Request) -> None:
        run, record = self.run, {**req.to_dict(), "applied": True}
        if req.action == "invalid":
            record.update(applied=False, why=req.budget)
            self.say(f"ignored an unreadable control request {req.id}: {req.budget}")
        elif run.stop_reason and req.action != "stop":  # the budget or a stop ended the search already
            why = f"the run is already stopping ({run.stop_reason})"
            record.update(applied=False, why=why)
            more = f"; `aira runs resume {run.run_dir} --add ...` extends it afterwards" if req.action == "add-budget" else ""
            self.say(f"ignored {req.action}: {why}{more}")
        elif req.action == "pause":
            if self.paused or self.stopped:
                record.update(applied=False, why="already paused" if self.paused else "stopping")
            else:
                self.paused = True
                run.tracker.pause()
                self.say(f"paused by the researcher ({len(run.inflight)} jobs in flight finish and are recorded; "
                         f"no new job starts; the budget's clock stops): `aira runs continue {run.run_dir}`")
        elif req.action == "continue":
            if not self.paused:
                record.update(applied=False, why="not paused")
            else:
                self.paused = False
                run.tracker.unpause()
                self.say("continued by the researcher")
        elif req.action == "stop":
            self.stopped, self.kill = True, self.kill or req.kill
            if self.paused:
                self.paused = False
                run.tracker.unpause()
            run.stop_reason = run.stop_reason or STOPPED_BY_RESEARCHER
            how = "killed" if self.kill or run.config.budget.on_stop == "kill" else "waited for"
            self.say(f"stopped by the researcher: no new job starts; the {len(run.inflight)} in flight are {how}; "
                     f"then the summary")
        elif req.action == "add-budget":
            from aira.agents.budget import Budget

            before = run.config.budget
            after = before.extended(Budget.parse(req.budget), spent_s=run.tracker.elapsed(),
                                    spent_evals=run.tracker.evals, spent_usd=run.tracker.usd)
            run.extend_budget(after)
            record.update(before=before.describe(), after=after.describe())
            self.say(f"budget extended by {req.budget}: now {after.describe()} for the whole run")
        self._journal("control", record)
        self.files.done(req)

    def for_step(self, agent) -> Guidance | None:
        """What goes into an operator's context as `guidance` (None: no guidance in force); the
        first offline agent that steps under guidance is told about once on the console."""
        g = self.guidance
        if not g.version:
            return None
        if g.text and agent.llm is None and not self._offline_told:
            self._offline_told = True
            self.say(f"guidance v{g.version} is not read by offline agents ({agent.name} and any other): they "
                     f"use search moves, not prose; their nodes record guidance_read=false")
        return g


def guidance_log(journal) -> list[dict]:
    """Each guidance version of a run with the nodes drafted under it: `read_by` (the LLM prompts that
    included it) and `not_read_by` (offline moves and policy-chosen proposals)."""
    nodes = journal.nodes()
    out = []
    for ts, kind, data in journal.steering():
        if kind != "guidance":
            continue
        v = data.get("version")
        out.append({**data, "time": ts,
                    "read_by": [n.id for n in nodes if n.guidance == v and n.guidance_read],
                    "not_read_by": [n.id for n in nodes if n.guidance == v and not n.guidance_read]})
    return out
