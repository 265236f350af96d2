"""The autoresearch Task: agents rewrite train.py; the harness trains it for a fixed time and scores it.

Proposals are `{"files": {"train.py": code}}` (proposal kind "file"). Validation rejects, in one line:
any other file (prepare.py, evaluate.py, the data and the tokenizer are frozen), an empty file, a syntax
error, and a change that touches only seed-like lines relative to a script already proposed in this run.

How a seed change is kept from passing for progress, three ways:
1. the harness owns the seed: `load_run()` seeds everything from the evaluation seed, and the batch
   sampler has its own generator seeded by the harness, so the script cannot choose its data order;
2. validation rejects a script that differs from an earlier one only in lines that mention a seed;
3. the experiment loop keeps a change only if val_bpb improves by more than the noise floor, measured by
   re-running the baseline with several seeds (`noise_seeds`), so a lucky draw is not kept.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path
from typing import Any

from aira.agents.base import ProposalSpace, Task
from aira.agents.types import Job
from aira.tasks.autoresearch.data import DEFAULT_DATA
from aira.tasks.autoresearch.edits import LIBRARY, ScriptSpace
from aira.tasks.autoresearch.presets import get_preset

HERE = Path(__file__).resolve().parent
EDITABLE = "train.py"
SCORING_ALLOWANCE_S = 300.0  # loading and scoring the model, on top of the training kill time
_SEED = re.compile(r"seed", re.IGNORECASE)

DESCRIPTION = """\
Autoresearch: improve a language-model training script. You edit ONE file, train.py; it trains a model
for a fixed wall-clock budget ({budget:g} s of training, preset {preset}) and saves it. The harness then
computes val_bpb (validation bits per byte; LOWER is better) itself, on text the script never sees.

Frozen (do not try to change them, a proposal that names another file is rejected):
- the data: corpus {data}, split once into train / validation / hidden held-out; only training tokens
  are readable, through `run.get_batch(batch, seq_len)`;
- the tokenizer (byte-level BPE, vocabulary {vocab}) and the metric;
- the seed and the time budget (`run = load_run()` gives them; seeding in the script changes nothing
  the harness counts, and a change to seed lines alone is rejected);
- the interface: `from aira.tasks.autoresearch.prepare import load_run, save_model, print_summary`;
  call `load_run()` first and `save_model(model, run)` at the end. The saved model must map token ids
  (B, {eval_seq}) to logits (B, {eval_seq}, vocab) and be exportable with torch.export (plain PyTorch).

Limits: a run still going at {kill:g} s is killed; the sandbox has no network. The script should end
with `print_summary(...)` key: value lines (peak memory is reported from it); names the harness reports
itself (val_bpb, metric, status, ... in any case or spelling) are dropped.
Not allowed: signalling or tracing any process but the script's own (the harness's above all: that
ends the run as a contract breach), reading files other than the training tokens (the corpus and the
caches read as empty), or writing outside the working folder.
Everything else is yours: architecture, optimiser, schedule, batch size, depth and width for the budget.
"""


def _strip_comments(code: str) -> str:
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
        return tokenize.untokenize(toks)
    except (tokenize.TokenError, SyntaxError):
        return code


def normalise_seeds(code: str) -> str:
    """The script without comments, lines that mention a seed, trailing spaces and blank lines."""
    code = _strip_comments(code)
    return "\n".join(ln.rstrip() for ln in code.splitlines() if ln.strip() and not _SEED.search(ln))


class AutoresearchTask(Task):
    name = "autoresearch"
    lower_is_better = True
    proposal_kind = "file"
    editable_file = EDITABLE
    metric_name = "val_bpb"

    def __init__(self, *, preset: str = "cpu", data: str = DEFAULT_DATA, data_dir: str | None = None,
                 time_budget_s: float | None = None, startup_allowance_s: float | None = None,
                 cache_dir: str | None = None, literature: str | None = None, work_dir: str | None = None,
                 allow_unsafe: bool = False, baseline: str | None = None):
        self.preset = get_preset(preset, time_budget_s=time_budget_s, startup_allowance_s=startup_allowance_s)
        self.data = str(Path(data_dir).expanduser().resolve()) if data_dir else data
        self.cache_dir, self.work_dir, self.allow_unsafe = cache_dir, work_dir, allow_unsafe
        self.baseline = baseline if baseline is not None else (HERE / EDITABLE).read_text()
        from aira.tasks.autoresearch.evaluate import frozen_hashes

        self.frozen_sha = frozen_hashes()  # checked by every job, before and after training
        self.literature = None
        if literature:
            from aira.tasks.autoresearch.literature import Literature

            self.literature = Literature(literature)
        self._by_seedless: dict[str, set[str]] = {}
        self._topic = 0

    # --- what the agent reads --------------------------------------------------------------------

    def describe(self) -> str:
        p = self.preset
        text = DESCRIPTION.format(budget=p.time_budget_s, preset=p.name, data=self.data, vocab=p.vocab_size,
                                  eval_seq=p.eval_seq_len, kill=p.kill_after_s)
        if self.literature is not None:
            text += "\n" + self.retrieve()
        return text

    def retrieve(self, query: str | None = None, k: int = 3) -> str:
        """Passages from the literature for `query` (by default the next topic of the edit library, so
        successive prompts show different parts of the folder)."""
        from aira.tasks.autoresearch.literature import render

        if query is None:
            query = LIBRARY[self._topic % len(LIBRARY)].topic
            self._topic += 1
        return render(query, self.literature.search(query, k))

    # --- proposals -------------------------------------------------------------------------------

    def reference(self) -> dict:
        return {"files": {EDITABLE: self.baseline}}

    def validate(self, proposal: Any) -> str | None:
        from aira.tasks.files import parse_single_file

        _, error = parse_single_file(proposal, EDITABLE)
        if error:
            return error
        code = proposal["files"][EDITABLE]
        key = normalise_seeds(code)
        seen = self._by_seedless.setdefault(key, set())
        if seen and code not in seen:
            return ("the change only touches seed lines: the harness fixes the seed, so this cannot be an "
                    "improvement; change the training instead")
        seen.add(code)
        return None

    def space(self) -> ProposalSpace:
        prefer: list[str] = []
        if self.literature is not None:
            # The offline agent's reading: edits whose topic the literature covers best are tried more.
            scores = {e.name: max((p.score for p in self.literature.search(e.topic, 1)), default=0.0)
                      for e in LIBRARY}
            cut = sorted(scores.values())[len(scores) // 2]
            prefer = [n for n, s in scores.items() if s > cut]
        return ScriptSpace(self.baseline, self.preset.name, EDITABLE, prefer=prefer)

    def make_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        p = self.preset
        return Job(id=job_id, fn="aira.tasks.autoresearch.evaluate:evaluate_script",
                   timeout_s=p.kill_after_s + SCORING_ALLOWANCE_S,
                   gpus=1 if p.name == "gpu" else 0,
                   kwargs={"script": proposal["files"][EDITABLE], "preset": p.name, "seed": seed,
                           "data": self.data, "time_budget_s": p.time_budget_s,
                           "startup_allowance_s": p.startup_allowance_s, "cache_dir": self.cache_dir,
                           "frozen_sha": self.frozen_sha, "work_dir": self.work_dir, "job_id": job_id,
                           "allow_unsafe": self.allow_unsafe})
