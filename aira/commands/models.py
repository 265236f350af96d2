"""`aira models show | list`: inspect a pattern at a preset (layers, parameters, FLOPs, mix) without training."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser(
        "models",
        help="inspect layer patterns, primitives and presets",
        description="Inspect a layer pattern at a preset, or list primitives and presets.",
    )
    msub = p.add_subparsers(dest="models_cmd", metavar="CMD", parser_class=type(p))
    show = msub.add_parser(
        "show",
        help="layers, parameters, FLOPs/token and primitive mix of a pattern",
        description="Analytic summary of a pattern at a preset (nothing is built).",
    )
    show.add_argument("--pattern", required=True, help="e.g. AMAMSMAM, (AM)x8, attn,mlp,mamba")
    show.add_argument("--preset", default="tiny", help="tiny | mad | small | 350M | 1B | 3B (default: tiny)")
    show.add_argument(
        "--seq-len", type=int, default=None, help="FLOPs at this length (default: the preset's)"
    )
    show.add_argument("--primitive", action="append", default=[], metavar="X=SOURCE",
                      help="a promoted mechanism as primitive X: an LRA attention.py, a design run folder, or a "
                           "Compose run's primitives/X.py (repeatable; its counts are measured)")
    show.add_argument("--json", action="store_true", help="print JSON instead of key: value lines")
    show.set_defaults(func=run_show)
    lst = msub.add_parser("list", help="registered primitives and presets")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _summary(pattern: str, preset_name: str, seq_len: int | None, primitives: list[str] = ()) -> dict:
    from aira.errors import UsageError
    from aira.models import (
        compress_pattern,
        count_params,
        flops_per_token,
        get_preset,
        parse_pattern,
        ratios,
        registry,
    )
    from aira.models.mechanism import describe_origin
    from aira.tasks.promoted import load_promoted, parse_spec, prefetch_counts, register_stub

    promoted = {}
    for spec in primitives:  # stubs: the mechanism's code runs in one sandboxed child, which counts
        promo = load_promoted(*parse_spec(spec))
        register_stub(promo)
        promoted[promo.letter] = (promo, f"{describe_origin(promo.origin)}, sha256 {promo.sha256[:12]}")
    preset = get_preset(preset_name)
    codes = parse_pattern(pattern, max_layers=preset.max_layers)
    L = seq_len or preset.seq_len
    if L < 1:
        raise UsageError(f"--seq-len must be >= 1, got {L}")
    prefetch_counts([p for c, (p, _) in promoted.items() if c in codes],
                    [(preset.model, preset.model.max_seq_len), (preset.model, L)])
    # attention:MLP:Mamba always (the paper's design axes), then any other primitive the pattern uses
    shown = ["A", "M", "S"] + sorted(set(codes) - {"A", "M", "S"})
    names = {c: registry.get(c).name for c in shown}
    counts = {c: codes.count(c) for c in shown}
    return {
        "pattern": "".join(codes),
        "compressed": compress_pattern(codes),
        "layers": len(codes),
        "preset": preset.name,
        "params": count_params(codes, preset.model),
        "non_embedding_params": count_params(codes, preset.model, non_embedding=True),
        "seq_len": L,
        "flops_per_token": flops_per_token(codes, preset.model, L),
        "mix": {f"{c} ({names[c]})": n for c, n in counts.items()},
        "ratio": ":".join(str(n) for n in counts.values()),
        "ratio_codes": ":".join(counts),
        "fractions": ratios(codes),
        "promoted": {c: promoted[c][1] for c in shown if c in promoted},
    }


def run_show(args: argparse.Namespace) -> int:
    s = _summary(args.pattern, args.preset, args.seq_len, args.primitive)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"pattern: {s['pattern']}")
    print(f"layers: {s['layers']}  {s['compressed']}")
    print(f"preset: {s['preset']}")
    print(f"params: {s['params']:,} ({s['params'] / 1e6:.2f}M)")
    print(f"non_embedding_params: {s['non_embedding_params']:,} ({s['non_embedding_params'] / 1e6:.2f}M)")
    print(f"flops_per_token: {s['flops_per_token']:.4g} (training, seq_len {s['seq_len']})")
    print(f"ratio {s['ratio_codes']}: {s['ratio']}  ({', '.join(f'{k} {v}' for k, v in s['mix'].items())})")
    for code, origin in s["promoted"].items():
        print(f"promoted {code}: {origin}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from aira.models import PRESETS, registry

    prims = [
        {
            "code": i.code,
            "name": i.name,
            "class": i.cls.__name__,
            "about": (i.cls.__doc__ or "").strip().splitlines()[0] if i.cls.__doc__ else "",
        }
        for i in registry.all_primitives()
    ]
    presets = [
        {
            "name": p.name,
            "d_model": p.model.d_model,
            "n_heads": p.model.n_heads,
            "n_kv_heads": p.model.n_kv_heads,
            "ffn_dim": p.model.ffn_dim,
            "vocab_size": p.model.vocab_size,
            "seq_len": p.seq_len,
            "baseline": p.baseline,
            "description": p.description,
        }
        for p in PRESETS.values()
    ]
    if args.json:
        print(json.dumps({"primitives": prims, "presets": presets}, indent=2))
        return 0
    print("primitives:")
    for p in prims:
        print(f"  {p['code']}  {p['name']:<8} {p['class']:<24} {p['about']}")
    print("presets:")
    for p in presets:
        print(
            f"  {p['name']:<6} d {p['d_model']:<5} heads {p['n_heads']}/{p['n_kv_heads']} kv  "
            f"ffn {p['ffn_dim']:<5} vocab {p['vocab_size']:<6} seq {p['seq_len']:<5} "
            f"baseline {p['baseline']:<8} {p['description']}"
        )
    return 0
