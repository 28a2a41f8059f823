"""Errors a user can act on. Each message says what was expected and what was found, on one line.

Exit codes are defined here once, so every command agrees on them; the CLI's --help epilog lists them.
"""

EXIT_OK = 0
EXIT_RUNTIME = 1  # the command was well formed but failed: a bad file, model, head, device, disk
EXIT_USAGE = 2  # the command line or config file is wrong (argparse uses 2 too)
EXIT_NO_SPEECH = 3  # the audio decoded fine but held no speech (embed, enroll, listen --file/--demo/--stdin, train-head)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM): `listen` stops cleanly, e.g. under systemd
EXIT_OUTPUT_CLOSED = 141  # the reader of our output went away (128 + SIGPIPE, what a shell reports)

# Signals the console command (launch.py) saw before the command's own handlers took over: an import or a model
# load that fails right after a Ctrl-C failed because of it, and is reported as "stopped", not as a fault.
INTERRUPTED: list[int] = []

EXIT_CODES_HELP = (
    f"exit codes: {EXIT_OK} ok, {EXIT_RUNTIME} runtime error (bad file, model, head, device), "
    f"{EXIT_USAGE} usage error (command line or config file), {EXIT_NO_SPEECH} no speech found in the audio, "
    f"{EXIT_INTERRUPTED} interrupted (Ctrl-C), {EXIT_TERMINATED} terminated (SIGTERM), "
    f"{EXIT_OUTPUT_CLOSED} output reader went away"
)


class EdgeparaError(Exception):
    """Base class: the CLI prints str(err) on one line and exits with `exit_code`."""

    exit_code = EXIT_RUNTIME


class UsageError(EdgeparaError):
    """An option value, a combination of options or a config file entry that cannot work."""

    exit_code = EXIT_USAGE


class AudioError(EdgeparaError):
    """Audio that cannot be used: unreadable, empty, wrong rate/shape, NaN, no speech."""


class NoSpeechError(AudioError):
    """Audio decoded fine but the voice-activity detector found no speech in it."""

    exit_code = EXIT_NO_SPEECH


class ModelError(EdgeparaError):
    """A model or its card is missing, tampered with, or inconsistent."""


class HeadError(EdgeparaError):
    """A head is missing, corrupt, or was built for another model."""


class DeviceError(EdgeparaError):
    """No usable audio input device, or it failed."""


class ProfileError(EdgeparaError):
    """The speaker profile store is unreadable, or an enrollment cannot be done."""


class MissingExtraError(EdgeparaError):
    """A command needs an optional extra that is not installed."""

    def __init__(self, extra: str, module: str):
        super().__init__(
            f"this command needs the [{extra}] extra (module {module!r} not found): "
            f"pip install 'edgepara[{extra}]'"
        )
