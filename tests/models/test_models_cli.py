"""`aira models show | list` through aira.cli.main."""

import json

from aira.cli import main


def test_show_llama_1b(capsys):
    assert main(["models", "show", "--pattern", "(AM)x16", "--preset", "1B"]) == 0
    out = capsys.readouterr().out
    assert "layers: 32  (AM)x16" in out
    assert "params: 1,235,814,400" in out
    assert "ratio A:M:S: 16:16:0" in out
    assert "flops_per_token:" in out and "seq_len 2048" in out


def test_show_json(capsys):
    assert (
        main(["models", "show", "--pattern", "attn mlp (mamba mlp)x2 swa", "--preset", "mad", "--json"]) == 0
    )
    s = json.loads(capsys.readouterr().out)
    assert s["pattern"] == "AMSMSMW" and s["layers"] == 7 and s["compressed"] == "A (MS)x2 MW"
    assert s["ratio_codes"] == "A:M:S:W" and s["ratio"] == "1:3:2:1"
    assert s["params"] > s["non_embedding_params"] > 0 and s["seq_len"] == 128
    assert s["fractions"]["M"] == 3 / 7


def test_show_seq_len_changes_flops(capsys):
    main(["models", "show", "--pattern", "AM", "--preset", "tiny", "--json"])
    short = json.loads(capsys.readouterr().out)["flops_per_token"]
    main(["models", "show", "--pattern", "AM", "--preset", "tiny", "--json", "--seq-len", "4096"])
    assert json.loads(capsys.readouterr().out)["flops_per_token"] > short


def test_bad_input_is_one_line_exit_2(capsys):
    assert main(["models", "show", "--pattern", "AQ", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid codes: A (attn)" in err
    assert main(["models", "show", "--pattern", "AM", "--preset", "2B"]) == 2
    assert "valid: tiny, mad, small, 350M, 1B, 3B" in capsys.readouterr().err
    assert main(["models", "show", "--pattern", "(AM", "--preset", "tiny"]) == 2
    assert "unbalanced" in capsys.readouterr().err


def test_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for word in ("attn", "mlp", "mamba", "swa", "tiny", "350M", "3B"):
        assert word in out
    assert main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["code"] for p in data["primitives"]] == ["A", "D", "E", "G", "M", "S", "W"]
    assert data["presets"][4]["d_model"] == 2048


def test_show_counts_deltanet_gla_and_moe(capsys):
    from aira.models import build_model, get_preset

    assert main(["models", "show", "--pattern", "(deltanet mlp gla moe)x2", "--preset", "tiny", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["pattern"] == "DMGEDMGE" and s["ratio_codes"] == "A:M:S:D:E:G" and s["ratio"] == "0:2:0:2:2:2"
    built = build_model("DMGEDMGE", get_preset("tiny").model)
    assert s["params"] == sum(p.numel() for p in built.parameters())
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("deltanet", "gla", "moe"))
