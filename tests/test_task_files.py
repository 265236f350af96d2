"""The shared one-file proposal check used by the Design tasks."""

from aira.tasks.files import parse_single_file


def test_single_file_proposals():
    tree, err = parse_single_file({"files": {"a.py": "x = 1\n"}}, "a.py")
    assert err is None and tree.body[0].targets[0].id == "x"
    assert "must be" in parse_single_file("x = 1", "a.py")[1]
    assert "b.py is frozen" in parse_single_file({"files": {"a.py": "x=1", "b.py": ""}}, "a.py")[1]
    assert "missing or empty" in parse_single_file({"files": {"a.py": "  "}}, "a.py")[1]
    assert "line 2" in parse_single_file({"files": {"a.py": "x = 1\ndef (:\n"}}, "a.py")[1]
    # errors only the compiler sees are caught too
    assert "'return' outside function" in parse_single_file({"files": {"a.py": "return 1"}}, "a.py")[1]
