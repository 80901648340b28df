"""New weights without downtime: the tiny preset trained for a few steps and exported while
a real `aia serve --models-dir` answers a steady stream of detects and session clips from
concurrent clients; the switch (POST /v1/admin/reload) fails no request, every answer names
the version that produced it, a session started before the switch is taken over cold, a
broken version is refused while the old one serves on, rollback is one call, SIGHUP reloads.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from exporters.export import export_artifact
from exporters.models_dir import publish, write_pointer
from model.data.toy import ToyVideo, write_toy_dataset
from model.train.config import load
from model.train.loop import train
from service.middleware import hash_key
from tests.model.train.conftest import overrides
from tests.service.clips import boxes_json, write_clip
from tests.service.server import ROOT, Server

ADMIN, CLIENT = "admin-key-1", "client-key-1"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset trained for 4 steps on two toy videos, exported (about 40 s)."""
    folder = tmp_path_factory.mktemp("trained")
    root = write_toy_dataset(folder / "toy", [ToyVideo("v1", 6), ToyVideo("v2", 6)])
    train(load(None, overrides(root, folder / "run", 4)))
    checkpoint = max((folder / "run" / "checkpoints").glob("*.pt"),
                     key=lambda p: p.stat().st_mtime)
    return export_artifact(checkpoint, folder / "aia-retrained").out


@pytest.fixture(scope="module")
def models_dir(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    publish(random_artifact, folder)
    return folder


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"AIA_MODELS_DIR": str(models_dir), "AIA_API_KEY_HASHES": hash_key(CLIENT),
           "AIA_ADMIN_KEY_HASHES": hash_key(ADMIN)}
    running = Server(Path("unused"), env, tmp_path_factory.mktemp("reload") / "serve.log")
    yield running.wait_ready()
    assert running.stop() == 0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clips")).read_bytes()


def admin(server: Server, path: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/admin/{path}", headers={"X-API-Key": ADMIN},
                      timeout=120, **kwargs)  # type: ignore[arg-type]


def serving(server: Server) -> str:
    body = httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": CLIENT}).json()
    return str(body["models"][0]["version"])


@dataclass
class Load:
    """Clients posting until told to stop; every answer recorded with its start time."""

    server: Server
    clip: bytes
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, str, httpx.Response]] = field(default_factory=list)

    def detect(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=120,
                          headers={"X-API-Key": CLIENT}) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                reply = http.post("/v1/detect", data={"boxes": boxes_json()},
                                  files={"video": ("c.mp4", self.clip, "video/mp4")})
                self.answers.append((started, "detect", reply))

    def session(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=120,
                          headers={"X-API-Key": CLIENT}) as http:
            session = http.post("/v1/sessions", json={}).json()["id"]
            index = 0
            while not self.stop.is_set():
                started = time.monotonic()
                reply = http.post(f"/v1/sessions/{session}/clips",
                                  params={"clip_index": str(index)},
                                  data={"boxes": boxes_json()},
                                  files={"video": ("c.mp4", self.clip, "video/mp4")})
                self.answers.append((started, f"session:{session}", reply))
                index += 1


def test_switch_under_load_fails_nothing(server: Server, models_dir: Path, trained: Path,
                                         clip: bytes) -> None:
    before = serving(server)
    load = Load(server, clip)
    workers = [threading.Thread(target=load.detect) for _ in range(2)]
    workers += [threading.Thread(target=load.session) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(3)  # steady traffic on the first version
    new = publish(trained, models_dir, switch=True)
    asked = time.monotonic()
    switched = admin(server, "reload")
    switched_at = time.monotonic()
    time.sleep(3)  # steady traffic on the new version
    load.stop.set()
    for worker in workers:
        worker.join(timeout=120)
    assert switched.status_code == 200, switched.text
    assert switched.json() == {"version": new, "previous": before}
    assert [r.status_code for _, _, r in load.answers].count(200) == len(load.answers)
    for started, _, reply in load.answers:
        version = reply.json()["model"]["version"]
        assert reply.headers["x-model-version"] == version  # every answer names its version
        assert version in (before, new)
        if started > switched_at:
            assert version == new
        if started < asked:
            assert version == before
    sessions = {kind for _, kind, _ in load.answers if kind.startswith("session:")}
    for kind in sessions:
        clips = [r.json() for _, k, r in load.answers if k == kind]
        versions = [c["model"]["version"] for c in clips]
        first_new = versions.index(new)
        assert versions == [before] * first_new + [new] * (len(versions) - first_new)
        taken_over = clips[first_new]
        assert taken_over["session"]["model_changed_from"] == before
        assert taken_over["memory"] == "cold"  # the old version's memory is never read
        assert all(c["session"]["model_changed_from"] is None for c in clips[first_new + 1:])
        record = httpx.get(f"{server.url}/v1/sessions/{kind.split(':')[1]}",
                           headers={"X-API-Key": CLIENT}).json()
        assert record["model_version"] == new
        assert record["clips_seen"] == len(versions) - first_new  # only the new version's
    assert serving(server) == new


def test_a_broken_version_is_refused_and_the_old_one_serves_on(
        server: Server, models_dir: Path, clip: bytes) -> None:
    current = serving(server)
    broken = models_dir / "broken-000000000000"
    shutil.copytree(models_dir / current, broken)
    (broken / "features.onnx").write_bytes(b"not a graph")
    refused = admin(server, "reload", json={"version": broken.name})
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/reload-failed")
    assert current in refused.json()["detail"]
    missing = admin(server, "reload", json={"version": "no-such-version"})
    assert missing.status_code == 404
    assert httpx.get(f"{server.url}/health/ready").status_code == 200
    assert serving(server) == current
    shutil.rmtree(broken)


def test_rollback_and_sighup(server: Server, models_dir: Path, random_artifact: Path) -> None:
    current = serving(server)
    back = admin(server, "rollback")
    assert back.status_code == 200, back.text
    first = back.json()["version"]
    assert first != current
    assert back.json()["previous"] == current
    assert serving(server) == first
    write_pointer(models_dir, current)  # the containers' way: repoint, then SIGHUP
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while serving(server) != current and time.monotonic() < deadline:
        time.sleep(0.2)
    assert serving(server) == current
    models = httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": CLIENT}).json()
    assert set(models["available"]) >= {first, current}
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'aia_model_info{{device="cpu",runtime="onnx",version="{current}"}} 1.0' in metrics
    assert 'aia_reloads_total{result="switched"} 3.0' in metrics
    assert 'aia_reloads_total{result="failed"} 2.0' in metrics
    assert f'version="{current}"' in metrics.split("aia_http_requests_total", 1)[1]


def test_the_admin_api_needs_its_own_key(server: Server) -> None:
    assert httpx.post(f"{server.url}/v1/admin/reload").status_code == 401
    client_key = httpx.post(f"{server.url}/v1/admin/reload", headers={"X-API-Key": CLIENT})
    assert client_key.status_code == 401  # a client key is not an admin key


def test_the_admin_api_is_off_without_admin_keys(random_artifact: Path, tmp_path: Path) -> None:
    plain = Server(random_artifact, {}, tmp_path / "serve.log").wait_ready()
    try:
        off = httpx.post(f"{plain.url}/v1/admin/reload")
        assert off.status_code == 403
        assert "AIA_ADMIN_KEY_HASHES" in off.json()["detail"]
    finally:
        plain.stop()


def test_aia_models_command_line(random_artifact: Path, tmp_path: Path) -> None:
    def aia(*words: str) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-m", "cli", "models", *words], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        return dict(json.loads(done.stdout))

    folder = tmp_path / "models"
    published = aia("publish", str(random_artifact), "--to", str(folder))
    assert published["current"] == published["version"]
    assert aia("list", str(folder)) == {"versions": [published["version"]],
                                        "current": published["version"]}
    wrong = subprocess.run([sys.executable, "-m", "cli", "models", "use", str(folder), "nope"],
                           cwd=ROOT, capture_output=True, text=True, check=False)
    assert wrong.returncode == 2
    assert "no such version" in wrong.stderr


def test_two_replicas_switching_apart_never_mix_a_sessions_memory(
        random_artifact: Path, trained: Path, clip: bytes,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two replicas on one real Redis: A switches, B does not yet. One session's clips go to
    A and B in turn: each version's keys hold only the seconds of the clips it answered, and
    B taking the session to the new version later finds A's record there."""
    import redis as redis_client

    from bench.processes import PrivateRedis

    folder = tmp_path_factory.mktemp("two")
    private = PrivateRedis(folder)
    private.start()
    models = folder / "models"
    old = publish(random_artifact, models)
    env = {"AIA_MODELS_DIR": str(models), "AIA_REDIS_URL": private.url,
           "AIA_ADMIN_KEY_HASHES": hash_key(ADMIN)}
    a = Server(Path("unused"), env, folder / "a.log")
    b = Server(Path("unused"), env, folder / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        session = httpx.post(f"{a.url}/v1/sessions", json={}).json()["id"]

        def clip_on(server: Server, index: int) -> dict:
            reply = httpx.post(f"{server.url}/v1/sessions/{session}/clips",
                               params={"clip_index": str(index)}, data={"boxes": boxes_json()},
                               files={"video": ("c.mp4", clip, "video/mp4")}, timeout=120)
            assert reply.status_code == 200, reply.text
            return dict(reply.json())

        assert clip_on(a, 0)["model"]["version"] == old
        new = publish(trained, models)
        assert admin(a, "reload").json()["version"] == new  # A switches, B does not
        on_a = clip_on(a, 1)
        assert (on_a["model"]["version"], on_a["session"]["model_changed_from"]) == (new, old)
        on_b = clip_on(b, 2)
        assert on_b["model"]["version"] == old  # B still serves the old version ...
        assert on_b["session"]["missing"] == [1]  # ... whose keys never saw clip 1
        assert admin(b, "reload").json()["version"] == new
        later = clip_on(b, 3)
        assert later["model"]["version"] == new
        assert later["session"]["model_changed_from"] is None  # A's takeover is found
        assert later["session"]["missing"] == [2]  # the new version never saw clip 2
        store = redis_client.Redis(port=private.port)
        seconds = {v: {int(s) for s in store.hkeys(f"aia:{v}:{{{session}}}:mem")}
                   for v in (old, new)}
        store.close()
        clip_s = round(on_a["video"]["duration_s"])
        assert seconds[old] <= set(range(0, clip_s)) | set(range(2 * clip_s, 3 * clip_s))
        assert seconds[new] <= set(range(clip_s, 2 * clip_s)) | set(range(3 * clip_s,
                                                                          4 * clip_s))
        assert seconds[old]
        assert seconds[new]
    finally:
        a.stop()
        b.stop()
        private.stop()
