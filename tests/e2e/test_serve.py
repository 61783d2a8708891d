"""`aftersale serve` says where the console is, and `/` leads there."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from aftersale.cli import console_url

AFTERSALE = str(Path(sys.executable).with_name("aftersale"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None


def test_serve_prints_the_console_url_and_root_redirects_there(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "COLUMNS": "200"}
    subprocess.run([AFTERSALE, "init", str(tmp_path / "shop")], check=True, env=env,
                   capture_output=True, timeout=120)  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [AFTERSALE, "-p", str(tmp_path / "shop"), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "Uvicorn running" in line:  # listening
                break
        url = f"http://127.0.0.1:{port}/admin/"
        assert f"admin console: {url}\n" in lines, lines
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"http://127.0.0.1:{port}/", timeout=10)
            raise AssertionError("/ should redirect")
        except urllib.error.HTTPError as answer:
            assert answer.code == 307 and answer.headers["location"] == "/admin/"
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def test_the_url_a_browser_on_this_machine_opens() -> None:
    assert console_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/admin/"
    assert console_url("::1", 8080) == "http://[::1]:8080/admin/"
    assert console_url("admin.internal", 80) == "http://admin.internal:80/admin/"
