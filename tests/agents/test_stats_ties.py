"""Noise ties on the leaderboard: grouped by distance to the group's first row."""

from aira.agents.stats import tie_groups


def test_tie_groups_by_distance_to_group_leader():
    # 0.90, 0.895 tie (0.005 < 0.01); 0.889 is 0.011 from the leader: a new group even though it is
    # only 0.006 from the row above (no chaining); 0.88 ties with 0.889
    assert tie_groups([0.90, 0.895, 0.889, 0.88, 0.70], 0.01) == [1, 1, 3, 3, 5]
    assert tie_groups([0.9, 0.9, 0.9], None) == [1, 2, 3]
    assert tie_groups([], 0.1) == []
    # lower-is-better scores work the same way (distance only)
    assert tie_groups([1.00, 1.02, 1.5], 0.05) == [1, 1, 3]
