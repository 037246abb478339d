"""The operator's log during an outage: kopf's retries said once, urllib3's retries not at all."""

from __future__ import annotations

import logging

from modelrollout.controller.logs import FirstAttemptOnly, quiet_outages


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf._cogs.clients.watching", logging.ERROR, __file__, 1, message,
                             None, None)  # fmt: skip


def test_only_the_first_attempt_of_a_retried_request_is_logged() -> None:
    kept = FirstAttemptOnly()
    assert kept.filter(_record("Request attempt #1/9 failed; will retry: GET https://x"))
    assert not kept.filter(_record("Request attempt #2/9 failed; will retry: GET https://x"))
    assert not kept.filter(_record("Request attempt #8/9 failed; will retry: GET https://x"))
    assert kept.filter(_record("Handler 'rollout_changed' failed with an exception"))


def test_quieting_filters_every_root_handler_and_silences_urllib3_retries() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        quiet_outages()
        assert any(isinstance(f, FirstAttemptOnly) for f in handler.filters)
        assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == logging.ERROR
    finally:
        root.removeHandler(handler)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.NOTSET)
