"""Child processes of the benchmark, and what /proc says about them.

Every process is started as a `Proc`, which registers it, so that `stop_all`
(run in `__main__`'s `finally`) ends whatever a failed or interrupted workload left
running. Each child gets PR_SET_PDEATHSIG, so that the kernel stops it even if the
bench itself is killed with SIGKILL and no `finally` runs. Children run in their
own session: a Ctrl-C in the terminal reaches only the bench, which then stops
them in order (workers before the API before the receiver).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_running: list[Proc] = []


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: stop_all still runs on a normal exit
        pass


class Proc:
    """One child process, its output in `<log_dir>/<name>.log`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _running.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> None:
        """Wait for the exit, then SIGKILL: no stop takes longer than `timeout`."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        if self in _running:
            _running.remove(self)

    def stop(self, timeout: float = 30) -> None:
        self.signal()
        self.wait(timeout)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}"
            )


def stop_many(procs: Sequence[Proc], timeout: float = 30) -> None:
    """SIGTERM all first, then wait for each: they shut down in parallel."""
    for proc in procs:
        proc.signal()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.wait(max(0.1, deadline - time.monotonic()))


def stop_all(keep: Sequence[Proc] = ()) -> None:
    """Whatever is still running but `keep`, newest first (a workload that failed half-way)."""
    stop_many([p for p in reversed(_running) if p not in keep], timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat (utime, stime)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


# Servers every workload uses: their CPU is the bench's as much as anyone's.
_SHARED = ("postgres", "redis-server", "nginx")


def _processes() -> list[tuple[int, str, int, float]]:
    """(pid, command name, parent pid, CPU seconds) of every process, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        out.append((int(entry.name), name, int(fields[1]), cpu))
    return out


def cpu_by_process() -> dict[int, float]:
    """CPU seconds of every process on the machine but the bench's own and the shared
    servers, by pid: two snapshots tell what other users of the machine took."""
    ours = {os.getpid(), *(p.pid for p in _running)}
    return {
        pid: cpu
        for pid, name, parent, cpu in _processes()
        if pid not in ours
        and not name.startswith(_SHARED)
        # A child of the bench's, or a kernel thread (softirq work is the bench's traffic).
        and parent not in ours
        and parent != 2
        and pid != 2
    }


def shared_server_cpu() -> dict[str, float]:
    """CPU seconds of each shared server, summed over its processes (PostgreSQL's
    backends, nginx's workers): all of the machine's, which in a bench run is ours."""
    out = dict.fromkeys(_SHARED, 0.0)
    for _pid, name, _parent, cpu in _processes():
        for server in _SHARED:
            if name.startswith(server):
                out[server] += cpu
    return out


def foreign_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds other processes used between two `cpu_by_process` snapshots (those that
    ended in between are missed: a lower bound)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Share of the machine's CPU (all cores) that was busy between two `machine_cpu` samples."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0
