# lockui.py: the example door lock's local interface, a tiny HTTP/1.0 server on the local network.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Frozen with the app (doorlock.py), which imports it only when ota_config.json sets local_port.
# For the owner's phone or browser on the same network: the device info (the model on the label,
# the firmware, the release: ETSI EN 303 645 5.3-16) and the user's update controls (automatic
# checks, automatic install, notices: 5.3-6), stored by ota.settings, so they survive reboots and
# updates. Nothing of it goes to the serial console. It has no authentication of its own: a
# product puts its pairing in front of it.
import asyncio

_HEAD_MAX = 512  # bytes of a request's head
_SWITCHES = ("auto_check", "auto_install", "notify")
_ONOFF = {"on": True, "off": False}


class LocalUI:
    # HTTP/1.0, one request per connection, one connection at a time (another is closed at
    # once), the request head read within 5 s and at most _HEAD_MAX bytes:
    #   GET  /info        the device info (Agent.device_info()) and the update settings, as text
    #   GET  /settings    the update settings: {"auto_check": .., "auto_install": .., "notify": ..}
    #   POST /settings?auto_install=off&auto_check=on&notify=on   change them (any of the three,
    #                     "on" or "off"); written at once (ota.settings), so they survive reboots
    #                     and updates; the answer is the settings as they now are
    #   POST /install     install the offered update now (also with automatic install off)
    # A bad request is 400 (a bad setting: "BAD_SETTINGS: detail"), an unknown path 404.
    def __init__(self, agent, up):
        self.agent = agent
        self.up = up
        self.busy = False

    def settings(self):
        import json
        s = self.up.policy.settings
        return json.dumps({k: getattr(s, k) for k in _SWITCHES}) + "\n"

    def answer(self, head):
        # (status line, body) for a request head (bytes).
        line = head.split(b"\n", 1)[0].strip().split()
        if len(line) != 3 or not line[2].startswith(b"HTTP/"):
            return "400 Bad Request", "bad request\n"
        method, (path, _, query) = line[0], line[1].decode().partition("?")
        if path == "/info" and method == b"GET":
            return "200 OK", self.agent.device_info() + "\nupdate settings: " + self.settings()
        if path == "/settings" and method in (b"GET", b"POST"):
            if method == b"POST" and query:
                change = {}
                for item in query.split("&"):
                    k, _, v = item.partition("=")
                    if k not in _SWITCHES or v not in _ONOFF:
                        return "400 Bad Request", "BAD_SETTINGS: %s is not one of %s=on|off\n" % (
                            item[:40], "|".join(_SWITCHES))
                    change[k] = _ONOFF[v]
                self.up.policy.settings.set(**change)
                print("app: the user changed the update settings: %s" % self.settings().strip())
            return "200 OK", self.settings()
        if path == "/install" and method == b"POST":
            self.up.install_now()
            return "202 Accepted", "installing the offered update, if there is one\n"
        return "404 Not Found", "not found\n"

    async def serve(self, reader, writer):
        if self.busy:
            await _close(writer)
            return
        self.busy = True
        try:
            head = b""
            while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < _HEAD_MAX:
                more = await asyncio.wait_for(reader.read(_HEAD_MAX - len(head)), 5)
                if not more:
                    break
                head += more
            status, body = self.answer(head)
            writer.write(("HTTP/1.0 %s\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                          % status).encode())
            writer.write(body.encode())
            await writer.drain()
        except Exception as e:  # noqa: BLE001 - a client's failure ends only its connection
            print("app: local interface: %r" % e)
        finally:
            self.busy = False
            await _close(writer)


async def _close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass


async def start_local(agent, up, port):
    # The local interface on port (all addresses), or None when it cannot listen (then the app
    # goes on without it).
    try:
        return await asyncio.start_server(LocalUI(agent, up).serve, "0.0.0.0", port)
    except OSError as e:
        print("app: no local interface on port %d: %r" % (port, e))
        return None
