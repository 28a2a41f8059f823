"""Sinks consume pipeline events. Each is a callable, so it can go straight into Pipeline(callbacks=...)."""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Callable

from ..errors import EdgeparaError
from ..types import event_to_dict


class OutputClosedError(EdgeparaError):
    """The reader of our output went away (e.g. `edgepara listen | head`): stop quietly, no message.
    The CLI should catch this before its generic error handler. Exit status 141 (128 + SIGPIPE), what a
    shell reports for a tool stopped by a closed pipe, and what the CLI returns for a BrokenPipeError."""

    exit_code = 141


def event_to_json(event) -> dict:
    """event_to_dict with "type" first and probabilities rounded like the other floats."""
    d = event_to_dict(event)
    if isinstance(d.get("probs"), dict):
        d["probs"] = {k: round(float(v), 4) for k, v in d["probs"].items()}
    return {"type": d.pop("type"), **d}


class JsonlSink:
    """One JSON object per event and line, flushed per line so a reader sees events as they happen.

    A file is appended to, never truncated: a restarted service keeps the log of its earlier runs. Each line
    goes to the file in one write on a descriptor opened with O_APPEND, so several writers on one path (two
    `listen`s) interleave whole lines, never pieces of them."""

    def __init__(self, path_or_dash: str | Path = "-"):
        self.target = str(path_or_dash)
        self._fd = None
        if self.target == "-":
            self._file, self._owned = sys.stdout, False
        else:
            try:
                self._fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as err:
                raise EdgeparaError(f"expected a writable path for JSON lines, got {self.target} "
                                    f"({err.strerror or type(err).__name__})") from None
            self._file, self._owned = None, True

    def write(self, event) -> None:
        line = json.dumps(event_to_json(event), ensure_ascii=False) + "\n"
        if self._fd is not None:
            self._append(line.encode("utf-8"))
            return
        try:
            self._file.write(line)
            self._file.flush()
        except BrokenPipeError:
            self._silence_stdout()
            raise OutputClosedError(f"expected a reader on {self.target!r}, got a closed pipe") from None

    __call__ = write

    def _silence_stdout(self) -> None:
        """Python's docs (signal, "Note on SIGPIPE"): point stdout at devnull, or the interpreter's final
        flush at exit raises BrokenPipeError again and prints a traceback."""
        if self._owned:
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # stdout without a real descriptor (e.g. captured)
            pass

    def _append(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
            if written < len(data):  # a regular file takes a line whole unless the disk filled meanwhile
                raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise EdgeparaError(f"expected to append JSON lines to {self.target}, got "
                                f"{err.strerror or type(err).__name__}") from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "JsonlSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CallbackSink:
    """Calls fn(event) for every event; `kinds` limits it to some event types ("prediction", …)."""

    def __init__(self, fn: Callable, kinds: tuple[str, ...] | None = None):
        if not callable(fn):
            raise EdgeparaError(f"expected a callable for CallbackSink, got {type(fn).__name__}")
        self.fn, self.kinds = fn, None if kinds is None else tuple(kinds)

    def write(self, event) -> None:
        if self.kinds is None or event.type in self.kinds:
            self.fn(event)

    __call__ = write

    def close(self) -> None:
        pass
