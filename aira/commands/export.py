"""`aira export`: write a pattern (random init or trained weights) as a Hugging Face model folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as a Hugging Face folder (config.json, modeling code, weights)",
        description="Write a layer pattern at a preset (or an `aira compose extrapolate` JSON, or an aira "
        "checkpoint) as a folder that AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True) "
        "loads without aira. See docs/export.md.",
    )
    p.add_argument("--pattern", help="layer pattern, e.g. AMAMSMAM or (AM)x8")
    p.add_argument("--preset", help="model preset for --pattern (default: tiny)")
    p.add_argument("--config", metavar="JSON", help="an extrapolation JSON with 'pattern' and 'model_config'")
    p.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help="vocabulary size (default: the checkpoint's; else the --tokenizer's largest id + 1; else the "
        "preset's)",
    )
    p.add_argument(
        "--weights",
        metavar="CKPT",
        help="an aira checkpoint (.pt) or a model state dict; default: random init",
    )
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="also write this tokenizer: an aira or Hugging Face tokenizer.json, or a folder holding one "
        "(a prepared data folder); default: the data folder a pre-training checkpoint names, if it has one",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random init")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--force", action="store_true", help="write into a non-empty output folder")
    p.add_argument("--json", action="store_true", help="print what was written as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aira.errors import UsageError
    from aira.export.hf import build_for_export, export_model

    if args.vocab_size is not None and args.vocab_size < 1:
        raise UsageError(f"--vocab-size must be positive, got {args.vocab_size}")
    vocab_size = args.vocab_size
    if vocab_size is None and args.weights is None and args.tokenizer is not None:
        from aira.export.tokenizer import tokenizer_vocab_size

        vocab_size = tokenizer_vocab_size(args.tokenizer)  # a fresh model's vocabulary is its tokenizer's
    model, meta = build_for_export(
        pattern=args.pattern,
        preset=args.preset,
        config_json=args.config,
        vocab_size=vocab_size,
        weights=args.weights,
        seed=args.seed,
    )
    tokenizer = args.tokenizer
    if tokenizer is None and meta.get("data") and (Path(meta["data"]) / "tokenizer.json").is_file():
        tokenizer = meta["data"]
    if args.weights:
        source = f"the weights {args.weights}" + (f" (step {meta['step']})" if meta.get("step") is not None else "")
    else:
        source = f"a random init (seed {args.seed})"
    if args.config:
        source += f", config {args.config}"
    out = export_model(model, args.out, tokenizer=tokenizer, overwrite=args.force, source=source)
    if getattr(args, "json", False):
        import json

        print(json.dumps({"exported": str(out), "pattern": model.pattern, "params": model.num_params(),
                          "vocab_size": model.cfg.vocab_size, "weights": args.weights,
                          "seed": None if args.weights else args.seed,
                          "tokenizer": tokenizer}, indent=1))
        return 0
    print(f"exported: {out}")
    print(f"pattern: {model.pattern}")
    print(f"params: {model.num_params()}")
    print(f"vocab_size: {model.cfg.vocab_size}")
    print(f"weights: {args.weights if args.weights else f'random init (seed {args.seed})'}")
    print(f"tokenizer: {tokenizer or 'none (give --tokenizer to add one)'}")
    return 0
