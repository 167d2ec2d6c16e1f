#!/usr/bin/env python3
"""Scripted autobahn-python WAMP peer that authenticates, for wamp-router's auth interop
tests (tests/tests/interop_python_auth.rs).

    auth_peer.py --url URL --realm REALM --serializer json|msgpack [--timeout SECS]
                 --authmethod ticket|wampcra|cryptosign|anonymous
                 [--authid ID] [--secret SECRET] [MODE [PROC]]

SECRET is the ticket (ticket), the shared secret (wampcra: salted when the
CHALLENGE carries salt, iterations and keylen, with autobahn's derive_key), or the
64-hex Ed25519 private seed (cryptosign: its public key goes in
authextra.pubkey; without --authid the router finds the user by it). The
signatures are autobahn's own: auth.compute_wcs, and CryptosignKey.sign_challenge.

Lines on stdout (JSON, one object per line, keys sorted; bytes as {"$bytes": hex}):
    {"challenge": {"method": M, "keys": [sorted CHALLENGE.Extra keys]}}
                             when challenged, before answering
    {"welcome": {"session", "authid", "authrole", "authmethod", "authprovider",
                 "authextra"}}
                             when joined; or, refused:
    {"abort": {"reason": URI, "message": TEXT}}
                             and the run ends (exit 0: the test judges it)
Then MODE:
    join (the default)       leave at once
    call PROC                call PROC with args ["hi"], print {"result": ARGS,
                             "kwargs": KWARGS} or {"error": URI, "args": ARGS}
    callee PROC              register PROC (RegisterOptions(details=True)), print
                             {"ready": true}, and for each call print
                             {"invoked": {"caller", "caller_authid", "caller_authrole"}}
                             (what the router disclosed) and return it as kwargs;
                             serve until stdin reaches EOF

The transports (WebSocket, RawSocket over TCP or a Unix socket), the exit codes and
--timeout are peer.py's: this script runs peer.py's session machinery with its own
session class.
"""

import argparse
import asyncio
import binascii
import sys

import peer as base  # tests/interop/python/peer.py, beside this script (sets up txaio)
from autobahn.wamp import auth  # noqa: E402
from autobahn.wamp.cryptosign import CryptosignKey  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.types import CallResult, RegisterOptions  # noqa: E402

METHODS = ("ticket", "wampcra", "cryptosign", "anonymous")


class AuthPeer(base.Peer):
    """peer.py's session, joining with the method and credential of the command line."""

    def __init__(self, config):
        super().__init__(config)
        self.joined = False
        self.key = None
        if self.opts.authmethod == "cryptosign":
            self.key = CryptosignKey.from_bytes(binascii.a2b_hex(self.opts.secret))

    def onConnect(self):
        authextra = {"pubkey": self.key.public_key()} if self.key else None
        self.join(
            self.config.realm,
            authmethods=[self.opts.authmethod],
            authid=self.opts.authid,
            authextra=authextra,
        )

    async def onChallenge(self, challenge):
        extra = challenge.extra
        base.emit({"challenge": {"method": challenge.method, "keys": sorted(extra)}})
        if challenge.method != self.opts.authmethod:
            raise base.PeerFailure(f"challenged for {challenge.method}, asked for {self.opts.authmethod}")
        if challenge.method == "ticket":
            return self.opts.secret
        if challenge.method == "wampcra":
            key = self.opts.secret.encode("utf8")
            if "salt" in extra:
                key = auth.derive_key(key, extra["salt"], extra["iterations"], extra["keylen"])
            return auth.compute_wcs(key, extra["challenge"].encode("utf8")).decode("ascii")
        if challenge.method == "cryptosign":
            return await self.key.sign_challenge(challenge)
        raise base.PeerFailure(f"unexpected CHALLENGE for {challenge.method}")

    async def onJoin(self, details):
        self.joined = True
        base.emit({
            "welcome": {
                "session": details.session,
                "authid": details.authid,
                "authrole": details.authrole,
                "authmethod": details.authmethod,
                "authprovider": details.authprovider,
                "authextra": details.authextra or {},
            }
        })
        await super().onJoin(details)  # runs mode_<MODE>, then leaves

    def onLeave(self, details):
        if not self.joined:
            # An ABORT instead of WELCOME: the outcome the test asked about.
            base.emit({"abort": {"reason": details.reason, "message": details.message}})
            self.finished = True
        return super().onLeave(details)

    # -- modes ---------------------------------------------------------------

    async def mode_join(self):
        self.finished = True

    async def mode_call(self):
        try:
            res = await self.call(self.opts.proc, "hi")
        except ApplicationError as e:
            base.emit({"error": e.error, "args": list(e.args)})
        else:
            args, kwargs = base.result_parts(res)
            base.emit({"result": args, "kwargs": kwargs})
        self.finished = True

    async def mode_callee(self):
        def disclosed(*_args, details=None, **_kwargs):
            seen = {
                "caller": details.caller,
                "caller_authid": details.caller_authid,
                "caller_authrole": details.caller_authrole,
            }
            base.emit({"invoked": seen})
            return CallResult(**seen)

        await self.register(disclosed, self.opts.proc, options=RegisterOptions(details=True))
        base.emit({"ready": True})
        await base.stdin_eof()  # or the router closes the session
        self.finished = True


# The connection options: peer.py's, checked and defaulted by peer.py's own parser.
CONNECTION = ("url", "realm", "serializer", "timeout")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Scripted autobahn-python peer that authenticates.",
        epilog="The connection options are peer.py's: --url, --realm, --serializer, --timeout.",
    )
    for name in CONNECTION:
        p.add_argument("--" + name, help=argparse.SUPPRESS)
    p.add_argument("--authmethod", choices=METHODS, required=True)
    p.add_argument("--authid")
    p.add_argument("--secret", default="")
    p.add_argument("mode", nargs="?", choices=["join", "call", "callee"], default="join")
    p.add_argument("proc", nargs="?")
    opts = p.parse_args(argv)
    if (opts.mode == "join") != (opts.proc is None):
        p.error("call and callee take PROC; join takes none")
    if opts.authmethod == "cryptosign" and len(opts.secret) != 64:
        p.error("cryptosign needs --secret: the 64-hex private seed")
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
    base.Peer = AuthPeer
    try:
        asyncio.run(asyncio.wait_for(base.run(opts), opts.timeout))
    except asyncio.TimeoutError:
        print(f"auth_peer.py {opts.mode}: timed out after {opts.timeout} s", file=sys.stderr)
        return 1
    except (base.PeerFailure, OSError) as e:
        print(f"auth_peer.py {opts.mode}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
