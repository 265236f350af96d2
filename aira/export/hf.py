"""Write an aira model as a Hugging Face model folder that loads without aira.

    <out>/config.json              model_type "aira_hybrid", auto_map, the pattern, every ModelConfig field
    <out>/configuration_aira.py    copied from this package (plain transformers, no aira import)
    <out>/modeling_aira.py         the same: the primitives re-stated in plain PyTorch
    <out>/aira_mechanisms.py       the promoted mechanisms by code (the package's empty table, or written
                                   with one relative import per promoted code)
    <out>/aira_mechanism_X.py      a promoted mechanism's source as aira ran it (sha256 and origin in
                                   config.json "promoted")
    <out>/model.safetensors        the weights (pytorch_model.bin when safetensors is not installed)
    <out>/README.md                what the folder is and how to load it
    with a tokenizer: tokenizer.json, tokenizer_config.json, and generation_config.json (eos and pad
    ids, the same as in config.json)

Load it with `AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)`.

Why a hand-written modeling file rather than one concatenated from aira's sources at export time:
aira's primitives import aira (registry decorators, UsageError, the optional mamba_ssm fast path), so
a concatenation would have to rewrite imports and strip decorators, and would break silently whenever
a primitive gains an import. The two files here are ordinary modules of this package, linted and
tested like the rest: tests/export loads an exported folder and checks its logits against HybridLM on
the same weights, so a change to a primitive that the modeling file does not follow fails CI. The
price: only the built-in primitives (A, D, E, G, M, S, W) are re-stated; a user-registered primitive is
refused. A promoted mechanism (aira/models/mechanism.py: an LRA attention.py made a Compose primitive) is
different: it is a self-contained file with LRA's contract (torch only), so its source travels verbatim
into the folder and modeling_aira.py adapts it as aira does.
Parameter names are aira's own, so a HybridLM state dict goes in unchanged (a tied head is dropped:
the exported model reads the embedding matrix instead).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from aira.errors import UsageError
from aira.userfiles import check_out_dir, make_out_dir, read_text

MODEL_TYPE = "aira_hybrid"
CODE_FILES = ("configuration_aira.py", "modeling_aira.py", "aira_mechanisms.py")
MECHANISM_FILE = "aira_mechanism_{code}.py"
WRITTEN_FILES = (
    *CODE_FILES,
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "README.md",
)
SUPPORTED_CODES = "ADEGMSW"  # keep in step with configuration_aira.SUPPORTED_CODES
# Hugging Face's names for aira's fields, written too so tools reading config.json raw find them.
HF_ALIASES = {
    "hidden_size": "d_model",
    "num_attention_heads": "n_heads",
    "num_key_value_heads": "n_kv_heads",
    "intermediate_size": "ffn_dim",
    "max_position_embeddings": "max_seq_len",
    "rms_norm_eps": "norm_eps",
    "initializer_range": "init_std",
    "tie_word_embeddings": "tie_embeddings",
}


def hf_config(pattern: str, cfg, promoted: dict | None = None) -> dict:
    """The config.json dict of `pattern` at ModelConfig `cfg`; `promoted`: code -> the Promoted class
    (aira/models/mechanism.py) of each promoted mechanism the pattern uses."""
    from aira import __version__

    fields = asdict(cfg)
    return {
        "architectures": ["AiraForCausalLM"],
        "model_type": MODEL_TYPE,
        "auto_map": {
            "AutoConfig": "configuration_aira.AiraConfig",
            "AutoModelForCausalLM": "modeling_aira.AiraForCausalLM",
        },
        "pattern": pattern,
        **fields,
        **{alias: fields[name] for alias, name in HF_ALIASES.items()},
        "num_hidden_layers": len(pattern),
        "torch_dtype": "float32",
        "aira_version": __version__,
        "promoted": {
            code: {"file": MECHANISM_FILE.format(code=code), "sha256": cls.sha256, "origin": cls.origin}
            for code, cls in (promoted or {}).items()
        },
    }


def promoted_mechanisms(model) -> dict[str, type]:
    """code -> the Promoted class of each promoted mechanism in `model`, in order of first use."""
    return {
        code: type(block.mixer)
        for code, block in zip(model.pattern, model.blocks)
        if code not in SUPPORTED_CODES and isinstance(getattr(type(block.mixer), "source", None), str)
    }


def mechanisms_index(codes: list[str]) -> str:
    """aira_mechanisms.py of a folder with promoted mechanisms: static relative imports, so transformers copies
    each file into its module cache with modeling_aira.py."""
    imports = "".join(f"from .{MECHANISM_FILE.format(code=c)[:-3]} import Attention as Attention_{c}\n" for c in codes)
    table = ", ".join(f'"{c}": Attention_{c}' for c in codes)
    return (
        '"""The promoted mechanisms of this exported aira model, by layer code (written by `aira export`).\n\n'
        "Each file imported here is a mechanism's source as aira ran it; config.json \"promoted\" holds its\n"
        'sha256 and origin.\n"""\n\n'
        f"{imports}\nMECHANISMS: dict[str, type] = {{{table}}}\n"
    )


def _promoted_codes() -> set[str]:
    from aira.models import registry

    return {i.code for i in registry.all_primitives() if i.origin is not None}


def check_exportable(pattern: str, cfg) -> None:
    bad = sorted(set(pattern) - set(SUPPORTED_CODES) - _promoted_codes())
    if bad:
        raise UsageError(
            f"cannot export layer code(s) {', '.join(bad)}: the Hugging Face modeling file "
            f"implements {', '.join(SUPPORTED_CODES)} and promoted mechanisms only"
        )
    if not cfg.causal:
        raise UsageError("cannot export a bidirectional model (causal=False) as a causal LM")


def export_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights to write: fp32, contiguous, on CPU, without the tied head (no shared tensors)."""
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in model.state_dict().items()
    }
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    return state


def write_weights(state: dict[str, torch.Tensor], out: Path) -> Path:
    try:
        from safetensors.torch import save_file
    except ImportError:
        path = out / "pytorch_model.bin"
        torch.save(state, path)
        return path
    path = out / "model.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def export_model(
    model,
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    overwrite: bool = False,
    source: str | None = None,
) -> Path:
    """Write HybridLM `model` as a Hugging Face model folder at `out`; returns the folder.

    tokenizer: an aira or Hugging Face tokenizer.json, or a folder holding one; written as a Hugging
    Face tokenizer. source: where the model came from, one phrase for the README.
    """
    out = Path(out)
    pattern = model.pattern
    check_exportable(pattern, model.cfg)
    promoted = promoted_mechanisms(model)
    check_out_dir(out, "--out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"output folder {out} is not empty (pass --force to overwrite)")
    tok = None
    if tokenizer is not None:  # read and checked before anything is written
        from aira.export.tokenizer import read_tokenizer

        tok = read_tokenizer(tokenizer, vocab_size=model.cfg.vocab_size)
    make_out_dir(out, "--out")
    for name in WRITTEN_FILES:  # no stale tokenizer or second weights file from an earlier export
        (out / name).unlink(missing_ok=True)
    for stale in out.glob(MECHANISM_FILE.format(code="*")):
        stale.unlink()
    here = Path(__file__).parent
    for name in CODE_FILES:
        shutil.copyfile(here / name, out / name)
    if promoted:
        (out / "aira_mechanisms.py").write_text(mechanisms_index(list(promoted)))
        for code, cls in promoted.items():  # byte for byte what aira ran: its sha256 is config.json's
            (out / MECHANISM_FILE.format(code=code)).write_bytes(cls.source.encode("utf-8"))
    config = hf_config(pattern, model.cfg, promoted)
    if tokenizer is not None:
        from aira.export.tokenizer import write_tokenizer

        ids = write_tokenizer(tokenizer, out, vocab_size=model.cfg.vocab_size, max_len=model.cfg.max_seq_len, read=tok)
        config.update(ids)
        if ids:  # `generate` reads its ids from here, not from config.json, in recent transformers
            (out / "generation_config.json").write_text(json.dumps(ids, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    weights = write_weights(export_state_dict(model), out)
    (out / "README.md").write_text(_readme(config, weights.name, model.num_params(), model.cfg, source, promoted))
    return out


def build_for_export(
    *,
    pattern: str | None = None,
    preset: str | None = None,
    config_json: str | Path | None = None,
    vocab_size: int | None = None,
    weights: str | Path | None = None,
    seed: int = 0,
    check=None,
):
    """A HybridLM from a pattern + preset, or an extrapolation JSON, or a checkpoint's own config.

    `check(pattern, cfg)`, when given, sees the resolved pattern and ModelConfig before the model is built
    (it raises UsageError to refuse them).

    With `weights` (an aira checkpoint or a bare state dict) the model takes those weights, else it
    keeps its random init (seeded). Returns (model, meta): what the checkpoint recorded besides weights
    (pattern, model_config, step, data folder), empty without one.
    """
    from aira.models import HybridLM, ModelConfig, resolve_config
    from aira.train.checkpoint import read_model_weights

    state, meta = read_model_weights(weights) if weights else (None, {})
    if config_json is not None:
        if pattern is not None or preset is not None:
            raise UsageError("give either --config or --pattern/--preset, not both")
        pattern, cfg = _read_config_json(Path(config_json))
    elif pattern is not None:
        cfg = resolve_config(preset or "tiny")
    elif "pattern" in meta and "model_config" in meta:
        pattern, cfg = meta["pattern"], ModelConfig(**meta["model_config"])
    else:
        raise UsageError(
            "give --pattern (with --preset), --config extrapolated.json, or --weights of an "
            "aira checkpoint that records its pattern"
        )
    if vocab_size is not None:
        cfg = cfg.with_(vocab_size=vocab_size)
    elif state is not None and "embed.weight" in state:
        cfg = cfg.with_(vocab_size=state["embed.weight"].shape[0])  # a checkpoint knows its vocabulary
    if check is not None:
        check(pattern, cfg)
    torch.manual_seed(seed)
    model = HybridLM(cfg, pattern)
    if state is not None:
        if cfg.tie_embeddings and "lm_head.weight" not in state and "embed.weight" in state:
            state = {**state, "lm_head.weight": state["embed.weight"]}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches: name the first one
            detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e))
            raise UsageError(f"weights {weights} do not fit pattern {model.pattern}: {detail}") from None
        if missing or unexpected:
            raise UsageError(
                f"weights {weights} do not fit pattern {model.pattern} at this config: "
                f"missing {_few(missing)}, unexpected {_few(unexpected)}"
            )
    return model, meta


def _few(keys: list[str]) -> str:
    return (
        "none" if not keys else ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
    )


def _read_config_json(path: Path):
    """(pattern, ModelConfig) from the JSON of `aira compose extrapolate` (keys pattern, model_config)."""
    from aira.models import ModelConfig

    try:
        data = json.loads(read_text(path, "config file"))
    except json.JSONDecodeError as e:
        raise UsageError(f"config file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or "pattern" not in data or "model_config" not in data:
        raise UsageError(
            f"config file {path} needs the keys 'pattern' and 'model_config' "
            "(as written by `aira compose extrapolate`)"
        )
    try:
        cfg = ModelConfig(**data["model_config"])
    except TypeError as e:
        raise UsageError(f"config file {path}: bad model_config: {e}") from None
    return data["pattern"], cfg


# What each code is, as the README names it; cfg fills in the widths that tell one model from another.
PRIMITIVES = {
    "A": lambda c: f"grouped-query attention with RoPE ({c.n_heads} heads, {c.n_kv_heads} kv heads)",
    "W": lambda c: f"sliding-window attention with RoPE (window {c.window})",
    "M": lambda c: f"SwiGLU MLP (width {c.ffn_dim})",
    "S": lambda c: f"Mamba-2 (state {c.ssm_state}, expand {c.ssm_expand}, head dim {c.ssm_head_dim})",
    "D": lambda c: f"Gated DeltaNet ({c.n_heads} heads)",
    "G": lambda c: f"gated linear attention ({c.n_heads} heads)",
    "E": lambda c: f"top-{c.moe_top_k} mixture of {c.moe_experts} SwiGLU experts",
}


def _promoted_line(code: str, cls) -> str:
    from aira.models.mechanism import describe_origin

    doc = (cls.mechanism.__doc__ or "").strip().splitlines()
    about = f" ({doc[0].rstrip('.')})" if doc else ""
    return (f"promoted mechanism{about}, source `{MECHANISM_FILE.format(code=code)}` (sha256 "
            f"{cls.sha256[:12]}...), from {describe_origin(cls.origin)}")


def _primitive_lines(pattern: str, cfg, promoted: dict | None = None) -> str:
    """One line per code the pattern uses, in order of first use, with its count."""
    codes = dict.fromkeys(pattern)
    promoted = promoted or {}
    return "\n".join(
        f"- `{c}` x{pattern.count(c)}: {_promoted_line(c, promoted[c]) if c in promoted else PRIMITIVES[c](cfg)}"
        for c in codes
    )


def _readme(config: dict, weights_name: str, n_params: int, cfg, source: str | None = None,
            promoted: dict | None = None) -> str:
    made = f"\nMade from {source}.\n" if source else ""
    rerun = (
        f"\nThe promoted mechanisms' layers ({', '.join(promoted)}) have no cache contract: they keep their "
        "inputs and rerun on the whole prefix at each step."
        if promoted else ""
    )
    return f"""# aira hybrid model `{config["pattern"]}`

Exported by aira {config["aira_version"]}: the layer pattern `{config["pattern"]}`, {config["num_hidden_layers"]} layers:
{_primitive_lines(config["pattern"], cfg, promoted)}

d_model {config["d_model"]}, vocabulary {config["vocab_size"]}, {n_params:,} parameters, weights in `{weights_name}`.
{made}
```python
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained("<this folder>", trust_remote_code=True)
```

The modeling code needs only torch and transformers. `generate` keeps an inference cache (each
layer's keys and values, or its recurrent state); batches must be right-padded.{rerun}
"""
