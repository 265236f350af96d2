"""AIRA-Design on autoresearch: agents rewrite a training script that trains under a fixed time budget.

  train.py     the baseline script agents edit (package data; run as a script, never imported here)
  prepare.py   frozen, imported by train.py: harness settings, training tokens, model export, summary
  data.py      frozen: corpus, BPE tokenizer (vocabulary 8192), splits; stages the train split only
  presets.py   frozen: time budget, evaluation length and kill time per preset (test / cpu / gpu)
  evaluate.py  frozen: sandboxed training, then val_bpb / held-out bpb computed in the harness
  task.py      the Task ("autoresearch"): validation, jobs, the offline agent's space, literature
  edits.py     the offline agent's library of text-level edits
  literature.py  --literature DIR: BM25 search over papers and notes
  loop.py      the keep / reset experiment loop in a run-local git repository, results.tsv
  report.py    the progress plot and the final report section
  cli.py       `aira design eval|run autoresearch`

See docs/autoresearch.md.
"""

from aira.tasks.autoresearch.task import AutoresearchTask
from aira.tasks.registry import register_task

register_task("autoresearch", AutoresearchTask)

__all__ = ["AutoresearchTask"]
