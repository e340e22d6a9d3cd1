"""What the operating system and the C allocator say about this process's memory.

Linux only where it matters: sizes come from `/proc/self/status` and `/proc/meminfo`, and the
glibc allocator is tuned through `mallopt`/`malloc_trim` and read through `mallinfo2` (no-ops
under other C libraries).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import threading
from pathlib import Path

__all__ = [
    "DEFAULT_MMAP_THRESHOLD_BYTES",
    "PeakMemorySampler",
    "available_memory_bytes",
    "fix_malloc_thresholds",
    "heap_free_bytes",
    "process_memory_bytes",
    "total_memory_bytes",
    "trim_malloc",
]

# glibc's own starting value; fixing it there keeps every block >= 128 KiB in its own mapping.
DEFAULT_MMAP_THRESHOLD_BYTES = 128 * 1024

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc caps M_MMAP_THRESHOLD at HEAP_MAX_SIZE / 2 (32 MiB on 64-bit builds).
_MAX_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024


def process_memory_bytes(field: str = "VmData", *, status_path: Path | None = None) -> int:
    """Read one size field of `/proc/self/status`, in bytes.

    `VmData` is the private writable (data, heap, anonymous mmap) virtual size that the kernel
    checks against `RLIMIT_DATA`; `VmRSS` is resident memory; `VmHWM` the peak of `VmRSS`.

    Args:
        field: The field name, e.g. `"VmData"`, `"VmRSS"` or `"VmHWM"`; default `"VmData"`.
        status_path: Another status file to read (tests); default `/proc/self/status`.

    Returns:
        The size in bytes.

    Raises:
        OSError: The status file cannot be read (not Linux).
        KeyError: The status file has no such field.
    """
    path = status_path or Path("/proc/self/status")
    return _read_kib_field(path, field)


def available_memory_bytes(*, meminfo_path: Path | None = None) -> int:
    """The memory the kernel estimates new work can use without swapping (`MemAvailable`).

    Args:
        meminfo_path: Another meminfo file to read (tests); default `/proc/meminfo`.

    Returns:
        The size in bytes.

    Raises:
        OSError: The meminfo file cannot be read (not Linux).
        KeyError: The meminfo file has no `MemAvailable` line (Linux < 3.14).
    """
    return _read_kib_field(meminfo_path or Path("/proc/meminfo"), "MemAvailable")


def total_memory_bytes(
    *,
    meminfo_path: Path | None = None,
    cgroup_path: Path | None = None,
    cgroup_root: Path | None = None,
) -> int:
    """The memory this process can have: the machine's (`MemTotal`), or less where a memory
    cgroup it runs in is limited (a container, a SLURM job): its own or an ancestor's
    `memory.max` (cgroup v2) or `memory.limit_in_bytes` (v1), the lowest.

    Args:
        meminfo_path, cgroup_path, cgroup_root: Other files to read (tests); default
            `/proc/meminfo`, `/proc/self/cgroup` and `/sys/fs/cgroup`.

    Raises:
        OSError, KeyError: As `available_memory_bytes` (the cgroup files are optional).
    """
    total = _read_kib_field(meminfo_path or Path("/proc/meminfo"), "MemTotal")
    limits = _cgroup_memory_limits(
        cgroup_path or Path("/proc/self/cgroup"), cgroup_root or Path("/sys/fs/cgroup")
    )
    return min([total, *limits])


def _cgroup_memory_limits(cgroup_path: Path, root: Path) -> list[int]:
    """The memory limits of this process's cgroup and its ancestors, where they can be read."""
    try:
        entries = cgroup_path.read_text().splitlines()
    except OSError:
        return []
    limits = []
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":  # v2: one hierarchy
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):  # v1: the memory controller's own
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        folder = base / path.lstrip("/")
        for each in (folder, *folder.parents):
            try:
                text = (each / name).read_text().strip()
            except OSError:
                text = ""  # not mounted here (a cgroup namespace shows its own root only)
            if text.isdigit():
                limits.append(int(text))
            if each == base:
                break
    return limits


def fix_malloc_thresholds(threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap and trim thresholds, which also stops their dynamic adjustment.

    By default glibc raises its mmap threshold (up to 32 MiB) each time a mapped block is freed,
    after which blocks below it come from the heap and stay there when freed: a process then holds
    data segment for memory it no longer uses, and a `RLIMIT_DATA` budget trips on that rather
    than on live memory. With the thresholds fixed, every block >= `threshold_bytes` gets its own
    mapping and goes back to the kernel when freed.

    glibc has no call that reads the thresholds or turns the adjustment back on, so this lasts for
    the rest of the process. Setting `MALLOC_MMAP_THRESHOLD_=131072` in a process's environment
    (for example Ray's `runtime_env={"env_vars": ...}`) has the same effect from its start.

    Args:
        threshold_bytes: Blocks of at least this size are mapped on their own; default 128 KiB,
            at most 32 MiB (glibc's cap).

    Returns:
        True where glibc accepted the setting, False where the C library is not glibc.

    Raises:
        ValueError: `threshold_bytes` is outside 1 B..32 MiB.
    """
    if not 0 < threshold_bytes <= _MAX_MMAP_THRESHOLD_BYTES:
        raise ValueError(
            f"threshold_bytes must be in 1..{_MAX_MMAP_THRESHOLD_BYTES}, got {threshold_bytes=}"
        )
    libc = _glibc()
    if libc is None:
        return False
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes) == 1
    # The dynamic adjustment raised the trim threshold too (to twice the mmap threshold), which
    # keeps that much free memory at the top of the heap; bring it down with the mmap threshold.
    trimmed = libc.mallopt(_M_TRIM_THRESHOLD, threshold_bytes) == 1
    return mapped and trimmed


def trim_malloc() -> bool:
    """Give free heap memory back to the kernel (`malloc_trim(0)` on glibc).

    Returns:
        True where glibc released some memory, False otherwise (or not glibc).
    """
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1


def heap_free_bytes() -> int:
    """Bytes glibc holds free in its heaps and arenas (`mallinfo2().fordblks`).

    These are part of `VmData` and of what `RLIMIT_DATA` counts, yet the next allocation of a
    block that fits reuses them without growing either.

    Returns:
        The free bytes; 0 where the C library is not glibc or is older than 2.33 (no `mallinfo2`).
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return 0
    return int(libc.mallinfo2().fordblks)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class PeakMemorySampler:
    """Samples one `/proc/self/status` field in a daemon thread and keeps the largest value.

    Linux keeps no resettable peak of `VmData`, so it is sampled: a rise and fall shorter than
    `interval_s` can be missed. Each sample reads the status file (tens of microseconds); the
    thread is started, and has made its own first allocations, before the constructor returns, so
    that a caller can read a baseline that already includes the thread's stack.

    Args:
        field: The status field, e.g. `"VmData"` or `"VmRSS"`; default `"VmData"`.
        interval_s: Seconds between samples; default 0.005.

    Example:
        >>> sampler = PeakMemorySampler("VmData", interval_s=0.001)
        >>> sampler.stop()
        >>> sampler.peak_bytes >= process_memory_bytes("VmData") // 2
        True
    """

    def __init__(self, field: str = "VmData", *, interval_s: float = 0.005) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s=}")
        self.field = field
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._peak_bytes = 0
        self._thread = threading.Thread(target=self._run, name=f"peak-{field}", daemon=True)
        self._thread.start()
        self._started.wait()

    @property
    def peak_bytes(self) -> int:
        """The largest value seen so far, a fresh sample included."""
        self._sample()
        with self._lock:
            return self._peak_bytes

    def reset(self) -> None:
        """Forget the peak so far: from now on it is the largest value seen after this call."""
        with self._lock:
            self._peak_bytes = 0
        self._sample()

    def stop(self) -> None:
        """Stop the thread (after one last sample); `peak_bytes` still reads."""
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        self._sample()
        self._started.set()
        while not self._stop.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        try:
            value = process_memory_bytes(self.field)
        except (MemoryError, OSError):
            return  # at a memory limit even reading /proc can fail; the next sample will do
        with self._lock:
            self._peak_bytes = max(self._peak_bytes, value)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    if hasattr(libc, "mallinfo2"):  # glibc >= 2.33
        libc.mallinfo2.argtypes = []
        libc.mallinfo2.restype = _MallInfo2
    return libc


def _read_kib_field(path: Path, field: str) -> int:
    prefix = f"{field}:"
    with path.open() as lines:
        for line in lines:
            if line.startswith(prefix):
                value, unit = line[len(prefix) :].split()
                if unit != "kB":
                    raise ValueError(f"{path}: {field} is in {unit!r}, expected 'kB'")
                return int(value) * 1024
    raise KeyError(f"{path} has no {field} line")
