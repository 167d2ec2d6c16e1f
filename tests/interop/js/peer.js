#!/usr/bin/env node
// Scripted autobahn-js WAMP peer for wamp-router's interop tests: the same contract as
// tests/interop/python/peer.py, so tests/tests/interop_js.rs can drive either the same way.
//
//     node peer.js --url ws://127.0.0.1:PORT/ws --realm realm1 --serializer json|msgpack
//                  [--timeout SECS] MODE [mode args]
//
// An http:// or https:// URL (the long-poll base, e.g. http://127.0.0.1:PORT/lp) makes the
// peer use autobahn's `longpoll` transport (JSON only) over the `xhr2` XMLHttpRequest.
//
// Modes:
//     callee PROC              register PROC (echo) and PROC.fail (raises), print
//                              {"ready": true}, serve until the router closes the
//                              session or stdin reaches EOF
//     caller PROC              call PROC, PROC.fail and com.example.nonexistent,
//                              one JSON line per outcome
//     subscriber TOPIC COUNT   subscribe, print {"ready": true}, then one line per
//                              event until COUNT events arrived
//     publisher TOPIC COUNT    publish COUNT acknowledged events, print
//                              {"published": COUNT}
//
// stdout carries only JSON lines (one object per line, keys sorted); bytes values are
// rendered as {"$bytes": "<hex>"}. Exit 0 on success; on failure or timeout (--timeout,
// default 20 s, bounds the whole run) a message on stderr and exit 1 (2 for bad usage).
// Autobahn's own warnings may also go to stderr. A callee reads stdin only to see EOF:
// give it a pipe and close it to stop it.
//
// --serializer picks autobahn's JSONSerializer or MsgpackSerializer and offers only that
// one (subprotocol wamp.2.<ser>); the run fails unless the router selected exactly it.
// Binary values are Node Buffers. autobahn-js's JSON serializer has no binary support of
// its own (a Buffer would go out as {"type":"Buffer","data":[...]}), so the peer hands it
// a replacer/reviver, the hook autobahn provides, that implement WAMP's JSON convention:
// a string "\u0000" + base64. MessagePack carries Buffers as bin natively (msgpack5).
'use strict';

// Only our JSON lines go to stdout: anything autobahn or a dependency logs with
// console.log (AUTOBAHN_DEBUG output, session.log) goes to stderr instead.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const autobahn = require('autobahn');

// autobahn warns on stderr at every close ("connection closed", "auto-reconnect
// disabled!"): drop those routine two, keep any other warning.
const ROUTINE_WARNINGS = new Set(['connection closed', 'auto-reconnect disabled!']);
autobahn.log.warn = (first, ...rest) => {
  if (!ROUTINE_WARNINGS.has(first)) console.error(first, ...rest);
};

const USAGE =
  'usage: peer.js --url URL --realm REALM [--serializer json|msgpack] [--timeout SECS]\n' +
  '               {callee PROC | caller PROC | subscriber TOPIC COUNT | publisher TOPIC COUNT}';

// The payload the caller sends (and the callee echoes) and the publisher sends.
const CALL_ARGS = [1, 'two', { three: 3.5 }, null, true, Buffer.from([0x00, 0x01, 0xff])];
const CALL_KWARGS = { k: 'v', n: -7, b: Buffer.from('hi') };
const EVENT_BYTES = Buffer.from([0x00, 0x01, 0xff]);
const NONEXISTENT = 'com.example.nonexistent';

/** A scripted step did not go as expected (printed on stderr, exit 1). */
class PeerFailure extends Error {}

// --- command line -------------------------------------------------------------------

function usage(msg) {
  process.stderr.write(`${USAGE}\npeer.js: error: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { serializer: 'json', timeout: 20 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (rest.length === 0 && a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (!['url', 'realm', 'serializer', 'timeout'].includes(name)) usage(`unknown option ${a}`);
      let value;
      if (eq >= 0) {
        value = a.slice(eq + 1);
      } else {
        if (i + 1 >= argv.length) usage(`${a} needs a value`);
        value = argv[++i];
      }
      opts[name] = value;
    } else {
      rest.push(a);
    }
  }
  if (!opts.url) usage('--url is required');
  if (!opts.realm) usage('--realm is required');
  if (!['json', 'msgpack'].includes(opts.serializer)) {
    usage(`--serializer must be json or msgpack, not ${JSON.stringify(opts.serializer)}`);
  }
  opts.timeout = Number(opts.timeout);
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number of seconds');

  const [mode, ...args] = rest;
  if (mode === 'callee' || mode === 'caller') {
    if (args.length !== 1) usage(`${mode} takes exactly PROC`);
    opts.proc = args[0];
  } else if (mode === 'subscriber' || mode === 'publisher') {
    if (args.length !== 2) usage(`${mode} takes TOPIC COUNT`);
    if (!/^[0-9]+$/.test(args[1])) usage(`COUNT must be a non-negative integer, not ${args[1]}`);
    opts.topic = args[0];
    opts.count = Number(args[1]);
  } else {
    usage(mode === undefined ? 'a mode is required' : `unknown mode ${mode}`);
  }
  opts.mode = mode;
  return opts;
}

// --- output -------------------------------------------------------------------------

/** Python's key order (json.dumps(sort_keys=True)): by code point. */
function comparePy(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** One received WAMP value as compact JSON with sorted keys; bytes become {"$bytes": hex}. */
function dump(value) {
  if (value === null || value === undefined) return 'null';
  if (value instanceof Uint8Array) {
    return dump({ $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') });
  }
  if (Array.isArray(value)) return '[' + value.map(dump).join(',') + ']';
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort(comparePy);
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + dump(value[k])).join(',') + '}';
  }
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value); // number, string, boolean
}

/** Prints one JSON line on stdout (synchronous for pipes and files on Linux). */
function emit(obj) {
  process.stdout.write(dump(obj) + '\n');
}

// --- serializers --------------------------------------------------------------------

// JSON.stringify calls Buffer#toJSON before the replacer, so look at the holder's
// original value (this[key]), not the already converted one.
function wampJsonReplacer(key, value) {
  const orig = this[key];
  if (orig instanceof Uint8Array) {
    return '\u0000' + Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString('base64');
  }
  return value;
}

function wampJsonReviver(_key, value) {
  if (typeof value === 'string' && value.charCodeAt(0) === 0) {
    return Buffer.from(value.slice(1), 'base64');
  }
  return value;
}

// autobahn's longpoll transport calls JSON.stringify/JSON.parse itself, without the
// serializer's replacer/reviver: give Buffers the WAMP JSON form, and parse with the reviver.
function useLongPoll() {
  global.XMLHttpRequest = require('xhr2');
  Buffer.prototype.toJSON = function toJSON() {
    return '\u0000' + this.toString('base64');
  };
  const parse = JSON.parse;
  JSON.parse = (text, reviver) => parse(text, reviver || wampJsonReviver);
}

function makeSerializer(name) {
  const s = autobahn.serializer;
  if (name === 'json') return new s.JSONSerializer(wampJsonReplacer, wampJsonReviver);
  if (!s.MsgpackSerializer) throw new PeerFailure('autobahn has no MsgpackSerializer (msgpack5 missing?)');
  return new s.MsgpackSerializer();
}

// --- modes --------------------------------------------------------------------------

/** Splits what session.call() resolves to into [args, kwargs]: autobahn gives an
 * autobahn.Result for several args or any kwargs, the bare value for exactly one
 * positional arg, and null for none. */
function resultParts(res) {
  if (res instanceof autobahn.Result) return [res.args, res.kwargs];
  return [res === null || res === undefined ? [] : [res], {}];
}

/** Resolves when stdin reaches EOF (or fails: it can be read no longer). */
function stdinEof() {
  return new Promise((resolve) => {
    const done = () => resolve();
    process.stdin.on('end', done);
    process.stdin.on('close', done);
    process.stdin.on('error', done);
    process.stdin.on('data', () => {});
    process.stdin.resume();
  });
}

const modes = {
  async callee(session, opts, state) {
    const echo = (args, kwargs) => new autobahn.Result(args, kwargs);
    const fail = () => {
      throw new autobahn.Error('com.example.error.failed', ['boom', 42], { detail: 'x' });
    };
    await session.register(opts.proc, echo);
    await session.register(opts.proc + '.fail', fail);
    emit({ ready: true });
    await Promise.race([stdinEof(), state.closed]); // or the router ends the session
  },

  async caller(session, opts) {
    const [args, kwargs] = resultParts(await session.call(opts.proc, CALL_ARGS, CALL_KWARGS));
    emit({ result_args: args, result_kwargs: kwargs });
    for (const target of [opts.proc + '.fail', NONEXISTENT]) {
      let res;
      try {
        res = await session.call(target);
      } catch (e) {
        if (!(e instanceof autobahn.Error)) throw e;
        emit({ error: e.error, error_args: e.args, error_kwargs: e.kwargs });
        continue;
      }
      throw new PeerFailure(`call to ${target} succeeded unexpectedly: ${dump(res)}`);
    }
  },

  async subscriber(session, opts) {
    let seen = 0;
    let got;
    const all = new Promise((resolve) => (got = resolve));
    await session.subscribe(opts.topic, (args, kwargs) => {
      if (seen < opts.count) {
        seen += 1;
        emit({ args, kwargs });
        if (seen === opts.count) got();
      }
    });
    emit({ ready: true });
    if (opts.count > 0) await all;
  },

  async publisher(session, opts) {
    for (let i = 0; i < opts.count; i++) {
      await session.publish(opts.topic, [i, 'text', EVENT_BYTES], { seq: i }, { acknowledge: true });
    }
    emit({ published: opts.count });
  },
};

// --- the run ------------------------------------------------------------------------

function describe(e) {
  if (e instanceof autobahn.Error) return `${e.error} ${dump(e.args)} ${dump(e.kwargs)}`;
  if (e instanceof Error) return `${e.constructor.name}: ${e.message}`;
  return String(e);
}

/** Runs one session; resolves when it ended well, rejects with the failure otherwise. */
function run(opts) {
  return new Promise((resolve, reject) => {
    const serializer = makeSerializer(opts.serializer);
    const wanted = `wamp.2.${serializer.SERIALIZER_ID}`;
    let joined = false;
    let finished = false; // the mode reached its successful end
    let failure = null;
    let closedNow;
    const state = { closed: new Promise((r) => (closedNow = r)) };

    const longpoll = /^https?:/.test(opts.url);
    if (longpoll && opts.serializer !== 'json') {
      reject(new PeerFailure('the long-poll transport speaks JSON only'));
      return;
    }
    if (longpoll) useLongPoll();
    const connection = new autobahn.Connection({
      url: opts.url,
      ...(longpoll ? { transports: [{ type: 'longpoll', url: opts.url }] } : {}),
      realm: opts.realm,
      serializers: [serializer], // offers exactly wamp.2.<ser>
      use_es6_promises: true,
      retry_if_unreachable: false,
      max_retries: 0,
      // PROC.fail throwing autobahn.Error is the scripted outcome: do not log it.
      on_user_error: (err, msg) => {
        if (!(err instanceof autobahn.Error)) console.error(msg || 'user error:', err);
      },
      on_internal_error: (err, msg) => {
        failure = failure || new PeerFailure(`autobahn internal error: ${msg || ''} ${describe(err)}`);
      },
    });

    const leave = () => {
      try {
        connection.close(); // GOODBYE, then the router's GOODBYE, then the WebSocket close
      } catch (_) {
        // already closed: onclose has run or runs next
      }
    };

    connection.onopen = (session, details) => {
      joined = true;
      const got = details && details.transport && details.transport.protocol;
      if (got !== wanted) {
        failure = new PeerFailure(`router selected subprotocol ${JSON.stringify(got)}, not ${wanted}`);
        leave();
        return;
      }
      modes[opts.mode](session, opts, state).then(
        () => {
          finished = true;
          leave();
        },
        (e) => {
          failure = failure || (e instanceof PeerFailure ? e : new PeerFailure(`${opts.mode}: ${describe(e)}`));
          leave();
        },
      );
    };

    connection.onclose = (reason, details) => {
      closedNow();
      if (failure) {
        reject(failure);
      } else if (!joined) {
        const why = details && details.reason ? ` (${details.reason} ${details.message || ''})` : '';
        reject(new PeerFailure(`connection ${reason}${why} before the session was joined`));
      } else if (finished || opts.mode === 'callee') {
        // The router closing the session is the normal end only for a callee, or after
        // the mode has finished (the reply to our GOODBYE).
        resolve();
      } else if (details && details.reason) {
        reject(new PeerFailure(`session closed early: ${details.reason} ${details.message || ''}`));
      } else {
        reject(new PeerFailure(`transport ${reason} before the mode finished`));
      }
      return true; // never reconnect
    };

    connection.open();
  });
}

function exit(code) {
  // Let stdout drain first (it is synchronous for pipes on Linux, but not everywhere).
  process.stdout.write('', () => process.exit(code));
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const fail = (msg) => {
    process.stderr.write(`peer.js ${opts.mode}: ${msg}\n`);
    exit(1);
  };
  process.on('uncaughtException', (e) => fail(describe(e)));
  process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${describe(e)}`));
  setTimeout(() => fail(`timed out after ${opts.timeout} s`), opts.timeout * 1000);
  run(opts).then(
    () => exit(0),
    (e) => fail(e instanceof PeerFailure ? e.message : describe(e)),
  );
}

main();
