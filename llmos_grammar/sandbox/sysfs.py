"""A minimal /sys for bubblewrap sandboxes: the CPU and NUMA topology, nothing else.

The host's /sys names network interfaces and their MAC addresses
(`/sys/class/net`, `/sys/devices/virtual/net`), the machine's serial and
board (`/sys/class/dmi/id`), disks, PCI devices and the host's cgroups. Code
needs none of that; what the C library, Python (`os.cpu_count`) and numeric
libraries (OpenBLAS, OpenMP, torch) read is the CPU list, caches and NUMA
nodes under `/sys/devices/system`. Inside the sandbox /sys is a read-only
tmpfs holding only those two folders, bound read-only from the host.
"""

from __future__ import annotations

import os

KEEP = ("/sys/devices/system/cpu", "/sys/devices/system/node")


def sys_argv() -> list[str]:
    """bubblewrap arguments that replace /sys with the CPU and NUMA folders only."""
    argv = ["--perms", "0755", "--tmpfs", "/sys"]
    for folder in ("/sys/devices", "/sys/devices/system"):  # bwrap would make them 0700
        argv += ["--perms", "0755", "--dir", folder]
    for path in KEEP:
        if os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    return argv + ["--remount-ro", "/sys"]
