"""Hugging Face config of an aira hybrid model (`model_type` "aira_hybrid").

This file is copied verbatim into every exported model folder, so it must not import aira: it is
loaded by `AutoConfig.from_pretrained(folder, trust_remote_code=True)` on machines without aira.
The fields are the layer pattern plus every field of aira's `ModelConfig`, under aira's own names, and
`promoted`: per promoted mechanism's code, its file beside this one, sha256 and origin;
the usual Hugging Face names (hidden_size, num_attention_heads, max_position_embeddings, ...) are
aliases, so tools such as lm-evaluation-harness find what they look for.
"""

from __future__ import annotations

from typing import ClassVar

from transformers import PretrainedConfig

# Imported here too, not only by modeling_aira.py: transformers names a local folder's config module by the
# folder's name and a hash of the module and its relative imports, and maps that config class to the first
# model class loaded for it. With the mechanisms among its imports, two folders of one name but different
# mechanisms get two config classes, so neither loads the other's modeling code.
from .aira_mechanisms import MECHANISMS

# Pattern codes this modeling file implements (see modeling_aira.py).
SUPPORTED_CODES = "ADEGMSW"


class AiraConfig(PretrainedConfig):
    model_type = "aira_hybrid"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_key_value_heads": "n_kv_heads",
        "intermediate_size": "ffn_dim",
        "max_position_embeddings": "max_seq_len",
        "rms_norm_eps": "norm_eps",
        "initializer_range": "init_std",
        # One flag, two names: HF's tie_word_embeddings reads and writes aira's tie_embeddings, so the
        # two can never disagree. A tied model owns no lm_head (see modeling_aira.py), so HF's own
        # tying finds nothing to tie either way.
        "tie_word_embeddings": "tie_embeddings",
    }

    def __init__(
        self,
        pattern: str = "AM",
        d_model: int = 64,
        n_heads: int = 4,
        n_kv_heads: int = 2,
        ffn_dim: int = 192,
        vocab_size: int = 256,
        max_seq_len: int = 64,
        rope_theta: float = 10_000.0,
        window: int = 64,
        ssm_state: int = 64,
        ssm_expand: int = 2,
        ssm_head_dim: int = 64,
        ssm_conv: int = 4,
        ssm_chunk: int = 64,
        ssm_groups: int = 1,
        moe_experts: int = 8,
        moe_top_k: int = 2,
        moe_aux_coef: float = 0.01,
        tie_embeddings: bool = True,
        norm_eps: float = 1e-5,
        causal: bool = True,
        init_std: float = 0.02,
        promoted: dict | None = None,
        **kwargs,
    ):
        promoted = dict(promoted or {})
        bad = sorted(set(pattern) - set(SUPPORTED_CODES) - set(promoted))
        if bad or not pattern:
            raise ValueError(
                f"pattern {pattern!r}: this modeling file implements only {SUPPORTED_CODES} and the promoted "
                f"mechanisms config.json names ({', '.join(promoted) or 'none'})"
            )
        unimported = sorted(set(promoted) - set(MECHANISMS))
        if unimported:
            raise ValueError(
                f"config.json names promoted mechanism(s) {', '.join(unimported)} that aira_mechanisms.py "
                f"does not import"
            )
        self.pattern = pattern
        self.promoted = promoted  # code -> {"file", "sha256", "origin", ...}
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.ffn_dim = ffn_dim
        self.vocab_size = vocab_size
        self.max_seq_len = max_seq_len
        self.rope_theta = rope_theta
        self.window = window
        self.ssm_state = ssm_state
        self.ssm_expand = ssm_expand
        self.ssm_head_dim = ssm_head_dim
        self.ssm_conv = ssm_conv
        self.ssm_chunk = ssm_chunk
        self.ssm_groups = ssm_groups
        self.moe_experts = moe_experts
        self.moe_top_k = moe_top_k
        self.moe_aux_coef = moe_aux_coef  # a training term; the exported loss leaves it out
        self.tie_embeddings = tie_embeddings
        self.norm_eps = norm_eps
        self.causal = causal
        self.init_std = init_std
        self.num_hidden_layers = len(pattern)
        kwargs.pop("num_hidden_layers", None)
        for alias in self.attribute_map:  # an alias saved in config.json must not override the field
            kwargs.pop(alias, None)
        # transformers 4.x's base __init__ sets tie_word_embeddings (default True), i.e. tie_embeddings
        # through the alias: hand it the field's own value.
        kwargs["tie_word_embeddings"] = tie_embeddings
        super().__init__(**kwargs)
