"""Fetching official checkpoints, against a local HTTP server on 127.0.0.1 (never the internet).

The server serves a synthetic checkpoint with ``Range`` support and can misbehave on
purpose (wrong bytes, a short file, a cut connection, a slow answer, 404); the registry
is pointed at it through ``EDGESAM_CHECKPOINT_MIRROR``, as a user's mirror would be.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_sam_sdk import checkpoints
from edge_sam_sdk.checkpoints import fetch_file, resolve_checkpoint
from edge_sam_sdk.errors import CheckpointError
from edge_sam_sdk.registry import _REGISTRY, CheckpointSpec, get_variant

DATA = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB stands in for a checkpoint
FILE = "mobile_sam.pt"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        srv.seen.append(self.headers.get("Range"))
        name = self.path.rsplit("/", 1)[-1]
        if name not in srv.files:
            self.send_error(404)
            return
        data = srv.files[name]
        time.sleep(srv.delay)
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        if start >= len(data):
            self.send_error(416)
            return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut:  # send half, then drop the connection
            srv.cut = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {FILE: DATA}
        self.seen: list[str | None] = []
        self.delay = 0.0
        self.cut = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/weights"


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv("EDGESAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGESAM_CHECKPOINT_MIRROR", srv.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("EDGESAM_OFFLINE", raising=False)
    yield srv
    srv.shutdown()
    srv.server_close()


def _spec(data: bytes = DATA, sha: bool = True, size: bool = True) -> CheckpointSpec:
    return CheckpointSpec(files=(FILE,), url="https://example.org/weights-page",
                          downloads={FILE: f"https://example.org/weights/{FILE}"},
                          sha256={FILE: hashlib.sha256(data).hexdigest()} if sha else {},
                          size={FILE: len(data)} if size else {})


@pytest.fixture()
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mobile_sam`` (and NanoSAM's second part) with the synthetic file's digest and size."""
    for name in ("mobile_sam", "nanosam"):
        spec = get_variant(name)
        ck = dataclasses.replace(spec.checkpoint, sha256={FILE: _spec().sha256[FILE]}, size={FILE: len(DATA)})
        monkeypatch.setitem(_REGISTRY, name, dataclasses.replace(spec, checkpoint=ck))


def _cache_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "home" / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_download_is_verified_cached_and_recorded(server: _Server, tmp_path: Path) -> None:
    path = fetch_file(_spec(), FILE)
    assert path == tmp_path / "home" / "checkpoints" / FILE and path.read_bytes() == DATA
    assert checkpoints.recorded_sha256(path) == hashlib.sha256(DATA).hexdigest()
    assert fetch_file(_spec(), FILE) == path and len(server.seen) == 1  # no second request
    assert _cache_files(tmp_path) == [FILE, FILE + ".sha256"]


def test_wrong_sha256_names_both_and_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    server.files[FILE] = bytes(len(DATA))  # same size, other bytes
    with pytest.raises(CheckpointError) as err:
        fetch_file(_spec(), FILE)
    msg = str(err.value)
    assert hashlib.sha256(DATA).hexdigest() in msg and hashlib.sha256(bytes(len(DATA))).hexdigest() in msg
    assert "removed" in msg and "\n" not in msg
    assert _cache_files(tmp_path) == []


def test_short_file_is_refused(server: _Server, tmp_path: Path) -> None:
    server.files[FILE] = DATA[:1000]  # a complete answer, but not the official size
    with pytest.raises(CheckpointError, match=f"1000 bytes, the official file {len(DATA)}"):
        fetch_file(_spec(), FILE)
    assert _cache_files(tmp_path) == []


def test_interrupted_download_resumes(server: _Server, tmp_path: Path) -> None:
    server.cut = True
    with pytest.raises(CheckpointError, match="interrupted.*run again to resume"):
        fetch_file(_spec(), FILE)
    assert _cache_files(tmp_path) == [FILE + ".part"]  # never under the file's own name
    kept = (tmp_path / "home" / "checkpoints" / (FILE + ".part")).stat().st_size
    assert 0 < kept < len(DATA)
    path = fetch_file(_spec(), FILE)
    assert path.read_bytes() == DATA
    assert server.seen == [None, f"bytes={kept}-"]
    assert _cache_files(tmp_path) == [FILE, FILE + ".sha256"]


def test_stale_partial_is_restarted(server: _Server, tmp_path: Path) -> None:
    folder = tmp_path / "home" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / (FILE + ".part")).write_bytes(bytes(len(DATA) + 10))  # left by another file version
    assert fetch_file(_spec(), FILE).read_bytes() == DATA
    assert server.seen == [f"bytes={len(DATA) + 10}-", None]


def test_slow_server_times_out(server: _Server, tmp_path: Path) -> None:
    server.delay = 1.0
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="within 0.3 s"):
        fetch_file(_spec(), FILE, timeout=(2.0, 0.3))
    assert time.perf_counter() - t0 < 0.9
    assert FILE not in _cache_files(tmp_path)


def test_404(server: _Server, tmp_path: Path) -> None:
    del server.files[FILE]
    with pytest.raises(CheckpointError, match="HTTP 404 \\(not found\\)"):
        fetch_file(_spec(), FILE)
    assert _cache_files(tmp_path) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_network(server: _Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGESAM_CHECKPOINT_MIRROR", f"http://127.0.0.1:{_closed_port()}/w")
    with pytest.raises(CheckpointError, match="no connection to 127.0.0.1"):
        fetch_file(_spec(), FILE)
    with pytest.raises(CheckpointError, match="cannot reach 127.0.0.1"):
        fetch_file(_spec(), FILE, probe_timeout=1.0)
    monkeypatch.setenv("EDGESAM_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="not in the cache .* EDGESAM_OFFLINE is set"):
        fetch_file(_spec(), FILE)
    assert _cache_files(tmp_path) == []


def test_full_disk(server: _Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with monkeypatch.context() as m:
        m.setattr(checkpoints.shutil, "disk_usage", lambda _p: type("U", (), {"free": 10})())
        with pytest.raises(CheckpointError, match="not enough disk space"):
            fetch_file(_spec(), FILE)

    def full(self: Any, url: str, output_file: str, _pooch: Any) -> None:
        self.part.write_bytes(DATA[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints._ResumableDownload, "__call__", full)
    with pytest.raises(CheckpointError, match="no space left .* removed the partial file"):
        fetch_file(_spec(), FILE)
    assert _cache_files(tmp_path) == []


def test_hand_placed_file_is_verified(server: _Server, tmp_path: Path) -> None:
    folder = tmp_path / "home" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / FILE).write_bytes(DATA)
    assert fetch_file(_spec(), FILE).read_bytes() == DATA and server.seen == []
    (folder / FILE).write_bytes(DATA[::-1])  # changed since: the record no longer matches
    with pytest.raises(CheckpointError, match="cached mobile_sam.pt has sha256"):
        fetch_file(_spec(), FILE)
    assert not (folder / FILE).exists()


def test_unknown_digest_is_reported_not_invented(server: _Server) -> None:
    said: list[str] = []
    fetch_file(_spec(sha=False, size=False), FILE, say=said.append)
    assert any("no official digest is recorded" in s and hashlib.sha256(DATA).hexdigest() in s for s in said)


def test_no_direct_download_names_the_page(server: _Server) -> None:
    spec = dataclasses.replace(_spec(), downloads={})
    with pytest.raises(CheckpointError, match="no direct download; get it from https://example.org/weights-page"):
        fetch_file(spec, FILE)


def test_concurrent_runs_download_once(server: _Server) -> None:
    server.delay = 0.3
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(fetch_file(_spec(), FILE))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] == got[1] and len(server.seen) == 1


@pytest.mark.usefixtures("registered")
def test_official_references_resolve(server: _Server, tmp_path: Path) -> None:
    cached = str(tmp_path / "home" / "checkpoints" / FILE)
    for ref in ("official", "official:mobile_sam", "mobile_sam"):
        assert resolve_checkpoint(ref, "mobile_sam") == cached
    assert resolve_checkpoint("enc.pth,official", "nanosam") == f"enc.pth,{cached}"
    assert resolve_checkpoint("synthetic:3", "mobile_sam") == "synthetic:3"
    assert resolve_checkpoint("some/file.pth", "mobile_sam") == "some/file.pth"
    with pytest.raises(CheckpointError, match="needs the variant"):
        resolve_checkpoint("official")
    with pytest.raises(CheckpointError, match="no direct download"):
        resolve_checkpoint("official", "nanosam")  # its encoder checkpoint is not published
    with pytest.raises(CheckpointError, match="unknown variant 'nope'"):
        resolve_checkpoint("official:nope")


def test_mirror_keeps_official_file_names(monkeypatch: pytest.MonkeyPatch) -> None:
    ck = get_variant("efficient_sam_vits").checkpoint
    monkeypatch.setenv("EDGESAM_CHECKPOINT_MIRROR", "https://mirror.example/edgesam/")
    assert checkpoints.source_url(ck, "efficient_sam_vits.pt") == \
        "https://mirror.example/edgesam/efficient_sam_vits.pt.zip"
    monkeypatch.delenv("EDGESAM_CHECKPOINT_MIRROR")
    assert checkpoints.source_url(ck, "efficient_sam_vits.pt") == ck.downloads["efficient_sam_vits.pt"]


def test_demo_falls_back_offline_in_one_line(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_sam_sdk.cli.demo import choose_checkpoint

    monkeypatch.setenv("EDGESAM_CHECKPOINT_MIRROR", f"http://127.0.0.1:{_closed_port()}/w")
    notes: list[str] = []
    t0 = time.perf_counter()
    assert choose_checkpoint("mobile_sam", None, notes.append) == "synthetic:0"
    assert time.perf_counter() - t0 < 5
    assert len(notes) == 1 and notes[0].startswith("note: no official mobile_sam checkpoint (")
    assert notes[0].endswith("; using synthetic weights") and "\n" not in notes[0]
    monkeypatch.setenv("EDGESAM_OFFLINE", "1")
    notes.clear()
    assert choose_checkpoint("mobile_sam", None, notes.append) == "synthetic:0" and len(notes) == 1
    assert server.seen == []


@pytest.mark.usefixtures("registered")
def test_demo_uses_the_official_checkpoint(server: _Server, tmp_path: Path) -> None:
    from edge_sam_sdk.cli.demo import choose_checkpoint
    from edge_sam_sdk.cli.main import main

    cached = str(tmp_path / "home" / "checkpoints" / FILE)
    assert choose_checkpoint("mobile_sam", None, lambda _m: None) == cached
    assert checkpoints.cache_state("mobile_sam") == "yes" and checkpoints.cache_state("nanosam") == "1/2"
    assert checkpoints.cache_state("slimsam_50") == "-"
    assert main(["fetch", "mobile_sam"]) == 0 and len(server.seen) == 1


def test_fetch_all_skips_hand_fetched_and_reports(server: _Server, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from edge_sam_sdk.cli.main import main

    monkeypatch.setenv("EDGESAM_OFFLINE", "1")
    assert main(["fetch", "--all"]) == 1
    err = capsys.readouterr().err
    assert "skipping edgetam, nanosam, slimsam_50, slimsam_77: no direct download" in err
    assert "variants not fetched: edge_sam," in err and server.seen == []
    assert main(["fetch"]) == 1 and "name the variants to fetch" in capsys.readouterr().err
