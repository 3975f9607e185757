"""Timing whole processes, imports included: wall time and the CPU time they used."""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path


def timed_processes(commands: list[list[str]], cwd: Path | None = None) -> tuple[float, float]:
    """Wall time from the start of ``commands`` (run at once) to the end of the last, and the CPU
    time (user + system) they and their children used. A command that fails raises, with its
    standard error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    running = [subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for command in commands]
    for process in running:
        _, error = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{process.args} failed:\n{error}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
