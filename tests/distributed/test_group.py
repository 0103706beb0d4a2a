"""Forming the group: a rank that never shows up, one that cannot connect, one that runs
something else; each named (no real group needed: the connection is stubbed)."""

from __future__ import annotations

import json
import threading

import pytest

from vllm_mlx.distributed import group
from vllm_mlx.distributed.group import GroupError, Member, join_group, launched_labels


@pytest.fixture
def two_hosts(monkeypatch):
    monkeypatch.setenv("VLLM_MLX_HOSTS", json.dumps(["mac1.local", "mac2.local (10.0.0.2)"]))


def test_labels_come_from_our_launcher_then_from_the_ring_addresses(monkeypatch, tmp_path):
    monkeypatch.setenv("VLLM_MLX_HOSTS", '["a", "b"]')
    assert launched_labels() == ["a", "b"]
    monkeypatch.delenv("VLLM_MLX_HOSTS")
    ring = tmp_path / "ring.json"
    ring.write_text('[["10.0.0.1:5000"], ["10.0.0.2:5001", "10.0.1.2:5002"]]')
    monkeypatch.setenv("MLX_HOSTFILE", str(ring))
    assert launched_labels() == ["10.0.0.1:5000", "10.0.0.2:5001, 10.0.1.2:5002"]
    monkeypatch.delenv("MLX_HOSTFILE")
    assert launched_labels(2) == ["rank 0", "rank 1"]


def test_a_rank_that_never_joins_is_a_timeout_naming_it(two_hosts, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(group, "_connect", lambda backend: release.wait(30))
    try:
        with pytest.raises(GroupError, match=r"rank 0: the group did not form within 0 s; "
                                             r"waiting for rank 1 \(mac2.local \(10.0.0.2\)\)"):
            join_group("ring", 0.2, {}, rank_hint=0)
    finally:
        release.set()


def test_a_rank_that_cannot_connect_says_why(two_hosts, monkeypatch):
    def refuse(backend):
        raise RuntimeError("[ring] Couldn't connect (error: 111)")

    monkeypatch.setattr(group, "_connect", refuse)
    with pytest.raises(GroupError, match=r"rank 1 \(mac2.local \(10.0.0.2\)\) could not join "
                                         r"the group \(ring\): \[ring\] Couldn't connect.*"
                                         r"rank 0 \(mac1.local\) can be reached"):
        join_group("ring", 5, {}, rank_hint=1)


def test_ranks_that_disagree_are_named():
    members = [Member(0, "10.0.0.1", "studio-1"), Member(1, "10.0.0.2", "studio-2")]
    records = [{"fingerprint": {"model": "a", "max_batch_size": 32}},
               {"fingerprint": {"model": "a", "max_batch_size": 8}}]
    with pytest.raises(GroupError, match="rank 1 \\(10.0.0.2, host studio-2\\) runs with "
                                         "max_batch_size=8 but rank 0 \\(10.0.0.1, host "
                                         "studio-1\\) with max_batch_size=32"):
        group._check_agreement(records, members)
    group._check_agreement(records[:1] * 2, members)
