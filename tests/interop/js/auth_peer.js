#!/usr/bin/env node
// Scripted autobahn-js WAMP peer that authenticates, for wamp-router's auth interop tests
// (tests/tests/interop_js_auth.rs): the same command line and lines as
// tests/interop/python/auth_peer.py.
//
//     node auth_peer.js --url ws://127.0.0.1:PORT/ws --realm realm1 --serializer json|msgpack
//                       [--timeout SECS] --authmethod ticket|wampcra|cryptosign|anonymous
//                       [--authid ID] [--secret SECRET] [join | call PROC | callee PROC]
//
// The CHALLENGE is answered by autobahn-js's own code in Connection's onchallenge:
// the ticket as is; WAMP-CRA with autobahn.auth_cra.sign, its key from
// autobahn.auth_cra.derive_key when the CHALLENGE is salted; cryptosign with
// autobahn.auth_cryptosign.sign_challenge (SECRET: the 64-hex Ed25519 seed).
//
// Lines on stdout (one JSON object each):
//     {"challenge": {"method": M, "keys": [sorted CHALLENGE.Extra keys]}}   when challenged
//     {"welcome": {"session", "authid", "authrole", "authmethod", "authprovider", "authextra"}}
//     {"abort": {"reason": URI, "message": TEXT}}     refused: the run ends (exit 0)
// then per mode: join leaves at once; call PROC calls PROC with ["hi"] and prints
// {"result": ARGS, "kwargs": KWARGS} or {"error": URI, "args": ARGS}; callee PROC registers
// PROC, prints {"ready": true}, and per call prints and returns (as kwargs)
// {"invoked": {"caller", "caller_authid", "caller_authrole"}}, until stdin reaches EOF.
// Exit 0 when the run went as scripted; else a message on stderr and exit 1 (2: usage).
'use strict';

// Only our JSON lines go to stdout.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { parseArgs } = require('node:util');
const autobahn = require('autobahn');

// autobahn warns at every close: keep its other warnings.
const ROUTINE = ['connection closed', 'auto-reconnect disabled!'];
autobahn.log.warn = (first, ...rest) => ROUTINE.includes(first) || console.error(first, ...rest);

const METHODS = ['ticket', 'wampcra', 'cryptosign', 'anonymous'];

class Usage extends Error {}

function options(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      realm: { type: 'string' },
      serializer: { type: 'string', default: 'json' },
      timeout: { type: 'string', default: '20' },
      authmethod: { type: 'string' },
      authid: { type: 'string' },
      secret: { type: 'string', default: '' },
    },
  });
  const [mode = 'join', proc, ...extra] = positionals;
  const o = { ...values, mode, proc, timeout: Number(values.timeout) };
  if (!o.url || !o.realm) throw new Usage('--url and --realm are required');
  if (!METHODS.includes(o.authmethod)) throw new Usage(`--authmethod must be one of ${METHODS}`);
  if (!['json', 'msgpack'].includes(o.serializer)) throw new Usage('--serializer: json or msgpack');
  if (!(o.timeout > 0)) throw new Usage('--timeout: a positive number of seconds');
  const needsProc = mode === 'call' || mode === 'callee';
  if (!['join', 'call', 'callee'].includes(mode) || needsProc !== (proc !== undefined) || extra.length) {
    throw new Usage('the mode is join, call PROC or callee PROC');
  }
  if (o.authmethod === 'cryptosign' && !/^[0-9a-fA-F]{64}$/.test(o.secret)) {
    throw new Usage('cryptosign needs --secret: the 64-hex private seed');
  }
  return o;
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Answers the router's CHALLENGE with autobahn-js's own helpers. */
function answer(o, keyPair, method, extra) {
  say({ challenge: { method, keys: Object.keys(extra).sort() } });
  if (method !== o.authmethod) throw new Error(`challenged for ${method}, asked for ${o.authmethod}`);
  if (method === 'ticket') return o.secret;
  if (method === 'wampcra') {
    const key = 'salt' in extra
      ? autobahn.auth_cra.derive_key(o.secret, extra.salt, extra.iterations, extra.keylen)
      : o.secret;
    return autobahn.auth_cra.sign(key, extra.challenge);
  }
  if (method === 'cryptosign') return autobahn.auth_cryptosign.sign_challenge(keyPair, extra);
  throw new Error(`unexpected CHALLENGE for ${method}`);
}

/** Resolves at stdin's EOF. */
function stdinClosed() {
  return new Promise((resolve) => {
    process.stdin.on('end', resolve).on('close', resolve).on('error', resolve);
    process.stdin.resume();
  });
}

async function act(o, session) {
  if (o.mode === 'call') {
    try {
      const res = await session.call(o.proc, ['hi']);
      const [args, kwargs] = res instanceof autobahn.Result ? [res.args, res.kwargs] : [[res], {}];
      say({ result: args, kwargs: kwargs || {} });
    } catch (e) {
      if (!(e instanceof autobahn.Error)) throw e;
      say({ error: e.error, args: e.args });
    }
  } else if (o.mode === 'callee') {
    await session.register(o.proc, (_args, _kwargs, details) => {
      const seen = {
        caller: details.caller,
        caller_authid: details.caller_authid,
        caller_authrole: details.caller_authrole,
      };
      say({ invoked: seen });
      return new autobahn.Result([], seen);
    });
    say({ ready: true });
    await stdinClosed();
  }
}

/** One session; resolves when it ended as scripted. */
function run(o) {
  const keyPair = o.authmethod === 'cryptosign'
    ? autobahn.nacl.sign.keyPair.fromSeed(Uint8Array.from(Buffer.from(o.secret, 'hex')))
    : null;
  return new Promise((resolve, reject) => {
    const s = autobahn.serializer;
    const serializer = o.serializer === 'json' ? new s.JSONSerializer() : new s.MsgpackSerializer();
    let outcome = null; // 'done' | 'abort' | an Error
    const connection = new autobahn.Connection({
      url: o.url,
      realm: o.realm,
      serializers: [serializer],
      use_es6_promises: true,
      retry_if_unreachable: false,
      max_retries: 0,
      authmethods: [o.authmethod],
      authid: o.authid,
      authextra: keyPair ? { pubkey: autobahn.auth_cryptosign.public_key(keyPair) } : undefined,
      onchallenge: (_session, method, extra) => answer(o, keyPair, method, extra),
    });
    connection.onopen = (session, details) => {
      const pick = ['authid', 'authrole', 'authmethod', 'authprovider'];
      const welcome = Object.fromEntries(pick.map((k) => [k, details[k]]));
      say({ welcome: { session: session.id, ...welcome, authextra: details.authextra || {} } });
      act(o, session).then(
        () => { outcome = outcome || 'done'; },
        (e) => { outcome = outcome || e; },
      ).finally(() => connection.close());
    };
    connection.onclose = (reason, details) => {
      if (outcome === null && details && details.reason) {
        // ABORT before WELCOME (or a GOODBYE from the router before we were done).
        say({ abort: { reason: details.reason, message: details.message } });
        outcome = 'abort';
      }
      if (outcome === 'done' || outcome === 'abort') resolve();
      else reject(outcome || new Error(`connection ${reason} before the run ended`));
      return true; // never reconnect
    };
    connection.open();
  });
}

function main() {
  let o;
  try {
    o = options(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`auth_peer.js: ${e.message}\n`);
    process.exit(2);
  }
  const end = (code, msg) => {
    if (msg) process.stderr.write(`auth_peer.js ${o.mode}: ${msg}\n`);
    process.stdout.write('', () => process.exit(code));
  };
  setTimeout(() => end(1, `timed out after ${o.timeout} s`), o.timeout * 1000).unref();
  run(o).then(() => end(0), (e) => end(1, e && e.stack ? e.stack : String(e)));
}

main();
