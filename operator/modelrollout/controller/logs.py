"""What the operator's log says during an outage: a line per failed tick (the ticker's), not a
line per retry of every client (issue 20: about 1,500 lines for a 23-s API server restart)."""

from __future__ import annotations

import logging

# urllib3 warns at each connection retry; the tick's own line says what failed, and why.
_QUIET = {"urllib3.connectionpool": logging.ERROR}


class FirstAttemptOnly(logging.Filter):
    """kopf logs every retry of a failed API request at ERROR ("Request attempt #2/9 failed;
    will retry"), for each of its watches, about once a second while the API server is away. The
    first attempt says it; a request that fails all of them raises, and that is logged too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith("Request attempt #") or message.startswith(
            "Request attempt #1/"
        )


def quiet_outages() -> None:
    """Once logging is configured (kopf.configure): the filter on every root handler, where
    the records of all loggers arrive, and the retrying clients at ERROR."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(FirstAttemptOnly())
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
