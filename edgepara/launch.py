"""The `edgepara` console command: loads and runs the command line inside a guard, so that a machine too tight
to load the libraries (a small `ulimit -v`, a damaged install) or a Ctrl-C while they load gets one line and
an exit code, as every other failure does, instead of a traceback."""
from __future__ import annotations

import _signal  # first, and the C module itself: `signal` imports enum, long enough for a Ctrl-C to land in

_EARLY: list[int] = []
# A Ctrl-C is noted while this module loads; a process started with SIGINT ignored (a shell's background job,
# nohup) keeps ignoring it.
_IGNORED = _signal.getsignal(_signal.SIGINT) == _signal.SIG_IGN
if not _IGNORED:
    _signal.signal(_signal.SIGINT, lambda signum, frame: _EARLY.append(signum))

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from .errors import EXIT_INTERRUPTED, EXIT_RUNTIME, INTERRUPTED  # noqa: E402


def _on_interrupt(signum, frame) -> None:
    INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def _quiet_lost_interrupt(unraisable) -> None:
    """A Ctrl-C raised where Python only reports and drops exceptions (an import's weakref callback): it is
    noted in INTERRUPTED, which `listen` checks as it starts and every command before it runs and when it ends,
    so no traceback for it."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _stopped() -> int:
    print("edgepara: stopped", file=sys.stderr)
    return EXIT_INTERRUPTED


def main() -> int:
    if not _IGNORED:
        signal.signal(signal.SIGINT, _on_interrupt)
        sys.unraisablehook = _quiet_lost_interrupt
    try:
        if _EARLY:  # Ctrl-C while this module loaded
            INTERRUPTED.extend(_EARLY)
            raise KeyboardInterrupt
        from .cli import main as cli_main

        code = cli_main()
        if INTERRUPTED and code == 0:  # a Ctrl-C that Python dropped (noted above) while the command ran on
            code = _stopped()
    except KeyboardInterrupt:
        code = _stopped()
    except (MemoryError, ImportError, OSError, SystemError) as err:  # while the libraries load
        if INTERRUPTED:  # an import cut short by the Ctrl-C
            code = _stopped()
        else:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            # numpy's own import error starts with a banner; its last line names the library that failed
            reason = next((line for line in lines if line.startswith("Original error")), lines[0] if lines else "")
            print(f"edgepara: error: expected to load edgepara and its libraries, got {type(err).__name__}"
                  + (f": {reason}" if reason else "") + " (out of memory? check `ulimit -v`; else reinstall with "
                  "scripts/setup.sh)", file=sys.stderr)
            code = EXIT_RUNTIME
    if code == EXIT_INTERRUPTED:
        # CPython ends the process by SIGINT itself once a KeyboardInterrupt has passed through code that a C
        # extension ran during an import, even when it was caught since; everything is written and closed by
        # now, so leave with the documented code instead.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
