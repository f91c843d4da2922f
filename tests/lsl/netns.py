"""LSL traffic on this machine only: a private network namespace and a loopback-only liblsl.

Every test here that touches liblsl runs inside ``unshare -n`` (a network namespace holding only
its own loopback: no packet can leave the machine) with ``LSLAPICFG`` pointing at `CONFIG`
(machine scope, IPv4 loopback only). `assert_contained()` checks both before pylsl is imported.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

CONFIG = """\
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
MachineAddresses = {127.0.0.1}
ListenAddress = 127.0.0.1
[lab]
KnownPeers = {127.0.0.1}
"""
#: Set inside the namespace, so the tests know where they run.
INSIDE = "RPI_LOGGER_LSL_NETNS"


def inside() -> bool:
    return os.environ.get(INSIDE) == "1"


def write_config(folder: Path) -> Path:
    path = folder / "lsl_loopback.cfg"
    path.write_text(CONFIG)
    return path


def assert_contained() -> None:
    """Before any pylsl import: the loopback-only config is in effect and the only network
    interface is the namespace's loopback."""
    cfg = os.environ.get("LSLAPICFG")
    assert cfg and Path(cfg).read_text() == CONFIG, f"LSLAPICFG is not the loopback config: {cfg}"
    interfaces = sorted(name for _, name in socket.if_nameindex())  # this namespace's
    assert interfaces == ["lo"], f"not in a private network namespace: {interfaces}"


def unshare_problem() -> str | None:
    """Why a private network namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip not installed"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def contained_command(argv: list[str], config: Path) -> list[str]:
    """`argv` run inside a fresh network namespace with the loopback-only liblsl config."""
    inner = " ".join(shlex.quote(a) for a in argv)
    script = f"ip link set lo up && LSLAPICFG={shlex.quote(str(config))} {INSIDE}=1 exec {inner}"
    return ["unshare", "-n", "sh", "-c", script]
