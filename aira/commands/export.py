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
    p.add_argument(
        "--primitive",
        action="append",
        default=[],
        metavar="X=SOURCE",
        help="the source of a promoted mechanism the pattern uses as X: a Compose run's primitives/X.py, an LRA "
        "attention.py or an `aira design run lra-...` folder; checked against the Compose contract at the "
        "export's widths (repeatable). Not needed with --config RUN/extrapolate-...json: the run's own copy is used",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random init")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--force", action="store_true", help="write into a non-empty output folder")
    p.add_argument("--json", action="store_true", help="print what was written as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aira.errors import UsageError
    from aira.export.hf import build_for_export, export_model
    from aira.models.mechanism import describe_origin

    if args.vocab_size is not None and args.vocab_size < 1:
        raise UsageError(f"--vocab-size must be positive, got {args.vocab_size}")
    vocab_size = args.vocab_size
    if vocab_size is None and args.weights is None and args.tokenizer is not None:
        from aira.export.tokenizer import tokenizer_vocab_size

        vocab_size = tokenizer_vocab_size(args.tokenizer)  # a fresh model's vocabulary is its tokenizer's
    given, recorded = _promotions(args)
    model, meta = build_for_export(
        pattern=args.pattern,
        preset=args.preset,
        config_json=args.config,
        vocab_size=vocab_size,
        weights=args.weights,
        seed=args.seed,
        check=lambda pattern, cfg: _check_promoted(pattern, cfg, given),
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
                          "seed": None if args.weights else args.seed, "tokenizer": tokenizer,
                          "promoted": {c: p.sha256 for c, p in {**recorded, **given}.items()
                                       if c in model.pattern}}, indent=1))
        return 0
    print(f"exported: {out}")
    print(f"pattern: {model.pattern}")
    print(f"params: {model.num_params()}")
    print(f"vocab_size: {model.cfg.vocab_size}")
    print(f"weights: {args.weights if args.weights else f'random init (seed {args.seed})'}")
    print(f"tokenizer: {tokenizer or 'none (give --tokenizer to add one)'}")
    for code, promo in {**recorded, **given}.items():
        if code in model.pattern:
            print(f"promoted {code}: aira_mechanism_{code}.py, sha256 {promo.sha256[:12]}, {describe_origin(promo.origin)}")
    return 0


def _promotions(args: argparse.Namespace) -> tuple[dict, dict]:
    """(the --primitive mechanisms, the ones the Compose run holding --config recorded), all registered with
    their code: the export builds the model in this process (docs/sandbox.md: the user's own model, whose
    folder runs the same code under transformers' trust_remote_code)."""
    from aira.errors import UsageError
    from aira.tasks.promoted import load_promoted, parse_spec, register_promoted, run_promotions

    run = Path(args.config).parent if args.config else None
    recorded = run_promotions(run) if run is not None else {}
    given = {}
    for spec in args.primitive:
        letter, where = parse_spec(spec)
        if letter in given:
            raise UsageError(f"--primitive: {letter} is given twice")
        promo = load_promoted(letter, where)
        if letter in recorded and recorded[letter].sha256 != promo.sha256:
            raise UsageError(
                f"--primitive {letter}={where}: the run {run} recorded another {letter} (sha256 "
                f"{recorded[letter].sha256[:12]}, this file {promo.sha256[:12]}); leave --primitive out to "
                f"export the run's own"
            )
        register_promoted(promo)
        given[letter] = promo
    for letter, promo in recorded.items():
        if letter not in given:
            register_promoted(promo)
    return given, recorded


def _check_promoted(pattern, cfg, given: dict) -> None:
    """Before the model is built: every upper-case code is registered, and each --primitive mechanism the
    pattern uses passes the Compose contract at the export's widths (a run's copies passed it at its proxy's)."""
    from aira.errors import UsageError
    from aira.models import registry
    from aira.tasks.promoted import contract_failure

    text = pattern if isinstance(pattern, str) else "".join(pattern)
    known = {i.code for i in registry.all_primitives()}
    missing = sorted({c for c in text if c.isupper()} - known)
    if missing:
        m = missing[0]
        raise UsageError(
            f"invalid layer pattern {text!r}: {', '.join(missing)} is neither a built-in primitive "
            f"({''.join(sorted(known))}) nor given with --primitive {m}=SOURCE (a Compose run's primitives/{m}.py, "
            f"an LRA attention.py or a design run folder); --config RUN/extrapolate-...json brings the run's own"
        )
    for letter, promo in given.items():
        if letter in text:
            why = contract_failure(promo, cfg)
            if why is not None:
                raise UsageError(f"--primitive {letter}: fails the Compose contract at the export's widths: {why}")
