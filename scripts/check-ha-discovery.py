#!/usr/bin/env python3
"""Checks StreamPulse's Home Assistant discovery payloads with Home
Assistant's own code (`make ha-check`; not part of `make test`: it needs
Home Assistant Core in a venv, ~400 MB).

What it does, on loopback only:
1. starts Mosquitto on a free port, a tiny HTTP snapshot camera (up), a
   closed port (a camera that is down), and `streampulse run` with three
   streams (up, down, disabled) and `mqtt.discovery: true`;
2. reads back every retained discovery config and state with
   `mosquitto_sub`;
3. validates each config with the DISCOVERY_SCHEMA of its component
   (homeassistant.components.mqtt.binary_sensor / sensor), after the same
   preprocessing HA's discovery does, and fails if the schema drops a key
   (HA would silently ignore it) or rejects the payload;
4. renders every value/availability template with HA's template engine
   against the captured state payloads, and checks the results are what
   the entity accepts (ON/OFF/None, a number or None, an ISO date,
   online/offline);
5. checks unique_ids are distinct, one device, no secret in any payload.

With `--core` (`make ha-core-check`) it runs a real Home Assistant Core
instead, against Mosquitto and the daemon: a start, a restart of
StreamPulse with a camera down, a rename, a removal, a disabled stream;
HA's states are read back through its own `mqtt_statestream`, its entity
registry at the end, and its log is searched for MQTT warnings and errors.

Run with the venv's Python (the Makefile targets make the venv):
    target/ha-venv/bin/python scripts/check-ha-discovery.py [--core] [path/to/streampulse]
"""
import asyncio
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAM_SECRET = "cam-S3cret-9x"
DEVICE = "HA Check"
NODE = "streampulse_ha_check"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


def jpeg_bytes(tmp):
    """One small JPEG made by ffmpeg (installed by scripts/install-deps.sh)."""
    path = os.path.join(tmp, "snap.jpg")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=320x240:rate=1", "-frames:v", "1", "-y", path],
        check=True,
    )
    with open(path, "rb") as f:
        return f.read()


def snapshot_server(jpeg):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def retained(port, topic, wait_s=2):
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
         "--retained-only", "-W", str(wait_s), "-F", "%t\t%p"],
        capture_output=True, text=True,
    ).stdout
    msgs = {}
    for line in out.splitlines():
        t, _, p = line.partition("\t")
        msgs[t] = p
    return msgs


def preprocess(payload):
    """What HA's discovery does before the schema (mqtt/discovery.py):
    abbreviations, `~` base topics, `platform: mqtt`."""
    from homeassistant.components.mqtt.abbreviations import (
        ABBREVIATIONS, DEVICE_ABBREVIATIONS, ORIGIN_ABBREVIATIONS)

    p = dict(payload)
    for k in list(p):
        if k in ABBREVIATIONS:
            p[ABBREVIATIONS[k]] = p.pop(k)
    for sub, abbr in (("device", DEVICE_ABBREVIATIONS), ("origin", ORIGIN_ABBREVIATIONS)):
        if isinstance(p.get(sub), dict):
            d = dict(p[sub])
            for k in list(d):
                if k in abbr:
                    d[abbr[k]] = d.pop(k)
            p[sub] = d
    if "~" in p:
        base = p.pop("~")
        for k, v in list(p.items()):
            if isinstance(v, str) and k.endswith("topic"):
                if v.startswith("~"):
                    p[k] = base + v[1:]
                if v.endswith("~"):
                    p[k] = v[:-1] + base
    p["platform"] = "mqtt"
    return p


async def check(configs, states, web):
    """Validates the captured payloads; returns the failures. Async only
    because HA's template engine wants a HomeAssistant, which wants a
    running loop (nothing is started on it)."""
    import voluptuous as vol
    from homeassistant.components.mqtt import binary_sensor, sensor
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.template import Template
    from homeassistant.util import dt as dt_util

    schemas = {"binary_sensor": binary_sensor.DISCOVERY_SCHEMA, "sensor": sensor.DISCOVERY_SCHEMA}
    hass = HomeAssistant(tempfile.gettempdir())
    failures = []
    unique_ids = {}
    devices = set()
    for topic, raw in sorted(configs.items()):
        component = topic.split("/")[1]
        payload = json.loads(raw)
        name = f"{component} {payload.get('name')!r}"
        try:
            validated = schemas[component](preprocess(payload))
        except vol.Invalid as e:
            failures.append(f"{name}: rejected by HA: {e}")
            continue
        dropped = set(payload) - set(validated)
        if dropped:
            failures.append(f"{name}: HA drops {sorted(dropped)}")
        uid = validated.get("unique_id")
        if uid in unique_ids:
            failures.append(f"{name}: unique_id {uid} also used by {unique_ids[uid]}")
        unique_ids[uid] = name
        devices.add(json.dumps(payload.get("device"), sort_keys=True))

        # Templates against the state they read.
        state = states.get(validated["state_topic"])
        if not state:
            failures.append(f"{name}: nothing retained on {validated['state_topic']}")
            continue
        rendered = "-"
        if "value_template" in payload:
            rendered = Template(payload["value_template"], hass).async_render_with_possible_json_value(state)
            if component == "binary_sensor":
                ok = rendered in (validated["payload_on"], validated["payload_off"], "None")
            elif validated.get("device_class") == "timestamp":
                ok = dt_util.parse_datetime(rendered) is not None
            else:
                try:
                    float(rendered)
                    ok = True
                except ValueError:
                    ok = rendered == "None"
            if not ok:
                failures.append(f"{name}: template gives {rendered!r} for {state[:200]}")
        for a in validated.get("availability", []):
            if "value_template" in a:
                tpl = a["value_template"]  # validated: already a Template
                tpl = Template(getattr(tpl, "template", tpl), hass)
                got = tpl.async_render_with_possible_json_value(
                    states.get(a["topic"], ""))
                if got not in (a.get("payload_available", "online"),
                               a.get("payload_not_available", "offline")):
                    failures.append(f"{name}: availability template gives {got!r}")
        print(f"  ok  {topic}\n      {name}, unique_id {uid}, state {rendered!r}, "
              f"expire_after {validated.get('expire_after')}")
    if len(devices) != 1:
        failures.append(f"{len(devices)} different device blocks: {devices}")
    device = json.loads(next(iter(devices)))
    print(f"  device: {device}")
    if device.get("configuration_url") != f"http://streampulse.test:{web}/":
        failures.append(f"configuration_url: {device.get('configuration_url')}")
    if any("Spare Cam" in p for p in configs.values()):
        failures.append("the disabled stream has an entity")
    everything = json.dumps(configs) + json.dumps(states)
    if CAM_SECRET in everything:
        failures.append("a camera password reached the broker")
    print(f"{len(configs)} discovery configs, {len(unique_ids)} unique ids, "
          f"{len(states)} retained state topics")
    return failures


class Watch:
    """`mosquitto_sub -v` on a filter in the background: every message, in order."""

    def __init__(self, port, topic):
        self.msgs = []
        self.times = []
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-F", "%t\t%p"],
            stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            t, _, p = line.rstrip("\n").partition("\t")
            self.msgs.append((t, p))
            self.times.append(time.time())

    def last(self, topic):
        for t, p in reversed(self.msgs):
            if t == topic:
                return p
        return None

    def sequence(self, topic, since):
        """`state (+seconds)` of each message on topic from index `since`."""
        t0 = self.times[since - 1] if since else self.times[0]
        return [f"{p} (+{tm - t0:.1f} s)" for (t, p), tm in
                zip(self.msgs[since:], self.times[since:]) if t == topic]

    def wait(self, what, pred, timeout=90):
        deadline = time.time() + timeout
        while not pred():
            if time.time() > deadline:
                raise SystemExit(f"timed out waiting for {what}; last messages: {self.msgs[-20:]}")
            time.sleep(0.5)

    def stop(self):
        self.proc.kill()


def core_run(binary):
    """A real Home Assistant Core (2024.3.3) against Mosquitto with the
    daemon: what a user sees through a start, a restart of StreamPulse
    with a camera down, a rename, a removal and a disabled stream. HA's
    states are read back through its own `mqtt_statestream`; its log is
    searched for MQTT warnings and errors at the end."""
    hass_bin = os.path.join(os.path.dirname(sys.executable), "hass")
    tmp = tempfile.mkdtemp(prefix="ha-core-")
    procs = {}
    notes = []
    failures = []
    watch = None
    try:
        port = free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"persistence false\nallow_anonymous true\nlistener {port} 127.0.0.1\n")
            if os.geteuid() == 0:
                f.write("user root\n")
        procs["mosquitto"] = subprocess.Popen(["mosquitto", "-c", conf],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        snap = snapshot_server(jpeg_bytes(tmp))
        dead = free_port()
        cfg = os.path.join(tmp, "config.yaml")
        data = os.path.join(tmp, "data")

        def write_cfg(lobby="Lobby Cam", with_dead=True):
            text = (f"device_name: HA Core\nheartbeat_seconds: 5\n"
                    f"mqtt:\n  host: 127.0.0.1\n  port: {port}\n  interval: 5\n  discovery: true\n"
                    "streams:\n"
                    f"- name: {lobby}\n  url: http://127.0.0.1:{snap.server_port}/snap.jpg\n  kind: snapshot\n"
                    f"- name: Spare Cam\n  url: http://127.0.0.1:{dead}/spare.jpg\n  kind: snapshot\n"
                    "  enabled: false\n")
            if with_dead:
                text += (f"- name: Dead Cam\n  url: http://admin:{CAM_SECRET}@127.0.0.1:{dead}/x.jpg\n"
                         "  kind: snapshot\n  fail_threshold: 1\n")
            with open(cfg + ".tmp", "w") as f:
                f.write(text)
            os.replace(cfg + ".tmp", cfg)

        def start_streampulse():
            log = open(os.path.join(tmp, "streampulse.log"), "a")
            procs["streampulse"] = subprocess.Popen(
                [binary, "run", "--config", cfg, "--data-dir", data, "--listen", "127.0.0.1:0"],
                stdout=log, stderr=subprocess.STDOUT)

        def stop(name):
            p = procs.pop(name)
            p.send_signal(signal.SIGTERM)
            p.wait(30)

        write_cfg()
        start_streampulse()

        ha = os.path.join(tmp, "ha")
        os.makedirs(os.path.join(ha, ".storage"))
        with open(os.path.join(ha, "configuration.yaml"), "w") as f:
            f.write("homeassistant:\n  name: check\n  time_zone: UTC\n  latitude: 0\n  longitude: 0\n"
                    "  elevation: 0\n  unit_system: metric\n"
                    "logger:\n  default: warning\n"
                    "mqtt_statestream:\n  base_topic: hastate\n  publish_attributes: true\n")
        with open(os.path.join(ha, ".storage", "core.config_entries"), "w") as f:
            json.dump({"version": 1, "minor_version": 2, "key": "core.config_entries", "data": {
                "entries": [{"entry_id": "streampulsecheck", "version": 1, "minor_version": 1,
                             "domain": "mqtt", "title": "127.0.0.1",
                             "data": {"broker": "127.0.0.1", "port": port, "discovery": True},
                             "options": {}, "pref_disable_new_entities": False,
                             "pref_disable_polling": False, "source": "user", "unique_id": None,
                             "disabled_by": None}]}}, f)
        watch = Watch(port, "hastate/#")
        ha_log = os.path.join(ha, "home-assistant.log")
        started = time.time()
        procs["hass"] = subprocess.Popen([hass_bin, "-c", ha, "--log-file", ha_log],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lobby = "hastate/binary_sensor/ha_core_lobby_cam/state"
        dead_t = "hastate/binary_sensor/ha_core_dead_cam/state"
        watch.wait("HA: Lobby Cam on, Dead Cam off",
                   lambda: watch.last(lobby) == "on" and watch.last(dead_t) == "off", 300)
        notes.append(f"HA started and showed Lobby Cam on, Dead Cam off after {time.time() - started:.0f} s")
        watch.wait("HA: the latency sensor", lambda: (watch.last(
            "hastate/sensor/ha_core_lobby_cam_latency/state") or "x").isdigit())
        for e in ("sensor/ha_core_lobby_cam_latency", "sensor/ha_core_lobby_cam_last_ok",
                  "sensor/ha_core_dead_cam_latency", "sensor/ha_core_dead_cam_last_ok",
                  "binary_sensor/ha_core_online", "sensor/ha_core_streams_down",
                  "binary_sensor/ha_core_clock_synced", "sensor/ha_core_disk_free",
                  "binary_sensor/ha_core_config_error"):
            watch.wait(f"HA: {e}", lambda e=e: watch.last(f"hastate/{e}/state") is not None)
            notes.append(f"  {e}: {watch.last(f'hastate/{e}/state')}")

        # A restart of StreamPulse with Dead Cam down.
        mark = len(watch.msgs)
        stop("streampulse")
        start_streampulse()
        watch.wait("HA: Dead Cam back after the restart",
                   lambda: [p for t, p in watch.msgs[mark:] if t == dead_t][-1:] == ["off"]
                   and len([p for t, p in watch.msgs[mark:] if t == dead_t]) >= 2)
        time.sleep(12)
        seq = [p for t, p in watch.msgs[mark:] if t == dead_t]
        notes.append("Dead Cam through a StreamPulse restart (seconds after the stop): "
                     + " -> ".join(watch.sequence(dead_t, mark)))
        if "unknown" in seq:
            failures.append(f"Dead Cam passed through unknown on a restart: {seq}")

        # Rename Lobby Cam, then remove Dead Cam.
        mark = len(watch.msgs)
        write_cfg(lobby="Front Hall")
        watch.wait("HA: the renamed entity's friendly name", lambda: any(
            t == "hastate/binary_sensor/ha_core_lobby_cam/friendly_name" and "Front Hall" in p
            for t, p in watch.msgs[mark:]) or any(
            t.startswith("hastate/binary_sensor/ha_core_front_hall") for t, p in watch.msgs[mark:]),
            60)
        time.sleep(12)
        seq = [p for t, p in watch.msgs[mark:] if t == lobby]
        notes.append("Lobby Cam renamed Front Hall: entity binary_sensor.ha_core_lobby_cam kept, "
                     "states since the edit: " + (" -> ".join(watch.sequence(lobby, mark)) or "(none)"))
        # HA makes an entity with expire_after unavailable when its config
        # changes until the next state (on purpose, home-assistant/core#34259);
        # the state follows at once. Anything but on/unavailable is a failure.
        if any(v not in ("on", "unavailable") for v in seq) or not seq or seq[-1] != "on":
            failures.append(f"the rename changed the state: {seq}")
        write_cfg(lobby="Front Hall", with_dead=False)
        time.sleep(15)
        stop("hass")
        stop("streampulse")

        with open(os.path.join(ha, ".storage", "core.entity_registry")) as f:
            reg = json.load(f)["data"]["entities"]
        ours = sorted((e["entity_id"], e["unique_id"]) for e in reg if e["platform"] == "mqtt")
        notes.append(f"entity registry at the end: {len(ours)} MQTT entities")
        for eid, uid in ours:
            notes.append(f"  {eid}  ({uid})")
        if any("dead_cam" in e for e, _ in ours):
            failures.append("Dead Cam's entities are still registered after its removal")
        if any("spare" in e for e, _ in ours):
            failures.append("the disabled stream has an entity")
        if not any(e == "binary_sensor.ha_core_lobby_cam" for e, _ in ours):
            failures.append("the renamed stream lost its entity")
        with open(ha_log) as f:
            log = f.read()
        bad = [l for l in log.splitlines()
               if ("WARNING" in l or "ERROR" in l)
               and ("mqtt" in l.lower() or "streampulse" in l.lower() or "value_json" in l)]
        notes.append(f"HA log: {len(bad)} MQTT warnings/errors")
        for l in bad[:20]:
            notes.append(f"  {l[:300]}")
        failures += [f"HA log: {l[:300]}" for l in bad]
        if CAM_SECRET in log:
            failures.append("a camera password reached HA's log")
    except SystemExit as e:
        failures.append(str(e))
    finally:
        if watch:
            watch.stop()
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(notes))
    return failures


def main():
    args = [a for a in sys.argv[1:] if a != "--core"]
    binary = args[0] if args else os.path.join(ROOT, "target", "debug", "streampulse")
    if "--core" in sys.argv[1:]:
        failures = core_run(binary)
        if failures:
            print("FAILED:")
            for f in failures:
                print(f"  {f}")
            sys.exit(1)
        print("Home Assistant Core: no MQTT warning or error, every check passed")
        return
    for tool in ("mosquitto", "mosquitto_sub", "ffmpeg"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (scripts/install-deps.sh installs it)")
    import voluptuous as vol
    import homeassistant.const
    from homeassistant.components.mqtt import binary_sensor, sensor
    from homeassistant.helpers.template import Template
    from homeassistant.core import HomeAssistant
    from homeassistant.util import dt as dt_util

    print(f"Home Assistant {homeassistant.const.__version__}: MQTT discovery schemas")
    schemas = {"binary_sensor": binary_sensor.DISCOVERY_SCHEMA, "sensor": sensor.DISCOVERY_SCHEMA}
    tmp = tempfile.mkdtemp(prefix="ha-check-")
    procs = []
    try:
        port = free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"persistence false\nallow_anonymous true\nlistener {port} 127.0.0.1\n")
        if os.geteuid() == 0:
            with open(conf, "a") as f:
                f.write("user root\n")
        procs.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        wait_port(port)
        snap = snapshot_server(jpeg_bytes(tmp))
        dead = free_port()
        web = free_port()
        cfg = os.path.join(tmp, "config.yaml")
        with open(cfg, "w") as f:
            f.write(
                f"device_name: {DEVICE}\nheartbeat_seconds: 5\n"
                # configuration_url comes from this name and port; the daemon
                # binds loopback only (--listen below).
                f"web:\n  listen: ['0.0.0.0:{web}']\n  allowed_hosts: [streampulse.test]\n"
                f"mqtt:\n  host: 127.0.0.1\n  port: {port}\n  interval: 5\n  discovery: true\n"
                "streams:\n"
                f"- name: Lobby Cam\n  url: http://127.0.0.1:{snap.server_port}/snap.jpg\n  kind: snapshot\n"
                f"- name: Dead Cam\n  url: http://admin:{CAM_SECRET}@127.0.0.1:{dead}/x.jpg\n"
                "  kind: snapshot\n  fail_threshold: 1\n"
                f"- name: Spare Cam\n  url: http://127.0.0.1:{dead}/spare.jpg\n  kind: snapshot\n"
                "  enabled: false\n"
            )
        log = open(os.path.join(tmp, "streampulse.log"), "w")
        procs.append(subprocess.Popen(
            [binary, "run", "--config", cfg, "--data-dir", os.path.join(tmp, "data"),
             "--listen", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT))

        # Wait for every entity (3 per enabled stream + 5 box) and verdicts.
        deadline = time.time() + 60
        while True:
            configs = retained(port, "homeassistant/#")
            states = retained(port, "streampulse/#")
            verdicts = [json.loads(p).get("state") for t, p in states.items()
                        if t.endswith("/state") and "/box/" not in t and p]
            box = json.loads(states.get("streampulse/ha-check/box/state") or "{}")
            if (len(configs) >= 11 and "up" in verdicts and "down" in verdicts
                    and box.get("streams_down") == 1):
                break
            if time.time() > deadline:
                raise SystemExit(f"timed out: {len(configs)} configs, verdicts {verdicts}")
            time.sleep(1)

    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    failures = asyncio.run(check(configs, states, web))
    if failures:
        print("FAILED:")
        for f in failures:
            print(f"  {f}")
        sys.exit(1)
    print("all payloads accepted by Home Assistant's schemas")


if __name__ == "__main__":
    main()
