"""ListOps: labels against an independent stack-machine evaluator, lengths, determinism, TSV loader, and
agreement with LRA's own generator (lra_benchmarks/data/listops.py) and input pipeline
(lra_benchmarks/listops/input_pipeline.py) in google-research/long-range-arena."""

import random
import statistics

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
        assert "(" not in toks and ")" not in toks  # LRA's pipeline drops them before the model
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
    assert first == ["[MAX", "2", "9", "]"]
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


# --- LRA's input pipeline (lra_benchmarks/listops/input_pipeline.py) --------------------------------
# Its rule: rename "]" to "X", delete every "(" and ")", split on whitespace, keep the first max_length
# (2000) tokens, pad with 0. aira keeps the name "]"; the ids are its own.

def _ids_to_tokens(row: torch.Tensor) -> list[str]:
    return [listops.VOCAB[i] for i in row.tolist() if i]


def test_tsv_rows_become_lra_pipeline_tokens_then_are_truncated(tmp_path):
    rows = [("( ( ( ( [MAX 2 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 9 ) ] )", 9),             # 22 tokens, 8 kept
            ("( ( ( ( ( [SM 1 ) ( ( ( [MAX 2 ) 3 ) ] ) ) 4 ) 5 ) ] )", 3)]       # 25 tokens, 9 kept
    _write(tmp_path / "basic_test.tsv", rows)
    s = listops.read_tsv(tmp_path / "basic_test.tsv", max_len=8)
    # Written out by hand from LRA's rule: the parentheses go first, then the cut at max_length, so the
    # first row fits whole with its final "]" and the second loses only its last token.
    assert _ids_to_tokens(s.x[0]) == ["[MAX", "2", "[MIN", "4", "7", "]", "9", "]"]
    assert _ids_to_tokens(s.x[1]) == ["[SM", "1", "[MAX", "2", "3", "]", "4", "5"]
    assert s.x.shape == (2, 8) and s.y.tolist() == [9, 3]


def _released(op: str, args: list[str]) -> str:
    """LRA's released string of one operator node: each argument closes a parenthesised prefix."""
    out = "( " * (len(args) + 1) + op
    for a in args:
        out += f" {a} )"
    return out + " ] )"


def test_a_long_released_row_keeps_its_final_bracket_at_2000(tmp_path):
    # 922 tokens without parentheses, 2,764 with them: the old loader cut it at 2,000 and lost the "]"
    # that closes the root, as it did for 82% of rows made with LRA's recipe.
    leaf = _released("[MIN", list("3141592"))
    mid = _released("[MAX", [leaf] * 10)
    row = _released("[SM", [mid] * 10)
    assert len(row.split()) == 2764
    _write(tmp_path / "basic_val.tsv", [(row, 0)])
    got = _ids_to_tokens(listops.read_tsv(tmp_path / "basic_val.tsv", max_len=listops.MAX_LEN).x[0])
    assert len(got) == 922 and got[-1] == "]"
    assert got == [t for t in row.split() if t not in ("(", ")")]
    assert stack_eval(got) == 0  # SM of ten MAXes of MIN(3,1,4,1,5,9,2) = 1: 10 mod 10


# --- LRA's generator (lra_benchmarks/data/listops.py) -------------------------------------------------
# Its settings (flags): max_depth 10, max_args 10, min_length 500, max_length 2000 (kept when
# min_length < length < max_length), 96,000 / 2,000 / 2,000 examples; VALUE_P = 0.25.

def _lra_tree(rng: random.Random, depth: int, max_depth: int, max_args: int):
    """LRA's generate_tree rules, restated: (tree, length); length counts operators, digits and "]".
    Below max_depth, r = random(); r > VALUE_P = 0.25 gives a digit random.choice(range(10)); else an
    operator node with randint(2, max_args) subtrees, then its operator random.choice of
    [MIN, MAX, MED, SM] in that order. At max_depth, always a digit."""
    r = rng.random() if depth < max_depth else 1
    if r > 0.25:
        return rng.choice(range(10)), 1
    args, length = [], 2
    for _ in range(rng.randint(2, max_args)):
        sub, n = _lra_tree(rng, depth + 1, max_depth, max_args)
        args.append(sub)
        length += n
    return (rng.choice(["[MIN", "[MAX", "[MED", "[SM"]), args), length


def _lra_string(tree) -> str:
    return str(tree) if isinstance(tree, int) else _released(tree[0], [_lra_string(a) for a in tree[1]])


def _lra_value(tree) -> int:
    """LRA's to_value: MIN, MAX, int(np.median) (here statistics.median: the same mean of the middle two),
    sum mod 10."""
    if isinstance(tree, int):
        return tree
    op, vals = tree[0], [_lra_value(a) for a in tree[1]]
    return {"[MIN": min(vals), "[MAX": max(vals), "[MED": int(statistics.median(vals)),
            "[SM": sum(vals) % 10}[op]


def _lra_pipeline(source: str) -> list[str]:
    """LRA's input pipeline: "]" -> "X", "(" and ")" deleted, whitespace split (X shown as "]" again)."""
    out = source.replace("]", "X").replace("(", "").replace(")", "").split()
    return ["]" if t == "X" else t for t in out]


@pytest.mark.parametrize("lo, hi, n", [(20, 60, 100), (100, 300, 60)])
def test_generator_draws_the_trees_lra_generator_draws(lo, hi, n):
    # Same seeds, same random draws: our sample must be the first tree LRA's rules accept (exclusive
    # bounds lo - 1 < length < hi + 1), as LRA's pipeline would hand it to the model, with LRA's label.
    cfg = listops.ListOpsConfig(min_len=lo, max_len=hi)
    ours, ref = random.Random(7), random.Random(7)
    for _ in range(n):
        toks, label = listops.sample(ours, cfg)
        while True:
            tree, length = _lra_tree(random.Random(ref.getrandbits(64)), 1, 10, 10)
            if lo - 1 < length < hi + 1:
                break
        assert toks == _lra_pipeline(_lra_string(tree))
        assert len(toks) == length and label == _lra_value(tree)


def test_default_config_is_lra_generators_flags():
    cfg = listops.ListOpsConfig()
    assert (cfg.max_depth, cfg.max_args, cfg.leaf_p) == (10, 10, 1 - 0.25)
    assert (cfg.min_len - 1, cfg.max_len + 1) == (500, 2000)  # LRA's bounds are exclusive
    assert (cfg.n_train, cfg.n_val, cfg.n_test) == (96_000, 2_000, 2_000)
    assert listops.MAX_LEN == 2000  # LRA's max_length (listops/configs/base_listops_config.py)
