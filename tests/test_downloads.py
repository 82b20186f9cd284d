"""Downloads (weights, MedMNIST) against a local HTTP server on 127.0.0.1: good, corrupt, truncated and
stalled files, an unreachable address, and --offline. Never the internet."""

import hashlib
import http.server
import os
import socket
import stat
import threading
import time
from typing import ClassVar

import pytest
from conftest import NPZ

from xraybench import download
from xraybench.cli import main
from xraybench.data import medmnist
from xraybench.models import weights
from xraybench.models.weights import WeightsFile
from xraybench.runner import jobs

PAYLOAD = os.urandom(200_000)
SMOKE = ["--profile", "smoke", "--device", "cpu", "--precision", "fp32", "--no-report"]


class Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        path = self.path.split("?")[0]
        self.requests.append(path)
        body = self.files.get(path.rsplit("/", 1)[-1], PAYLOAD)
        if path.startswith("/missing"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path.startswith("/truncated"):
            self.wfile.write(body[: len(body) // 2])  # then the connection closes
            return
        if path.startswith("/slow"):
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(3)  # stalls longer than the client waits
        self.wfile.write(body if not path.startswith("/slow") else body[1000:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.requests = []
    Handler.files = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def online(monkeypatch):
    """This test serves its own downloads on 127.0.0.1: let them happen."""
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_good_file_arrives_whole_checked_and_with_the_users_mode(server, tmp_path):
    target = tmp_path / "w" / "resnet18-abcdef.pth"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    old = os.umask(0o027)
    try:
        download.download(f"{server}/good", target, sha256_prefix=sha[:8], progress=False)
    finally:
        os.umask(old)
    assert target.read_bytes() == PAYLOAD
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(target.parent) == [target.name]


@pytest.mark.parametrize(
    "path, kwargs, message",
    [
        ("/corrupt", {"sha256_prefix": "0000000000"}, "does not start with 0000000000; not kept"),
        ("/corrupt", {"md5": "0" * 32}, "is not the expected 000"),
        ("/truncated", {}, "IncompleteRead|truncated"),
        ("/slow", {"timeout": 0.5}, "stalled"),
        ("/missing", {}, "HTTP 404"),
    ],
)
def test_a_bad_download_leaves_nothing_behind(server, tmp_path, path, kwargs, message):
    target = tmp_path / "file.bin"
    with pytest.raises(download.DownloadError, match=message) as caught:
        download.download(server + path, target, progress=False, **kwargs)
    assert not caught.value.unreachable
    assert leftovers(tmp_path) == []


def test_no_network_fails_fast(tmp_path):
    started = time.monotonic()
    with pytest.raises(download.DownloadError, match="no answer") as caught:
        download.download(f"http://127.0.0.1:{closed_port()}/x", tmp_path / "x", progress=False, timeout=2)
    assert caught.value.unreachable and leftovers(tmp_path) == []
    assert time.monotonic() - started < 10  # refused at once; the bound is only against a hang


def weights_file(server: str, folder, name: str) -> WeightsFile:
    sha = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    return WeightsFile(name, folder / f"{name}-{sha}.pth", f"{server}/good/{name}-{sha}.pth")


def test_missing_weights_are_fetched_unless_offline(server, tmp_path, monkeypatch, online):
    needed = [weights_file(server, tmp_path, "resnet18"), weights_file(server, tmp_path, "resnet34")]
    lines = []
    weights.fetch_missing(needed, offline=True, log=lines.append)
    assert Handler.requests == [] and "not downloading (--offline" in lines[0]
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    weights.fetch_missing(needed, offline=False, log=lines.append)
    assert Handler.requests == [] and not any(w.present for w in needed)
    monkeypatch.delenv(download.OFFLINE_ENV)
    weights.fetch_missing(needed, offline=False, log=lines.append)
    assert all(w.present for w in needed) and len(Handler.requests) == 2
    assert all(w.path.read_bytes() == PAYLOAD for w in needed)


def test_without_network_the_other_files_are_not_tried(tmp_path, online):
    port = closed_port()
    needed = [
        WeightsFile(m, tmp_path / f"{m}-abcdef12.pth", f"http://127.0.0.1:{port}/{m}-abcdef12.pth")
        for m in ("a", "b", "c")
    ]
    lines = []
    weights.fetch_missing(needed, offline=False, log=lines.append)
    assert sum("fetching" in line for line in lines) == 1
    assert "no network: not trying the other 2 file(s)" in lines[-1]


def test_run_fetches_what_its_cases_need_and_offline_forbids_it(server, tmp_path, monkeypatch, online, capsys):
    needed = weights_file(server, tmp_path / "hub", "hw3_mlp")
    monkeypatch.setattr(jobs, "required_weights", lambda model, options: needed)  # as if the MLP were pretrained
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path), "--offline"]) == 0
    assert Handler.requests == [] and not needed.present
    assert "not downloading (--offline" in capsys.readouterr().out
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path), "--force"]) == 0
    assert needed.present and len(Handler.requests) == 1
    assert f"weights: fetching {needed.url}" in capsys.readouterr().out


@pytest.fixture
def medmnist_root(tmp_path, monkeypatch, server):
    """MedMNIST's catalogue pointed at this test's server and folder; the archive is the fixture subset."""
    body = NPZ.read_bytes()
    Handler.files["pneumoniamnist_64.npz"] = body
    info = {"url_64": f"{server}/good/pneumoniamnist_64.npz", "MD5_64": hashlib.md5(body).hexdigest()}
    root = tmp_path / "medmnist-root"
    root.mkdir()
    monkeypatch.setattr(medmnist, "catalogue", lambda flag: (info, root))
    return root


def test_medmnist_by_name_uses_a_placed_file_offline(medmnist_root, tmp_path, capsys):
    (medmnist_root / "pneumoniamnist_64.npz").write_bytes(NPZ.read_bytes())
    assert main(["run", "hw3-b-mlp", *SMOKE, "--data", "pneumoniamnist@64", "--out", str(tmp_path), "--offline"]) == 0
    assert (tmp_path / "smoke-cpu-pneumoniamnist_64" / "results.json").exists() and Handler.requests == []


def test_medmnist_by_name_offline_names_the_file_and_where(medmnist_root, tmp_path, capsys):
    assert main(["run", "hw3-b-mlp", *SMOKE, "--data", "pneumoniamnist@64", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "downloading is off" in err
    assert "place pneumoniamnist_64.npz (from " in err and f"at {medmnist_root / 'pneumoniamnist_64.npz'}" in err
    assert Handler.requests == []


def test_medmnist_by_name_downloads_and_checks_md5(medmnist_root, tmp_path, online):
    assert main(["run", "hw3-b-mlp", *SMOKE, "--data", "pneumoniamnist@64", "--out", str(tmp_path)]) == 0
    assert (medmnist_root / "pneumoniamnist_64.npz").read_bytes() == NPZ.read_bytes()
    assert Handler.requests == ["/good/pneumoniamnist_64.npz"]


def test_medmnist_damaged_file_or_bad_size(medmnist_root, tmp_path, capsys):
    (medmnist_root / "pneumoniamnist_64.npz").write_bytes(b"not the archive")
    assert main(["run", "hw3-b-mlp", *SMOKE, "--data", "pneumoniamnist@64", "--out", str(tmp_path)]) == 2
    assert "is not MedMNIST's" in capsys.readouterr().err
    assert main(["run", "hw3-b-mlp", *SMOKE, "--data", "pneumoniamnist@100", "--out", str(tmp_path)]) == 2
    assert "size 100 is not one MedMNIST offers; use pneumoniamnist@28|64|128|224" in capsys.readouterr().err


def test_the_medmnist_catalogue_knows_every_size():
    """The real package's entry (no network): an address and an MD5 for each size xraybench accepts."""
    info, root = medmnist.catalogue("pneumoniamnist")
    for suffix in ("", "_64", "_128", "_224"):
        assert info[f"url{suffix}"].startswith("https://") and len(info[f"MD5{suffix}"]) == 32
    assert root.name == ".medmnist"


def test_a_file_digest_is_computed_once_per_version_of_the_file(tmp_path):
    path = tmp_path / "archive.npz"
    path.write_bytes(b"first")
    first = download.file_digest(path, "md5")
    misses = download._digest.cache_info().misses
    assert download.file_digest(path, "md5") == first and download._digest.cache_info().misses == misses
    path.write_bytes(b"second, longer")  # a new version: hashed again, never the remembered digest
    assert download.file_digest(path, "md5") == hashlib.md5(b"second, longer").hexdigest() != first
