"""The Ray Data engine on real Ray and the real embedded model: the local run's records and rejects, exactly once
through a killed actor and a killed driver, a two-node cluster on this machine, and a clear message without Ray.

The local Ray runs on loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes it take 127.0.0.1 as the node's
address and listen there), with token authentication off; the two-node cluster (see `two_nodes`) with a token.
Every Ray this module starts is stopped by it: the in-process one by `ray.shutdown()`, the two-node cluster by ending
the processes that hold its private temp folder (`ray stop` would end every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tagger.errors import TaggerError
from tagger.product import ProductError
from tests.conftest import SAMPLE_CATALOG

# Read by Ray when it is imported: this process's Ray (`ray.init` below) listens on 127.0.0.1 only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="the Ray engine's tests need tagger[ray] (make install installs it)")
psutil = pytest.importorskip("psutil")

TAGGER = [sys.executable, "-m", "tagger"]
RAY_BIN = Path(sys.executable).with_name("ray")
CATALOG = [json.loads(line) for line in SAMPLE_CATALOG.read_text().splitlines()]
ACTOR_TITLE = "ray::MapWorker(MapBatches(TaggerActor))"


@pytest.fixture(scope="module")
def ray_env() -> Iterator[dict[str, str]]:
    """The environment of this module's Ray and of the drivers it starts: one llama.cpp thread per actor."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAGGER_THREADS", "1")
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Ray's servers listen on this machine's network address by default; this keeps them on 127.0.0.1 (Ray reads it
        # when it is imported, hence also here for the drivers and nodes the tests start as processes).
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        yield dict(os.environ)


@pytest.fixture(scope="module")
def local_ray(ray_env: dict[str, str]) -> Iterator[str]:
    """A local Ray with two CPUs (as `ray.init()` on a laptop); its address, for drivers run as subprocesses."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def _hostile_catalog(path: Path) -> Path:
    good = CATALOG[:4]
    lines = [
        *(json.dumps(row).encode() for row in good[:2]),
        b'{"id": "broken", "title": ',
        json.dumps({"id": "untitled", "description": "no title here"}).encode(),
        json.dumps({"title": "No id at all"}).encode(),
        json.dumps({"id": "huge", "title": "Mug", "description": "x" * 1_048_576}).encode(),
        b'{"id": "latin1", "title": "Caf\xe9 mug"}',
        json.dumps({**good[0], "id": "same-content"}).encode(),  # another id, the same content: generated once
        json.dumps(good[1]).encode(),  # the same id again
        *(json.dumps(row).encode() for row in good[2:]),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _generate(source: Path | str, output: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    command = [*TAGGER, "generate", str(source), "-o", str(output), "--no-cache", "-q", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _comparable(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records by id, without the seconds a generation took (the only field that differs between two runs)."""
    out = {}
    for record in records:
        record = {**record, "usage": {**record["usage"], "seconds": None}}
        out[record["id"]] = record
    return out


def _rejects(path: Path) -> set[tuple[Any, Any, str]]:
    return {(r["id"], r["row"], r["error"]["kind"]) for r in _read(path)}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, ray_env: dict[str, str]) -> dict[str, Any]:
    """The hostile catalog, tagged by the local engine: what every Ray run of it must equal."""
    folder = tmp_path_factory.mktemp("hostile")
    source = _hostile_catalog(folder / "in.jsonl")
    output = folder / "local.jsonl"
    done = _generate(source, output, ray_env)
    assert done.returncode == 3, done.stderr
    return {"source": source, "records": _read(output), "rejects": _rejects(folder / "local.rejects.jsonl")}


def test_the_ray_engine_writes_the_local_runs_records_and_rejects(
    tmp_path: Path, hostile: dict[str, Any], local_ray: str, ray_env: dict[str, str]
) -> None:
    output = tmp_path / "ray.jsonl"
    done = _generate(hostile["source"], output, ray_env, "--engine", "ray", "--ray-address", local_ray, "--actors", "2")
    assert done.returncode == 3, done.stderr
    records = _read(output)
    assert _comparable(records) == _comparable(hostile["records"])
    assert len(records) == len({r["id"] for r in records}) == 5  # 4 products and the copy of one's content
    assert {r["id"]: r["reused_from"] for r in records}["same-content"] == CATALOG[0]["id"]
    kinds = {kind for _, _, kind in _rejects(tmp_path / "ray.rejects.jsonl")}
    assert kinds == {"bad_json", "missing_title", "missing_id", "too_large", "bad_encoding", "duplicate_id"}
    assert _rejects(tmp_path / "ray.rejects.jsonl") == hostile["rejects"]
    # The tagger summary after Ray's progress: tagged, reused, rejected by kind.
    assert "5 tagged (4 afresh" in done.stderr and "1 reused)" in done.stderr, done.stderr
    assert "6 rejected" in done.stderr
    assert "1 x bad_json" in done.stderr


def _actors() -> list[Any]:
    """This test's Ray's tagger actors: descendants of this process (ray.init started the cluster), so that another
    test run's Ray on the same machine is never counted or killed."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if (process.cmdline() or [""])[0].startswith(ACTOR_TITLE):
                found.append(process)
        except psutil.NoSuchProcess:  # a worker that ended while the tree was read
            continue
    return found


# The Ray engine reads the whole catalog before it generates, so a kill mid-run is timed by the rows' pace. The
# default pipeline decides most sample products without the model, ~20 ms a row, faster than the 50 ms poll; asking
# the model for every attribute takes ~1.7 s a row.
MODEL_EACH_ROW = ["--attributes", "model"]


def _wait_for_lines(process: subprocess.Popen[bytes], path: Path, lines: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not path.exists() or len(path.read_bytes().splitlines()) < lines):
        assert process.poll() is None, "the run ended before the kill: give it more rows"
        time.sleep(0.05)


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_an_actor_killed_mid_run_is_restarted_and_every_id_is_written_once(
    tmp_path: Path, local_ray: str, ray_env: dict[str, str]
) -> None:
    rows = CATALOG[:8]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out.jsonl"
    command = [*TAGGER, "generate", str(source), "-o", str(output), "--no-cache", "-q", "--batch-size", "1"]
    command += ["--engine", "ray", "--ray-address", local_ray, "--actors", "2", *MODEL_EACH_ROW]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr, env=ray_env)
        _wait_for_lines(process, output, 1)  # both actors are up and generating: one batch each, one a product
        victims = _actors()
        assert len(victims) == 2, victims
        os.kill(victims[0].pid, signal.SIGKILL)
        process.wait(timeout=600)
    assert process.returncode == 0, log.read_text()
    assert not psutil.pid_exists(victims[0].pid) or victims[0].status() == psutil.STATUS_ZOMBIE
    ids = _ids(output)
    assert sorted(ids) == sorted(r["id"] for r in rows)
    assert len(ids) == len(set(ids))


def test_the_driver_killed_mid_run_then_rerun_writes_every_id_once_into_parquet(
    tmp_path: Path, local_ray: str, ray_env: dict[str, str]
) -> None:
    rows = CATALOG[:6]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out.parquet"
    journal = tmp_path / "out.parquet.journal.jsonl"
    command = [*TAGGER, "generate", str(source), "-o", str(output), "--no-cache", "-q", "--batch-size", "1"]
    command += ["--engine", "ray", "--ray-address", local_ray, "--actors", "1", *MODEL_EACH_ROW]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=ray_env)
    _wait_for_lines(process, journal, 1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = _ids(journal)
    assert 1 <= len(first) < len(rows)
    assert not output.exists()  # Parquet is written from the journal when a run ends
    with journal.open("ab") as handle:  # as a kill in the middle of a write leaves it
        handle.write(b'{"id": "sku-0')
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=ray_env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} done before" in rerun.stderr
    ids = pq.read_table(output).column("id").to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in rows)
    assert len(ids) == len(set(ids))
    assert ids[: len(first)] == first
    assert not journal.exists()


def test_without_ray_the_engine_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_env: dict[str, str]
) -> None:
    from tagger.build import TaggerSpec
    from tagger.scale import tag_catalog_ray

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(CATALOG[0]) + "\n")
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    with pytest.raises(TaggerError, match=r"pip install 'tagger\[ray\]'"):
        tag_catalog_ray(TaggerSpec(), source, tmp_path / "out.jsonl")
    done = CliRunner().invoke(app, ["generate", str(source), "-o", str(tmp_path / "out.jsonl"), "--engine", "ray"])
    assert done.exit_code == 1
    assert "tagger[ray]" in done.output
    assert not (tmp_path / "out.jsonl").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop_cluster(temp_dir: str) -> None:
    """End the processes of the cluster that keeps its files in `temp_dir` (and their children), by pid."""
    mine = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.pid != os.getpid() and any(temp_dir in part for part in (p.info["cmdline"] or []))
    ]
    family = {p.pid: p for p in mine}
    for process in mine:
        with contextlib.suppress(psutil.NoSuchProcess):
            family.update((child.pid, child) for child in process.children(recursive=True))
    for process in family.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(list(family.values()), timeout=30)


@pytest.fixture
def two_nodes(ray_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster of two nodes on this machine, one CPU each: `ray start --head`, then `ray start --address`; its
    address and the environment that reaches it.

    Ray refuses a second node where it is told to stay on 127.0.0.1, and it listens on every interface in a cluster
    (it has no bind address): the nodes take the loopback address 127.0.0.2 and the cluster admits only clients that
    hold this test's random token (RAY_AUTH_MODE=token)."""
    temp_dir = tempfile.mkdtemp(prefix="tgr", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**ray_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_AUTH_MODE": "token"}
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    address = f"127.0.0.2:{_free_port()}"
    node = ["--node-ip-address", "127.0.0.2", "--num-cpus", "1", "--disable-usage-stats"]
    head = [str(RAY_BIN), "start", "--head", "--port", address.split(":")[1], *node]
    head += ["--include-dashboard=false", "--dashboard-port", str(_free_port()), "--temp-dir", temp_dir]
    worker = [str(RAY_BIN), "start", "--address", address, *node]
    try:
        for command in (head, worker):
            started = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False, env=env)
            assert started.returncode == 0, started.stderr
        yield address, env
    finally:
        _stop_cluster(temp_dir)


def test_a_two_node_cluster_writes_the_local_runs_records(
    tmp_path: Path, hostile: dict[str, Any], two_nodes: tuple[str, dict[str, str]]
) -> None:
    address, env = two_nodes
    output = tmp_path / "cluster.jsonl"
    uri = hostile["source"].as_uri()  # read as an object store's catalog is (pyarrow's filesystems), row for row
    done = _generate(uri, output, env, "--engine", "ray", "--ray-address", address, "--actors", "2")
    assert done.returncode == 3, done.stderr
    assert _comparable(_read(output)) == _comparable(hostile["records"])
    assert _rejects(tmp_path / "cluster.rejects.jsonl") == hostile["rejects"]
    nodes = json.loads(
        subprocess.run(
            [sys.executable, "-c", _COUNT_NODES, address], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    assert nodes == 2


# Counted from another driver: the test's own process may hold the module's local Ray.
_COUNT_NODES = "import json, sys, ray; ray.init(address=sys.argv[1]); print(json.dumps(len(ray.nodes())))"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--actors", "2"], "go with --engine ray"),
        (["--engine", "ray", "--workers", "2"], "runs --actors, not --workers"),
        (["--engine", "spark"], "unknown engine 'spark'"),
    ],
)
def test_engine_options_that_do_not_fit_are_refused(tmp_path: Path, options: list[str], message: str) -> None:
    done = CliRunner().invoke(app, ["generate", str(SAMPLE_CATALOG), "-o", str(tmp_path / "out.jsonl"), *options])
    assert done.exit_code == 1
    assert message in " ".join(done.output.split())
    assert not (tmp_path / "out.jsonl").exists()


def test_catalogs_at_uris_read_as_local_files(tmp_path: Path, hostile: dict[str, Any]) -> None:
    """JSONL, CSV and Parquet through pyarrow's filesystems (file:// here; s3://, gs://, ... alike): the same rows,
    numbers and rejects as `read_rows` gives for the local file."""
    import pyarrow as pa

    from tagger.io import read_rows
    from tagger.scale.uri import read_uri_rows

    table = tmp_path / "in.csv"
    table.write_text("id,title,brand\nA1,Steel kettle 1.7 L,Brewmaster\nA2,,NoTitle\nA3,Mug,Acme,extra\n")
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["P1", "P2"], "title": ["Oak desk", "Desk lamp"]}), parquet)

    def shape(item: Any) -> Any:  # a product as it is; an error by its kind and message
        return (item.kind, str(item)) if isinstance(item, ProductError) else item

    for path in (hostile["source"], table, parquet):
        local = [(row, shape(item)) for row, item in read_rows(path)]
        assert [(row, shape(item)) for row, item in read_uri_rows(path.as_uri())] == local
        assert len(local) >= 2
    with pytest.raises(TaggerError, match="cannot open"):
        list(read_uri_rows((tmp_path / "missing.jsonl").as_uri()))
