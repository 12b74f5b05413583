"""A minimal /etc for bubblewrap sandboxes, as container runtimes give: no host accounts.

Inside the sandbox `/etc` is an empty tmpfs holding only:

- generated `passwd` and `group` (root, nobody/nogroup 65534, and the uid the
  code runs as when that is neither), `hosts` (localhost only) and
  `nsswitch.conf` (files, then DNS for hosts: the host's may name modules
  such as sss or systemd that would then look accounts up elsewhere);
- from the host, read-only: `ld.so.cache` (where shared libraries are: without
  it the loader searches only its built-in folders), `localtime` (the time
  zone) and `alternatives` (Debian's command symlinks: `awk`, `which`, ...);
- with `network: true` only: `resolv.conf` and the CA certificates
  (`ssl/certs`, holding `ca-certificates.crt`; `ssl/openssl.cnf`; the
  Red Hat `pki` folders), which name resolution and TLS need;
- `mtab`, a link to `/proc/self/mounts` (for `df`).

Everything else (shadow, sudoers, ssh keys, service configurations, the host's
users) is absent. The generated files reach bwrap through pipes (`--file`),
so nothing is written on the host and nothing is left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from llmos_grammar.sandbox.probe import NOBODY

HOST_FILES = ("ld.so.cache", "localtime", "alternatives")
NETWORK_FILES = (
    "resolv.conf",
    "ssl/certs",
    "ssl/openssl.cnf",
    "pki/tls/certs",
    "pki/ca-trust/extracted",
)
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def accounts(uid: int, gid: int) -> tuple[str, str]:
    """(passwd, group) text: root, nobody/nogroup, and `uid`/`gid` when they are neither."""
    passwd = [
        "root:x:0:0:root:/root:/usr/sbin/nologin",
        f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/usr/sbin/nologin",
    ]
    group = ["root:x:0:", f"nogroup:x:{NOBODY}:"]
    if uid not in (0, NOBODY):
        passwd.append(f"sandbox:x:{uid}:{gid}:sandbox:/nonexistent:/usr/sbin/nologin")
    if gid not in (0, NOBODY):
        group.append(f"sandbox:x:{gid}:")
    return "\n".join(passwd) + "\n", "\n".join(group) + "\n"


def generated(uid: int, gid: int) -> dict[str, bytes]:
    """The files written for each sandbox: name under /etc -> content."""
    passwd, group = accounts(uid, gid)
    files = {"passwd": passwd, "group": group, "hosts": HOSTS, "nsswitch.conf": NSSWITCH}
    return {name: text.encode() for name, text in files.items()}


def etc_argv(network: bool, uid: int, gid: int, data_fd: Callable[[bytes], int]) -> list[str]:
    """bubblewrap arguments that replace /etc (to be made read-only with `--remount-ro /etc`).

    `data_fd(content)` gives the number of a file descriptor the child inherits
    and bwrap copies `content` from (a pipe): nothing is written on the host.
    """
    argv = ["--perms", "0755", "--tmpfs", "/etc"]
    for name, content in generated(uid, gid).items():
        argv += ["--perms", "0644", "--file", str(data_fd(content)), f"/etc/{name}"]
    for name in HOST_FILES + (NETWORK_FILES if network else ()):
        host = f"/etc/{name}"
        if os.path.exists(host):
            parts = name.split("/")[:-1]  # bwrap would make missing parents mode 0700
            for i in range(1, len(parts) + 1):
                argv += ["--perms", "0755", "--dir", "/etc/" + "/".join(parts[:i])]
            argv += ["--ro-bind", host, host]
    return argv + ["--symlink", "../proc/self/mounts", "/etc/mtab"]
