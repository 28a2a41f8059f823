"""The MQTT sink against a real Mosquitto broker (started and stopped here, on a free port, with its config in
tmp_path) and a real paho subscriber: the CLI's events over MQTT equal its JSON lines, a broker restart loses
no final prediction, a full queue drops the oldest and counts them, and bad credentials, an unreachable broker,
an untrusted TLS certificate or a URL with a password in it each give one clear line and a non-zero exit.

The broker tests are skipped only where Mosquitto is not installed (`scripts/setup.sh test` installs it).
"""
from __future__ import annotations

import getpass
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client", reason="the MQTT sink needs paho-mqtt (pip install 'edgepara[mqtt]')")

from edgepara.errors import EdgeparaError  # noqa: E402
from edgepara.stream.mqtt import MqttSink, parse_broker_url, read_config  # noqa: E402
from edgepara.types import Prediction, SpeechEnd, SpeechStart  # noqa: E402

DATA = Path(__file__).parent / "data"
CLIP = DATA / "ravdess_A21_angry.flac"
CLI = [sys.executable, "-m", "edgepara.cli"]
MOSQUITTO = "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else shutil.which("mosquitto")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="Mosquitto is not installed (/usr/sbin/mosquitto); "
                                                            "scripts/setup.sh test installs it")
WAIT_S = 10.0


# --- a real broker ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, up: bool, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise AssertionError(f"port {port} did not go {'up' if up else 'down'} within {timeout} s")


class Broker:
    """/usr/sbin/mosquitto on 127.0.0.1, persistent (a subscriber's session and its queued messages survive a
    restart, as on a real deployment), stopped with SIGTERM like a service manager does."""

    def __init__(self, directory: Path, extra: str = "", tls_port: int | None = None, anonymous: bool = True):
        self.directory, self.port, self.tls_port = directory, free_port(), tls_port
        self.url = f"mqtt://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "mosquitto.conf"
        # `user`: run as whoever runs the tests; as root Mosquitto would otherwise switch to a `mosquitto` user
        # that cannot read tmp_path.
        self.config.write_text(f"user {getpass.getuser()}\n"
                               f"allow_anonymous {'true' if anonymous else 'false'}\n"
                               f"persistence true\npersistence_location {directory}/\n"
                               f"listener {self.port} 127.0.0.1\n{extra}\n")
        self.log = directory / "mosquitto.log"
        self.process = None

    def start(self) -> "Broker":
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=open(self.log, "ab"),
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, up=True)
        except AssertionError:
            self.stop()
            raise AssertionError(f"mosquitto did not start:\n{self.log.read_text()}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


class Subscriber:
    """A real paho client that records (topic, payload) in arrival order. `persistent`: a fixed client id and
    clean_session=False, so messages published while it reconnects after a broker restart are kept for it."""

    def __init__(self, port: int, topic: str, persistent: bool = False):
        self.messages: queue.Queue = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}" if persistent else "",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.05, 0.2)
        subscribed = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=2)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
        self.client.on_message = self._on_message
        self._seen: set[tuple[str, bytes]] = set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subscribed.get(timeout=WAIT_S)

    def _on_message(self, client, userdata, m) -> None:
        # The broker may resend to us (DUP set) what we had received but not yet acknowledged when it stopped:
        # at-least-once on the broker-to-subscriber leg, not the sink's doing. Each test event is unique.
        if m.dup and (m.topic, m.payload) in self._seen:
            return
        self._seen.add((m.topic, m.payload))
        self.messages.put((m.topic, m.payload.decode(), m.retain))

    def take(self, count: int, timeout: float = WAIT_S, skip_status: bool = True) -> list[tuple[str, str]]:
        got, end = [], time.monotonic() + timeout
        while len(got) < count:
            try:
                topic, payload, retained = self.messages.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"expected {count} messages, got {len(got)} within {timeout} s: {got}")
            if not (skip_status and topic.endswith("/status")):
                got.append((topic, payload))
        return got

    def rest(self, wait: float = 0.3) -> list[tuple[str, str]]:
        time.sleep(wait)
        out = []
        while not self.messages.empty():
            topic, payload, _ = self.messages.get()
            if not topic.endswith("/status"):
                out.append((topic, payload))
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def final(n: int, head: str = "emotion") -> Prediction:
    return Prediction(t=float(n), utterance=n, head=head, label=f"label{n}", confidence=0.9,
                      probs={f"label{n}": 0.9, "other": 0.1}, final=True, latency_ms=1.0)


def live(n: int, head: str = "emotion") -> Prediction:
    return Prediction(t=n + 0.5, utterance=n, head=head, label="live", confidence=0.5, probs={"live": 0.5},
                      final=False, latency_ms=1.0)


def wait_until(condition, timeout: float = WAIT_S, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def sink_for(broker: Broker, **kwargs) -> MqttSink:
    kwargs = {"prefix": "test", "device": "dev1", "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
              "flush_timeout_s": 5.0, **kwargs}
    return MqttSink(broker.url, **kwargs)


# --- the CLI ----------------------------------------------------------------------------------------------

def run_cli(tmp_path: Path, *args, env_extra: dict | None = None, timeout: float = 60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPARA_MQTT_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env.update(env_extra or {})
    return subprocess.run([*CLI, *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_error_line(result, *needles: str) -> str:
    """A non-zero exit and exactly one line on stderr, 'edgepara: error: …', containing every needle."""
    assert result.returncode != 0, f"expected failure, got exit 0\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("edgepara: error: "), lines[0]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"expected {needle!r} in: {lines[0]}"
    return lines[0]


@needs_broker
def test_cli_publishes_the_jsonl_events_in_order_on_per_head_topics(tmp_path, broker):
    sub = Subscriber(broker.port, "edgepara-test/#")
    try:
        r = run_cli(tmp_path, "listen", "--file", CLIP, "--head", "emotion,arousal,mask", "--no-dashboard",
                    "--jsonl", "events.jsonl", "--mqtt", broker.url, "--mqtt-prefix", "edgepara-test",
                    "--mqtt-device", "robot-1")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "mqtt" not in r.stderr, r.stderr  # nothing to report on a good run
        jsonl = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert {e["type"] for e in jsonl} >= {"speech_start", "speech_end", "prediction"}
        assert any(e["type"] == "prediction" and not e["final"] for e in jsonl)  # live ones travel too
        # adaptive heads say which baseline they read the speech against; the others carry no such field
        assert all(("baseline" in e) == (e["head"] in ("emotion", "arousal")) for e in jsonl if e["type"] == "prediction")
        expected = [(f"edgepara-test/robot-1/{e['head'] if e['type'] == 'prediction' else 'events'}", e)
                    for e in jsonl]
        got = [(topic, json.loads(payload)) for topic, payload in sub.take(len(expected))]
        assert got == expected
        assert sub.rest() == []  # nothing more than the JSON lines
    finally:
        sub.close()
    # The status topic is retained: a subscriber arriving later learns the device went offline cleanly.
    late = Subscriber(broker.port, "edgepara-test/robot-1/status")
    try:
        topic, payload, retained = late.messages.get(timeout=WAIT_S)
        assert (topic, payload, retained) == ("edgepara-test/robot-1/status", "offline", True)
    finally:
        late.close()


@needs_broker
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_payload_is_the_jsonl_line(broker, tmp_path, qos):
    """Library use: the sink is a Pipeline callback; each payload is byte for byte JsonlSink's line."""
    from edgepara.stream.sinks import JsonlSink

    sub = Subscriber(broker.port, "test/#")
    events = [SpeechStart(t=0.5, utterance=0), live(0), SpeechEnd(t=2.0, utterance=0, duration=1.5), final(0),
              final(0, head="mask/type+#")]
    with sink_for(broker, qos=qos) as sink, JsonlSink(tmp_path / "e.jsonl") as jsonl:
        for event in events:
            sink(event)
            jsonl(event)
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    got = sub.take(len(events))
    sub.close()
    assert [payload for _, payload in got] == lines
    # MQTT's wildcard characters and '/' cannot be part of one topic level: a head name gets them replaced.
    assert [topic for topic, _ in got] == ["test/dev1/events", "test/dev1/emotion", "test/dev1/events",
                                           "test/dev1/emotion", "test/dev1/mask_type__"]


# --- broker restarts and the queue ------------------------------------------------------------------------

@needs_broker
def test_broker_restart_loses_no_final_prediction(broker):
    sub = Subscriber(broker.port, "test/#", persistent=True)
    notices = []
    sink = sink_for(broker, notify=notices.append)
    try:
        for n in range(3):
            sink(final(n))
        wait_until(lambda: sink.stats.queued == 0, what="the first finals to be acknowledged")
        assert [json.loads(p)["t"] for _, p in sub.take(3)] == [0.0, 1.0, 2.0]

        broker.stop()
        sink(final(3))  # may reach paho before the loss is noticed: paho must resend it, in order
        wait_until(lambda: not sink.connected, what="the sink to notice the broker is gone")
        sink(live(4))  # a live guess while disconnected is skipped, not queued
        for n in range(4, 8):
            sink(final(n))
        assert sink.stats.queued == 5 and sink.live_skipped == 1

        broker.start()  # same port, same persistent store
        wait_until(lambda: sink.connected and sink.stats.queued == 0, what="the queue to drain after the restart")
        got = [json.loads(p) for _, p in sub.take(5)]
        assert [(e["t"], e["final"]) for e in got] == [(float(n), True) for n in range(3, 8)]
        assert sub.rest() == []
        assert sink.dropped == 0 and sink.reconnects == 1
        assert any("lost the connection" in n for n in notices) and any("reconnected" in n for n in notices)
    finally:
        assert sink.close() == 0
        sub.close()


@needs_broker
def test_full_queue_drops_the_oldest_finals_and_counts_them(broker):
    sub = Subscriber(broker.port, "test/#", persistent=True)
    notices = []
    sink = sink_for(broker, queue_size=3, notify=notices.append)
    try:
        sink(final(0))
        wait_until(lambda: sink.stats.queued == 0, what="the first final to be acknowledged")
        assert len(sub.take(1)) == 1
        assert sink.status_line() == "MQTT connected · queued 0"  # what the dashboard's header shows
        broker.stop()
        wait_until(lambda: not sink.connected, what="the sink to notice the broker is gone")
        for n in range(1, 9):  # 8 finals into a queue of 3: the 5 oldest go
            sink(final(n))
        assert sink.dropped == 5 and sink.stats.dropped == 5
        assert sink.status_line() == "MQTT reconnecting · queued 3 · dropped 5"
        assert any("dropped" in n for n in notices), notices  # said at once (then at most every 2 s)
        broker.start()
        got = [json.loads(p)["t"] for _, p in sub.take(3)]
        assert got == [6.0, 7.0, 8.0]
        assert sub.rest() == []
    finally:
        sink.close()
        sub.close()
    assert any("reconnected" in n and "5 dropped in all" in n for n in notices), notices


@needs_broker
def test_close_reports_finals_the_broker_never_acknowledged(broker):
    notices = []
    sink = sink_for(broker, flush_timeout_s=0.3, notify=notices.append)
    broker.stop()
    wait_until(lambda: not sink.connected, what="the sink to notice the broker is gone")
    sink(final(1))
    sink(final(2))
    with sink._lock:  # a live guess handed to the client before the broker went: never waited for, never "lost"
        sink._in_flight[65000] = False
    started = time.monotonic()
    assert sink.close() == 2 and sink.unacknowledged == 2
    assert time.monotonic() - started < 3.0  # the flush is bounded
    # the two counts agree (they said 3 queued, 2 lost when the live guess was counted in one of them)
    assert any("waiting up to 0.3 s" in n and "take 2 queued events" in n for n in notices), notices
    assert any("2 queued events not acknowledged" in n for n in notices), notices
    with pytest.raises(EdgeparaError, match="closed"):
        sink(final(3))


# --- errors: one line each --------------------------------------------------------------------------------

def test_url_with_credentials_is_refused_without_repeating_them(tmp_path):
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", "mqtt://robot:hunter2@127.0.0.1:1883")
    line = one_error_line(r, "without credentials", "EDGEPARA_MQTT_PASSWORD")
    assert "hunter2" not in line and "robot" not in line


@pytest.mark.parametrize("url, needle", [
    ("http://127.0.0.1", "mqtt:// or mqtts://"),
    ("mqtt://", "broker host"),
    ("mqtt://host:notaport", "bad port"),
    ("mqtt://host/topic", "without a path"),
    ("mqtts://user@host", "without credentials"),
])
def test_bad_urls_are_one_line_errors(url, needle):
    with pytest.raises(EdgeparaError, match=re.escape(needle)) as err:
        parse_broker_url(url)
    assert "\n" not in str(err.value)


def test_urls_get_default_ports():
    assert parse_broker_url("mqtt://broker.local").port == 1883
    assert parse_broker_url("mqtts://broker.local").port == 8883
    assert parse_broker_url("mqtts://10.0.0.2:9999/") == parse_broker_url("mqtts://10.0.0.2:9999")


def test_mqtt_options_without_a_url_are_refused(tmp_path):
    one_error_line(run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt-prefix", "x"), "--mqtt URL", "--mqtt-prefix")


def test_config_file_mistakes_are_one_line(tmp_path):
    config = tmp_path / "mqtt.toml"
    for text, needle in [
        ('[mqtt]\nusername = "robot"\npasword = "typo"\n', "pasword"),
        ('[broker]\nusername = "robot"\n', "[mqtt] table"),
        ('[mqtt]\nusername = robot\n', "valid TOML"),
        ('[mqtt]\nqueue_size = "many"\n', "a number for queue_size"),
        ('[mqtt]\npassword = 1234\n', "a string for password"),
    ]:
        config.write_text(text)
        with pytest.raises(EdgeparaError, match=re.escape(needle)) as err:
            read_config(config)
        assert "\n" not in str(err.value) and "1234" not in str(err.value)
    config.write_text('[listen]\nmodel = "edgepara-tiny"\n[mqtt]\nca_file = "certs/ca.pem"\nqueue_size = 50\n')
    assert read_config(config) == {"ca_file": str(tmp_path / "certs" / "ca.pem"), "queue_size": 50}


@needs_broker
def test_unreachable_broker_fails_at_start_with_one_line(tmp_path):
    port = free_port()  # nothing listens there
    started = time.monotonic()
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", f"mqtt://127.0.0.1:{port}")
    one_error_line(r, f"127.0.0.1:{port}", "connection refused")
    assert time.monotonic() - started < 20


@pytest.fixture
def password_broker(tmp_path):
    if not os.access(MOSQUITTO_PASSWD, os.X_OK):
        pytest.skip("mosquitto_passwd (package mosquitto) is not installed")
    directory = tmp_path / "auth-broker"
    directory.mkdir()
    passwords = directory / "passwords"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), "robot", "right-secret"], check=True,
                   capture_output=True)
    b = Broker(directory, extra=f"password_file {passwords}", anonymous=False).start()
    yield b
    b.stop()


@needs_broker
def test_wrong_credentials_are_one_line_and_right_ones_from_a_config_file_work(tmp_path, password_broker):
    wrong = {"EDGEPARA_MQTT_USERNAME": "robot", "EDGEPARA_MQTT_PASSWORD": "wrong-secret"}
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", password_broker.url, env_extra=wrong)
    line = one_error_line(r, "user 'robot'", "EDGEPARA_MQTT_USERNAME", "not authori")
    assert "wrong-secret" not in line
    one_error_line(run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", password_broker.url), "anonymous")

    config = tmp_path / "mqtt.toml"
    config.write_text('[mqtt]\nusername = "robot"\npassword = "right-secret"\n')
    config.chmod(0o600)
    received = queue.Queue()  # the subscriber needs the password too on this broker
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.username_pw_set("robot", "right-secret")
    subscribed = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgepara/auth-dev/#", qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
    client.on_message = lambda c, u, m: received.put(m.topic)
    client.connect("127.0.0.1", password_broker.port)
    client.loop_start()
    try:
        subscribed.get(timeout=WAIT_S)
        r = run_cli(tmp_path, "listen", "--file", CLIP, "--no-dashboard", "--mqtt", password_broker.url,
                    "--mqtt-config", config, "--mqtt-device", "auth-dev")
        assert r.returncode == 0, r.stderr
        topics = set()
        end = time.monotonic() + WAIT_S
        while "edgepara/auth-dev/emotion" not in topics and time.monotonic() < end:
            try:
                topics.add(received.get(timeout=0.5))
            except queue.Empty:
                pass
        assert {"edgepara/auth-dev/emotion", "edgepara/auth-dev/events"} <= topics, topics
    finally:
        client.disconnect()
        client.loop_stop()
    # README: the environment wins over the file (here its wrong password over the file's right one)
    r = run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", password_broker.url, "--mqtt-config", config,
                env_extra=wrong)
    one_error_line(r, "user 'robot'", "not authori")


# --- TLS --------------------------------------------------------------------------------------------------

def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                          "server.pem"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=edgepara test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
         "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture
def tls_broker(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory = tmp_path / "tls-broker"
    directory.mkdir()
    ca, cert, key = make_certificates(directory)
    tls_port = free_port()
    b = Broker(directory, extra=f"listener {tls_port} 127.0.0.1\n"
                                f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n", tls_port=tls_port).start()
    wait_for_port(tls_port, up=True)
    b.ca = ca
    yield b
    b.stop()


@needs_broker
def test_tls_with_a_ca_file_delivers_and_an_untrusted_certificate_is_one_line(tmp_path, tls_broker):
    url = f"mqtts://127.0.0.1:{tls_broker.tls_port}"
    sub = Subscriber(tls_broker.port, "test/#")  # the subscriber uses the broker's plain listener
    try:
        with MqttSink(url, prefix="test", device="dev1", ca_file=tls_broker.ca) as sink:
            sink(final(1))
        (topic, payload), = sub.take(1)
        assert topic == "test/dev1/emotion" and json.loads(payload)["label"] == "label1"
    finally:
        sub.close()
    # The system's CAs do not know the test CA.
    one_error_line(run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", url), "certificate", "--mqtt-ca")
    # TLS to a plain listener, and a CA file with a plain URL.
    one_error_line(run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", f"mqtts://127.0.0.1:{tls_broker.port}",
                           "--mqtt-ca", tls_broker.ca), "mqtts://")
    one_error_line(run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", tls_broker.url, "--mqtt-ca", tls_broker.ca),
                   "mqtts://")


@needs_broker
@pytest.mark.parametrize("qos", [None, 0, 2])
def test_cli_mqtt_qos_is_the_qos_the_events_travel_at(tmp_path, broker, qos):
    """`listen --mqtt-qos N` from the command line (default 1): a subscriber at QoS 2 receives every event at the
    publisher's QoS; the status topic goes at least at QoS 1 whatever was asked."""
    got = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgepara-qos/#", qos=2)
    client.on_message = lambda c, u, m: got.put((m.topic, m.qos))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        time.sleep(0.3)
        extra = [] if qos is None else ["--mqtt-qos", str(qos)]
        r = run_cli(tmp_path, "listen", "--file", CLIP, "--no-dashboard", "--mqtt", broker.url,
                    "--mqtt-prefix", "edgepara-qos", *extra)
        assert r.returncode == 0, r.stderr
        time.sleep(0.5)
        messages = []
        while not got.empty():
            messages.append(got.get())
    finally:
        client.disconnect()
        client.loop_stop()
    events = [q for topic, q in messages if not topic.endswith("/status")]
    assert events and set(events) == {1 if qos is None else qos}, messages
    assert {q for topic, q in messages if topic.endswith("/status")} == {max(1 if qos is None else qos, 1)}


@needs_broker
def test_a_crash_leaves_the_device_offline_through_the_last_will(tmp_path, broker):
    """README: the status topic's last will. `listen` killed outright (SIGKILL: no goodbye of its own) while
    connected: the broker itself publishes the retained "offline" it was given at connect."""
    statuses = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgepara-will/+/status", qos=1)
    client.on_message = lambda c, u, m: statuses.put((m.payload.decode(), m.retain))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPARA_MQTT_")}
    p = subprocess.Popen([*CLI, "listen", "--file", str(CLIP), "--realtime", "--no-dashboard", "--mqtt", broker.url,
                          "--mqtt-prefix", "edgepara-will"], cwd=tmp_path, env={**env, "XDG_DATA_HOME": str(tmp_path)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert statuses.get(timeout=30)[0] == "online"
        p.kill()
        p.wait(timeout=10)
        payload, retained = statuses.get(timeout=WAIT_S)
        assert payload == "offline", payload
    finally:
        if p.poll() is None:
            p.kill()
        client.disconnect()
        client.loop_stop()
    late = Subscriber(broker.port, "edgepara-will/+/status")  # and it stays retained for whoever comes later
    try:
        assert late.messages.get(timeout=WAIT_S)[1:] == ("offline", True)
    finally:
        late.close()


def test_a_host_that_accepts_but_never_answers_fails_within_the_first_connection_timeout(tmp_path):
    """README: the first connection must succeed within 5 s. A TCP port that accepts the connection and then
    says nothing (no MQTT CONNACK) stops `listen` with one line after about that long, not a hang."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    try:
        started = time.monotonic()
        r = run_cli(tmp_path, "listen", "--file", CLIP, "--mqtt", f"mqtt://127.0.0.1:{port}", timeout=60)
        took = time.monotonic() - started
    finally:
        server.close()
    one_error_line(r, f"127.0.0.1:{port}", "within 5 s")
    assert 4.0 < took < 20.0, took
