"""The TOML config file for `edgepara listen`: every listen option, under a [listen] table.

    # $XDG_CONFIG_HOME/edgepara/config.toml (default ~/.config/edgepara/config.toml), or --config FILE
    [listen]
    model = "edgepara-tiny"
    head = "emotion,speaker"
    vad-aggressiveness = 3
    no-dashboard = true

Keys are the long option names without the leading dashes (underscores work too). The allowed keys and their
types are read off the listen parser itself, so an option added to the CLI is a config key at once. The file
only changes the parser's defaults: anything given on the command line still wins.
"""
from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path

from .errors import UsageError

SECTION = "listen"
# Options that steer the parser or the file itself, not a listen setting; and one-off actions (a service whose
# file said mqtt-discovery-remove would exit at every start).
NOT_CONFIGURABLE = {"help", "version", "config", "mqtt_discovery_remove"}


def toml_parser():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:
        try:
            import tomli as tomllib  # the same parser, for Python 3.10
        except ModuleNotFoundError:
            raise UsageError("expected the tomli package to read TOML on Python 3.10, got none: "
                             "pip install tomli") from None
    return tomllib


def default_config_path() -> Path:
    """$XDG_CONFIG_HOME/edgepara/config.toml; the XDG spec says to ignore a relative XDG_CONFIG_HOME."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path(os.path.expanduser("~")) / ".config"
    return root / "edgepara" / "config.toml"


def read_config(path: Path) -> dict:
    """The whole file as a dict; a missing, unreadable or invalid file is one line."""
    if not path.is_file():
        raise UsageError(f"expected a TOML config file at {path}, got {'a folder' if path.is_dir() else 'no file'}")
    try:
        with open(path, "rb") as f:
            return toml_parser().load(f)
    except OSError as err:
        raise UsageError(f"expected a readable config file at {path}, got {err.strerror or type(err).__name__}") from None
    except UnicodeDecodeError:
        raise UsageError(f"expected UTF-8 TOML in {path}, got undecodable bytes") from None
    except ValueError as err:  # tomllib.TOMLDecodeError is a ValueError; its message names line and column
        raise UsageError(f"expected valid TOML in {path}, got {str(err).splitlines()[0]}") from None


def subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse exposes sub-parsers only through this private list
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Config key (long option without dashes) -> its action, for every configurable option."""
    options = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in NOT_CONFIGURABLE:
            options[longs[0][2:]] = action
    return options


def _expected_type(action: argparse.Action) -> tuple[tuple[type, ...], str]:
    """The TOML value types an option accepts, and how to say so."""
    if action.nargs == 0:  # store_true / store_false flags
        return (bool,), "true or false"
    if action.nargs == "?" and action.const is not None:  # --mqtt-discovery [PREFIX]: true is the bare option
        return (bool, str), "true, false or a string"
    kind = getattr(action.type, "toml_type", action.type)
    if kind is int:
        return (int,), "an integer"
    if kind is float:
        return (int, float), "a number"
    return (str,), "a string"


def _convert(key: str, value, action: argparse.Action, where: str):
    """A TOML value checked and converted as argparse would convert the same text on the command line."""
    accepted, described = _expected_type(action)
    if type(value) not in accepted:  # type(), not isinstance(): true is not an integer here
        shown = repr(value) if isinstance(value, (str, int, float, bool)) else type(value).__name__
        raise UsageError(f"{where}: {key}: expected {described}, got {shown}")
    if type(value) is bool:  # an option whose value may be left out: true as if given bare, false as if not given
        return action.const if value else action.default
    if action.nargs != 0 and action.type is not None and action.type not in (str, int, float):
        try:  # a validating type such as positive_int: the same rule as on the command line
            value = action.type(str(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
            raise UsageError(f"{where}: {key}: {err}") from None
    if action.choices is not None and value not in action.choices:
        allowed = action.metavar or ", ".join(map(str, action.choices))
        raise UsageError(f"{where}: {key}: expected one of {allowed}, got {value!r}")
    return value


def listen_defaults(listen_parser: argparse.ArgumentParser, config_path: str | None) -> dict:
    """{dest: value} from the config file (--config FILE, else the default location if it exists), checked
    against the listen options; {} when there is no file."""
    if config_path is not None:
        path = Path(config_path).expanduser()
    else:
        path = default_config_path()
        if not path.exists():
            return {}
    data = read_config(path)
    extra_tables = sorted(set(data) - {SECTION})
    if extra_tables:
        raise UsageError(f"{path}: expected only a [{SECTION}] table, got {extra_tables[0]!r}")
    section = data.get(SECTION, {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: expected [{SECTION}] to be a table, got {type(section).__name__}")
    options = _options(listen_parser)
    defaults = {}
    for raw_key, value in section.items():
        key = raw_key.replace("_", "-")
        if key not in options:
            close = difflib.get_close_matches(key, options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (keys are listen's long options, see --help)"
            raise UsageError(f"{path}: [{SECTION}]: expected a listen option, got unknown key {raw_key!r}{hint}")
        action = options[key]
        defaults[action.dest] = _convert(key, value, action, f"{path}: [{SECTION}]")
    return defaults
