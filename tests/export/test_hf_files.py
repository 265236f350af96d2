"""`aira export` without transformers: the folder's files, the three ways to name a model, bad input."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from aira.cli import main
from aira.errors import UsageError
from aira.export.hf import CODE_FILES, build_for_export, check_exportable, export_model
from aira.models import ModelConfig, build_model, resolve_config
from aira.train.checkpoint import save_checkpoint


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").exists():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    return torch.load(folder / "pytorch_model.bin")


def test_folder_holds_config_code_and_every_weight(tmp_path):
    torch.manual_seed(0)
    model = build_model("AMSW", "tiny", vocab_size=97)
    out = export_model(model, tmp_path / "m")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "aira_hybrid"
    assert cfg["auto_map"] == {
        "AutoConfig": "configuration_aira.AiraConfig",
        "AutoModelForCausalLM": "modeling_aira.AiraForCausalLM",
    }
    assert cfg["pattern"] == "AMSW" and cfg["num_hidden_layers"] == 4
    for f in dataclasses.fields(ModelConfig):  # every ModelConfig field, with its value
        assert cfg[f.name] == getattr(model.cfg, f.name), f.name
    assert cfg["hidden_size"] == model.cfg.d_model and cfg["max_position_embeddings"] == model.cfg.max_seq_len
    assert cfg["tie_embeddings"] is True and cfg["tie_word_embeddings"] is True  # one flag, both names
    weights = _read_weights(out)
    state = model.state_dict()
    # tied head: written once, as the embedding
    assert set(weights) == set(state) - {"lm_head.weight"}
    for k, v in weights.items():
        assert v.dtype == torch.float32 and torch.equal(v, state[k]), k
    for name in CODE_FILES:
        assert (out / name).read_text() == (Path("aira/export") / name).read_text()


def test_modeling_code_never_imports_aira():
    # The folder must load where aira is not installed.
    for name in CODE_FILES:
        tree = ast.parse((Path("aira/export") / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "aira" for a in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1 or not (node.module or "").startswith("aira"), name


def test_untied_head_is_written(tmp_path):
    model = build_model("AM", "tiny", tie_embeddings=False)
    out = export_model(model, tmp_path / "m")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["tie_embeddings"] is False and cfg["tie_word_embeddings"] is False
    weights = _read_weights(out)
    assert torch.equal(weights["lm_head.weight"], model.lm_head.weight)
    assert not torch.equal(weights["lm_head.weight"], weights["embed.weight"])


def test_export_from_an_extrapolation_json(tmp_path):
    from aira.compose.extrapolate import extrapolate

    ext = extrapolate("AMSW", "tiny", "stretch").to_dict()
    path = tmp_path / "ext.json"
    path.write_text(json.dumps(ext))
    assert main(["export", "--config", str(path), "--out", str(tmp_path / "m")]) == 0
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["pattern"] == ext["pattern"] and len(ext["pattern"]) > 4
    assert {k: cfg[k] for k in ext["model_config"]} == ext["model_config"]


def test_export_a_checkpoint_uses_its_pattern_config_and_weights(tmp_path):
    torch.manual_seed(1)
    cfg = resolve_config("tiny", vocab_size=50, max_seq_len=32)
    model = build_model("SMAW", cfg)
    save_checkpoint(
        tmp_path / "ck",
        {
            "model": model.state_dict(),
            "optimizer": {},
            "pattern": "SMAW",
            "model_config": dataclasses.asdict(cfg),
        },
        7,
    )
    out = tmp_path / "m"
    assert main(["export", "--weights", str(tmp_path / "ck" / "step_00000007.pt"), "--out", str(out)]) == 0
    written = json.loads((out / "config.json").read_text())
    assert written["pattern"] == "SMAW" and written["vocab_size"] == 50 and written["max_seq_len"] == 32
    weights = _read_weights(out)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items() if k != "lm_head.weight")


def test_a_pretraining_checkpoint_brings_its_tokenizer(tmp_path):
    from aira.data.shards import prepare_text_data

    (tmp_path / "c.txt").write_text("one two three\n" * 400)
    data = prepare_text_data(str(tmp_path / "c.txt"), tokenizer="bytes", cache_dir=tmp_path / "cache")
    cfg = resolve_config("tiny", vocab_size=data.vocab_size)
    model = build_model("AM", cfg)
    state = {
        "model": model.state_dict(),
        "optimizer": {},
        "pattern": "AM",
        "data": str(data.root),
        "model_config": dataclasses.asdict(cfg),
    }
    save_checkpoint(tmp_path / "ck", state, 3)
    out = tmp_path / "m"
    assert main(["export", "--weights", str(tmp_path / "ck" / "step_00000003.pt"), "--out", str(out)]) == 0
    written = json.loads((out / "config.json").read_text())
    assert written["eos_token_id"] == 256  # bytes, then <|endoftext|>
    assert written["pad_token_id"] == 256  # no pad token of its own: eos pads
    assert json.loads((out / "generation_config.json").read_text()) == {"eos_token_id": 256, "pad_token_id": 256}
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_cfg["eos_token"] == tok_cfg["pad_token"] == "<|endoftext|>"
    assert tok_cfg["padding_side"] == "right" and tok_cfg["model_max_length"] == cfg.max_seq_len
    from tokenizers import Tokenizer

    hf_tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    text = "naïve € 😀 <tag>\n\ttabs  "
    assert hf_tok.encode(text).ids == data.tokenizer.encode(text)
    small = build_model("AM", "tiny", vocab_size=100)
    with pytest.raises(UsageError, match="more than the model's vocabulary"):
        export_model(small, tmp_path / "small", tokenizer=data.root)


def test_bare_state_dict_with_ddp_prefixes_loads(tmp_path):
    model = build_model("AM", "tiny", vocab_size=40)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "w.pt")
    again, meta = build_for_export(pattern="AM", preset="tiny", weights=tmp_path / "w.pt", seed=123)
    assert meta == {}  # a bare state dict records nothing else
    assert again.cfg.vocab_size == 40  # taken from the weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(UsageError, match="implements A, D, E, G, M, S, W and promoted mechanisms only"):
        check_exportable("AMZ", resolve_config("tiny"))
    with pytest.raises(UsageError, match="bidirectional"):
        check_exportable("AM", resolve_config("tiny", causal=False))
    model = build_model("AM", "tiny")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(UsageError, match="do not fit pattern AMS"):
        build_for_export(pattern="AMS", preset="tiny", weights=tmp_path / "w.pt")
    with pytest.raises(UsageError, match="size mismatch"):
        build_for_export(pattern="AM", preset="small", weights=tmp_path / "w.pt")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        export_model(model, tmp_path / "full")
    (tmp_path / "bad.json").write_text(json.dumps({"pattern": "AM"}))
    for argv, message in [
        (["export", "--out", str(tmp_path / "o")], "give --pattern"),
        (["export", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")], "model_config"),
        (["export", "--config", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")], "does not exist"),
        (["export", "--pattern", "AQ", "--out", str(tmp_path / "o")], "invalid layer pattern"),
        (
            [
                "export",
                "--pattern",
                "AM",
                "--weights",
                str(tmp_path / "nope.pt"),
                "--out",
                str(tmp_path / "o"),
            ],
            "does not exist",
        ),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    (tmp_path / "full" / "tokenizer.json").write_text("{}")  # from an earlier export with a tokenizer
    (tmp_path / "full" / "generation_config.json").write_text("{}")
    export_model(model, tmp_path / "full", overwrite=True)
    assert (tmp_path / "full" / "x").exists() and not (tmp_path / "full" / "tokenizer.json").exists()
    assert not (tmp_path / "full" / "generation_config.json").exists()


def _hf_tokenizers(folder: Path) -> dict[str, Path]:
    """Two standard Hugging Face tokenizer.json files built with the tokenizers library: a word-level
    one with <pad> and </s> (ids 0 and 1, 12 tokens in all), and a trained byte-level BPE with
    <|endoftext|> only."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    words = ["<pad>", "</s>", "[UNK]", "the", "cat", "sat", "on", "mat", "a", "dog", "ate", "hat"]
    word = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    word.pre_tokenizer = pre_tokenizers.Whitespace()
    word.add_special_tokens(["<pad>", "</s>"])
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["the cat sat on the mat; the dog ate the hat."] * 50, trainer=trainer)
    paths = {"word": folder / "word" / "tokenizer.json", "bpe": folder / "bpe.json"}
    paths["word"].parent.mkdir(parents=True)
    word.save(str(paths["word"]))
    bpe.save(str(paths["bpe"]))
    return paths


def test_a_hugging_face_tokenizer_is_accepted_and_sets_the_vocabulary(tmp_path, capsys):
    from tokenizers import Tokenizer

    paths = _hf_tokenizers(tmp_path)
    # a folder holding tokenizer.json; no --vocab-size: the model takes the tokenizer's 12
    out = tmp_path / "w"
    assert main(["export", "--pattern", "AM", "--tokenizer", str(paths["word"].parent), "--out", str(out)]) == 0
    assert "vocab_size: 12" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["vocab_size"] == 12 and _read_weights(out)["embed.weight"].shape == (12, 64)
    assert (cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 0)  # </s> ends, its own <pad> pads
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert (tok_cfg["eos_token"], tok_cfg["pad_token"]) == ("</s>", "<pad>")
    assert json.loads((out / "tokenizer.json").read_text()) == json.loads(paths["word"].read_text())
    # the trained BPE file itself; its size is what the library counts, specials included
    bpe = Tokenizer.from_file(str(paths["bpe"]))
    n = bpe.get_vocab_size(with_added_tokens=True)
    assert 256 < n <= 300
    out = tmp_path / "b"
    assert main(["export", "--pattern", "AM", "--tokenizer", str(paths["bpe"]), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vocab_size"] == n
    cfg = json.loads((out / "config.json").read_text())
    eot = bpe.token_to_id("<|endoftext|>")
    assert cfg["vocab_size"] == n and cfg["eos_token_id"] == cfg["pad_token_id"] == eot
    text = "the cat ate a hat"
    assert Tokenizer.from_file(str(out / "tokenizer.json")).encode(text).ids == bpe.encode(text).ids
    # --vocab-size still wins (a larger embedding is fine), and a smaller one is refused in one line
    out = tmp_path / "v"
    assert main(["export", "--pattern", "AM", "--tokenizer", str(paths["bpe"]), "--vocab-size", "512",
                 "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 512
    capsys.readouterr()
    argv = ["export", "--pattern", "AM", "--tokenizer", str(paths["bpe"]), "--vocab-size", "100", "--out",
            str(tmp_path / "x")]
    assert main(argv) == 2
    assert f"has {n} tokens, more than the model's vocabulary of 100" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bytes_tokenizer_needs_no_vocab_size(tmp_path, capsys):
    from aira.data.shards import prepare_text_data

    (tmp_path / "c.txt").write_text("one two three\n" * 400)
    data = prepare_text_data(str(tmp_path / "c.txt"), tokenizer="bytes", cache_dir=tmp_path / "cache")
    out = tmp_path / "m"
    assert main(["export", "--pattern", "AM", "--tokenizer", str(data.root), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["vocab_size"] == data.vocab_size == 257  # 256 bytes + <|endoftext|>
    assert cfg["eos_token_id"] == cfg["pad_token_id"] == 256


def test_a_file_that_is_no_tokenizer_is_one_line(tmp_path, capsys):
    cases = {
        "plain.json": ({"vocab": {"a": 0}}, "no 'model' (Hugging Face) or 'aira_kind' (aira) key"),
        "broken.json": ({"model": {"type": "NoSuchModel"}}, "is not a tokenizer the tokenizers library reads"),
        "kind.json": ({"aira_kind": "words"}, "unknown aira tokenizer kind 'words'"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        argv = ["export", "--pattern", "AM", "--tokenizer", str(tmp_path / name), "--out", str(tmp_path / "o")]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert main(["export", "--pattern", "AM", "--tokenizer", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no aira tokenizer at" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _listed_codes(readme: str) -> dict[str, str]:
    return {ln[3]: ln for ln in readme.splitlines() if ln.startswith("- `")}


def test_readme_lists_exactly_the_patterns_primitives(tmp_path):
    model = build_model("AMSW", "tiny", window=5)
    readme = (export_model(model, tmp_path / "a") / "README.md").read_text()
    assert readme.startswith("# aira hybrid model `AMSW`") and "the layer pattern `AMSW`, 4 layers" in readme
    listed = _listed_codes(readme)
    assert list(listed) == ["A", "M", "S", "W"]
    assert listed["W"] == "- `W` x1: sliding-window attention with RoPE (window 5)"
    for absent in ("DeltaNet", "gated linear", "experts"):
        assert absent not in readme
    model = build_model("DEGMADSE", "tiny", moe_experts=4, moe_top_k=2)
    listed = _listed_codes((export_model(model, tmp_path / "d") / "README.md").read_text())
    assert listed == {
        "D": "- `D` x2: Gated DeltaNet (4 heads)",
        "E": "- `E` x2: top-2 mixture of 4 SwiGLU experts",
        "G": "- `G` x1: gated linear attention (4 heads)",
        "M": "- `M` x1: SwiGLU MLP (width 192)",
        "A": "- `A` x1: grouped-query attention with RoPE (4 heads, 2 kv heads)",
        "S": "- `S` x1: Mamba-2 (state 16, expand 2, head dim 16)",
    }
    assert list(listed) == list("DEGMAS")  # in order of first use


def test_readme_says_where_the_model_came_from(tmp_path):
    assert main(["export", "--pattern", "AM", "--seed", "3", "--out", str(tmp_path / "r")]) == 0
    assert "Made from a random init (seed 3)." in (tmp_path / "r" / "README.md").read_text()
    model = build_model("AM", "tiny")
    save_checkpoint(tmp_path / "ck", {"model": model.state_dict(), "optimizer": {}, "pattern": "AM",
                                      "model_config": dataclasses.asdict(model.cfg)}, 7)
    ck = tmp_path / "ck" / "step_00000007.pt"
    assert main(["export", "--weights", str(ck), "--out", str(tmp_path / "w")]) == 0
    assert f"Made from the weights {ck} (step 7)." in (tmp_path / "w" / "README.md").read_text()


def _promoted_run(tmp_path, name: str = "softmax"):
    """A Compose run folder that promoted an LRA mechanism as X, with a tiny extrapolation of its winner."""
    from aira.compose.extrapolate import extrapolate
    from aira.tasks.lra.mechanisms import path
    from aira.tasks.promoted import load_promoted, register_promoted

    promo = load_promoted("X", str(path(name)))
    register_promoted(promo)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "compose", "task_kwargs": {
        "space": "attn-mlp", "primitives": {"X": promo.to_json()}}}))
    (run / "ext.json").write_text(json.dumps(extrapolate("AXMX", "tiny", "stretch").to_dict()))
    return run, promo


def test_a_promoted_mechanism_travels_verbatim_with_its_sha256_and_origin(tmp_path):
    import hashlib

    from aira.tasks.lra.mechanisms import path

    run, promo = _promoted_run(tmp_path)
    assert main(["export", "--config", str(run / "ext.json"), "--out", str(tmp_path / "m")]) == 0
    out = tmp_path / "m"
    source = path("softmax").read_bytes()
    assert (out / "aira_mechanism_X.py").read_bytes() == source
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["promoted"] == {"X": {"file": "aira_mechanism_X.py", "sha256": hashlib.sha256(source).hexdigest(),
                                     "origin": {"kind": "file", "path": str(path("softmax").resolve())}}}
    assert "X" in cfg["pattern"]
    assert (out / "aira_mechanisms.py").read_text().splitlines()[6:] == [
        "from .aira_mechanism_X import Attention as Attention_X", "",
        'MECHANISMS: dict[str, type] = {"X": Attention_X}']
    readme = (out / "README.md").read_text()
    assert (f"- `X` x{cfg['pattern'].count('X')}: promoted mechanism, source `aira_mechanism_X.py` (sha256 "
            f"{promo.sha256[:12]}...), from file {path('softmax').resolve()}") in readme
    # the same folder exported again without X: no stale mechanism, the package's empty table
    assert main(["export", "--pattern", "AM", "--out", str(out), "--force"]) == 0
    assert not (out / "aira_mechanism_X.py").exists() and json.loads((out / "config.json").read_text())["promoted"] == {}
    assert (out / "aira_mechanisms.py").read_text() == Path("aira/export/aira_mechanisms.py").read_text()


def test_primitive_flag_takes_a_run_copy_and_names_its_origin(tmp_path, capsys):
    from aira.tasks.promoted import write_run_copy

    run, promo = _promoted_run(tmp_path)
    promo = type(promo)("X", promo.source, promo.sha256, {"kind": "design-run", "run": "/d", "node": "n7",
                                                          "task": "lra-listops"})
    write_run_copy(run, [promo], {})  # RUN/primitives/X.py and X.json, as compose run writes them
    capsys.readouterr()
    assert main(["export", "--pattern", "AXXM", "--primitive", f"X={run / 'primitives' / 'X.py'}",
                 "--out", str(tmp_path / "m")]) == 0
    assert "promoted X: aira_mechanism_X.py, sha256 " + promo.sha256[:12] + ", design run /d node n7 (lra-listops)" \
        in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "config.json").read_text())["promoted"]["X"]["origin"]["node"] == "n7"


@pytest.mark.parametrize("extra, line", [
    ([], ("aira: error: invalid layer pattern 'AXXM': X is neither a built-in primitive (ADEGMSW) nor given "
          "with --primitive X=SOURCE")),
    (["--primitive", "X={linear}"], "aira: error: --primitive X={linear}: the run {run} recorded another X"),
    (["--primitive", "X={nystrom}"], ("aira: error: --primitive X: fails the Compose contract at the export's "
                                      "widths: causality: changing the tokens from position 1 on")),
    (["--primitive", "X={linear}", "--primitive", "X={linear}"], "aira: error: --primitive: X is given twice"),
])
def test_bad_promoted_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, line):
    from aira.models import registry
    from aira.tasks.lra.mechanisms import path

    run, _ = _promoted_run(tmp_path)
    registry._BY_CODE.pop("X"), registry._BY_NAME.pop("promoted-x")  # as in a fresh process
    names = {"linear": path("linear"), "nystrom": path("nystrom"), "run": run}
    extra = [a.format(**names) for a in extra]
    model = ["--config", str(run / "ext.json")] if "another" in line else ["--pattern", "AXXM"]
    assert main(["export", *model, *extra, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line.format(**names))
    assert not (tmp_path / "m").exists()
