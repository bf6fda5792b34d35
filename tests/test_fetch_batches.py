"""How an IMAP fetch cuts its work into downloads (``batch.batches``) and runs the
next download in the background (``ahead.Ahead``)."""

from __future__ import annotations

import threading

import pytest

from eddymail.services.fetch import batch as batching
from eddymail.services.fetch.ahead import Ahead
from eddymail.services.fetch.batch import BATCH_BYTES

MiB = 1024 * 1024


def test_batches_stop_at_the_message_count():
    uids = list(range(1, 121))
    batches = batching.batches(uids, dict.fromkeys(uids, 5_000), 50)
    assert [len(batch) for batch in batches] == [50, 50, 20]
    assert [uid for batch in batches for uid in batch] == uids


def test_batches_stop_at_the_byte_budget_and_a_big_message_goes_alone():
    sizes = {1: 6 * MiB, 2: 6 * MiB, 3: 6 * MiB, 4: BATCH_BYTES + 1, 5: 1000, 6: 1000}
    batches = batching.batches(list(sizes), sizes, 50)
    assert batches == [[1, 2], [3], [4], [5, 6]]
    for batch in batches:
        assert len(batch) == 1 or sum(sizes[uid] for uid in batch) <= BATCH_BYTES


def test_no_uids_no_batches():
    assert batching.batches([], {}, 50) == []


def test_ahead_runs_in_another_thread_and_returns_its_value():
    caller = threading.get_ident()
    ahead = Ahead(lambda: threading.get_ident())
    assert ahead.result() != caller
    assert not ahead.failed


def test_ahead_raises_the_calls_error_in_the_caller():
    def broken() -> None:
        raise ConnectionResetError("peer went away")

    ahead = Ahead(broken)
    ahead.wait()
    assert ahead.failed
    with pytest.raises(ConnectionResetError, match="peer went away"):
        ahead.result()
