"""Subscribe to what `edgepara listen --mqtt` publishes and show it, one line per event.

    edgepara listen --mqtt mqtt://localhost --mqtt-device kitchen       # on the device
    python demos/mqtt_subscribe.py mqtt://localhost                     # anywhere: every device under the prefix
    python demos/mqtt_subscribe.py mqtts://broker:8883 --device kitchen --ca ca.pem --live

Credentials, as for `edgepara listen`: EDGEPARA_MQTT_USERNAME / EDGEPARA_MQTT_PASSWORD, or --config FILE
(a TOML file with an [mqtt] table: username, password, ca_file). Needs paho-mqtt: pip install 'edgepara[mqtt]'.
"""
import argparse
import json
import sys
import time

from edgepara.errors import EdgeparaError
from edgepara.stream.mqtt import DEFAULT_PREFIX, paho_client, parse_broker_url, read_config, resolve_credentials


def describe(device: str, level: str, event: dict, show_live: bool) -> str | None:
    """One readable line for an event, or None for one not worth a line (live guesses unless --live)."""
    kind = event.get("type")
    where = f"{device:<14} {event.get('t', 0):8.2f}s"
    if kind == "prediction":
        if not event["final"] and not show_live:
            return None
        tag = "final" if event["final"] else "live "
        return f"{where}  {tag} utterance {event['utterance']}  {level}: {event['label']} ({event['confidence']:.2f})"
    if kind == "speech_start":
        return f"{where}  speech starts (utterance {event['utterance']})"
    if kind == "speech_end":
        return f"{where}  speech ends   (utterance {event['utterance']}, {event['duration']:.2f} s)"
    if kind == "overflow":
        return f"{where}  audio dropped: {event['dropped_samples']} samples (the device could not keep up)"
    return f"{where}  {kind}: {event}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    ap.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"topic prefix (default: {DEFAULT_PREFIX})")
    ap.add_argument("--device", default="+", help="one device's name (default: all devices)")
    ap.add_argument("--ca", help="CA file for mqtts:// (default: the system's CAs)")
    ap.add_argument("--config", help="TOML file with an [mqtt] table (username, password, ca_file)")
    ap.add_argument("--live", action="store_true", help="also show live (non-final) predictions")
    ap.add_argument("--count", type=int, default=None, help="exit after this many final predictions")
    args = ap.parse_args()

    address = parse_broker_url(args.url)
    settings = read_config(args.config) if args.config else {}
    credentials = resolve_credentials(config=settings, config_path=args.config)
    mqtt = paho_client()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if credentials.username:
        client.username_pw_set(credentials.username, credentials.password)
    if address.tls:
        client.tls_set(ca_certs=args.ca or settings.get("ca_file"))
    topic = f"{args.prefix}/{args.device}/#"
    finals, refused = 0, []

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(f"mqtt_subscribe: error: expected {address.url} to accept {credentials.describe()}, "
                  f"got '{reason_code}'", file=sys.stderr)
            refused.append(reason_code)
            client.disconnect()
            return
        client.subscribe(topic, qos=1)
        print(f"listening on {address.url} to {topic}", file=sys.stderr)

    def on_message(client, userdata, message):
        nonlocal finals
        levels = message.topic.split("/")
        device, level = levels[-2], levels[-1]
        if level == "status":
            print(f"{device:<14} {time.strftime('%H:%M:%S')}  is {message.payload.decode()}", flush=True)
            return
        event = json.loads(message.payload)
        line = describe(device, level, event, args.live)
        if line:
            print(line, flush=True)
        if event.get("type") == "prediction" and event["final"]:
            finals += 1
            if args.count is not None and finals >= args.count:
                client.disconnect()

    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(address.host, address.port)
    except OSError as err:
        raise EdgeparaError(f"expected an MQTT broker at {address.url}, got {err.strerror or err}") from None
    client.loop_forever(retry_first_connection=False)  # reconnects by itself if the broker restarts
    return 2 if refused else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgeparaError as err:
        print(f"mqtt_subscribe: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
