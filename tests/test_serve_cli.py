"""tools/serve.py's command line (bad flags → one line, exit 2), and ``ServerProcess``, the real-server helper
the API, load and browser tests share."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import serve as serve_cli  # noqa: E402

TINY_MODEL = ["--model-type", "mattingbase", "--model-backbone", "mobilenetv2", "--allow-random-weights"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """tools/serve.py in a child process on 127.0.0.1 with the tiny random-weight model; ``with`` starts and stops.

    Args:
        token: the access token, passed as ``$BGMATTING_AUTH_TOKEN`` (never inherited from the caller).
    Attributes: ``url`` (http://127.0.0.1:PORT), ``log`` (its stderr/stdout file), ``headers`` (the token's
    Authorization header, if any), ``rss_mb()``.
    """

    def __init__(self, workdir: Path, *extra_args: str, timeout: float = 120.0, token: str = None):
        self.workdir, self.port = Path(workdir), free_port()
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "server.log"
        self.args = [sys.executable, str(ROOT / "tools" / "serve.py"), *TINY_MODEL, "--port", str(self.port),
                     "--storage-dir", str(self.workdir / "storage"), *extra_args]
        self.timeout = timeout

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {name: value for name, value in os.environ.items() if name != serve_cli.TOKEN_ENV}
        if self.token:
            env[serve_cli.TOKEN_ENV] = self.token
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                            env=dict(env, PYTHONUNBUFFERED="1"))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"server did not answer /healthz within {self.timeout} s:\n{self.log.read_text()}")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rss_mb(self) -> float:
        """Resident memory of the server process, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        serve_cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_refuses_to_serve_random_weights_without_the_flag(capsys, tmp_path):
    code, lines = run_cli(["--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                           "--storage-dir", str(tmp_path)], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: no --model-checkpoint given")
    assert "--allow-random-weights" in lines[0]


@pytest.mark.parametrize("flags, named", [
    (["--model-checkpoint", "/nonexistent/weights.pth"], "/nonexistent/weights.pth"),
    (["--port", "70000", "--allow-random-weights"], "--port"),
    (["--max-upload-mb", "0", "--allow-random-weights"], "--max-upload-mb"),
    (["--max-queue", "-1", "--allow-random-weights"], "--max-queue"),
    (["--batch-root", "/nonexistent/shoots", "--allow-random-weights"], "/nonexistent/shoots"),
    (["--keep-results", "4", "--max-queue", "8", "--allow-random-weights"], "--keep-results"),
])
def test_bad_flags_give_one_line_naming_them(flags, named, capsys, tmp_path):
    code, lines = run_cli(["--storage-dir", str(tmp_path), *flags], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0]


def test_binds_to_loopback_unless_told_otherwise():
    assert serve_cli.build_parser().parse_args([]).host == "127.0.0.1"
    assert serve_cli.is_loopback("127.0.0.1") and serve_cli.is_loopback("::1") and serve_cli.is_loopback("localhost")
    assert not serve_cli.is_loopback("0.0.0.0") and not serve_cli.is_loopback("192.168.1.20")


def test_random_weight_server_says_so_and_listens_on_loopback_only(tmp_path):
    with ServerProcess(tmp_path) as server:
        health = httpx.get(f"{server.url}/healthz").json()
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[3] == "0A"]  # state LISTEN
    assert health["model"]["random_weights"] is True
    assert "RANDOMLY INITIALISED" in server.log.read_text()
    assert f"0100007F:{server.port:04X}" in listening  # 127.0.0.1:port, little-endian hex
    assert f"00000000:{server.port:04X}" not in listening  # not 0.0.0.0
