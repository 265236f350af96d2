"""What a proxy training returns: `TrainResult`, its one definition, and its JSON form.

`aira.train.trainer.train` and `aira.train.batched.train_many` return it; the evaluation cache
(aira.train.cache) stores `to_dict()` and reads stored entries back with `from_dict`, and `aira train --json`
writes `to_dict()`. The JSON keys are the ones these results have always had, in the same order, so cache
entries and run folders written before the dataclass existed read back unchanged (tests/train/test_trainer.py
round-trips them). Keys that only some trainings have stay absent elsewhere:
- `per_task` (a MAD suite, or several sources): one `TaskScore` per task; its entries carry accuracy, loss,
  prob and loglik on a MAD task only, and `final` / `curve` only under a learning-curve score;
- `score` (a learning-curve score: how the metric was computed);
- `batched` (trained with others as one: how many models, this one included).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

MAD_SCORE_KEYS = ("accuracy", "loss", "prob", "loglik")  # every MAD task reports these, whichever is the metric


@dataclass(kw_only=True)
class TaskScore:
    """One task's scores in a training (an entry of `TrainResult.per_task`)."""
    metric: float | None   # the search split, on the result's metric
    select: float | None   # the hidden selection split, on the result's metric
    accuracy: float | None = None  # MAD tasks: every score, final values (not curve areas)
    loss: float | None = None
    prob: float | None = None
    loglik: float | None = None
    final: float | None = None     # learning-curve scores: the metric at the end of training
    curve: list[float] | None = None  # learning-curve scores: the metric at each point

    def to_dict(self, *, mad: bool, curve: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "select": self.select}
        if mad:
            out.update({k: getattr(self, k) for k in MAD_SCORE_KEYS})
        if curve:
            out.update(final=self.final, curve=self.curve)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskScore:
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})


@dataclass(kw_only=True)
class TrainResult:
    """A pattern trained and scored at one setting and seed (every MAD task of a suite, or one corpus)."""
    status: str                   # ok | diverged
    metric_name: str              # accuracy, loglik, bpb; "... (learning-curve area)" under a curve score
    lower_is_better: bool
    metric: float | None          # the search split (None unless ok)
    selection_metric: float | None  # the hidden selection split (None unless ok)
    val_loss: float | None
    pattern: str
    preset: str
    task: str                     # the task string resolved ("mad:selective_copying,compression")
    seed: int
    params: int
    non_embedding_params: int
    flops_per_token: float
    tokens: int
    flops: float
    steps: int
    tokens_per_s: float
    peak_mem_mb: float
    wall_s: float
    compile_s: float
    device: str
    dtype: str                    # bf16 on CUDA, fp32 on CPU
    budget: str
    data: str                     # each source's description, "; "-joined
    error: str                    # "" when ok
    per_task: dict[str, TaskScore] | None = None
    score: str | None = None      # a learning-curve score says how it was computed
    batched: int | None = None    # models trained as one (aira.train.batched), this one included

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def per_task_dict(self) -> dict[str, dict[str, Any]] | None:
        if self.per_task is None:
            return None
        mad, curve = self.task.split(":")[0] == "mad", self.score is not None
        return {name: s.to_dict(mad=mad, curve=curve) for name, s in self.per_task.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the keys results have always had, optional ones only when set."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _OPTIONAL}
        if self.per_task is not None:
            out["per_task"] = self.per_task_dict()
        for k in ("score", "batched"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        """A stored result; KeyError when a required key is missing (a cache treats that as a miss)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name not in _OPTIONAL}
        per_task = d.get("per_task")
        if per_task is not None:
            kw["per_task"] = {name: TaskScore.from_dict(e) for name, e in per_task.items()}
        return cls(**kw, score=d.get("score"), batched=d.get("batched"))


_OPTIONAL = ("per_task", "score", "batched")
