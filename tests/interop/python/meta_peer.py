#!/usr/bin/env python3
"""Scripted autobahn-python peer of the WAMP meta API, for wamp-router's meta interop
tests (tests/tests/interop_python_meta.rs).

    meta_peer.py --url URL --realm REALM --serializer json|msgpack|cbor [--timeout SECS]
                 MODE [mode args]

The connection options, the transports (WebSocket, RawSocket over TCP or a Unix
socket), the exit codes and --timeout are peer.py's: this script runs peer.py's
session machinery with its own session class.

Every run prints, when joined:
    {"joined": {"session", "authid", "authrole", "authmethod", "authprovider"}}
then the lines of MODE:
    watch [TOPIC ...]        subscribe to each TOPIC (default: the ten meta events
                             wamp.session.on_join/on_leave,
                             wamp.registration.on_create/on_register/on_unregister/
                             on_delete, wamp.subscription.on_create/on_subscribe/
                             on_unsubscribe/on_delete), print
                             {"watching": {TOPIC: SUBSCRIPTION_ID}}; from then on,
                             until the session ends, one line per event:
                             {"event": TOPIC, "args": ARGS, "kwargs": KWARGS}
                             (events may come between any two other lines)
    call SPEC                SPEC = [{"call": PROC, "args": [...], "kwargs": {...}},
                             ...] (args, kwargs optional): call each PROC in order
                             and print {"call": PROC, "result": VALUE} (VALUE is
                             what autobahn's session.call() returned: the bare
                             value of a one-argument RESULT, null for none, or
                             {"args": ARGS, "kwargs": KWARGS} for more) or
                             {"call": PROC, "error": URI, "args": ARGS}
    kill SESSION [REASON [MESSAGE]]
                             call wamp.session.kill(SESSION) with the keyword
                             arguments reason=REASON, message=MESSAGE (each only
                             when given), print {"killed": SESSION} or
                             {"error": URI, "args": ARGS}
    testament SPEC           SPEC = [ITEM, ...]; ITEM {"topic": URI, "args": [...],
                             "kwargs": {...}, "scope": S, "publish_options": {...}}
                             (all but topic optional; scope and publish_options are
                             passed as keyword arguments only when given) calls
                             wamp.session.add_testament(URI, ARGS, KWARGS), printing
                             {"added": URI}; ITEM {"flush": S} (S null: no scope
                             argument) calls wamp.session.flush_testaments(scope=S),
                             printing {"flushed": COUNT}
    idle                     nothing (a session for someone else to kill)
then {"ready": true}, and it waits for commands on stdin, one per line:
    leave [REASON]           GOODBYE with REASON (default wamp.close.normal); EOF on
                             stdin is a leave too
    drop                     print {"dropped": true} and close the connection
                             without GOODBYE or a WebSocket close (the transport
                             is lost, as far as the router can tell)
    call SPEC                as the mode, then {"ready": true} again
However the session ends after joining (the reply to our GOODBYE, the router's
GOODBYE of a kill, a lost transport), it prints autobahn's CloseDetails:
    {"left": {"reason": URI, "message": TEXT or null}}
and the run ends with exit 0 (the test judges the lines).

In SPEC (JSON on the command line), {"$bytes": "<hex>"} stands for a bytes value;
on stdout bytes are rendered the same way (peer.py's convention). Lines are JSON
objects, one per line, flushed, keys sorted.
"""

import argparse
import asyncio
import json
import sys

import peer as base  # tests/interop/python/peer.py, beside this script (sets up txaio)
from autobahn.wamp.exception import ApplicationError  # noqa: E402

META_EVENTS = (
    "wamp.session.on_join",
    "wamp.session.on_leave",
    "wamp.registration.on_create",
    "wamp.registration.on_register",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
    "wamp.subscription.on_create",
    "wamp.subscription.on_subscribe",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
)
MODES = ("watch", "call", "kill", "testament", "idle")


def decode(value):
    """The inverse of peer.render: {"$bytes": hex} becomes bytes (in lists and dicts too)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$bytes"), str):
            return bytes.fromhex(value["$bytes"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def spec(text, what):
    """A JSON list from the command line (or a command), its bytes decoded."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise base.PeerFailure(f"{what}: not JSON ({e}): {text}")
    if not isinstance(value, list):
        raise base.PeerFailure(f"{what}: expected a JSON list, got {text}")
    return decode(value)


def shown(res):
    """What session.call() returned, printable: the bare value (one argument or none), or
    {"args", "kwargs"} for a CallResult."""
    if isinstance(res, base.CallResult):
        return {"args": list(res.results), "kwargs": dict(res.kwresults or {})}
    return res


class MetaPeer(base.Peer):
    """peer.py's session, running a meta API mode, then the commands on stdin."""

    async def onJoin(self, details):
        base.emit({
            "joined": {
                "session": details.session,
                "authid": details.authid,
                "authrole": details.authrole,
                "authmethod": details.authmethod,
                "authprovider": details.authprovider,
            }
        })
        try:
            await getattr(self, "mode_" + self.opts.mode)()
            base.emit({"ready": True})
            await self.commands()
        except Exception as e:  # report the step that failed, then leave
            if not isinstance(e, base.PeerFailure):
                e = base.PeerFailure(f"{self.opts.mode}: {type(e).__name__}: {e}")
            self.finish(e)
            if self.is_attached():
                self.leave()

    def onLeave(self, details):
        # After WELCOME every end of the session is an outcome the test judges.
        base.emit({"left": {"reason": details.reason, "message": details.message}})
        self.finished = True
        return super().onLeave(details)  # errbacks pending requests, disconnects

    async def commands(self):
        while True:
            line = await base.stdin_line()
            if not self.is_attached():
                return  # the session ended meanwhile (killed): onLeave said how
            command, _, rest = line.strip().partition(" ")
            if line == "" or command == "leave":  # EOF, or leave
                self.finished = True
                self.leave(reason=rest.strip() or None)
                return
            if command == "drop":
                self.finished = True
                base.emit({"dropped": True})
                # The asyncio transport under autobahn's WAMP transport (WebSocket or
                # RawSocket protocol): closed at once, nothing more is written.
                self._transport.transport.abort()
                return
            if command == "call":
                await self.calls(spec(rest, "call"))
                base.emit({"ready": True})
                continue
            raise base.PeerFailure(f"unknown command on stdin: {line!r}")

    async def calls(self, items):
        for item in items:
            proc = item["call"]
            try:
                res = await self.call(proc, *item.get("args", []), **item.get("kwargs", {}))
            except ApplicationError as e:
                base.emit({"call": proc, "error": e.error, "args": list(e.args)})
            else:
                base.emit({"call": proc, "result": shown(res)})

    # -- modes ---------------------------------------------------------------

    async def mode_watch(self):
        watching = {}
        for topic in self.opts.topics or META_EVENTS:
            def on_event(*args, _topic=topic, **kwargs):
                base.emit({"event": _topic, "args": list(args), "kwargs": kwargs})

            sub = await self.subscribe(on_event, topic)
            watching[topic] = sub.id
        base.emit({"watching": watching})

    async def mode_call(self):
        await self.calls(spec(self.opts.spec, "call SPEC"))

    async def mode_kill(self):
        kwargs = {}
        if self.opts.reason is not None:
            kwargs["reason"] = self.opts.reason
        if self.opts.message is not None:
            kwargs["message"] = self.opts.message
        try:
            await self.call("wamp.session.kill", self.opts.session, **kwargs)
        except ApplicationError as e:
            base.emit({"error": e.error, "args": list(e.args)})
        else:
            base.emit({"killed": self.opts.session})

    async def mode_testament(self):
        for item in spec(self.opts.spec, "testament SPEC"):
            if "flush" in item:
                scope = item["flush"]
                kwargs = {} if scope is None else {"scope": scope}
                n = await self.call("wamp.session.flush_testaments", **kwargs)
                base.emit({"flushed": n})
                continue
            kwargs = {k: item[k] for k in ("scope", "publish_options") if k in item}
            await self.call(
                "wamp.session.add_testament",
                item["topic"], item.get("args", []), item.get("kwargs", {}),
                **kwargs,
            )
            base.emit({"added": item["topic"]})

    async def mode_idle(self):
        pass


# The connection options: peer.py's, checked and defaulted by peer.py's own parser.
CONNECTION = ("url", "realm", "serializer", "timeout")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Scripted autobahn-python peer of the WAMP meta API.",
        epilog="The connection options are peer.py's: --url, --realm, --serializer, --timeout.",
    )
    for name in CONNECTION:
        p.add_argument("--" + name, help=argparse.SUPPRESS)
    modes = p.add_subparsers(dest="mode", required=True)
    modes.add_parser("watch").add_argument("topics", nargs="*")
    modes.add_parser("call").add_argument("spec", help="JSON list of {call, args, kwargs}")
    m = modes.add_parser("kill")
    m.add_argument("session", type=int)
    m.add_argument("reason", nargs="?")
    m.add_argument("message", nargs="?")
    modes.add_parser("testament").add_argument("spec", help="JSON list of testaments and flushes")
    modes.add_parser("idle")
    opts = p.parse_args(argv)
    if opts.mode in ("call", "testament"):
        try:
            spec(opts.spec, f"{opts.mode} SPEC")
        except base.PeerFailure as e:
            p.error(str(e))
    given = [f"--{n}={getattr(opts, n)}" for n in CONNECTION if getattr(opts, n) is not None]
    # peer.py's parser wants one of its modes: "callee" stands in (its PROC is unused).
    connection = base.parse_args([*given, "callee", "-"])
    for name in CONNECTION:
        setattr(opts, name, getattr(connection, name))
    return opts


def main(argv=None):
    opts = parse_args(argv)
    # peer.run() builds its sessions from peer.Peer: point it at this subclass, so the
    # transports are set up exactly as for peer.py's own modes.
    base.Peer = MetaPeer
    try:
        asyncio.run(asyncio.wait_for(base.run(opts), opts.timeout))
    except asyncio.TimeoutError:
        print(f"meta_peer.py {opts.mode}: timed out after {opts.timeout} s", file=sys.stderr)
        return 1
    except (base.PeerFailure, OSError) as e:
        print(f"meta_peer.py {opts.mode}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
