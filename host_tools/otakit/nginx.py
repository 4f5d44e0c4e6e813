"""Run Debian's nginx unprivileged on loopback over a directory (tests and benchmarks).

`NginxServer` writes a config from `otakit.publish.nginx_config` into its own run directory,
starts ``nginx -p RUN -c nginx.conf`` in the foreground as a child process on a free loopback
port, waits until it accepts connections, and stops it (SIGQUIT, then SIGKILL) on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from otakit.errors import OtakitError
from otakit.publish import nginx_config

NGINX = "/usr/sbin/nginx"


def nginx_binary() -> str | None:
    """The nginx executable, or None when nginx is not installed."""
    return shutil.which("nginx") or (NGINX if os.path.exists(NGINX) else None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class NginxServer:
    """``with NginxServer(root, run_dir) as url:`` serves ``root`` at ``url`` (ends with /)."""

    def __init__(self, root: str | os.PathLike[str], run_dir: str | os.PathLike[str],
                 host: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.run_dir = Path(run_dir)
        self.host = host
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def access_log(self) -> Path:
        """nginx's access log (combined format)."""
        return self.run_dir / "access.log"

    def __enter__(self) -> str:
        exe = nginx_binary()
        if exe is None:
            raise OtakitError("nginx is not installed", reason="NO_NGINX")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_config(self.root, self.port, host=self.host, run_dir=self.run_dir))
        self.proc = subprocess.Popen(  # noqa: S603
            [exe, "-p", str(self.run_dir), "-c", str(conf), "-e", str(self.run_dir / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise OtakitError(f"nginx exited: {err.strip()}", reason="NGINX_FAILED")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return f"http://{self.host}:{self.port}/"
            except OSError:
                time.sleep(0.05)
        self._stop()
        raise OtakitError("nginx did not start listening within 10 s", reason="NGINX_FAILED")

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()


__all__ = ["NginxServer", "free_port", "nginx_binary"]
