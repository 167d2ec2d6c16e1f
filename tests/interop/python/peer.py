#!/usr/bin/env python3
"""Scripted autobahn-python WAMP peer for wamp-router's interop tests.

    peer.py --url URL --realm realm1 --serializer json|msgpack|cbor
            [--timeout SECS] MODE [mode args]

URL is ws://HOST:PORT/PATH (WebSocket), rs://HOST:PORT or tcp://HOST:PORT
(RawSocket over TCP), or unix:///PATH (RawSocket over a Unix socket). Over
RawSocket the peer announces 16 MiB and speaks the one chosen serializer.

Modes:
    callee PROC              register PROC (echo) and PROC.fail (raises), print
                             {"ready": true}, serve until the router closes the
                             session or stdin reaches EOF
    caller PROC              call PROC, PROC.fail and com.example.nonexistent,
                             one JSON line per outcome
    subscriber TOPIC COUNT   subscribe, print {"ready": true}, then one line per
                             event until COUNT events arrived
    publisher TOPIC COUNT    publish COUNT acknowledged events, print
                             {"published": COUNT}

Advanced PubSub modes (SPEC is one JSON command-line argument):
    publish-options TOPIC SPEC
                             SPEC = [{"arg": TEXT, "options": {...}}, ...]:
                             publish each TEXT as the only argument with
                             PublishOptions(acknowledge=True, **options) (exclude,
                             eligible, exclude_authid, ..., retain, exclude_me),
                             print {"arg": TEXT, "published": PUBLICATION_ID} each
    subscribe-options TOPIC COUNT SPEC
                             subscribe with SubscribeOptions(details=True, **SPEC)
                             (match, get_retained), print {"subscribed": ID} and
                             {"ready": true}, then one line per event until COUNT
                             arrived: {"args", "kwargs", "details"} where details
                             holds the EventDetails that are set (subscription,
                             publication, publisher, publisher_authid,
                             publisher_authrole, topic, retained). Events that
                             arrive before "ready" (a retained one) follow it.
    history TOPIC LIMIT      subscribe to TOPIC, print {"subscribed": ID}, then call
                             wamp.subscription.get_events(ID), then with
                             limit=LIMIT, printing {"events": [...]} each, then with
                             an unknown subscription ID, printing {"error": URI}

Advanced RPC modes:
    rpc-callee PROC          register with RegisterOptions(details=True), print
                             {"ready": true}, serve until stdin reaches EOF:
                             PROC.count (args [N]): N progressive results 1..N
                             through details.progress when the caller asked, then
                             returns ["done", asked]; PROC.hang: prints
                             {"invoked": "PROC.hang"}, waits until the call is
                             canceled (INTERRUPT), then prints
                             {"interrupted": "PROC.hang"} and re-raises;
                             PROC.prefix. (match=prefix) and PROC.wild..x
                             (match=wildcard): return [label, details.procedure,
                             details.caller]
    shared-callee PROC INDEX register PROC with invoke=roundrobin returning INDEX,
                             print {"ready": true}, serve until stdin reaches EOF
    progress-caller PROC N   call PROC with N and CallOptions(on_progress=...): one
                             {"progress": ARGS} line per progressive result, then
                             {"result": ARGS}
    cancel-caller PROC       call PROC, print {"called": true}, wait for a line on
                             stdin, cancel the call's future (autobahn sends CANCEL
                             without a mode), print {"cancelled": true} (or
                             {"error": URI} / {"result": ARGS} if it ended otherwise)
    timeout-caller PROC SECS call PROC with CallOptions(timeout=SECS) (an int: autobahn
                             puts it on the wire as given), print {"error": URI,
                             "args": ARGS} or {"result": ARGS}

stdout carries only JSON lines (one object per line, flushed, keys sorted);
bytes values are rendered as {"$bytes": "<hex>"}. Exit 0 on success; on failure
or timeout (--timeout, default 20 s, bounds the whole run) a message on stderr
and exit 1 (2 for bad usage). Autobahn's own warnings may also go to stderr.
A callee reads stdin only to see EOF: give it a pipe and close it to stop it.
"""

import argparse
import asyncio
import json
import os
import sys
import threading

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory, WampRawSocketClientProtocol  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory, WampWebSocketClientProtocol  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
# CBORSerializer needs cbor2 (pinned in requirements.txt).
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import (  # noqa: E402
    CallOptions,
    CallResult,
    ComponentConfig,
    PublishOptions,
    RegisterOptions,
    SubscribeOptions,
)
from autobahn.websocket.compress import (  # noqa: E402
    PerMessageDeflateOffer,
    PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

# The payload the caller sends (and the callee echoes) and the publisher sends.
CALL_ARGS = [1, "two", {"three": 3.5}, None, True, b"\x00\x01\xff"]
CALL_KWARGS = {"k": "v", "n": -7, "b": b"hi"}
EVENT_BYTES = b"\x00\x01\xff"
NONEXISTENT = "com.example.nonexistent"
# A subscription ID no router hands out in a test (IDs are random in 1..2^53).
UNKNOWN_SUBSCRIPTION = 2**53 - 7
GET_EVENTS = "wamp.subscription.get_events"


class PeerFailure(Exception):
    """A scripted step did not go as expected (printed on stderr, exit 1)."""


def render(value):
    """Makes a received WAMP value JSON-printable: bytes become {"$bytes": hex}."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [render(v) for v in value]
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    return value


def emit(obj):
    """Prints one JSON line on stdout and flushes it at once. Keys are sorted, so a
    line does not depend on the order in which a router re-encodes a dict."""
    sys.stdout.write(json.dumps(render(obj), separators=(",", ":"), sort_keys=True) + "\n")
    sys.stdout.flush()


def result_parts(res):
    """Splits what session.call() returns into (args, kwargs).

    Autobahn hands back a CallResult for several args or any kwargs, the bare
    value for exactly one positional arg, and None for no args.
    """
    if isinstance(res, CallResult):
        return list(res.results), dict(res.kwresults or {})
    return ([] if res is None else [res]), {}


class Peer(ApplicationSession):
    """One session that runs the mode chosen on the command line, then leaves."""

    def __init__(self, config):
        super().__init__(config)
        self.opts = config.extra["opts"]
        self.done = config.extra["done"]  # future: None (ok) or an exception
        self.finished = False  # the mode has reached its successful end

    def finish(self, error=None):
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

    def onUserError(self, fail, msg):
        # PROC.fail raising ApplicationError is the scripted outcome: do not log it.
        if not isinstance(getattr(fail, "value", None), ApplicationError):
            super().onUserError(fail, msg)

    async def onJoin(self, details):
        try:
            await getattr(self, "mode_" + self.opts.mode.replace("-", "_"))()
        except Exception as e:  # report the step that failed, then leave
            if not isinstance(e, PeerFailure):
                e = PeerFailure(f"{self.opts.mode}: {type(e).__name__}: {e}")
            self.finish(e)
        if self.is_attached():
            self.leave()  # GOODBYE; onLeave/onDisconnect follow

    def onLeave(self, details):
        # The router closing the session is the normal end only for a callee,
        # or after the mode has finished (the reply to our GOODBYE).
        if not (self.finished or self.opts.mode == "callee"):
            self.finish(PeerFailure(f"session closed early: {details.reason} {details.message or ''}"))
        return super().onLeave(details)  # errbacks pending requests, disconnects

    def onDisconnect(self):
        super().onDisconnect()
        if self.finished or self.opts.mode == "callee":
            self.finish()
        else:
            self.finish(PeerFailure("transport lost before the mode finished"))

    # -- modes ---------------------------------------------------------------

    async def mode_callee(self):
        proc = self.opts.proc

        def echo(*args, **kwargs):
            return CallResult(*args, **kwargs)

        def fail(*args, **kwargs):
            raise ApplicationError("com.example.error.failed", "boom", 42, detail="x")

        await self.register(echo, proc)
        await self.register(fail, proc + ".fail")
        emit({"ready": True})
        await stdin_eof()  # or the router closes the session (onLeave/onDisconnect)
        self.finished = True

    async def mode_caller(self):
        proc = self.opts.proc
        args, kwargs = result_parts(await self.call(proc, *CALL_ARGS, **CALL_KWARGS))
        emit({"result_args": args, "result_kwargs": kwargs})
        for target in (proc + ".fail", NONEXISTENT):
            try:
                res = await self.call(target)
            except ApplicationError as e:
                emit({"error": e.error, "error_args": list(e.args), "error_kwargs": dict(e.kwargs)})
            else:
                raise PeerFailure(f"call to {target} succeeded unexpectedly: {res!r}")
        self.finished = True

    async def mode_subscriber(self):
        count = self.opts.count
        got = asyncio.get_running_loop().create_future()
        seen = 0

        def on_event(*args, **kwargs):
            nonlocal seen
            if seen < count:
                seen += 1
                emit({"args": list(args), "kwargs": kwargs})
                if seen == count and not got.done():
                    got.set_result(None)

        await self.subscribe(on_event, self.opts.topic)
        emit({"ready": True})
        if count > 0:
            await got
        self.finished = True

    async def mode_publisher(self):
        for i in range(self.opts.count):
            await self.publish(
                self.opts.topic, i, "text", EVENT_BYTES, seq=i,
                options=PublishOptions(acknowledge=True),
            )
        emit({"published": self.opts.count})
        self.finished = True

    # -- advanced PubSub modes --------------------------------------------------

    async def mode_publish_options(self):
        for item in json.loads(self.opts.spec):
            options = PublishOptions(**dict(item.get("options", {}), acknowledge=True))
            pub = await self.publish(self.opts.topic, item["arg"], options=options)
            emit({"arg": item["arg"], "published": pub.id})
        self.finished = True

    async def mode_subscribe_options(self):
        count = self.opts.count
        got = asyncio.get_running_loop().create_future()
        seen = 0
        early = []  # lines of events that came before "ready" (a retained event)
        ready = False

        def on_event(*args, details=None, **kwargs):
            nonlocal seen
            if seen >= count:
                return
            seen += 1
            d = {
                "subscription": details.subscription.id,
                "publication": details.publication,
                "publisher": details.publisher,
                "publisher_authid": details.publisher_authid,
                "publisher_authrole": details.publisher_authrole,
                "topic": details.topic,
                "retained": details.retained,
            }
            line = {"args": list(args), "kwargs": kwargs, "details": {k: v for k, v in d.items() if v is not None}}
            if ready:
                emit(line)
            else:
                early.append(line)
            if seen == count and not got.done():
                got.set_result(None)

        options = SubscribeOptions(details=True, **json.loads(self.opts.spec))
        sub = await self.subscribe(on_event, self.opts.topic, options=options)
        emit({"subscribed": sub.id})
        emit({"ready": True})
        ready = True
        for line in early:
            emit(line)
        if count > 0:
            await got
        self.finished = True

    async def mode_history(self):
        sub = await self.subscribe(lambda *a, **kw: None, self.opts.topic)
        emit({"subscribed": sub.id})
        for kwargs in ({}, {"limit": self.opts.limit}):
            events = await self.call(GET_EVENTS, sub.id, **kwargs)
            if not isinstance(events, list):
                raise PeerFailure(f"{GET_EVENTS} returned {events!r}, not a list")
            emit({"events": events})
        try:
            res = await self.call(GET_EVENTS, UNKNOWN_SUBSCRIPTION)
        except ApplicationError as e:
            emit({"error": e.error})
        else:
            raise PeerFailure(f"{GET_EVENTS} of an unknown subscription succeeded: {res!r}")
        self.finished = True

    # -- advanced RPC modes -----------------------------------------------------

    async def mode_rpc_callee(self):
        proc = self.opts.proc

        async def count(n, details=None):
            asked = details.progress is not None
            if asked:
                for i in range(1, n + 1):
                    details.progress(i)
            return CallResult("done", asked)

        async def hang(details=None):
            emit({"invoked": proc + ".hang"})
            try:
                await asyncio.get_running_loop().create_future()  # until canceled
            except asyncio.CancelledError:
                emit({"interrupted": proc + ".hang"})
                raise

        def labelled(label):
            def endpoint(*args, details=None, **kwargs):
                return CallResult(label, details.procedure, details.caller)

            return endpoint

        opts = RegisterOptions(details=True)
        await self.register(count, proc + ".count", options=opts)
        await self.register(hang, proc + ".hang", options=opts)
        await self.register(labelled("prefix"), proc + ".prefix.",
                            options=RegisterOptions(details=True, match="prefix"))
        await self.register(labelled("wildcard"), proc + ".wild..x",
                            options=RegisterOptions(details=True, match="wildcard"))
        emit({"ready": True})
        await stdin_eof()
        self.finished = True

    async def mode_shared_callee(self):
        index = self.opts.index
        await self.register(lambda: index, self.opts.proc, options=RegisterOptions(invoke="roundrobin"))
        emit({"ready": True})
        await stdin_eof()
        self.finished = True

    async def mode_progress_caller(self):
        def on_progress(*args, **kwargs):
            emit({"progress": list(args)})

        res = await self.call(self.opts.proc, self.opts.n, options=CallOptions(on_progress=on_progress))
        args, _kwargs = result_parts(res)
        emit({"result": args})
        self.finished = True

    async def mode_cancel_caller(self):
        call = self.call(self.opts.proc)
        emit({"called": True})
        await stdin_line()
        call.cancel()
        try:
            res = await call
        except asyncio.CancelledError:
            emit({"cancelled": True})
        except ApplicationError as e:
            emit({"error": e.error})
        else:
            emit({"result": result_parts(res)[0]})
        self.finished = True

    async def mode_timeout_caller(self):
        try:
            res = await self.call(self.opts.proc, options=CallOptions(timeout=self.opts.secs))
        except ApplicationError as e:
            emit({"error": e.error, "args": list(e.args)})
        else:
            emit({"result": result_parts(res)[0]})
        self.finished = True


def stdin_line():
    """A future that resolves with the next line on stdin (or "" at EOF), read by a
    daemon thread like stdin_eof (for modes that wait for the test's go-ahead)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def reader():
        line = b""
        try:
            while not line.endswith(b"\n"):
                c = os.read(0, 1)
                if not c:
                    break
                line += c
        except OSError:
            pass
        text = line.decode(errors="replace")
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(text))

    threading.Thread(target=reader, daemon=True).start()
    return fut


def stdin_eof():
    """A future that resolves when stdin reaches EOF. A daemon thread does the
    blocking read on the raw fd (no Python-level lock, never holds up the exit;
    works for pipes, files, ttys and /dev/null)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def reader():
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

    threading.Thread(target=reader, daemon=True).start()
    return fut


class PeerProtocol(WampWebSocketClientProtocol):
    """Fails the run when the WebSocket closes before the session ended well
    (a refused handshake or a dropped connection never reaches onDisconnect)."""

    def onClose(self, wasClean, code, reason):
        super().onClose(wasClean, code, reason)  # runs onLeave/onDisconnect synchronously
        done = self.factory.peer_done
        if not done.done():
            done.set_exception(PeerFailure(f"WebSocket closed (code={code}, reason={reason!r}) before the session finished"))


class RawSocketPeerProtocol(WampRawSocketClientProtocol):
    """The RawSocket counterpart of PeerProtocol: a refused handshake (autobahn closes
    the connection and never opens a session) or a lost connection fails the run."""

    def _on_connection_lost(self, exc):
        super()._on_connection_lost(exc)  # runs onLeave/onDisconnect, if a session opened
        done = self.factory.peer_done
        if not done.done():
            done.set_exception(PeerFailure(f"RawSocket connection lost ({exc!r}) before the session finished"))


def rawsocket_endpoint(url):
    """("tcp", host, port) for rs://HOST:PORT or tcp://HOST:PORT, ("unix", path) for
    unix:///PATH; None for any other URL (a WebSocket one)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    if scheme == "unix":
        if not rest.startswith("/"):
            raise PeerFailure(f"{url}: a unix:// URL needs an absolute path")
        return ("unix", rest)
    if scheme in ("rs", "tcp"):
        host, colon, port = rest.rstrip("/").rpartition(":")
        if not colon or not port.isdigit():
            raise PeerFailure(f"{url}: expected {scheme}://HOST:PORT")
        return ("tcp", host.strip("[]"), int(port))
    return None


async def connect_rawsocket(loop, endpoint, config, serializer, done):
    """WAMP over RawSocket, as autobahn's asyncio Component does for a transport of
    type "rawsocket" (WampRawSocketClientFactory over create_connection or
    create_unix_connection), with our protocol class."""
    factory = WampRawSocketClientFactory(lambda: Peer(config), serializer=serializer)
    factory.protocol = RawSocketPeerProtocol
    factory.peer_done = done
    if endpoint[0] == "unix":
        transport, _protocol = await loop.create_unix_connection(factory, endpoint[1])
    else:
        transport, _protocol = await loop.create_connection(factory, endpoint[1], endpoint[2])
    return transport


async def run(opts):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    serializer = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}[opts.serializer]()
    config = ComponentConfig(opts.realm, extra={"opts": opts, "done": done})
    txaio.config.loop = loop
    endpoint = rawsocket_endpoint(opts.url)
    if endpoint is not None:
        transport = await connect_rawsocket(loop, endpoint, config, serializer, done)
        try:
            await done  # raises the session's failure, if any
        finally:
            transport.close()
        return
    # What ApplicationRunner does, with our own protocol class: offer only the chosen
    # serializer (subprotocol wamp.2.<ser>), and permessage-deflate like any autobahn client.
    factory = WampWebSocketClientFactory(lambda: Peer(config), url=opts.url, serializers=[serializer])
    factory.protocol = PeerProtocol
    factory.loop = txaio.config.loop = loop
    factory.peer_done = done
    factory.setProtocolOptions(
        openHandshakeTimeout=5.0,
        closeHandshakeTimeout=1.0,
        tcpNoDelay=True,
        autoPingInterval=10.0,
        autoPingTimeout=5.0,
        perMessageCompressionOffers=[PerMessageDeflateOffer()],
        perMessageCompressionAccept=lambda r: PerMessageDeflateResponseAccept(r)
        if isinstance(r, PerMessageDeflateResponse) else None,
    )
    secure, host, port, _resource, _path, _params = parse_ws_url(opts.url)
    transport, _protocol = await loop.create_connection(factory, host, port, ssl=secure or None)
    try:
        await done  # raises the session's failure, if any
    finally:
        transport.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description="Scripted autobahn-python WAMP peer.")
    p.add_argument("--url", required=True, help="ws://host:port/path, rs://host:port or unix:///path")
    p.add_argument("--realm", required=True)
    p.add_argument("--serializer", choices=["json", "msgpack", "cbor"], default="json")
    p.add_argument("--timeout", type=float, default=20.0, help="overall limit in seconds (default 20)")
    modes = p.add_subparsers(dest="mode", required=True)
    for name in ("callee", "caller"):
        modes.add_parser(name).add_argument("proc")
    for name in ("subscriber", "publisher"):
        m = modes.add_parser(name)
        m.add_argument("topic")
        m.add_argument("count", type=int)
    m = modes.add_parser("publish-options")
    m.add_argument("topic")
    m.add_argument("spec", help="JSON list of {arg, options}")
    m = modes.add_parser("subscribe-options")
    m.add_argument("topic")
    m.add_argument("count", type=int)
    m.add_argument("spec", help="JSON object of SubscribeOptions keywords")
    m = modes.add_parser("history")
    m.add_argument("topic")
    m.add_argument("limit", type=int)
    modes.add_parser("rpc-callee").add_argument("proc")
    m = modes.add_parser("shared-callee")
    m.add_argument("proc")
    m.add_argument("index", type=int)
    m = modes.add_parser("progress-caller")
    m.add_argument("proc")
    m.add_argument("n", type=int)
    modes.add_parser("cancel-caller").add_argument("proc")
    m = modes.add_parser("timeout-caller")
    m.add_argument("proc")
    m.add_argument("secs", type=int)
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    try:
        asyncio.run(asyncio.wait_for(run(opts), opts.timeout))
    except asyncio.TimeoutError:
        print(f"peer.py {opts.mode}: timed out after {opts.timeout} s", file=sys.stderr)
        return 1
    except (PeerFailure, OSError) as e:
        print(f"peer.py {opts.mode}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
