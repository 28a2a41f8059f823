"""Errors a user can act on. Each message says what was expected and what was found, on one line."""


class EdgeparaError(Exception):
    """Base class: the CLI prints str(err) on one line and exits with `exit_code`."""

    exit_code = 2


class AudioError(EdgeparaError):
    """Audio that cannot be used: unreadable, empty, wrong rate/shape, NaN, no speech."""


class NoSpeechError(AudioError):
    """Audio decoded fine but the voice-activity detector found no speech in it."""


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
