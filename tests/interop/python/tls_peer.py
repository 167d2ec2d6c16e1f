#!/usr/bin/env python3
"""peer.py's scripted autobahn-python peer, over TLS, for wamp-router's interop tests.

    tls_peer.py --cafile CA.pem [--certfile CERT.pem --keyfile KEY.pem]
                --url URL --realm realm1 --serializer json|msgpack
                [--timeout SECS] MODE [mode args]

URL is wss://HOST:PORT/PATH (WebSocket over TLS) or rss://HOST:PORT (alias
tcps://HOST:PORT: RawSocket over TLS). The peer trusts only the CA
certificates in --cafile and checks that the router's certificate is for HOST
(Python's ssl.create_default_context). The modes, the JSON lines on stdout and
the exit codes are peer.py's (see its docstring).

With --certfile and --keyfile the peer presents that client certificate and
joins with authmethods ["tls"] only; its first line is then
{"joined": {"authid": ..., "authmethod": ..., "authrole": ...}}, before the
mode's own lines.

A certificate the peer does not trust fails the TLS handshake: a message on
stderr naming the failure (e.g. CERTIFICATE_VERIFY_FAILED), exit 1.
"""

import argparse
import asyncio
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peer  # noqa: E402  (the same directory: its modes, run and main)

# TLS URL schemes and the plain ones peer.run knows; TLS is added under them.
PLAIN_SCHEME = {"rss": "rs", "tcps": "tcp", "wss": "wss"}


class TlsAuthPeer(peer.Peer):
    """peer.Peer that joins with the tls authmethod and reports who it became."""

    def onConnect(self):
        self.join(self.config.realm, authmethods=["tls"])

    async def onJoin(self, details):
        peer.emit({"joined": {
            "authid": details.authid,
            "authmethod": details.authmethod,
            "authrole": details.authrole,
        }})
        await super().onJoin(details)


def tls_context(args):
    """Trusts --cafile alone, checks the host name, presents the client certificate."""
    context = ssl.create_default_context(cafile=args.cafile)
    if args.certfile:
        context.load_cert_chain(args.certfile, args.keyfile)
    return context


def plain_url(url):
    """The URL peer.run connects to (rss:// becomes rs://, wss:// stays), or an error."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in PLAIN_SCHEME:
        raise peer.PeerFailure(f"{url}: expected wss://HOST:PORT/PATH or rss://HOST:PORT")
    return f"{PLAIN_SCHEME[scheme]}://{rest}"


async def run(opts, context):
    """peer.run, with every TCP connection it opens wrapped in TLS with `context`."""
    loop = asyncio.get_running_loop()
    plain = loop.create_connection

    async def create_connection(protocol_factory, host, port, **kwargs):
        kwargs.update(ssl=context, server_hostname=host)
        return await plain(protocol_factory, host, port, **kwargs)

    loop.create_connection = create_connection
    await peer.run(opts)


def main(argv=None):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--cafile", required=True, help="PEM file of the CA certificates to trust")
    p.add_argument("--certfile", help="client certificate (PEM), for mutual TLS")
    p.add_argument("--keyfile", help="the client certificate's private key (PEM)")
    args, rest = p.parse_known_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        print("tls_peer.py: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    opts = peer.parse_args(rest)
    try:
        opts.url = plain_url(opts.url)
        context = tls_context(args)
    except (peer.PeerFailure, OSError, ssl.SSLError) as e:
        print(f"tls_peer.py: {e}", file=sys.stderr)
        return 1
    if args.certfile:
        peer.Peer = TlsAuthPeer  # what peer.run's session factory builds
    try:
        asyncio.run(asyncio.wait_for(run(opts, context), opts.timeout))
    except asyncio.TimeoutError:
        print(f"tls_peer.py {opts.mode}: timed out after {opts.timeout} s", file=sys.stderr)
        return 1
    except (peer.PeerFailure, OSError) as e:  # ssl.SSLError is an OSError
        print(f"tls_peer.py {opts.mode}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
