"""Home Assistant MQTT discovery (`listen --mqtt URL --mqtt-discovery`), in three layers:

- the config builder alone (edgepara.stream.ha_discovery), its templates rendered with Jinja as Home Assistant
  renders them (a live prediction keeps the state, a final one sets it);
- the real CLI against a real Mosquitto (test_mqtt's broker and subscriber): the retained configs, their topics
  against where the events really go, stable unique_ids across runs, "offline" after the run, republishing after
  a reconnect, and `--mqtt-discovery-remove` leaving nothing retained;
- a real Home Assistant reading them (skipped unless one is installed, see `hass_executable`): the entities
  appear, follow a `listen --demo` run, go unavailable when it stops and disappear after the removal.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client", reason="the MQTT sink needs paho-mqtt (pip install 'edgepara[mqtt]')")

from test_mqtt import CLI, WAIT_S, Broker, Subscriber, free_port, needs_broker, run_cli, wait_until  # noqa: E402

from edgepara.errors import EdgeparaError  # noqa: E402
from edgepara.stream.ha_discovery import (HEAD_ATTRIBUTES_TEMPLATE, HEAD_STATE_TEMPLATE,  # noqa: E402
                                          SPEAKING_TEMPLATE, DiscoveryHead, DiscoverySettings,
                                          check_discovery_prefix, config_messages, discovery_configs, slug)
from edgepara.stream.mqtt import MqttSink  # noqa: E402
from edgepara.types import Prediction  # noqa: E402

EMOTION = ("neutral", "happy", "sad", "angry")


def build(heads=(DiscoveryHead("emotion", EMOTION), "speaker"), device="kitchen", **settings):
    s = DiscoverySettings(heads=heads, model="edgepara-tiny", version="0.1.0", **settings)
    topics = {h.name: f"edgepara/{device}/{h.name}" for h in s.heads_info}
    return discovery_configs(s, device=device, state_topics=topics, events_topic=f"edgepara/{device}/events",
                             status_topic=f"edgepara/{device}/status")


# --- the builder ------------------------------------------------------------------------------------------

def test_configs_name_a_device_a_sensor_per_head_and_a_speaking_sensor():
    configs = dict(build())
    assert list(configs) == ["homeassistant/sensor/edgepara_kitchen/emotion/config",
                             "homeassistant/sensor/edgepara_kitchen/speaker/config",
                             "homeassistant/binary_sensor/edgepara_kitchen/speaking/config"]
    emotion, speaker, speaking = configs.values()
    device = {"identifiers": ["edgepara_kitchen"], "name": "kitchen", "manufacturer": "edgepara",
              "model": "edgepara-tiny", "sw_version": "0.1.0"}
    for config in configs.values():
        assert config["device"] == device
        assert (config["availability_topic"], config["payload_available"], config["payload_not_available"]) == \
            ("edgepara/kitchen/status", "online", "offline")
        assert config["origin"] == {"name": "edgepara", "sw_version": "0.1.0"}
    assert (emotion["state_topic"], emotion["json_attributes_topic"]) == ("edgepara/kitchen/emotion",) * 2
    assert emotion["unique_id"] == "edgepara_kitchen_emotion" and emotion["name"] == "Emotion"
    # the classes a probe head can give, and "uncertain" below its threshold: an enum sensor
    assert emotion["device_class"] == "enum" and emotion["options"] == [*EMOTION, "uncertain"]
    # the speaker head names enrolled people or "unknown": open-ended text, not an enum
    assert "device_class" not in speaker and "options" not in speaker
    assert speaking["state_topic"] == "edgepara/kitchen/events" and speaking["device_class"] == "sound"
    assert (speaking["payload_on"], speaking["payload_off"]) == ("ON", "OFF")


def test_ids_are_stable_and_restricted_to_what_home_assistant_accepts():
    assert build() == build()  # nothing random, nothing from the clock: a restart finds the same entities
    assert slug("kitchen-pi_2") == "kitchen-pi_2"
    assert slug("kitchen.pi") != slug("kitchen_pi") and slug("kitchen.pi").startswith("kitchen_pi_")
    odd = dict(build(heads=("mask/type+#", "doorbell"), device="Küche 1"))
    for topic, config in odd.items():
        levels = topic.split("/")
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in "".join(levels[2:4])), topic
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in config["unique_id"]), config["unique_id"]
    assert len({c["unique_id"] for c in odd.values()}) == 3
    assert next(iter(odd.values()))["device"]["name"] == "Küche 1"  # shown as given


def test_removal_is_an_empty_retained_payload_on_every_config_topic():
    settings = dict(device="kitchen", state_topics={"emotion": "e/kitchen/emotion"}, events_topic="e/kitchen/events",
                    status_topic="e/kitchen/status")
    publish = config_messages(DiscoverySettings(heads=("emotion",), prefix="ha/test"), **settings)
    remove = config_messages(DiscoverySettings(heads=("emotion",), prefix="ha/test", remove=True), **settings)
    assert [t for t, _ in publish] == [t for t, _ in remove] == [
        "ha/test/sensor/edgepara_kitchen/emotion/config", "ha/test/binary_sensor/edgepara_kitchen/speaking/config"]
    assert all(json.loads(p) for _, p in publish) and all(p == b"" for _, p in remove)


@pytest.mark.parametrize("prefix", ["", "a/#", "a/+/b", "a//b", "$SYS", "/a", "a\x01"])
def test_a_bad_discovery_prefix_is_one_line(prefix):
    with pytest.raises(EdgeparaError, match="discovery prefix") as err:
        check_discovery_prefix(prefix)
    assert "\n" not in str(err.value)


class _State:
    """What Home Assistant passes as `this`: the entity's state object."""

    def __init__(self, state="unknown", attributes=None):
        self.state, self.attributes = state, attributes or {}


def render(template: str, payload: dict, this: _State) -> str:
    """The template rendered as Home Assistant does: value_json is the payload, `this` the entity's state."""
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment()
    env.filters["tojson"] = lambda v: json.dumps(v)
    return env.from_string(template).render(value=json.dumps(payload), value_json=payload, this=this).strip()


def prediction(label: str, final: bool, utterance: int = 3) -> dict:
    return {"type": "prediction", "t": 12.5, "utterance": utterance, "head": "emotion", "label": label,
            "confidence": 0.8, "probs": {label: 0.8, "other": 0.2}, "final": final}


def test_templates_let_only_final_predictions_change_the_state():
    assert render(HEAD_STATE_TEMPLATE, prediction("angry", True), _State()) == "angry"
    assert render(HEAD_STATE_TEMPLATE, prediction("sad", False), _State("angry")) == "angry"  # a live guess: kept
    assert render(HEAD_STATE_TEMPLATE, prediction("sad", False), _State()) == "None"  # still unknown
    attributes = json.loads(render(HEAD_ATTRIBUTES_TEMPLATE, prediction("angry", True), _State()))
    assert attributes == {"probabilities": {"angry": 0.8, "other": 0.2}, "confidence": 0.8, "utterance": 3,
                          "time": 12.5}
    kept = {**attributes, "friendly_name": "kitchen Emotion", "options": ["angry"]}
    live = render(HEAD_ATTRIBUTES_TEMPLATE, prediction("sad", False, 4), _State("angry", kept))
    assert json.loads(live) == attributes  # neither the live guess's values nor Home Assistant's own attributes
    assert json.loads(render(HEAD_ATTRIBUTES_TEMPLATE, prediction("sad", False), _State())) == {}
    speaking = {"speech_start": "ON", "speech_end": "OFF", "overflow": "", "speaker_change": ""}
    for kind, expected in speaking.items():  # an empty result: the binary sensor ignores the message
        assert render(SPEAKING_TEMPLATE, {"type": kind}, _State()) == expected


# --- the CLI and a real broker ----------------------------------------------------------------------------

@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


def retained(port: int, topic_filter: str, settle: float = 0.5) -> dict[str, str]:
    """The retained messages under a filter, as a newly subscribing client (Home Assistant, say) gets them."""
    sub = Subscriber(port, topic_filter)
    try:
        time.sleep(settle)  # the broker sends retained messages right after the subscription is granted
        found = {}
        while not sub.messages.empty():
            topic, payload, was_retained = sub.messages.get()
            if was_retained:
                found[topic] = payload
        return found
    finally:
        sub.close()


def wait_retained(port: int, topic_filter: str, count: int, timeout: float = WAIT_S) -> dict[str, str]:
    """retained(), asked again until it holds `count` messages (a busy machine may take a while to publish)."""
    end = time.monotonic() + timeout
    while True:
        found = retained(port, topic_filter, settle=0.3)
        if len(found) >= count or time.monotonic() > end:
            return found


def listen(tmp_path, broker, *extra, device="kitchen"):
    return run_cli(tmp_path, "listen", "--demo", "--fast", "--no-dashboard", "--head", "emotion,mask",
                   "--jsonl", "events.jsonl", "--mqtt", broker.url, "--mqtt-device", device, *extra)


SENSOR_KEYS = {"name", "unique_id", "state_topic", "value_template", "json_attributes_topic",
               "json_attributes_template", "availability_topic", "payload_available", "payload_not_available",
               "device"}


@needs_broker
def test_cli_publishes_retained_configs_whose_topics_are_where_the_events_go(tmp_path, broker):
    sub = Subscriber(broker.port, "#")
    try:
        r = listen(tmp_path, broker, "--mqtt-discovery")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "mqtt" not in r.stderr, r.stderr
        time.sleep(0.3)
        seen = []
        while not sub.messages.empty():
            seen.append(sub.messages.get()[:2])
    finally:
        sub.close()
    topics = [t for t, _ in seen]
    configs = {t: json.loads(p) for t, p in seen if t.startswith("homeassistant/")}
    assert sorted(configs) == ["homeassistant/binary_sensor/edgepara_kitchen/speaking/config",
                               "homeassistant/sensor/edgepara_kitchen/emotion/config",
                               "homeassistant/sensor/edgepara_kitchen/mask/config"]
    # before "online": Home Assistant knows the entities when it hears the device is there
    assert max(topics.index(t) for t in configs) < topics.index("edgepara/kitchen/status")
    assert [p for t, p in seen if t == "edgepara/kitchen/status"] == ["online", "offline"]
    events = [(t, json.loads(p)) for t, p in seen if t.startswith("edgepara/kitchen/") and not t.endswith("/status")]
    for head in ("emotion", "mask"):
        config = configs[f"homeassistant/sensor/edgepara_kitchen/{head}/config"]
        assert SENSOR_KEYS <= config.keys() and config["device_class"] == "enum"
        assert {e["head"] for t, e in events if t == config["state_topic"]} == {head}
        assert {e["label"] for t, e in events if t == config["state_topic"] and e["final"]} <= set(config["options"])
        assert config["availability_topic"] == "edgepara/kitchen/status"
        assert config["device"]["model"] == "edgepara-small"  # listen's default model
    speaking = configs["homeassistant/binary_sensor/edgepara_kitchen/speaking/config"]
    assert {e["type"] for t, e in events if t == speaking["state_topic"]} == {"speech_start", "speech_end"}
    jsonl = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e for _, e in events] == jsonl  # discovery adds configs, changes nothing of the events

    # Retained, so Home Assistant (re)started later still finds them; the device is offline after the run.
    first = retained(broker.port, "homeassistant/#")
    assert {t: json.loads(p) for t, p in first.items()} == configs
    assert retained(broker.port, "edgepara/kitchen/status") == {"edgepara/kitchen/status": "offline"}
    r = listen(tmp_path, broker, "--mqtt-discovery")  # a restart: the same entities, not new ones
    assert r.returncode == 0, r.stderr
    assert retained(broker.port, "homeassistant/#") == first

    # --mqtt-discovery-remove clears every config, listens to nothing, and says what it removed
    r = run_cli(tmp_path, "listen", "--head", "emotion,mask", "--mqtt", broker.url, "--mqtt-device", "kitchen",
                "--mqtt-discovery-remove")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("cleared 3 Home Assistant discovery configs of device 'kitchen'"), r.stdout
    assert retained(broker.port, "homeassistant/#") == {}
    assert (tmp_path / "events.jsonl").read_text().count("\n") == len(jsonl) * 2  # no third run of events


@needs_broker
def test_removing_also_clears_heads_no_longer_named_and_nothing_of_other_devices(tmp_path, broker):
    """A head dropped from --head (mask) since the entities were announced: --mqtt-discovery-remove with today's
    --head still clears its config, found on the broker; another device's configs stay."""
    for device, heads in (("kitchen", "emotion,mask"), ("den", "mask")):
        r = run_cli(tmp_path, "listen", "--demo", "--fast", "--no-dashboard", "--head", heads, "--mqtt", broker.url,
                    "--mqtt-device", device, "--mqtt-discovery")
        assert r.returncode == 0, r.stderr
    assert len(retained(broker.port, "homeassistant/#")) == 5
    r = run_cli(tmp_path, "listen", "--head", "emotion", "--mqtt", broker.url, "--mqtt-device", "kitchen",
                "--mqtt-discovery-remove")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("cleared 3 Home Assistant discovery configs of device 'kitchen'"), r.stdout
    assert "homeassistant/sensor/edgepara_kitchen/mask/config" in r.stdout
    assert sorted(retained(broker.port, "homeassistant/#")) == [
        "homeassistant/binary_sensor/edgepara_den/speaking/config", "homeassistant/sensor/edgepara_den/mask/config"]


@needs_broker
def test_a_custom_prefix_and_the_config_file(tmp_path, broker):
    config = tmp_path / "edgepara.toml"
    config.write_text(f'[listen]\nmqtt = "{broker.url}"\nmqtt-device = "den"\nmqtt-prefix = "robots/edgepara"\n'
                      f'mqtt-discovery = "ha/discovery"\nhead = "mask"\n')
    r = run_cli(tmp_path, "listen", "--config", config, "--demo", "--fast", "--no-dashboard")
    assert r.returncode == 0, r.stderr
    configs = {t: json.loads(p) for t, p in retained(broker.port, "ha/discovery/#").items()}
    assert sorted(configs) == ["ha/discovery/binary_sensor/edgepara_den/speaking/config",
                               "ha/discovery/sensor/edgepara_den/mask/config"]
    assert configs["ha/discovery/sensor/edgepara_den/mask/config"]["state_topic"] == "robots/edgepara/den/mask"
    assert retained(broker.port, "homeassistant/#") == {}
    r = run_cli(tmp_path, "listen", "--config", config, "--mqtt-discovery-remove")
    assert r.returncode == 0, r.stderr
    assert retained(broker.port, "ha/discovery/#") == {}
    # `true`: the option given bare, Home Assistant's default prefix
    config.write_text(config.read_text().replace('mqtt-discovery = "ha/discovery"', "mqtt-discovery = true"))
    r = run_cli(tmp_path, "listen", "--config", config, "--demo", "--fast", "--no-dashboard")
    assert r.returncode == 0, r.stderr
    assert sorted(retained(broker.port, "homeassistant/#")) == [
        "homeassistant/binary_sensor/edgepara_den/speaking/config", "homeassistant/sensor/edgepara_den/mask/config"]


@needs_broker
def test_configs_are_published_again_after_a_reconnect(tmp_path):
    """A broker that lost its retained messages (restarted without persistence): the configs and "online" come
    back as soon as the sink reconnects (the same code as the first connection, whose order the CLI test checks)."""
    broker = Broker(tmp_path / "volatile")
    broker.config.write_text(broker.config.read_text().replace("persistence true", "persistence false"))
    broker.start()
    settings = DiscoverySettings(heads=(DiscoveryHead("emotion", EMOTION),), model="edgepara-tiny", version="0")
    sink = MqttSink(broker.url, device="dev1", reconnect_min_s=0.05, reconnect_max_s=0.2, discovery=settings)
    try:
        assert len(wait_retained(broker.port, "homeassistant/#", 2)) == 2
        broker.stop()
        wait_until(lambda: not sink.connected, what="the sink to notice the broker is gone")
        broker.start()  # no retained message left
        wait_until(lambda: sink.connected and sink.reconnects == 1, what="the sink to reconnect")
        got = wait_retained(broker.port, "#", 3)
        assert sorted(got) == ["edgepara/dev1/status", "homeassistant/binary_sensor/edgepara_dev1/speaking/config",
                               "homeassistant/sensor/edgepara_dev1/emotion/config"]
        assert got["edgepara/dev1/status"] == "online"
        sink(Prediction(t=1.0, utterance=0, head="emotion", label="sad", confidence=0.9, probs={"sad": 0.9},
                        final=True))
    finally:
        assert sink.close() == 0
        broker.stop()


# --- a real Home Assistant --------------------------------------------------------------------------------

def hass_executable() -> str | None:
    """EDGEPARA_HASS (the `hass` of a virtual environment with homeassistant installed), else `hass` on PATH.
    Home Assistant 2025.4 needs Python 3.13: `python3.13 -m venv /opt/ha && /opt/ha/bin/pip install
    homeassistant==2025.4.4 paho-mqtt==2.1.0 home-assistant-frontend==20250411.0` (about 2.5 minutes, 820 MB;
    without the frontend Home Assistant starts in recovery mode, and `--skip-pip` keeps it from installing
    anything at start); then EDGEPARA_HASS=/opt/ha/bin/hass. `scripts/setup.sh test` makes .ha-venv so."""
    local = Path(__file__).resolve().parents[1] / ".ha-venv" / "bin" / "hass"  # what scripts/setup.sh test installs
    candidate = os.environ.get("EDGEPARA_HASS") or (str(local) if local.exists() else shutil.which("hass"))
    return candidate if candidate and os.access(candidate, os.X_OK) else None


HASS = hass_executable()
needs_hass = pytest.mark.skipif(HASS is None, reason="no Home Assistant: set EDGEPARA_HASS to the `hass` of a venv "
                                                     "with homeassistant==2025.4.4 (see hass_executable)")
HASS_START_S = 240.0  # a first start compiles translations and sets up the HTTP server: slow on a busy 2-core box


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(issuer: str, key: str) -> str:
    """An HS256 access token as Home Assistant mints it for a refresh token: issuer = the token's id."""
    now = int(time.time())
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"iss": issuer, "iat": now - 60, "exp": now + 86400}).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


class HomeAssistant:
    """`hass -c DIR` with the least it needs: the HTTP API on a free loopback port, and the MQTT integration's
    config entry (how 2025.x configures the broker: not YAML) pointing at the test broker, written into
    .storage before the start together with an owner user and a long-lived token for the REST API."""

    def __init__(self, directory: Path, broker_port: int, extra_yaml: str = ""):
        self.directory, self.port = directory, free_port()
        storage = directory / ".storage"
        storage.mkdir(parents=True)
        (directory / "configuration.yaml").write_text(
            "homeassistant:\n  name: edgepara test\n  time_zone: UTC\n  latitude: 0\n  longitude: 0\n"
            "  elevation: 0\n  unit_system: metric\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nlogger:\n  default: warning\n" + extra_yaml)
        # Storage at an old minor version with only the fields it had: Home Assistant migrates it to its own.
        entry = {"entry_id": uuid.uuid4().hex, "domain": "mqtt", "title": "test broker", "source": "user",
                 "version": 1, "minor_version": 2, "unique_id": None, "options": {
                     "discovery": True, "discovery_prefix": "homeassistant"},
                 "data": {"broker": "127.0.0.1", "port": broker_port}}
        (storage / "core.config_entries").write_text(json.dumps(
            {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}}))
        user, token_id, key = uuid.uuid4().hex, uuid.uuid4().hex, hashlib.sha256(os.urandom(32)).hexdigest()
        (storage / "auth").write_text(json.dumps({"version": 1, "key": "auth", "data": {
            "users": [{"id": user, "group_ids": ["system-admin"], "is_owner": True, "is_active": True,
                       "name": "test", "system_generated": False, "local_only": False}],
            "groups": [{"id": "system-admin", "name": "Administrators"}],
            "credentials": [],
            "refresh_tokens": [{"id": token_id, "user_id": user, "client_id": None, "client_name": "edgepara test",
                                "client_icon": None, "token_type": "long_lived_access_token",
                                "created_at": "2025-01-01T00:00:00+00:00", "access_token_expiration": 86400.0,
                                "token": os.urandom(32).hex(), "jwt_key": key, "last_used_at": None,
                                "last_used_ip": None, "expire_at": None, "credential_id": None,
                                "version": "2025.4.4"}]}}))
        self.token = _jwt(token_id, key)
        self.log = directory / "hass.log"
        self.process = None

    def start(self) -> "HomeAssistant":
        self.process = subprocess.Popen([HASS, "-c", str(self.directory), "--skip-pip"], stdout=open(self.log, "ab"),
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + HASS_START_S
        while time.monotonic() < end:
            assert self.process.poll() is None, f"hass exited {self.process.returncode}:\n{self.tail()}"
            try:
                if "mqtt" in self.get("/api/config")["components"]:
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"Home Assistant did not start with MQTT within {HASS_START_S:g} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        log = self.directory / "home-assistant.log"
        if log.exists():
            text += log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def state(self, entity_id: str) -> dict | None:
        try:
            return self.get(f"/api/states/{entity_id}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def wait_for(self, condition, what: str, timeout: float = 60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            result = condition()
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(f"Home Assistant: timed out waiting for {what}\n{self.tail()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def publish(port: int, topic: str, payload, retain: bool = False) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload if isinstance(payload, (str, bytes)) else json.dumps(payload), qos=1,
                       retain=retain).wait_for_publish(WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


ENTITIES = ("sensor.kitchen_emotion", "sensor.kitchen_mask", "binary_sensor.kitchen_speaking")
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_automation() -> str:
    """The YAML block of README's "Home Assistant" section."""
    import re

    text = README.read_text()
    section = text[text.index("\n## Home Assistant\n"):]
    section = section[: section.index("\n## ", 5)]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "expected one YAML block (the automation) in README's Home Assistant section"
    return blocks[0]


@needs_broker
@needs_hass
def test_home_assistant_creates_follows_and_removes_the_entities(tmp_path, broker):
    ha = HomeAssistant(tmp_path / "ha", broker.port, extra_yaml=readme_automation())
    started = time.monotonic()
    try:
        ha.start()
        print(f"Home Assistant up with MQTT in {time.monotonic() - started:.1f} s")
        # Discovery is live once a probe config turns into an entity.
        probe = "homeassistant/sensor/edgepara_probe/probe/config"
        publish(broker.port, probe, {"name": "probe", "state_topic": "probe/state", "unique_id": "edgepara_probe"},
                retain=True)
        ha.wait_for(lambda: ha.state("sensor.probe"), "the probe entity")
        publish(broker.port, probe, b"", retain=True)

        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPARA_MQTT_")}
        run = subprocess.Popen([*CLI, "listen", "--demo", "--no-dashboard", "--head", "emotion,mask", "--jsonl",
                                "events.jsonl", "--mqtt", broker.url, "--mqtt-device", "kitchen",
                                "--mqtt-discovery"], cwd=tmp_path, env={**env, "XDG_DATA_HOME": str(tmp_path)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        seen: dict[str, list] = {e: [] for e in ENTITIES}
        try:
            while run.poll() is None:  # the demo clip in real time, about 15 s
                for entity in ENTITIES:
                    state = ha.state(entity)
                    if state and (not seen[entity] or seen[entity][-1][0] != state["state"]):
                        seen[entity].append((state["state"], state["attributes"]))
                time.sleep(0.1)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, run.stderr.read().decode()
        finals = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        finals = [e for e in finals if e["type"] == "prediction" and e["final"]]
        for head in ("emotion", "mask"):
            states = [s for s, _ in seen[f"sensor.kitchen_{head}"]]
            labels = {e["label"] for e in finals if e["head"] == head}
            assert set(states) - {"unknown", "unavailable"}, (head, seen)  # it followed the run
            assert set(states) <= labels | {"unknown", "unavailable"}, (head, states, labels)  # finals only
            for state, attributes in seen[f"sensor.kitchen_{head}"]:
                if state in labels:
                    assert attributes.keys() >= {"probabilities", "confidence", "utterance", "time"}, attributes
                    assert attributes["device_class"] == "enum" and "uncertain" in attributes["options"]
        assert "on" in [s for s, _ in seen["binary_sensor.kitchen_speaking"]], seen
        for entity in ENTITIES:  # the run ended: its "offline" makes every entity unavailable
            ha.wait_for(lambda: ha.state(entity)["state"] == "unavailable", f"{entity} to become unavailable")
        registry_name = ha.state("sensor.kitchen_emotion")["attributes"]["friendly_name"]
        assert registry_name == "kitchen Emotion"

        # The templates in Home Assistant itself: a final sets state and attributes, a live one changes neither.
        publish(broker.port, "edgepara/kitchen/status", "online", retain=True)
        ha.wait_for(lambda: ha.state("sensor.kitchen_emotion")["state"] != "unavailable", "online again")
        final = {"type": "prediction", "t": 99.0, "utterance": 42, "head": "emotion", "label": "happy",
                 "confidence": 0.9, "probs": {"neutral": 0.05, "happy": 0.9, "sad": 0.03, "angry": 0.02},
                 "final": True}
        publish(broker.port, "edgepara/kitchen/emotion", final)
        ha.wait_for(lambda: ha.state("sensor.kitchen_emotion")["state"] == "happy", "the final label")
        publish(broker.port, "edgepara/kitchen/emotion", {**final, "label": "sad", "final": False, "utterance": 43})
        publish(broker.port, "edgepara/kitchen/events", {"type": "speech_start", "t": 100.0, "utterance": 43})
        ha.wait_for(lambda: ha.state("binary_sensor.kitchen_speaking")["state"] == "on", "speaking on")
        state = ha.state("sensor.kitchen_emotion")  # the live message came before the speech_start
        assert state["state"] == "happy", state
        assert (state["attributes"]["utterance"], state["attributes"]["time"]) == (42, 99.0), state
        assert state["attributes"]["probabilities"]["happy"] == 0.9
        publish(broker.port, "edgepara/kitchen/events", {"type": "overflow", "t": 100.5, "dropped_samples": 160})
        publish(broker.port, "edgepara/kitchen/events", {"type": "speech_end", "t": 101.0, "utterance": 43,
                                                           "duration": 1.0})
        ha.wait_for(lambda: ha.state("binary_sensor.kitchen_speaking")["state"] == "off", "speaking off")

        # README's automation, as written: an angry final label that stays 10 s dims light.kitchen (here an MQTT
        # light whose commands the test reads).
        assert ha.state("automation.calm_the_kitchen")["state"] == "on"
        light = Subscriber(broker.port, "test/kitchen-light/#")
        try:
            publish(broker.port, "homeassistant/light/test/kitchen/config", {
                "name": "kitchen", "unique_id": "test_kitchen_light", "command_topic": "test/kitchen-light/set",
                "brightness_command_topic": "test/kitchen-light/brightness"}, retain=True)
            ha.wait_for(lambda: ha.state("light.kitchen"), "the test light")
            angry_at = time.monotonic()
            publish(broker.port, "edgepara/kitchen/emotion", {**final, "label": "angry", "utterance": 44})
            ha.wait_for(lambda: ha.state("sensor.kitchen_emotion")["state"] == "angry", "the angry label")
            topic, payload = light.take(1, timeout=30)[0]
            assert time.monotonic() - angry_at >= 9.5  # "for 10 s", not at once
            assert topic == "test/kitchen-light/brightness" and int(payload) == round(255 * 0.3), (topic, payload)
        finally:
            light.close()
            publish(broker.port, "homeassistant/light/test/kitchen/config", b"", retain=True)
        publish(broker.port, "edgepara/kitchen/status", "offline", retain=True)

        r = run_cli(tmp_path, "listen", "--head", "emotion,mask", "--mqtt", broker.url, "--mqtt-device", "kitchen",
                    "--mqtt-discovery-remove")
        assert r.returncode == 0, r.stderr
        for entity in ENTITIES:
            ha.wait_for(lambda: ha.state(entity) is None, f"{entity} to disappear")
        errors = [line for line in ha.tail(10000).splitlines() if "mqtt" in line.lower()
                  and ("ERROR" in line or "WARNING" in line)]
        assert errors == [], "\n".join(errors)
    finally:
        ha.stop()


@needs_broker
def test_the_service_config_turns_discovery_on_by_uncommenting_its_lines(tmp_path, broker):
    """deploy/config.toml says how: its commented mqtt lines, uncommented, announce the device."""
    shipped = (Path(__file__).resolve().parents[1] / "deploy" / "config.toml").read_text()
    assert "# mqtt-discovery = true" in shipped
    text = shipped.replace('device = "USB"', "demo = true\nfast = true")
    for line in ('mqtt = "mqtt://broker.local"', 'mqtt-device = "kitchen"', "mqtt-discovery = true"):
        text = text.replace(f"# {line}", line)
    config = tmp_path / "config.toml"
    config.write_text(text.replace("mqtt://broker.local", broker.url))
    r = run_cli(tmp_path, "listen", "--config", config, "--no-dashboard")
    assert r.returncode == 0, r.stderr
    assert sorted(retained(broker.port, "homeassistant/#")) == [
        "homeassistant/binary_sensor/edgepara_kitchen/speaking/config",
        "homeassistant/sensor/edgepara_kitchen/emotion/config", "homeassistant/sensor/edgepara_kitchen/mask/config"]
