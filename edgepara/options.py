"""Command-line value checks, one per kind of value: argparse calls them while parsing, and the config file
(config.py) runs the same check on its values, so a bad value is a usage error (exit 2, one line) before any
work starts, wherever it came from. Each check carries `toml_type`, the TOML type the config file must hold."""
from __future__ import annotations

import argparse
import math


def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def int_at_least(low: int):
    """A check for an integer >= low."""
    def check(text: str) -> int:
        value = _number(text, int, f"an integer >= {low}")
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    check.toml_type = int
    return check


positive_int = int_at_least(1)


def number_in(low: float, high: float):
    """A check for a finite number in [low, high]."""
    what = f"a number from {low:g} to {high:g}"

    def check(text: str) -> float:
        value = _number(text, float, what)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value:g}")
        return value

    check.toml_type = float
    return check


def number_at_least(low: float):
    """A check for a finite number >= low."""
    what = f"a number >= {low:g}"

    def check(text: str) -> float:
        value = _number(text, float, what)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value:g}")
        return value

    check.toml_type = float
    return check


def positive_int_list(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. "1,2"."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1 like 1,2, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1 like 1,2, got {text!r}")
    return values


positive_int_list.toml_type = str

PROBABILITY = number_in(0.0, 1.0)
COSINE = number_in(-1.0, 1.0)
# the speaker head's false-accept rate; the shipped impostor curves reach down to 1e-4 per profile
FALSE_ACCEPT = number_in(0.001, 0.5)


def _text_check(validate):
    """An option check from a validator of the module that owns the value (imported when the option is
    used, so the CLI loads no MQTT or profile code it does not need); its one-line error becomes argparse's."""
    def check(text: str) -> str:
        from .errors import EdgeparaError

        try:
            validate(text)
        except EdgeparaError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text

    check.toml_type = str
    return check


def _speaker_name(text: str) -> None:
    from .profiles import validate_name

    validate_name(text)


def _mqtt_url(text: str) -> None:
    from .stream.mqtt import parse_broker_url  # mqtt://HOST[:PORT] or mqtts://, no credentials

    parse_broker_url(text)


def _wyoming_url(text: str) -> None:
    from .stream.wyoming import parse_wyoming_url  # tcp://HOST:PORT

    parse_wyoming_url(text)


def _mqtt_discovery_prefix(text: str) -> None:
    from .stream.ha_discovery import check_discovery_prefix  # e.g. "homeassistant"

    check_discovery_prefix(text)


def _mqtt_prefix(text: str) -> None:
    from .stream.mqtt import _check_prefix  # e.g. "edgepara" or "home/robots"

    _check_prefix(text)


def _mqtt_device(text: str) -> None:
    from .errors import EdgeparaError
    from .stream.mqtt import _topic_level  # one topic level

    if not text.isprintable():
        raise EdgeparaError(f"expected a device name of printable characters, got {text!r}")
    _topic_level(text, "device name", fix=False)


speaker_name = _text_check(_speaker_name)
mqtt_url = _text_check(_mqtt_url)
mqtt_prefix = _text_check(_mqtt_prefix)
mqtt_device = _text_check(_mqtt_device)
mqtt_discovery_prefix = _text_check(_mqtt_discovery_prefix)
wyoming_url = _text_check(_wyoming_url)
