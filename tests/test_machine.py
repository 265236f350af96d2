"""Workers and threads that fit the machine: affinity, cgroup quotas, OMP_NUM_THREADS."""

import os

import pytest

from aira import machine
from aira.errors import UsageError
from aira.machine import plan_workers, usable_cores


@pytest.fixture
def eight_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_cgroup_v2_quota_limits_the_cores(tmp_path, eight_cores):
    (tmp_path / "cpu.max").write_text("250000 100000\n")  # 2.5 CPUs: 2 whole cores
    assert usable_cores(cgroup_root=tmp_path) == (2, "cgroup quota")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cores(cgroup_root=tmp_path) == (8, "affinity")


def test_cgroup_v1_quota_and_a_quota_under_one_core(tmp_path, eight_cores):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert usable_cores(cgroup_root=tmp_path) == (1, "cgroup quota")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")  # no quota
    assert usable_cores(cgroup_root=tmp_path)[0] == 8


def test_affinity_limits_the_cores(tmp_path, monkeypatch, eight_cores):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cores(cgroup_root=tmp_path) == (3, "affinity")


def test_default_plan_is_one_thread_per_worker_and_a_worker_per_core(eight_cores):
    plan = plan_workers(cores=(6, "affinity"))
    assert (plan.workers, plan.threads, plan.oversubscribed) == (6, 1, False)
    assert plan.describe() == "6 workers x 1 thread on 6 usable cores (affinity)"


def test_omp_num_threads_sets_threads_per_worker(monkeypatch, eight_cores):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert (plan_workers(cores=(6, "x")).workers, plan_workers(cores=(6, "x")).threads) == (3, 2)
    # workers asked for: the threads shrink to fit them rather than oversubscribe
    plan = plan_workers(workers=6, cores=(6, "x"))
    assert (plan.workers, plan.threads, plan.oversubscribed) == (6, 1, False)


def test_explicit_choices_win_and_oversubscription_is_said(eight_cores):
    plan = plan_workers(workers=3, threads=2, cores=(2, "cgroup quota"))
    assert (plan.workers, plan.threads) == (3, 2)
    assert plan.oversubscribed
    assert plan.describe().endswith("oversubscribed: 6 threads on 2 cores run slower each")


@pytest.mark.parametrize("kw, msg", [({"workers": 0}, "--workers must be at least 1, got 0"),
                                     ({"threads": -2}, "--threads must be at least 1, got -2")])
def test_bad_counts_are_usage_errors(kw, msg):
    with pytest.raises(UsageError, match=msg):
        plan_workers(**kw, cores=(2, "x"))


def test_this_machine_reads_without_error():
    n, why = usable_cores()
    assert 1 <= n <= (os.cpu_count() or 1)
    assert why in ("affinity", "cgroup quota", "cpu_count")
    assert machine.plan_workers().threads >= 1
