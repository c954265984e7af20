"""Loopback ports for a keygate the Python harnesses start as a process.

Shared by tests/clients, tests/console and tests/contract.
"""

from __future__ import annotations

import socket


def free_ports() -> tuple[int, int]:
    """Two loopback ports free a moment ago, never the same one: both are
    held until both are chosen (taken one after the other, the second could
    be the port the first had just let go, and keygate refuses to start
    with its public and admin listeners on one address)."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]
