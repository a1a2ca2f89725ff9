"""Start a ``toolgram serve`` (or any server command) as a subprocess on a free loopback port and wait until it
answers ``/health``: what the end-to-end tests and the benchmark use.

    with Server(["--tool-call-parser", "NAME"]) as s:
        s.url          # http://127.0.0.1:PORT/v1
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess.  ``args`` are ``toolgram serve`` options, or with ``command`` a whole command line
    in which ``{port}`` is replaced."""

    def __init__(self, args=(), *, command: list[str] | None = None, env: dict | None = None,
                 python: str | None = None, startup_timeout: float = 120.0, port: int | None = None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        if command is None:
            command = [python or sys.executable, "-m", "toolgram.cli", "serve", "--host", "127.0.0.1",
                       "--port", str(self.port), "--log-level", "warning", *args]
        else:
            command = [c.replace("{port}", str(self.port)) for c in command]
        self.command = command
        self.env = dict(os.environ, **(env or {}))
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile("w+", prefix="toolgram-server-", suffix=".log", delete=False)

    def start(self) -> "Server":
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait(self) -> "Server":
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not healthy after {self.startup_timeout} s:\n{self.output()[-4000:]}")

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> "Server":
        return self.start().wait()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_all(servers: list[Server]) -> list[Server]:
    """Start several servers at once and wait for all (start-up overlaps)."""
    for s in servers:
        s.start()
    try:
        for s in servers:
            s.wait()
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers
