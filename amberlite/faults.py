"""Fault-injection points for crash tests: ``AMBERLITE_FAULT=<point>`` kills the process there.

Only tests set the variable; each point marks a place where a crash must leave the store as
it was before the write (see tests/test_memo_crash.py).
"""

from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    if os.environ.get("AMBERLITE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
