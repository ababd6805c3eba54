"""Start the Streamlit app as a server process, with the project's settings.

`brain-mri app` uses :func:`streamlit_command`; the browser tests and
`bench/bench_app.py` use :func:`start` and :func:`wait_healthy` to run it on a
free local port. The settings here repeat `.streamlit/config.toml` as
command-line flags, so they also hold when the app is started outside the
repository (an installed package has no `.streamlit/` beside the user's cwd).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: Streamlit flags: no usage statistics, no tracebacks on the page, the upload limit (MB).
SETTINGS = ("--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none",
            "--client.toolbarMode", "minimal", "--server.maxUploadSize", "50", "--server.maxMessageSize", "200",
            "--server.enableXsrfProtection", "true", "--server.fileWatcherType", "none")


def app_script() -> Path:
    """Path of `streamlit_app.py` (the checkout's, or the installed module's)."""
    spec = importlib.util.find_spec("streamlit_app")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("streamlit_app.py is not installed: run `pip install .` in the repository.")
    return Path(spec.origin)


def streamlit_command(*extra: str) -> list[str]:
    """`python -m streamlit run streamlit_app.py` with the project's settings, then `extra` flags."""
    return [sys.executable, "-m", "streamlit", "run", str(app_script()), *SETTINGS, *extra]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """The app served headless on 127.0.0.1:`port`, its output in `log`."""
    command = streamlit_command("--server.headless", "true", "--server.address", "127.0.0.1",
                                "--server.port", str(port))
    with open(log, "wb") as output:
        return subprocess.Popen(command, cwd=app_script().parent, env=env, stdout=output,
                                stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Return once `url`/_stcore/health answers 200; RuntimeError with the log's tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not become healthy within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
