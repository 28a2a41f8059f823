"""Home Assistant MQTT discovery for `listen --mqtt URL --mqtt-discovery`: the config messages that make each
edgepara device appear in Home Assistant with one entity per head. Pure functions, no network: MqttSink
publishes what `config_messages` returns (retained, on every connection, before "online").

One Home Assistant device per edgepara device name, and on it:

    sensor.DEVICE_HEAD         each active head: the label of its last FINAL prediction (live predictions on the
                               same topic leave it as it is); attributes probabilities, confidence, utterance and
                               time (stream seconds) of that prediction
    binary_sensor.DEVICE_speaking   on at speech_start, off at speech_end (the events topic)

Every entity is available while the device's status topic says "online" (retained; the broker's last will
says "offline" after a crash). Config topics are DISCOVERY_PREFIX/COMPONENT/NODE_ID/OBJECT_ID/config, with
NODE_ID "edgepara_" + the device name and OBJECT_ID the head name, each reduced to Home Assistant's
[a-zA-Z0-9_-] (see `slug`). An empty retained payload on a config topic removes that entity.

Why a template keeps the state: a head's topic carries live predictions (every window) and final ones (one per
utterance). Home Assistant renders value_template with `this`, the entity's own state object (the MQTT
integration's MqttValueTemplate passes it; checked in Home Assistant 2025.4), so a live prediction renders the
current state again and changes nothing; "None" is the MQTT sensor's payload for "unknown".
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_DISCOVERY_PREFIX = "homeassistant"
MANUFACTURER = "edgepara"
NODE_PREFIX = "edgepara_"
SPEAKING_OBJECT_ID = "speaking"
ONLINE, OFFLINE = "online", "offline"
# The label a probe head gives below its confidence threshold (edgepara.stream.smoother.UNCERTAIN), one of the
# states of its enum sensor. Not imported: this module stays free of the pipeline's imports.
UNCERTAIN = "uncertain"
# States Home Assistant reserves: a head with such a class is a plain text sensor, not an enum one.
_RESERVED_STATES = {"unknown", "unavailable", "None", ""}
_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]")

ICONS = {"emotion": "mdi:emoticon-outline", "emotion8": "mdi:emoticon-outline", "arousal": "mdi:lightning-bolt",
         "mask": "mdi:face-mask", "mask_type": "mdi:face-mask", "speaker": "mdi:account-voice"}
DEFAULT_ICON = "mdi:waveform"
SPEAKING_ICON = "mdi:account-voice"

# A final prediction sets the state to its label; a live one renders the current state again ("None", the MQTT
# sensor's word for unknown, while there is none yet).
HEAD_STATE_TEMPLATE = (
    "{% if value_json.final %}{{ value_json.label }}"
    "{% elif this.state in ('unknown', 'unavailable') %}None"
    "{% else %}{{ this.state }}{% endif %}")
# The attributes of the last final prediction; a live one renders the same four again (or none before a final).
_ATTRIBUTE_KEYS = ("probabilities", "confidence", "utterance", "time")
HEAD_ATTRIBUTES_TEMPLATE = (
    "{% if value_json.final %}"
    "{{ {'probabilities': value_json.probs, 'confidence': value_json.confidence, "
    "'utterance': value_json.utterance, 'time': value_json.t} | tojson }}"
    "{% elif 'utterance' in this.attributes %}"
    "{{ {" + ", ".join(f"'{k}': this.attributes.get('{k}')" for k in _ATTRIBUTE_KEYS) + "} | tojson }}"
    "{% else %}{}{% endif %}")
# ON/OFF at the start and end of speech; other events (overflow, speaker_change) render nothing, which the MQTT
# binary sensor ignores.
SPEAKING_TEMPLATE = (
    "{% if value_json.type == 'speech_start' %}ON"
    "{% elif value_json.type == 'speech_end' %}OFF{% endif %}")


@dataclass(frozen=True)
class DiscoveryHead:
    """One head as Home Assistant sees it: its name (as in the events' "head" field) and, when known, every label
    it can give (its classes; "uncertain" is added), which makes its sensor an enum one whose states an
    automation editor offers. None for heads whose labels are open-ended (speaker: enrolled names or "unknown")."""

    name: str
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DiscoverySettings:
    """What MqttSink needs to announce a device to Home Assistant.

    prefix: Home Assistant's discovery prefix (its MQTT integration's setting; default "homeassistant").
    heads: the active heads, names or DiscoveryHead. model, version: shown on the device page (student model,
    edgepara's version). remove: publish empty configs instead (removes the entities), and no "online"."""

    prefix: str = DEFAULT_DISCOVERY_PREFIX
    heads: tuple = ()
    model: str | None = None
    version: str | None = None
    remove: bool = False
    heads_info: tuple[DiscoveryHead, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        heads = tuple(h if isinstance(h, DiscoveryHead) else DiscoveryHead(str(h)) for h in self.heads)
        object.__setattr__(self, "heads_info", heads)


def check_discovery_prefix(prefix: str) -> str:
    """A discovery prefix is a topic prefix: one or more levels, no wildcards, no empty level, no leading '$'."""
    from ..errors import EdgeparaError

    text = str(prefix)
    levels = text.split("/")
    if (not text or text.startswith("$") or any(not level or set(level) & set("+#\0") for level in levels)
            or not text.isprintable() or len(text.encode("utf-8", "surrogatepass")) > 1024):
        raise EdgeparaError(f"expected a discovery prefix like 'homeassistant' (Home Assistant's MQTT discovery "
                            f"prefix: no '+', '#', empty levels or leading '$'), got {prefix!r}")
    return text


def slug(name: str) -> str:
    """A node or object id Home Assistant accepts ([a-zA-Z0-9_-]+): other characters become '_', and a name that
    needed that gets 6 hex digits of its hash, so "kitchen.pi" and "kitchen_pi" stay two ids."""
    text = str(name)
    cleaned = _NOT_ID.sub("_", text)
    if cleaned == text and text:
        return text
    return f"{cleaned}_{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}".lstrip("_") or "x"


def node_id(device: str) -> str:
    return NODE_PREFIX + slug(device)


def device_block(settings: DiscoverySettings, device: str) -> dict:
    block = {"identifiers": [node_id(device)], "name": device, "manufacturer": MANUFACTURER}
    if settings.model:
        block["model"] = settings.model
    if settings.version:
        block["sw_version"] = settings.version
    return block


def _display_name(head: str) -> str:
    text = head.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else head


def _availability(status_topic: str) -> dict:
    return {"availability_topic": status_topic, "payload_available": ONLINE, "payload_not_available": OFFLINE}


def head_config(settings: DiscoverySettings, head: DiscoveryHead, *, device: str, state_topic: str,
                status_topic: str, qos: int = 1) -> dict:
    """The sensor of one head. Its unique_id is NODE_ID_OBJECT_ID, from the device and head names only, so a
    restart finds the same entity (its history, its name and id as edited in Home Assistant). A head renamed (or
    a device renamed with --mqtt-device) is a new entity; the old one stays, fed by nothing, until its config is
    removed: `listen --mqtt-discovery-remove` (it clears every config the broker holds for the device; a renamed
    device: with the old --mqtt-device), or delete the device in Home Assistant."""
    config = {
        "name": _display_name(head.name),
        "unique_id": f"{node_id(device)}_{slug(head.name)}",
        "state_topic": state_topic,
        "value_template": HEAD_STATE_TEMPLATE,
        "json_attributes_topic": state_topic,
        "json_attributes_template": HEAD_ATTRIBUTES_TEMPLATE,
        **_availability(status_topic),
        "icon": ICONS.get(head.name, DEFAULT_ICON),
        "qos": qos,
        "device": device_block(settings, device),
        "origin": _origin(settings),
    }
    if head.classes and not set(head.classes) & _RESERVED_STATES:
        config["device_class"] = "enum"
        config["options"] = list(dict.fromkeys([*head.classes, UNCERTAIN]))
    return config


def speaking_config(settings: DiscoverySettings, *, device: str, events_topic: str, status_topic: str,
                    qos: int = 1) -> dict:
    return {
        "name": "Speaking",
        "unique_id": f"{node_id(device)}_{SPEAKING_OBJECT_ID}",
        "state_topic": events_topic,
        "value_template": SPEAKING_TEMPLATE,
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "sound",
        **_availability(status_topic),
        "icon": SPEAKING_ICON,
        "qos": qos,
        "device": device_block(settings, device),
        "origin": _origin(settings),
    }


def _origin(settings: DiscoverySettings) -> dict:
    origin = {"name": "edgepara"}
    if settings.version:
        origin["sw_version"] = settings.version
    return origin


def config_topic(settings: DiscoverySettings, component: str, device: str, object_id: str) -> str:
    return f"{settings.prefix}/{component}/{node_id(device)}/{object_id}/config"


def discovery_configs(settings: DiscoverySettings, *, device: str, state_topics: Mapping[str, str],
                      events_topic: str, status_topic: str, qos: int = 1) -> list[tuple[str, dict]]:
    """[(config topic, config)] for every head in settings and the speaking sensor. state_topics maps each head
    name to the topic its predictions go to (MqttSink.head_topic)."""
    configs = []
    for head in settings.heads_info:  # a head named "speaking" is a sensor: no clash with the binary sensor
        configs.append((config_topic(settings, "sensor", device, slug(head.name)),
                        head_config(settings, head, device=device, state_topic=state_topics[head.name],
                                    status_topic=status_topic, qos=qos)))
    configs.append((config_topic(settings, "binary_sensor", device, SPEAKING_OBJECT_ID),
                    speaking_config(settings, device=device, events_topic=events_topic, status_topic=status_topic,
                                    qos=qos)))
    return configs


def config_messages(settings: DiscoverySettings, **kwargs) -> list[tuple[str, bytes]]:
    """What to publish, retained: each config as compact JSON, or b"" for every config topic when
    settings.remove (an empty retained payload removes the entity and clears the broker's copy)."""
    return [(topic, b"" if settings.remove else json.dumps(config, separators=(",", ":")).encode("utf-8"))
            for topic, config in discovery_configs(settings, **kwargs)]
