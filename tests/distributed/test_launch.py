"""The launcher side: hostfile checks, the mlx.launch command line, reading its report."""

from __future__ import annotations

import io
import json
import sys

import pytest

from vllm_mlx.cli import main
from vllm_mlx.distributed import launch
from vllm_mlx.distributed.launch import HostfileError, launcher_command, read_hostfile


def _write(tmp_path, data) -> str:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    return str(path)


TWO = [{"ssh": "mac1.local", "ips": ["10.0.0.1"]}, {"ssh": "mac2.local", "ips": ["10.0.0.2"]}]


def test_mlx_hostfile_forms_are_read(tmp_path):
    hosts = read_hostfile(_write(tmp_path, TWO), None)
    assert [h.ssh for h in hosts.hosts] == ["mac1.local", "mac2.local"]
    assert hosts.hosts[1].label == "mac2.local (10.0.0.2)" and hosts.backend is None
    wrapped = read_hostfile(_write(tmp_path, {"backend": "mpi", "hosts": [{"ssh": "a"},
                                                                             {"ssh": "b"}]}),
                            None)
    assert wrapped.backend == "mpi" and wrapped.hosts[0].label == "a"


@pytest.mark.parametrize("data, backend, message", [
    ([TWO[0]], None, "a group needs at least 2"),
    ([{"ssh": "a"}, {"ssh": "b"}], "ring", "add \"ips\" to host 0 \\(a\\), 1 \\(b\\)"),
    ([{"ips": ["1.2.3.4"]}, TWO[1]], None, "host 0 must be an object with an \"ssh\""),
    ([{"ssh": "a", "ips": "1.2.3.4"}, TWO[1]], None, "\"ips\" must be a list"),
    (TWO, "nccl", "backend 'nccl' is not supported"),
    ({"hosts": "a,b"}, None, "expected a list of hosts"),
])
def test_bad_hostfiles_are_refused_with_the_reason(tmp_path, data, backend, message):
    with pytest.raises(HostfileError, match=message):
        read_hostfile(_write(tmp_path, data), backend)


def test_unreadable_hostfiles_are_refused(tmp_path):
    with pytest.raises(HostfileError, match="cannot read"):
        read_hostfile(tmp_path / "missing.json", None)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(HostfileError, match="not JSON"):
        read_hostfile(tmp_path / "bad.json", None)


def test_mpi_needs_no_addresses(tmp_path):
    assert len(read_hostfile(_write(tmp_path, [{"ssh": "a"}, {"ssh": "b"}]), "mpi").hosts) == 2


def test_the_launch_command_reruns_this_command_on_every_host(tmp_path):
    path = _write(tmp_path, TWO)
    argv = ["serve", "some/model", "--hostfile", path, "--port", "9000"]
    command = launcher_command(path, read_hostfile(path, None), "ring", 40000, argv)
    assert command[0].endswith("mlx.launch")
    assert command[1:9] == ["--hostfile", path, "--backend", "ring", "--starting-port",
                            "40000", "--env", 'VLLM_MLX_HOSTS=["mac1.local (10.0.0.1)", '
                            '"mac2.local (10.0.0.2)"]']
    tail = command[command.index("--") + 1:]
    assert tail == [sys.executable, "-m", "vllm_mlx.cli", *argv]


def test_a_launched_process_knows_its_rank(monkeypatch):
    for name in ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launch.launched_rank() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert launch.launched_rank() == 3
    monkeypatch.setenv("MLX_RANK", "1")
    assert launch.launched_rank() == 1


def test_the_launcher_report_gives_the_exit_status(capsys):
    report = (b"hello from rank 0\n"
              b"\x1b[33m[WARN] Node with rank 1 exited with code -9 \x1b[0m\n"
              b"\x1b[33m[WARN] Node with rank 2 was killed \x1b[0m\n"
              b"[WARN] Node with rank 0 exited with code 0\n")
    failures: dict[int, int] = {}
    launch._relay(io.BytesIO(report), failures)
    assert failures == {1: -9, 2: -9}
    assert "hello from rank 0" in capsys.readouterr().err


def test_serve_with_a_bad_hostfile_exits_2_before_launching(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLX_RANK", raising=False)
    monkeypatch.setattr("vllm_mlx.distributed.serve.run_launcher",
                        lambda command: pytest.fail("launched"))
    code = main(["serve", "tiny:qwen3", "--hostfile", _write(tmp_path, [TWO[0]])])
    assert code == 2 and "at least 2" in capsys.readouterr().err
    code = main(["serve", "tiny:qwen3", "--hostfile", _write(tmp_path, TWO),
                 "--video-model", "tiny:wan2_1"])
    assert code == 2 and "--video-model cannot be combined" in capsys.readouterr().err


def test_failed_ranks_are_named_with_their_host_and_what_the_status_means():
    line = launch.describe_failures({1: 255, 0: -15}, ["mac1.local", "mac2.local (10.0.0.2)"])
    assert line == ("the group stopped: rank 0 (mac1.local) exited with -15: stopped by "
                    "mlx.launch after another rank failed; rank 1 (mac2.local (10.0.0.2)) "
                    "exited with 255: ssh could not reach or log in to this host")
    assert "rank 3 exited with -6: signal 6" in launch.describe_failures({3: -6}, [])
