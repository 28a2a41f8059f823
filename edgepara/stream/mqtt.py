"""MQTT sink: the same events as the JSONL sink, published to a broker, one topic per device and head.

Topics (PREFIX defaults to "edgepara", DEVICE to this host's name):

    PREFIX/DEVICE/HEAD     predictions of one head (live and final), e.g. edgepara/kitchen-pi/emotion
    PREFIX/DEVICE/events   speech_start, speech_end, overflow
    PREFIX/DEVICE/status   "online" / "offline", retained; "offline" is also the broker-sent last will

With `discovery=DiscoverySettings(...)` the sink also announces the device to Home Assistant (ha_discovery.py):
its retained discovery configs go out on every connection, the first and each reconnect (Home Assistant or the
broker may have restarted meanwhile), before "online"; `DiscoverySettings(remove=True)` publishes empty configs
instead, which removes the entities, for every config the broker still holds for the device under the prefix too.

Each payload is one JSON object, byte for byte the line JsonlSink writes (without the newline).

Delivery: final predictions and speech/overflow events ("durable" events) are kept in a bounded queue while the
broker is away and delivered in order when it returns; when the queue is full the oldest is dropped and counted
(`dropped`). Live (non-final) predictions are skipped while disconnected. The first connection must succeed
within `connect_timeout_s` or the constructor raises: a typo in the URL or wrong credentials fail at once
instead of queueing forever. Reconnection (with exponential backoff) starts only after a first success.

Why one thread owns the client: right after a reconnect paho resends its unacknowledged messages; a publish
from another thread at that moment could overtake them. So `write()` only appends to the queue, and a single
sender thread does all the network work (paho's loop(), reconnecting, publishing) in order.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from ..config import toml_parser
from ..errors import EdgeparaError, MissingExtraError
from .ha_discovery import DiscoverySettings, check_discovery_prefix, config_messages, node_id
from .sinks import event_to_json

DEFAULT_PREFIX = "edgepara"
DEFAULT_QOS = 1
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_FLUSH_TIMEOUT_S = 10.0
ENV_USERNAME = "EDGEPARA_MQTT_USERNAME"
ENV_PASSWORD = "EDGEPARA_MQTT_PASSWORD"
EVENTS_LEVEL = "events"
STATUS_LEVEL = "status"
CONFIG_SECTION = "mqtt"
# Messages handed to paho and not yet acknowledged. Beyond this they wait in our own bounded queue, so the bound
# holds even when the broker is slow to acknowledge (paho's own queue is unbounded).
MAX_IN_FLIGHT = 20
RETAINED_SETTLE_S = 0.3  # after the subscription is granted: the broker's retained configs arrive at once
LOOP_TICK_S = 0.025  # how long the sender waits on the socket; the delay a new event can see before it is sent
DROP_NOTICE_EVERY_S = 2.0

log = logging.getLogger("edgepara.mqtt")


def paho_client():
    try:
        import paho.mqtt.client as mqtt_client
    except ImportError:
        raise MissingExtraError("mqtt", "paho.mqtt") from None
    return mqtt_client


# --- settings ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://HOST[:PORT] (default 1883) or mqtts://HOST[:PORT] (TLS, default 8883). Credentials in the URL are
    refused: a command line is visible to every user of the machine (ps, shell history)."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        raise EdgeparaError(f"expected an MQTT URL like mqtt://HOST[:PORT], got {_redact(url)!r} (bad port)") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise EdgeparaError(f"expected an mqtt:// or mqtts:// URL, got {_redact(url)!r}")
    if "@" in parts.netloc:
        raise EdgeparaError(f"expected an MQTT URL without credentials ({parts.scheme}://HOST[:PORT]), got a "
                            f"user name or password in it; set {ENV_USERNAME} and {ENV_PASSWORD} or use a "
                            "config file (--mqtt-config FILE) instead")
    if not parts.hostname:
        raise EdgeparaError(f"expected a broker host in the MQTT URL, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EdgeparaError(f"expected an MQTT URL without a path or query (topics come from --mqtt-prefix), "
                            f"got {url!r}")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls)


def _redact(url) -> str:
    """The URL without anything before an '@', so an error message never repeats a password."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    return f"{scheme}{sep}…@{rest.split('@', 1)[1]}" if sep and "@" in rest else text


CONFIG_TYPES = {"username": (str,), "password": (str,), "ca_file": (str,), "queue_size": (int,),
                "flush_timeout_s": (int, float)}


def read_config(path: str | Path) -> dict:
    """A TOML file with an [mqtt] table: username, password, ca_file, queue_size, flush_timeout_s (all optional):

        [mqtt]
        username = "robot-7"
        password = "…"
        ca_file = "ca.pem"      # relative to this file

    The same format as the listen config file, so one file may hold both tables. Keep it readable by its owner
    only (chmod 600): it holds a password."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            document = toml_parser().load(f)
    except OSError as err:
        raise EdgeparaError(f"expected a readable MQTT config file, got {path} "
                            f"({err.strerror or type(err).__name__})") from None
    except UnicodeDecodeError:
        raise EdgeparaError(f"expected UTF-8 TOML in {path}, got undecodable bytes") from None
    except ValueError as err:  # tomllib.TOMLDecodeError is a ValueError; its message names line and column
        raise EdgeparaError(f"expected valid TOML in {path}, got {str(err).splitlines()[0]}") from None
    values = document.get(CONFIG_SECTION)
    if not isinstance(values, dict):
        raise EdgeparaError(f"expected an [{CONFIG_SECTION}] table in {path}, got tables {sorted(document)}")
    unknown = sorted(set(values) - set(CONFIG_TYPES))
    if unknown:
        raise EdgeparaError(f"expected keys among {', '.join(CONFIG_TYPES)} in [{CONFIG_SECTION}] of {path}, "
                            f"got {', '.join(unknown)}")
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, CONFIG_TYPES[key]):
            kind = "a string" if CONFIG_TYPES[key] == (str,) else "a number"
            shown = "a value" if key == "password" else repr(value)  # never echo a secret
            raise EdgeparaError(f"expected {kind} for {key} in [{CONFIG_SECTION}] of {path}, got {shown}")
    values = dict(values)
    if values.get("ca_file"):  # relative to the file that names it, not to wherever the command runs
        values["ca_file"] = str(path.parent / Path(values["ca_file"]).expanduser())
    return values


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None
    source: str  # where they came from, for error messages ("EDGEPARA_MQTT_USERNAME", a file, "arguments")

    def describe(self) -> str:
        if self.username is None:
            return f"anonymous clients (no {ENV_USERNAME} or config-file username given)"
        return f"user {self.username!r} (from {self.source})"


def resolve_credentials(username: str | None = None, password: str | None = None, config: dict | None = None,
                        config_path: str | Path | None = None, environ=None) -> Credentials:
    """Arguments first, then the environment, then the config file. The environment wins over a file, the usual
    way for services (a unit file or container sets the variables; the file is the fallback)."""
    environ = os.environ if environ is None else environ
    config = config or {}
    candidates = (
        (username, password, "arguments"),
        (environ.get(ENV_USERNAME), environ.get(ENV_PASSWORD), f"{ENV_USERNAME}/{ENV_PASSWORD}"),
        (config.get("username"), config.get("password"), str(config_path or "the config file")),
    )
    for user, secret, source in candidates:
        if user or secret:
            if not user:
                raise EdgeparaError(f"expected a user name with the MQTT password from {source}, got a password only")
            return Credentials(user, secret or None, source)
    return Credentials(None, None, "nowhere")


def _topic_level(name: str, what: str, *, fix: bool) -> str:
    """One level of a topic: MQTT reserves '/', '+', '#' (and forbids NUL)."""
    _check_length(name, what)
    bad = [c for c in "/+#\0" if c in name]
    if not name or bad:
        if fix and name:
            for c in bad:
                name = name.replace(c, "_")
            return name
        raise EdgeparaError(f"expected a {what} without '/', '+' or '#' (one topic level), got {name!r}")
    return name


MAX_TOPIC_PART_BYTES = 1024  # a prefix or device name; MQTT allows 65,535 bytes for the whole topic


def _check_length(value: str, what: str) -> str:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_TOPIC_PART_BYTES:
        raise EdgeparaError(f"expected a {what} of at most {MAX_TOPIC_PART_BYTES} bytes, got {size}")
    return value


def _check_prefix(prefix: str) -> str:
    _check_length(prefix, "topic prefix")
    levels = prefix.split("/")
    if not prefix or prefix.startswith("$") or any(not level or set(level) & set("+#\0") for level in levels):
        raise EdgeparaError(f"expected a topic prefix like 'edgepara' or 'home/robots' (no '+', '#', empty levels "
                            f"or leading '$'), got {prefix!r}")
    return prefix


def default_device() -> str:
    return _topic_level(socket.gethostname() or "edgepara", "device name", fix=True)


@dataclass(frozen=True)
class MqttStats:
    """What a dashboard or log shows about the sink."""

    connected: bool
    queued: int  # waiting in our queue plus handed to the broker and not yet acknowledged
    dropped: int  # durable events (final predictions, speech/overflow events) lost to a full queue
    live_skipped: int  # live predictions not sent because the broker was away
    reconnects: int


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    durable: bool


# --- the sink ---------------------------------------------------------------------------------------------

class MqttSink:
    """Publishes pipeline events to an MQTT broker; callable, so it goes straight into Pipeline(callbacks=[...]).

    Connects in the constructor (raising EdgeparaError with one line if the broker cannot be reached or refuses
    the credentials), then publishes from a background thread. Call close() (or use `with`) at the end: it waits
    up to `flush_timeout_s` for queued durable events to be acknowledged.
    """

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, device: str | None = None,
                 qos: int = DEFAULT_QOS, ca_file: str | Path | None = None, config: str | Path | None = None,
                 username: str | None = None, password: str | None = None, queue_size: int | None = None,
                 flush_timeout_s: float | None = None, connect_timeout_s: float = 5.0,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0, keepalive_s: int = 30,
                 client_id: str | None = None, notify: Callable[[str], None] | None = None,
                 discovery: DiscoverySettings | None = None):
        self.address = parse_broker_url(url)
        settings = read_config(config) if config else {}
        self.prefix = _check_prefix(prefix)
        self.device = _topic_level(device, "device name", fix=False) if device is not None else default_device()
        if qos not in (0, 1, 2):
            raise EdgeparaError(f"expected an MQTT QoS of 0, 1 or 2, got {qos!r}")
        self.qos = qos
        self.queue_size = int(queue_size if queue_size is not None else settings.get("queue_size", DEFAULT_QUEUE_SIZE))
        if self.queue_size < 1:
            raise EdgeparaError(f"expected an MQTT queue size of at least 1, got {self.queue_size}")
        self.flush_timeout_s = float(flush_timeout_s if flush_timeout_s is not None
                                     else settings.get("flush_timeout_s", DEFAULT_FLUSH_TIMEOUT_S))
        ca_file = ca_file if ca_file is not None else settings.get("ca_file")
        if ca_file and not self.address.tls:
            raise EdgeparaError(f"expected an mqtts:// URL with a CA file, got {self.address.url} (plain TCP)")
        self.credentials = resolve_credentials(username, password, settings, config)
        self.reconnect_min_s, self.reconnect_max_s = float(reconnect_min_s), float(reconnect_max_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self._notify = notify or log.warning
        self.discovery = discovery
        self._discovery_messages = self._make_discovery_messages(discovery) if discovery is not None else []

        self._lock = threading.Lock()
        self._queue: deque[_Message] = deque()
        self._in_flight: dict[int, bool] = {}  # paho message id -> durable; handed over, not yet acknowledged
        self._connected = False
        self._connect_result = None  # the CONNACK reason code of the attempt under way
        self._lost_reason = ""
        self._announce = False  # publish the discovery configs and "online" at the next chance
        self._stop = threading.Event()
        self._flush_deadline = float("inf")  # set by close()
        self._closed = False
        self.dropped = 0
        self.live_skipped = 0
        self.reconnects = 0
        self.unacknowledged = 0  # durable events still not acknowledged when close() gave up
        self._dropped_noticed, self._last_drop_notice = 0, 0.0

        self._client = self._make_client(client_id, keepalive_s, ca_file)
        self._connect_first()
        if discovery is not None and discovery.remove:
            self._clear_every_retained_config()
        self._thread = threading.Thread(target=self._run, name="edgepara-mqtt", daemon=True)
        self._thread.start()

    # -- public ------------------------------------------------------------------------------------------

    def topic_for(self, event) -> str:
        if event.type == "prediction":
            return self.head_topic(event.head)
        return self.events_topic

    def head_topic(self, head: str) -> str:
        """Where the predictions of this head go."""
        return f"{self.prefix}/{self.device}/{_topic_level(str(head), 'head name', fix=True)}"

    @property
    def events_topic(self) -> str:
        return f"{self.prefix}/{self.device}/{EVENTS_LEVEL}"

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/{self.device}/{STATUS_LEVEL}"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def stats(self) -> MqttStats:
        with self._lock:
            queued = len(self._queue) + len(self._in_flight)
        return MqttStats(self._connected, queued, self.dropped, self.live_skipped, self.reconnects)

    def status_line(self) -> str:
        """One short line for a dashboard: connection, queue, and losses when there are any."""
        s = self.stats
        parts = [f"MQTT {'connected' if s.connected else 'reconnecting'}", f"queued {s.queued}"]
        if s.dropped:
            parts.append(f"dropped {s.dropped}")
        if s.live_skipped:
            parts.append(f"live skipped {s.live_skipped}")
        return " · ".join(parts)

    def write(self, event) -> None:
        """Queue one event for publishing; never blocks on the network."""
        durable = not (event.type == "prediction" and not event.final)
        payload = json.dumps(event_to_json(event), ensure_ascii=False).encode("utf-8")
        message = _Message(self.topic_for(event), payload, durable)
        with self._lock:
            if self._closed:
                raise EdgeparaError("expected an open MqttSink, got one already closed")
            if not durable and not self._connected:
                self.live_skipped += 1  # a live guess is stale by the time the broker is back
                return
            if len(self._queue) >= self.queue_size:
                if self._queue.popleft().durable:
                    self.dropped += 1
                else:
                    self.live_skipped += 1
            self._queue.append(message)
        self._maybe_notice_drops()

    __call__ = write

    def close(self) -> int:
        """Flush and disconnect: wait up to flush_timeout_s for queued durable events to be acknowledged.
        Returns how many were not (also in `unacknowledged`)."""
        with self._lock:
            if self._closed:
                return self.unacknowledged
            self._closed = True
            self._flush_deadline = time.monotonic() + self.flush_timeout_s
        self._stop.set()
        with self._lock:  # the events close() waits for: the durable ones, as counted when they are lost
            waiting = sum(1 for m in self._queue if m.durable) + sum(self._in_flight.values())
        if waiting and not self._connected:
            self._notify(f"waiting up to {self.flush_timeout_s:g} s for {self.address.url} to take "
                         f"{waiting} queued events")
        # The sender gives up at the deadline; the extra is for a connect attempt under way at that moment.
        self._thread.join(self.flush_timeout_s + self.connect_timeout_s + 2.0)
        self._maybe_notice_drops(force=True)
        if self.unacknowledged:
            self._notify(f"{self.unacknowledged} queued events not acknowledged by {self.address.url} "
                         f"within {self.flush_timeout_s:g} s; they are lost")
        return self.unacknowledged

    def __enter__(self) -> "MqttSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def discovery_topics(self) -> list[str]:
        """The Home Assistant discovery config topics this sink publishes (or clears), in order."""
        return [topic for topic, _ in self._discovery_messages]

    def _make_discovery_messages(self, settings: DiscoverySettings) -> list[tuple[str, bytes]]:
        check_discovery_prefix(settings.prefix)
        return config_messages(settings, device=self.device,
                               state_topics={h.name: self.head_topic(h.name) for h in settings.heads_info},
                               events_topic=self.events_topic, status_topic=self.status_topic,
                               qos=max(self.qos, 1))

    # -- connection --------------------------------------------------------------------------------------

    def _make_client(self, client_id: str | None, keepalive_s: int, ca_file):
        mqtt = paho_client()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id or f"edgepara-{self.device}-{os.getpid()}"[:64],
                             clean_session=True, protocol=mqtt.MQTTv311)
        client.connect_timeout = self.connect_timeout_s
        client.max_inflight_messages_set(MAX_IN_FLIGHT)
        if self.credentials.username is not None:
            client.username_pw_set(self.credentials.username, self.credentials.password)
        if self.address.tls:
            try:
                client.tls_set(ca_certs=str(Path(ca_file).expanduser()) if ca_file else None)
            except (OSError, ssl.SSLError) as err:
                raise EdgeparaError(f"expected a readable PEM CA file for mqtts://, got {ca_file} "
                                    f"({getattr(err, 'strerror', None) or err})") from None
        client.will_set(self.status_topic, b"offline", qos=max(self.qos, 1), retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._keepalive_s = int(keepalive_s)
        return client

    def _connect_first(self) -> None:
        """The first connection, in the caller's thread: any failure is a one-line error now."""
        url = self.address.url
        try:
            self._client.connect(self.address.host, self.address.port, self._keepalive_s)
        except OSError as err:
            raise EdgeparaError(_connect_error(url, self.address, err, self.connect_timeout_s)) from None
        deadline = time.monotonic() + self.connect_timeout_s
        while self._connect_result is None and time.monotonic() < deadline:
            rc = self._client.loop(timeout=0.05)
            if rc != 0 and self._connect_result is None:
                raise EdgeparaError(f"expected an MQTT broker at {url}, got the connection closed before it answered "
                                    f"(is it an MQTT port? mqtts:// on a TLS listener, mqtt:// on a plain one)")
        if self._connect_result is None:
            self._client.disconnect()
            raise EdgeparaError(f"expected an MQTT broker at {url} to answer within {self.connect_timeout_s:g} s, "
                                f"got no answer")
        if self._connect_result.is_failure:
            raise EdgeparaError(f"expected the MQTT broker at {url} to accept {self.credentials.describe()}, "
                                f"got '{self._connect_result}'")

    def _clear_every_retained_config(self) -> None:
        """Removing: also clear the configs the broker still holds for this device under the prefix, not only
        those of today's --head, so the entities of a head no longer named (renamed, dropped) go too. Read in the
        caller's thread, before the sender starts."""
        topic = f"{self.discovery.prefix}/+/{node_id(self.device)}/+/config"
        found, granted = set(), []
        self._client.on_message = lambda client, userdata, m: found.add(m.topic) if m.retain and m.payload else None
        self._client.on_subscribe = lambda *args: granted.append(True)
        self._client.subscribe(topic, qos=1)
        deadline = time.monotonic() + self.connect_timeout_s
        while not granted and time.monotonic() < deadline:
            self._client.loop(timeout=0.05)
        settle = time.monotonic() + RETAINED_SETTLE_S
        while time.monotonic() < settle:
            self._client.loop(timeout=0.05)
        self._client.unsubscribe(topic)
        self._client.on_message = self._client.on_subscribe = None
        known = {t for t, _ in self._discovery_messages}
        self._discovery_messages += [(t, b"") for t in sorted(found - known)]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connect_result = reason_code
        if not reason_code.is_failure:
            with self._lock:
                self._connected = True
            self._announce = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._connected = False
        reason = str(reason_code)
        self._lost_reason = "connection closed" if reason == "Unspecified error" else reason  # paho's word for EOF

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._in_flight.pop(mid, None)

    # -- the sender thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.reconnect_min_s
        down_since = None
        try:
            while not (self._stop.is_set() and (self._drained() or self._past_deadline())):
                if self._connected:
                    if down_since is not None:
                        self.reconnects += 1
                        self._notify(f"reconnected to {self.address.url} after {time.monotonic() - down_since:.1f} s; "
                                     f"delivering {len(self._queue) + len(self._in_flight)} queued events"
                                     + (f" ({self.dropped} dropped in all)" if self.dropped else ""))
                        down_since, delay = None, self.reconnect_min_s
                    self._publish_queued()
                    if self._client.loop(timeout=LOOP_TICK_S) != 0 and self._client.socket() is None:
                        with self._lock:  # lost without an on_disconnect call: never spin on a dead socket
                            self._connected = False
                    continue
                if down_since is None:
                    down_since = time.monotonic()
                    self._notify(f"lost the connection to {self.address.url} ({self._lost_reason or 'closed'}); "
                                 f"keeping up to {self.queue_size} final predictions and speech events, retrying")
                self._wait(delay * random.uniform(0.8, 1.2))  # jitter: a fleet does not come back all at once
                if self._stop.is_set() and self._past_deadline():
                    break
                if not self._reconnect():
                    delay = min(delay * 2, self.reconnect_max_s)
        except Exception as err:  # a bug here must not vanish silently in a daemon thread
            self._notify(f"the MQTT sender stopped: {type(err).__name__}: {err}")
        finally:
            self._finish()

    def _reconnect(self) -> bool:
        self._connect_result = None
        try:
            self._client.reconnect()
        except OSError as err:
            self._lost_reason = err.strerror or type(err).__name__
            return False
        deadline = time.monotonic() + self.connect_timeout_s
        while self._connect_result is None and time.monotonic() < deadline:
            if self._client.loop(timeout=0.05) != 0:
                break
        if self._connect_result is not None and self._connect_result.is_failure:
            self._lost_reason = f"broker refused {self.credentials.describe()}: {self._connect_result}"
        return self._connected

    def _publish_queued(self) -> None:
        if self._announce:
            # Discovery configs first, so that Home Assistant knows the entities before it hears "online"; they
            # count as durable (close() waits for them: `--mqtt-discovery-remove` ends right after).
            for topic, payload in self._discovery_messages:
                info = self._client.publish(topic, payload, qos=max(self.qos, 1), retain=True)
                with self._lock:
                    if not info.is_published():
                        self._in_flight[info.mid] = True
            self._announce = False
            if not (self.discovery is not None and self.discovery.remove):
                self._client.publish(self.status_topic, b"online", qos=max(self.qos, 1), retain=True)
        while True:
            with self._lock:
                if not self._queue or len(self._in_flight) >= MAX_IN_FLIGHT or not self._connected:
                    return
                message = self._queue.popleft()
            info = self._client.publish(message.topic, message.payload, qos=self.qos)
            with self._lock:
                if not info.is_published():
                    self._in_flight[info.mid] = message.durable
            if self.qos == 0 and info.rc != 0 and message.durable:
                with self._lock:  # QoS 0 is at most once: paho keeps no copy to resend
                    self._in_flight.pop(info.mid, None)
                    self.dropped += 1

    def _drained(self) -> bool:
        if self._announce and self._discovery_messages:  # connected, the configs not yet handed to paho
            return False
        with self._lock:
            return not self._queue and not any(self._in_flight.values())

    def _past_deadline(self) -> bool:
        return time.monotonic() >= self._flush_deadline

    def _wait(self, seconds: float) -> None:
        """Sleep, but once close() has been called never past its flush deadline."""
        end = time.monotonic() + seconds
        while True:
            if self._stop.is_set():
                end = min(end, self._flush_deadline)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(0.05, remaining))

    def _finish(self) -> None:
        with self._lock:
            self.unacknowledged = sum(1 for m in self._queue if m.durable) + sum(self._in_flight.values())
        try:
            if self._connected:
                info = self._client.publish(self.status_topic, b"offline", qos=max(self.qos, 1), retain=True)
                end = time.monotonic() + 1.0
                while not info.is_published() and self._connected and time.monotonic() < end:
                    self._client.loop(timeout=0.05)
                self._client.disconnect()
                self._client.loop(timeout=0.05)
        except Exception:  # the broker going away during goodbye changes nothing for the caller
            pass
        with self._lock:
            self._connected = False

    def _maybe_notice_drops(self, force: bool = False) -> None:
        """Tell the user when drops grow, at most every DROP_NOTICE_EVERY_S (a long outage would flood stderr)."""
        now = time.monotonic()
        if self.dropped == self._dropped_noticed:
            return
        if not force and now - self._last_drop_notice < DROP_NOTICE_EVERY_S:
            return
        self._dropped_noticed, self._last_drop_notice = self.dropped, now
        self._notify(f"queue of {self.queue_size} full while {self.address.url} is away: "
                     f"{self.dropped} events dropped so far (oldest first)")


def _connect_error(url: str, address: BrokerAddress, err: OSError, timeout_s: float) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"expected a TLS certificate for {address.host} signed by a trusted CA (--mqtt-ca FILE), "
                f"got {err.verify_message or err.reason}")
    if isinstance(err, ssl.SSLError):
        return (f"expected a TLS handshake with {url}, got {err.reason or err} "
                f"(is the port a plain mqtt:// listener?)")
    if isinstance(err, socket.gaierror):
        return f"expected a resolvable MQTT broker host, got {address.host!r} ({err.strerror})"
    if isinstance(err, ConnectionRefusedError):
        return (f"expected an MQTT broker at {url}, got connection refused (is it running? "
                f"reconnecting is tried only after a first successful connection)")
    if isinstance(err, ConnectionResetError) and address.tls:
        return f"expected a TLS listener at {url}, got the connection reset (is it a plain mqtt:// port?)"
    if isinstance(err, TimeoutError):
        return f"expected an MQTT broker at {url} to answer within {timeout_s:g} s, got no answer"
    return f"expected to reach the MQTT broker at {url}, got {err.strerror or err}"
