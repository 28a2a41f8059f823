"""Handing a background run's events to one consumer: a bounded channel from the pipeline's thread, and the
`EventStream` that `Pipeline.events()` returns for ``for`` and ``async for``."""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..types import Event

if TYPE_CHECKING:
    from .pipeline import _Run

POLL_S = 0.1  # how often a waiting thread looks again at stop requests and abandoned consumers


@dataclass(frozen=True)
class End:
    error: BaseException | None


class Channel:
    """A bounded queue from the pipeline's thread to one consumer (a thread or an asyncio loop).

    The producer waits while it is full, except once a stop is under way: the closing events must never wait
    for a consumer that may itself be the one stopping (the queue may then exceed its bound by those few)."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self.items: deque = deque()
        self.cond = threading.Condition()
        self.gone = threading.Event()  # the consumer stopped listening: drop everything
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wakeup: asyncio.Event | None = None

    def put(self, item, stop: threading.Event | None = None) -> None:
        """Append `item`; while the queue is full, wait unless `stop` is set (or becomes set)."""
        with self.cond:
            while stop is not None and not stop.is_set() and len(self.items) >= self.max_items \
                    and not self.gone.is_set():
                self.cond.wait(POLL_S)
            if self.gone.is_set():
                return
            self.items.append(item)
            self.cond.notify_all()
        loop, wakeup = self.loop, self.wakeup  # read after the append: see EventStream.__anext__
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the loop is closed: nobody will read
                self.gone.set()

    def take(self, timeout: float) -> Any:
        """The next item, or EMPTY after waiting up to `timeout` seconds (0: no wait)."""
        with self.cond:
            if not self.items and timeout > 0:
                self.cond.wait(timeout)
            if not self.items:
                return EMPTY
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def abandon(self) -> None:
        self.gone.set()
        with self.cond:
            self.items.clear()
            self.cond.notify_all()


EMPTY = object()


class EventStream:
    """The events of one background run, for ``async for`` or ``for`` (made by Pipeline.events).

    Ends after the run's closing events (the open utterance's SpeechEnd and final predictions); an exception
    that ended the run (e.g. DeviceError) is raised after them. To end early:

    - ``stream.request_stop()`` (non-blocking; fine in a signal handler or callback): keep iterating to get the
      closing events, then the iteration ends. If the source gives no chunk within `stop_timeout` seconds
      after the request, the consumer closes the utterance itself.
    - ``stream.stop()`` / ``await stream.aclose()`` / leaving ``with`` or ``async with``: stop and drop
      whatever the consumer has not read (callbacks still get every event).
    - breaking out of the loop and dropping the stream: the run is asked to stop (the callbacks get the
      closing events); use ``async with`` / ``with`` to make this explicit.

    A KeyboardInterrupt while a plain ``for`` waits for the next event requests a stop: the closing events
    still come, then KeyboardInterrupt is raised again.
    """

    def __init__(self, run: "_Run", channel: Channel, stop_timeout: float, finish_here: Callable[[], None]):
        # finish_here: close the open utterance on the calling thread when the source is stalled (the
        # pipeline's own step; passed in, so this module needs nothing else from the pipeline)
        self._run, self._channel, self._finish_here = run, channel, finish_here
        self._stop_timeout = float(stop_timeout)
        self._done = False
        self._interrupted: BaseException | None = None

    # --- stopping -----------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the run to end; the closing events still arrive through this stream. Never blocks."""
        run = self._run
        if not run.stop.is_set():
            run.stop_requested_at = time.monotonic()
            run.stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the run, wait for it (up to `timeout`, default this stream's stop_timeout) and drop what was
        not read. Never raises the run's error (iterate to the end to get it)."""
        self._channel.abandon()
        self.request_stop()
        self._done = True
        thread = self._run.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._stop_timeout if timeout is None else timeout)
            if thread.is_alive():
                self._finish_here()

    close = stop

    async def aclose(self) -> None:
        """`stop()` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def __del__(self) -> None:
        # Dropped without being read to the end (e.g. `break`): let the run close and end on its own.
        try:
            if not self._done:
                self._channel.abandon()
                self.request_stop()
        except Exception:  # during interpreter shutdown anything may already be gone
            pass

    # --- plain iteration ----------------------------------------------------------------------------------

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        while not self._done:
            try:
                item = self._channel.take(POLL_S)
            except KeyboardInterrupt as interrupt:
                self._interrupted = interrupt
                self.request_stop()
                continue
            if item is EMPTY:
                self._close_if_stalled()
                continue
            return self._deliver(item, StopIteration)
        raise StopIteration

    # --- async iteration ----------------------------------------------------------------------------------

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Event:
        channel = self._channel
        if channel.loop is None:
            # Registered before the first take: an item put after it finds the loop and wakes us.
            channel.wakeup = asyncio.Event()
            channel.loop = asyncio.get_running_loop()
        try:
            while not self._done:
                item = channel.take(0)
                if item is EMPTY:
                    channel.wakeup.clear()
                    item = channel.take(0)  # put between the first take and clear() set the event too early
                if item is not EMPTY:
                    return self._deliver(item, StopAsyncIteration)
                self._close_if_stalled()
                try:
                    await asyncio.wait_for(channel.wakeup.wait(), POLL_S)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            self._channel.abandon()
            self.request_stop()
            self._done = True
            raise
        raise StopAsyncIteration

    # --- shared -------------------------------------------------------------------------------------------

    def _deliver(self, item, stop_iteration: type[Exception]) -> Event:
        if not isinstance(item, End):
            return item
        self._done = True
        if self._interrupted is not None:
            raise self._interrupted
        if item.error is not None:
            raise item.error
        raise stop_iteration

    def _close_if_stalled(self) -> None:
        """A stop was requested but the source has not given a chunk since: close the utterance here."""
        requested = self._run.stop_requested_at
        if requested is not None and not self._run.ended \
                and time.monotonic() - requested > self._stop_timeout:
            self._finish_here()


