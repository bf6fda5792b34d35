"""One call run in a background thread while the caller does something else.

Used to download the next batch of mail while the current one is parsed and stored: the
download waits on the network (and the server's own CPU), which releases the interpreter
lock, so the two overlap even in one Python process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Ahead(Generic[T]):
    """Start ``call()`` now; :meth:`result` waits for it and returns or raises what it did.

    The thread is a daemon: an interrupted run exits without waiting for a download that
    only a dead server could still finish (the session's watchdog bounds it anyway).
    """

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eddymail-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as error:  # handed to the caller in result()
            self._error = error

    def wait(self) -> None:
        """Block until the call has finished, whatever its outcome."""
        self._thread.join()

    @property
    def failed(self) -> bool:
        """Whether the finished call raised."""
        return self._error is not None

    def result(self) -> T:
        """The call's return value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
