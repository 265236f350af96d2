"""Where the trainer's batches come from, and how a trained model is scored.

A task string picks the source:
  - `mad`                       the six MAD tasks, one model each, score = mean accuracy
  - `mad:in_context_recall,...` a subset of MAD tasks
  - `mad:selective_copying@c16,selective_copying@cpu32`
                                a task may name its own MAD settings preset (`aira.data.mad.MAD_PRESETS`),
                                so one suite can hold a ladder of difficulties of the same task
  - `lm` / `lm:<corpus>`        next-token prediction on a text corpus (default: shakespeare),
                                score = validation bits per byte
Each source has three splits: `train`, `val` (the search split: what an agent is shown) and `select`
(the hidden selection split: only the harness's final ranking reads it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aira.errors import UsageError


@dataclass(frozen=True)
class TaskSpec:
    kind: str            # "mad" | "lm"
    names: tuple[str, ...]  # MAD task names, or (corpus spec,)

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(self.names)}"


def parse_task(text: str) -> TaskSpec:
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "mad":
        from aira.data.mad import MAD_PRESETS, MAD_TASKS

        names = tuple(n.strip() for n in rest.split(",") if n.strip()) if rest else tuple(MAD_TASKS)
        for name in names:
            task, settings = split_mad_name(name)
            if task not in MAD_TASKS:
                raise UsageError(f"unknown MAD task {task!r}; valid: {', '.join(MAD_TASKS)}")
            if settings is not None and settings not in MAD_PRESETS:
                raise UsageError(f"unknown MAD settings {settings!r} in {name!r}; valid: {', '.join(MAD_PRESETS)}")
        if len(set(names)) != len(names):
            raise UsageError(f"MAD task listed twice in {text!r}")
        return TaskSpec("mad", names)
    if kind == "lm":
        return TaskSpec("lm", (rest.strip() or "shakespeare",))
    raise UsageError(f"unknown task {text!r}; use mad, mad:<task>[,<task>...], lm or lm:<corpus>")


def split_mad_name(name: str) -> tuple[str, str | None]:
    """`selective_copying@c16` -> ("selective_copying", "c16"); a bare task name has no settings of its own."""
    task, at, settings = name.partition("@")
    return task.strip(), (settings.strip() if at else None)


# How a MAD task is scored (every evaluation reports all of them; `score` picks the one the metric is):
#   accuracy  argmax accuracy on the answer tokens (MAD's metric): 1 / answer alphabet at chance, 1 at best
#   loglik    1 - (answer-token cross-entropy) / ln V: 0 for a uniform guess over the V-token vocabulary, 1 for
#             certainty on every answer. Continuous where accuracy is a threshold: a model that has half
#             learnt a task scores between the two. Tried as mad-cpu's score: it did not agree better with
#             the large scale on held-out patterns (bench/results/fidelity-history.md, "Calibrating mad-cpu", item 9)
MAD_SCORES = ("accuracy", "loglik")


def check_mad_score(score: str) -> str:
    if score not in MAD_SCORES:
        raise UsageError(f"unknown MAD score {score!r}; valid: {', '.join(MAD_SCORES)}")
    return score


class MadSource:
    """One MAD task: fixed-length sequences, loss and accuracy only where targets carry an answer."""

    lower_is_better = False

    def __init__(self, task: str, settings: str = "cpu", seed: int = 0, score: str = "accuracy"):
        from aira.data.mad import make_mad

        self.task = task
        self.metric_name = check_mad_score(score)
        self.data = make_mad(task, settings, seed=seed)
        self.vocab_size = self.data.vocab_size
        self.seq_len = self.data.train_x.shape[1]
        self.description = f"MAD {task} ({settings} settings)"

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.data.train_x.shape[0], (batch_size,), generator=gen)
        return self.data.train_x[idx], self.data.train_y[idx]

    @torch.no_grad()
    def evaluate(self, model, split: str, device: torch.device, batch_size: int = 128,
                 limit: int | None = None) -> dict:
        """Accuracy, loss (nats per answer token), the mean probability of the right answer and the
        log-likelihood score over a split (its first `limit` examples, if given)."""
        from aira.train.metrics import masked_accuracy

        x_all, y_all = {"val": (self.data.val_x, self.data.val_y),
                        "select": (self.data.select_x, self.data.select_y)}[split]
        if limit is not None:
            x_all, y_all = x_all[:limit], y_all[:limit]
        correct = total = 0.0
        loss_sum = prob_sum = 0.0
        for i in range(0, x_all.shape[0], batch_size):
            x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
            logits, loss = model(x, y)
            logits = logits.float()
            answer = y != -100
            n = int(answer.sum())
            correct += masked_accuracy(logits, y) * n
            total += n
            loss_sum += float(loss) * n
            probs = torch.softmax(logits[answer], dim=-1)
            prob_sum += float(probs.gather(-1, y[answer].unsqueeze(-1)).sum())
        loss = loss_sum / max(total, 1)
        return {"accuracy": correct / max(total, 1), "loss": loss, "prob": prob_sum / max(total, 1),
                "loglik": 1.0 - loss / math.log(self.vocab_size)}


class LmSource:
    """Language modelling on a corpus; scored in bits per byte of the UTF-8 text."""

    metric_name = "bpb"
    lower_is_better = True

    def __init__(self, corpus: str, seq_len: int, tokenizer: str = "bpe", vocab_size: int = 8192,
                 eval_tokens: int = 65_536):
        from aira.data.shards import prepare_text_data

        self.data = prepare_text_data(corpus, tokenizer=tokenizer, vocab_size=vocab_size)
        self.vocab_size = self.data.vocab_size
        self.seq_len = seq_len
        self.eval_tokens = eval_tokens
        self.description = f"LM on {corpus} ({tokenizer} tokenizer, vocab {self.vocab_size})"

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.get_batch("train", batch_size, self.seq_len, gen)

    @torch.no_grad()
    def evaluate(self, model, split: str, device: torch.device, batch_size: int = 16) -> dict:
        import numpy as np
        import torch.nn.functional as F

        from aira.train.metrics import bits_per_byte, count_target_bytes

        split_name = {"val": "val", "select": "heldout"}[split]
        nats = 0.0
        n_tokens = n_bytes = 0
        table = np.asarray(self.data.bytes_per_token)
        for x, y in self.data.iter_eval(split_name, batch_size, self.seq_len, max_tokens=self.eval_tokens):
            x, y = x.to(device), y.to(device)
            logits, _ = model(x)
            nats += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                          reduction="sum"))
            n_tokens += y.numel()
            n_bytes += count_target_bytes(y.cpu(), table)
        if n_tokens == 0:
            raise UsageError(f"the corpus has no {split_name} tokens at sequence length {self.seq_len}")
        return {"bpb": bits_per_byte(nats, n_bytes), "loss": nats / n_tokens,
                "ppl": math.exp(min(nats / n_tokens, 50.0))}


def make_sources(spec: TaskSpec, *, seq_len: int, seed: int, mad_settings: str = "cpu",
                 tokenizer: str = "bpe", vocab_size: int = 8192, eval_tokens: int = 65_536,
                 mad_score: str = "accuracy") -> list:
    if spec.kind == "mad":
        sources = []
        for name in spec.names:
            task, own = split_mad_name(name)
            sources.append(MadSource(task, own or mad_settings, seed=seed, score=mad_score))
        return sources
    return [LmSource(spec.names[0], seq_len, tokenizer=tokenizer, vocab_size=vocab_size, eval_tokens=eval_tokens)]
