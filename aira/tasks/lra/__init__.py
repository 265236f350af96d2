"""AIRA-Design's Long Range Arena tasks: the frozen encoder classifier around an agent's `attention.py`,
its contract checks, the evaluator, presets, a library of known mechanisms and published numbers; the
design Task (task.py: sandboxed jobs scored from predictions), the offline agent's moves (offline.py),
`aira design eval|run lra-*` (cli.py) and the report section (report.py).

    from aira.tasks.lra.evaluate import evaluate_attention
    evaluate_attention("attention.py", "lra-listops", preset="cpu")

Submodules import torch; this package file does not, so `aira --help` stays fast.
"""
