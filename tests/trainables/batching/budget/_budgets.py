"""Sizes, the CPU device and the glibc marker the memory-budget tests share."""

from __future__ import annotations

import platform

import pytest
import torch

MiB = 1 << 20
GiB = 1 << 30
CPU = torch.device("cpu")
needs_glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="RLIMIT_DATA and malloc thresholds as on Linux with glibc",
)
