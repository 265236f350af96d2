"""ListOps: labels against an independent stack-machine evaluator, lengths, determinism, TSV loader."""

import random

import pytest
import torch

from aira.data.lra import listops
from aira.errors import UsageError


def stack_eval(tokens: list[str]) -> int:
    """Evaluate LRA's token string with frames [operator, arguments]; brackets only delimit."""
    frames: list[list] = [["ROOT", []]]
    for tok in tokens:
        if tok in ("(", ")"):
            continue
        if tok.startswith("["):
            frames.append([tok[1:], []])
        elif tok == "]":
            op, args = frames.pop()
            ordered = sorted(args)
            mid = len(ordered) // 2
            value = {"MAX": ordered[-1], "MIN": ordered[0], "SM": sum(args) % 10,
                     "MED": ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2}[op]
            frames[-1][1].append(value)
        else:
            frames[-1][1].append(int(tok))
    assert len(frames) == 1 and len(frames[0][1]) == 1, "unbalanced expression"
    return frames[0][1][0]


def test_labels_match_an_independent_evaluator_and_lengths_stay_in_range():
    cfg = listops.ListOpsConfig(min_len=40, max_len=120)
    rng = random.Random(3)
    ops_seen = set()
    for _ in range(300):
        toks, label = listops.sample(rng, cfg)
        assert 40 <= len(toks) <= 120
        assert toks.count("(") == toks.count(")")
        assert stack_eval(toks) == label
        ops_seen.update(t for t in toks if t.startswith("["))
    assert ops_seen == set(listops.OPS)


def test_depth_and_argument_limits_hold():
    cfg = listops.ListOpsConfig(min_len=10, max_len=400, max_depth=3, max_args=4)
    rng = random.Random(1)
    for _ in range(100):
        toks, _ = listops.sample(rng, cfg)
        depth = deepest = 0
        args: list[int] = []
        for tok in toks:
            if tok.startswith("["):
                depth += 1
                deepest = max(deepest, depth)
                args.append(0)
            elif tok == "]":
                depth -= 1
                assert 2 <= args.pop() <= 4
                if args:
                    args[-1] += 1
            elif tok.isdigit():
                args[-1] += 1
        assert deepest <= 3


def test_median_truncates_the_mean_of_the_middle_pair():
    assert listops.apply_op("[MED", [3, 4]) == 3
    assert listops.apply_op("[MED", [1, 9, 2, 8]) == 5
    assert listops.apply_op("[SM", [9, 9, 5]) == 3


def test_generation_is_seeded_and_splits_are_tensors():
    cfg = listops.ListOpsConfig(min_len=20, max_len=60, n_train=40, n_val=10, n_test=10)
    a, b, c = listops.generate(cfg, 0), listops.generate(cfg, 0), listops.generate(cfg, 1)
    assert torch.equal(a["train"].x, b["train"].x) and torch.equal(a["test"].y, b["test"].y)
    assert not torch.equal(a["train"].x[:, :20], c["train"].x[:, :20])
    assert a["train"].x.shape[0] == 40 and a["train"].x.shape[1] <= 60
    ids = a["val"].x[0][a["val"].x[0] != 0].tolist()
    assert stack_eval([listops.VOCAB[i] for i in ids]) == a["val"].y[0].item()


def test_bad_length_range_is_a_usage_error():
    with pytest.raises(UsageError, match="length range"):
        listops.ListOpsConfig(min_len=300, max_len=100)


def _write(path, rows, header="Source\tTarget"):
    path.write_text(header + "\n" + "".join(f"{s}\t{t}\n" for s, t in rows))


def test_tsv_loader_reads_lra_release_format(tmp_path):
    rows = [("( ( ( [MAX 2 ) 9 ) ] )", 9), ("( ( ( ( [SM 7 ) 5 ) 9 ) ] )", 1)]
    for name in listops.FILES.values():
        _write(tmp_path / name, rows)
    splits = listops.load_dir(tmp_path, max_len=2000)
    assert splits["test"].y.tolist() == [9, 1]
    first = [listops.VOCAB[i] for i in splits["train"].x[0].tolist() if i]
    assert first == rows[0][0].split()
    assert stack_eval(first) == 9


def test_tsv_loader_errors_name_file_and_line(tmp_path):
    _write(tmp_path / "basic_train.tsv", [("( [FOO 1 ) ] )", 1)])
    with pytest.raises(UsageError, match=r"basic_train.tsv:2: unknown ListOps token '\[FOO'"):
        listops.read_tsv(tmp_path / "basic_train.tsv", 100)
    _write(tmp_path / "bad.tsv", [("1", 1)], header="text\tlabel")
    with pytest.raises(UsageError, match="Source<TAB>Target"):
        listops.read_tsv(tmp_path / "bad.tsv", 100)
    with pytest.raises(UsageError, match="missing ListOps files"):
        listops.load_dir(tmp_path, 100)
