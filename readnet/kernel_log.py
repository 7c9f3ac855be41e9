"""The log of the kernel that `readnet reproduce` starts for each notebook, without ipykernel's
warning that its TCP transport is unencrypted.

ipykernel's IPKernelApp logs that warning at every start, into the stderr it shares with the
runner, so it would end up in every reproduce log; the kernel listens on localhost only. The
kernel gets an argument (`kernel_arguments`) that adds `QuietTcpWarning` to its console log
handler through traitlets' `logging_config`; every other message of the kernel still shows.
The kernel imports this module before it runs anything, so it imports nothing heavy.
"""
from __future__ import annotations

import json
import logging

TCP_WARNING = "Kernel is running over TCP without encryption"


class QuietTcpWarning(logging.Filter):
    """Drops the one record that starts with TCP_WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TCP_WARNING)


def kernel_arguments() -> list[str]:
    """Command-line arguments for an IPython kernel: its console log handler filtered."""
    config = {"filters": {"readnet_quiet_tcp": {"()": f"{__name__}.{QuietTcpWarning.__name__}"}},
              "handlers": {"console": {"filters": ["readnet_quiet_tcp"]}}}
    return [f"--IPKernelApp.logging_config={json.dumps(config)}"]
