"""A real `cityeye edge run` process for end-to-end tests: started with its log in a file, waited on
with the log's tail in every failure, stopped with SIGINT as an operator would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class AgentProcess:
    """`cityeye edge run --config CONFIG --bundle BUNDLE [extra...]`, its data under `tmp_path/xdg`."""

    def __init__(self, tmp_path: Path, config: Path, bundle: Path, extra: Sequence[str] = (),
                 poll_s: float = 0.3) -> None:
        self.log_path = tmp_path / "agent.log"
        self.poll_s = poll_s
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
               "XDG_DATA_HOME": str(tmp_path / "xdg")}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cityeye", "edge", "run", "--config", str(config),
                 "--bundle", str(bundle), *extra],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
        """`check()`'s first truthy answer; fails at once if the agent died, naming what was awaited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            assert self.process.poll() is None, f"the agent stopped:\n{self.log()[-3000:]}"
            time.sleep(self.poll_s)
        raise AssertionError(f"no {what} within {timeout} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
