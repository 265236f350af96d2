"""An exported folder loads with AutoModelForCausalLM (local, offline) and computes what aira computes."""

import copy
import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder only: never the network
transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (pip install aira[hf])"
)

from aira.export.hf import export_model
from aira.models import build_model

# A mixed pattern at widths where every path runs: several SSD chunks with a padded tail (chunk 8,
# L = 21), a window shorter than the sequence (W), grouped kv heads, and in the second setting an
# untied head, plain multi-head attention and two SSM groups.
# The third setting: Gated DeltaNet, GLA (chunk 16: one full and one padded chunk) and the mixture of
# experts (4 experts, top 2) beside attention and Mamba-2.
SETTINGS = {
    "tied-gqa": {"n_kv_heads": 2, "ssm_chunk": 8, "window": 5},
    "untied-groups": {"n_kv_heads": 4, "ssm_chunk": 8, "window": 5, "ssm_groups": 2, "tie_embeddings": False},
    "deltanet-gla-moe": {"n_kv_heads": 2, "ssm_chunk": 8, "moe_experts": 4, "moe_top_k": 2},
    # promoted mechanisms (LRA attention.py files made Compose primitives) as X beside built-ins: softmax
    # attention, and the long convolution, whose kernel's size follows max_seq_len
    "promoted-softmax": {"n_kv_heads": 2, "ssm_chunk": 8, "window": 5},
    "promoted-longconv": {"n_kv_heads": 2, "ssm_chunk": 8, "window": 5},
}
PATTERNS = {"deltanet-gla-moe": "DEGMADSE", "promoted-softmax": "AXMSXW", "promoted-longconv": "XMSXWA"}
PATTERN = "AMSWSMA"
L = 21


def _perturbed(name: str):
    """A model whose every parameter (norms, D, dt, A included) differs from its init, so each one counts."""
    if name.startswith("promoted-"):
        from aira.tasks.lra.mechanisms import path
        from aira.tasks.promoted import load_promoted, register_promoted

        register_promoted(load_promoted("X", str(path(name.removeprefix("promoted-")))))
    torch.manual_seed(0)
    model = build_model(PATTERNS.get(name, PATTERN), "tiny", vocab_size=101, **SETTINGS[name])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module", params=list(SETTINGS))
def pair(request, tmp_path_factory):
    ref = _perturbed(request.param)
    folder = export_model(ref, tmp_path_factory.mktemp("hf") / request.param)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).eval()
    return ref, hf


def test_logits_match_aira(pair):
    ref, hf = pair
    idx = torch.randint(0, 101, (3, L), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, _ = ref(idx)
        got = hf(input_ids=idx).logits
    assert got.dtype == torch.float32 and got.shape == want.shape == (3, L, 101)
    assert (got - want).abs().max().item() <= 1e-5
    assert want.std() > 0.1  # not a trivial comparison of near-zero logits


def test_bf16_weights_run_close_to_fp32(pair):
    # lm-evaluation-harness loads with dtype=bfloat16: the model must run (and agree) in bf16 too.
    ref, hf = pair
    idx = torch.randint(0, 101, (2, L), generator=torch.Generator().manual_seed(5))
    hf16 = copy.deepcopy(hf).to(torch.bfloat16)  # a copy: a round trip through bf16 would lose bits
    with torch.no_grad():
        got = hf16(input_ids=idx).logits.float()
        want, _ = ref(idx)
    assert hf16.dtype == torch.bfloat16 and torch.isfinite(got).all()
    assert (got - want).abs().max().item() < 0.1 * want.abs().max().item()


def test_loss_follows_the_hf_label_convention(pair):
    ref, hf = pair
    idx = torch.randint(0, 101, (2, L), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, want = ref(idx[:, :-1], idx[:, 1:])  # aira takes shifted targets
        got = hf(input_ids=idx, labels=idx).loss  # HF shifts inside the model
    assert abs(got.item() - want.item()) <= 1e-5


def test_greedy_generate_matches_aira_step_by_step(pair):
    ref, hf = pair
    prompt = torch.randint(0, 101, (1, 6), generator=torch.Generator().manual_seed(3))
    out = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5, do_sample=False, pad_token_id=0
    )
    seq = prompt
    with torch.no_grad():
        for _ in range(5):
            seq = torch.cat([seq, ref(seq)[0][:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, seq)


def test_right_padding_is_harmless_and_left_padding_refused(pair):
    _, hf = pair
    idx = torch.randint(1, 101, (1, 10), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([idx, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 4)], dim=1).long()
    with torch.no_grad():
        alone = hf(input_ids=idx).logits
        right = hf(input_ids=padded, attention_mask=mask).logits[:, :10]
    assert (alone - right).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="right-padded"):
        hf(input_ids=padded.flip(1), attention_mask=mask.flip(1))


def test_config_reads_back_with_hf_names(pair):
    ref, hf = pair
    c = hf.config
    assert c.model_type == "aira_hybrid" and c.pattern == ref.pattern
    assert (c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (64, 4, ref.cfg.n_kv_heads)
    assert c.num_hidden_layers == len(ref.pattern) and c.max_position_embeddings == ref.cfg.max_seq_len
    assert sum(p.numel() for p in hf.parameters()) == ref.num_params()


def test_tie_flags_agree_and_survive_save_pretrained(pair, tmp_path):
    ref, hf = pair
    tied = ref.cfg.tie_embeddings
    assert hf.config.tie_embeddings is tied and hf.config.tie_word_embeddings is tied
    assert (hf.lm_head is None) is tied  # a tied model reads the embedding matrix, owns no head
    hf.config.tie_word_embeddings = tied  # HF's name writes aira's field
    assert hf.config.tie_embeddings is tied
    hf.tie_weights()  # HF's own tying must leave the weights as they are
    idx = torch.randint(0, 101, (1, 9), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        want = hf(input_ids=idx).logits
    hf.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["tie_embeddings"] is tied and saved.get("tie_word_embeddings", tied) is tied
    again = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "again"), trust_remote_code=True)
    assert again.config.tie_word_embeddings is tied and (again.lm_head is None) is tied
    with torch.no_grad():
        assert torch.equal(again.eval()(input_ids=idx).logits, want)


@pytest.mark.parametrize("kind", ["bytes", "bpe"])
def test_autotokenizer_reads_the_exported_tokenizer(kind, tmp_path):
    from aira.data.shards import prepare_text_data

    (tmp_path / "c.txt").write_text("the cat sat on the mat; the dog ate the hat.\n" * 300)
    data = prepare_text_data(
        str(tmp_path / "c.txt"), tokenizer=kind, vocab_size=300, cache_dir=tmp_path / "c"
    )
    model = build_model("AM", "tiny", vocab_size=data.vocab_size)
    folder = export_model(model, tmp_path / "m", tokenizer=data.root)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    text = "the cat ate the mat € 😀\n  x"
    ids = tok(text)["input_ids"]
    assert ids == data.tokenizer.encode(text)  # no BOS / EOS added, same ids as aira
    assert tok.decode(ids) == text
    eos = json.loads((folder / "config.json").read_text())["eos_token_id"]
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == eos
    assert data.tokenizer.token_bytes(eos) == b""  # aira's special token, not text
    # one pad id everywhere: tokenizer, config, generation config; batches padded on the right with it
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).eval()
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == eos
    assert hf.config.pad_token_id == hf.generation_config.pad_token_id == eos
    assert hf.generation_config.eos_token_id == eos
    batch = tok(["the cat", "the cat sat on"], padding=True, return_tensors="pt")
    short = tok("the cat")["input_ids"]
    assert batch["input_ids"][0].tolist() == short + [eos] * (batch["input_ids"].shape[1] - len(short))
    assert batch["attention_mask"][0].tolist() == [1] * len(short) + [0] * (batch["input_ids"].shape[1] - len(short))
    with torch.no_grad():
        alone = hf(input_ids=torch.tensor([short])).logits
        padded = hf(**batch).logits[:1, : len(short)]
    assert (alone - padded).abs().max().item() <= 1e-5


def test_exporter_and_modeling_file_agree_on_the_codes():
    from aira.export import configuration_aira, hf

    assert hf.SUPPORTED_CODES == configuration_aira.SUPPORTED_CODES
    with pytest.raises(ValueError, match="implements only ADEGMSW"):
        configuration_aira.AiraConfig(pattern="AMZ")


def test_autotokenizer_reads_an_exported_hugging_face_tokenizer(tmp_path):
    from aira.cli import main
    from tests.export.test_hf_files import _hf_tokenizers

    path = _hf_tokenizers(tmp_path)["word"]
    assert main(["export", "--pattern", "AM", "--tokenizer", str(path), "--out", str(tmp_path / "m")]) == 0
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "m"))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"), trust_remote_code=True)
    assert tok("the cat sat on a mat")["input_ids"] == [3, 4, 5, 6, 8, 7]
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token, tok.pad_token_id) == ("</s>", 1, "<pad>", 0)
    assert (hf.generation_config.eos_token_id, hf.generation_config.pad_token_id) == (1, 0)
    assert hf.embed.num_embeddings == len(tok) == 12


def test_cached_steps_give_the_logits_of_the_whole_sequence(pair):
    # The prompt through the chunked scans, then one token, then three at once, then single tokens:
    # past the window (5) and across SSD chunks (8), each step's logits equal the uncached forward's.
    _, hf = pair
    idx = torch.randint(0, 101, (2, 19), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = hf(input_ids=idx).logits
        out = hf(input_ids=idx[:, :7], use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        got = [out.logits]
        for start, stop in [(7, 8), (8, 11), *((t, t + 1) for t in range(11, 19))]:
            out = hf(input_ids=idx[:, start:stop], past_key_values=cache, use_cache=True)
            got.append(out.logits)
    assert cache.seen == 19
    assert (torch.cat(got, dim=1) - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("beams", [1, 3])
def test_generate_with_the_cache_equals_generate_without(pair, beams):
    _, hf = pair
    prompt = torch.randint(0, 101, (2, 6), generator=torch.Generator().manual_seed(8))
    lengths = []
    hook = hf.embed.register_forward_pre_hook(lambda _, args: lengths.append(args[0].shape[1]))
    try:
        kw = {"max_new_tokens": 14, "do_sample": False, "num_beams": beams, "pad_token_id": 0}
        cached = hf.generate(prompt, attention_mask=torch.ones_like(prompt), use_cache=True, **kw)
        n_cached = len(lengths)
        plain = hf.generate(prompt, attention_mask=torch.ones_like(prompt), use_cache=False, **kw)
    finally:
        hook.remove()
    assert cached.shape == (2, 20) and torch.equal(cached, plain)
    assert lengths[:n_cached] == [6] + [1] * (n_cached - 1)  # the cache was used: one new token a step
    assert lengths[n_cached:] == list(range(6, 6 + len(lengths) - n_cached))  # without: the whole prefix


def test_an_edited_mechanism_file_is_refused_at_load(tmp_path):
    from aira.tasks.lra.mechanisms import path
    from aira.tasks.promoted import load_promoted, register_promoted

    register_promoted(load_promoted("X", str(path("linear"))))
    folder = export_model(build_model("AXM", "tiny", vocab_size=50), tmp_path / "edited")
    with open(folder / "aira_mechanism_X.py", "a") as f:
        f.write("# changed\n")
    with pytest.raises(ValueError, match=r"aira_mechanism_X.py: its sha256 \w{12}\.\.\. is not config.json's"):
        transformers.AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True)


def test_a_runs_extrapolation_exports_and_loads_with_aira_s_logits(tmp_path):
    # `aira export --config RUN/...json` of a run with X: the folder loads where aira is absent from the
    # import path's view (trust_remote_code), and computes what aira's model of the same seed computes
    from aira.cli import main
    from aira.models import HybridLM, ModelConfig
    from tests.export.test_hf_files import _promoted_run

    run, _ = _promoted_run(tmp_path, "local")
    assert main(["export", "--config", str(run / "ext.json"), "--seed", "3", "--out", str(tmp_path / "run-x")]) == 0
    ext = json.loads((run / "ext.json").read_text())
    torch.manual_seed(3)
    ref = HybridLM(ModelConfig(**ext["model_config"]), ext["pattern"]).eval()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "run-x"), trust_remote_code=True).eval()
    assert hf.config.promoted["X"]["origin"]["path"].endswith("local.py")
    idx = torch.randint(0, ref.cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want, _ = ref(idx)
        got = hf(input_ids=idx).logits
    assert "X" in ext["pattern"] and (got - want).abs().max().item() <= 1e-5 and want.std() > 0.1
    out = hf.generate(idx[:1, :5], attention_mask=torch.ones(1, 5, dtype=torch.long), max_new_tokens=8,
                      do_sample=False, pad_token_id=0)
    seq = idx[:1, :5]
    with torch.no_grad():
        for _ in range(8):
            seq = torch.cat([seq, ref(seq)[0][:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, seq)
