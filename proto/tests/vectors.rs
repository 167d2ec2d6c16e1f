//! Runs the public WAMP test vectors (`wamp-proto/wamp-proto`'s `testsuite/`) against our codec.
//!
//! Location: `$WAMP_TEST_VECTORS`, else `<repo>/../shared/vectors/wamp-proto-testsuite`. When the
//! folder is missing the test fails under CI (`CI` set) and is skipped with a notice otherwise.
//!
//! For each `singlemessage/**/*.json` file, each *serialization sample* (bytes + expected
//! attributes) is checked for `json`, `msgpack` and `cbor` (ubjson and flatbuffers are ignored):
//! 1. every listed byte representation decodes, to a message with the expected attributes;
//! 2. it re-encodes with the same serializer to bytes that decode to an equal message;
//! 3. all representations of the sample, json, msgpack and cbor alike, decode to equal messages.
//!
//! Samples that use something we deliberately do not model must be *rejected*:
//! - message codes we do not know (EVENT_RECEIVED = 337, an autobahn extension);
//! - Payload Passthru Mode (a binary `payload` in place of Arguments/ArgumentsKw, used for
//!   end-to-end encryption).
//!
//! *Validation samples* (a raw `wmsg` array, optionally with an `expected_error`) exercise
//! Options/Details type rules, which the router enforces, not the codec: for them we only check
//! that the codec decodes the array (as JSON, msgpack and CBOR) and keeps the options unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use wamp_proto::message::code_name;
use wamp_proto::{to_value, Dict, Message, Serializer, Value};

/// The vectors folder, or the path where it was looked for.
fn vectors_dir() -> Result<PathBuf, PathBuf> {
    let dir = match std::env::var_os("WAMP_TEST_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/wamp-proto-testsuite")
        }
    };
    if dir.join("singlemessage").is_dir() {
        Ok(dir)
    } else {
        Err(dir)
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn hex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex is ASCII");
            assert_eq!(pair.len(), 2, "odd-length hex string");
            u8::from_str_radix(pair, 16).expect("hex digits")
        })
        .collect()
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

/// The named attributes of a decoded message, under the names the vectors use.
///
/// Ids appear under both spellings the vectors use (`request_id` and `subscription_id`, but
/// EVENT's `subscription` and `publication`); absent optional parts (`args`, `kwargs`, the
/// transparent `payload` we do not model) are `null`.
fn attributes(m: &Message) -> BTreeMap<&'static str, Value> {
    use Message as M;
    let mut a: BTreeMap<&'static str, Value> = BTreeMap::new();
    let id = |i: wamp_proto::Id| Value::UInt(i.get());
    let uri = |u: &wamp_proto::Uri| Value::Str(u.as_str().to_owned());
    let dict = |d: &Dict| Value::Dict(d.clone());
    let payload = |a: &mut BTreeMap<&'static str, Value>, p: &wamp_proto::Payload| {
        a.insert("args", p.args.clone().map_or(Value::Null, Value::List));
        a.insert("kwargs", p.kwargs.clone().map_or(Value::Null, Value::Dict));
        a.insert("payload", Value::Null);
    };
    a.insert("message_type", Value::UInt(m.code()));
    match m {
        M::Hello(m) => {
            a.insert("realm", uri(&m.realm));
            a.insert("details", dict(&m.details));
        }
        M::Welcome(m) => {
            a.insert("session_id", id(m.session));
            a.insert("session", id(m.session));
            a.insert("details", dict(&m.details));
        }
        M::Abort(m) => {
            a.insert("details", dict(&m.details));
            a.insert("reason", uri(&m.reason));
            payload(&mut a, &m.payload);
        }
        M::Challenge(m) => {
            a.insert("method", Value::Str(m.auth_method.clone()));
            a.insert("extra", dict(&m.extra));
        }
        M::Authenticate(m) => {
            a.insert("signature", Value::Str(m.signature.clone()));
            a.insert("extra", dict(&m.extra));
        }
        M::Goodbye(m) => {
            a.insert("details", dict(&m.details));
            a.insert("reason", uri(&m.reason));
        }
        M::Error(m) => {
            a.insert("request_type", Value::UInt(m.request_type));
            a.insert("request_id", id(m.request));
            a.insert("details", dict(&m.details));
            a.insert("error", uri(&m.error));
            payload(&mut a, &m.payload);
        }
        M::Publish(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
            a.insert("topic", uri(&m.topic));
            payload(&mut a, &m.payload);
        }
        M::Published(m) => {
            a.insert("request_id", id(m.request));
            a.insert("publication_id", id(m.publication));
            a.insert("publication", id(m.publication));
        }
        M::Subscribe(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
            a.insert("topic", uri(&m.topic));
        }
        M::Subscribed(m) => {
            a.insert("request_id", id(m.request));
            a.insert("subscription_id", id(m.subscription));
            a.insert("subscription", id(m.subscription));
        }
        M::Unsubscribe(m) => {
            a.insert("request_id", id(m.request));
            a.insert("subscription_id", id(m.subscription));
            a.insert("subscription", id(m.subscription));
            a.insert("options", m.options.as_ref().map_or(Value::Null, dict));
        }
        M::Unsubscribed(m) => {
            a.insert("request_id", Value::UInt(m.request));
            a.insert("details", m.details.as_ref().map_or(Value::Null, dict));
        }
        M::Event(m) => {
            a.insert("subscription", id(m.subscription));
            a.insert("subscription_id", id(m.subscription));
            a.insert("publication", id(m.publication));
            a.insert("publication_id", id(m.publication));
            a.insert("details", dict(&m.details));
            payload(&mut a, &m.payload);
        }
        M::Call(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
            a.insert("procedure", uri(&m.procedure));
            payload(&mut a, &m.payload);
        }
        M::Cancel(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
        }
        M::Result(m) => {
            a.insert("request_id", id(m.request));
            a.insert("details", dict(&m.details));
            payload(&mut a, &m.payload);
        }
        M::Register(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
            a.insert("procedure", uri(&m.procedure));
        }
        M::Registered(m) => {
            a.insert("request_id", id(m.request));
            a.insert("registration_id", id(m.registration));
            a.insert("registration", id(m.registration));
        }
        M::Unregister(m) => {
            a.insert("request_id", id(m.request));
            a.insert("registration_id", id(m.registration));
            a.insert("registration", id(m.registration));
            a.insert("options", m.options.as_ref().map_or(Value::Null, dict));
        }
        M::Unregistered(m) => {
            a.insert("request_id", Value::UInt(m.request));
            a.insert("details", m.details.as_ref().map_or(Value::Null, dict));
        }
        M::Invocation(m) => {
            a.insert("request_id", id(m.request));
            a.insert("registration_id", id(m.registration));
            a.insert("registration", id(m.registration));
            a.insert("details", dict(&m.details));
            payload(&mut a, &m.payload);
        }
        M::Interrupt(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
        }
        M::Yield(m) => {
            a.insert("request_id", id(m.request));
            a.insert("options", dict(&m.options));
            payload(&mut a, &m.payload);
        }
    }
    a
}

/// Checks every expected attribute against the decoded message; returns the mismatches.
///
/// An attribute that is not a field of the message (HELLO's and WELCOME's `roles`) is looked up
/// in the message's Details/Options dict, where autobahn keeps it.
fn check_attributes(m: &Message, expected: &serde_json::Map<String, Json>) -> Vec<String> {
    let attrs = attributes(m);
    let dict = attrs
        .get("details")
        .or_else(|| attrs.get("options"))
        .and_then(Value::as_dict);
    let mut problems = Vec::new();
    for (key, want) in expected {
        let want = to_value(want).expect("JSON converts to Value");
        let got = attrs
            .get(key.as_str())
            .or_else(|| dict.and_then(|d| d.get(key)));
        match got {
            Some(got) if *got == want => {}
            Some(got) => problems.push(format!("{key}: expected {want:?}, decoded {got:?}")),
            None => problems.push(format!("{key}: no such attribute on {}", m.name())),
        }
    }
    problems
}

#[derive(Default)]
struct Tally {
    files: usize,
    samples: usize,
    decoded: BTreeMap<&'static str, usize>,
    reencoded_bytes_identical: BTreeMap<&'static str, usize>,
    cross_checked: usize,
    cross_checked_cbor: usize,
    rejected_unknown_type: usize,
    rejected_passthru: usize,
    validation_samples: usize,
    validation_with_expected_error: usize,
    validation_passthru_rejected: usize,
    failures: Vec<String>,
}

const SERIALIZERS: [(&str, Serializer); 3] = [
    ("json", Serializer::Json),
    ("msgpack", Serializer::MsgPack),
    ("cbor", Serializer::Cbor),
];

/// A value as CBOR, the way `wamp.2.cbor` encodes it (null for [`Value::Null`]).
fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = minicbor_serde::Serializer::new(&mut out);
    ser.serialize_unit_as_null(true);
    serde::Serialize::serialize(v, &mut ser).expect("encodes");
    out
}

fn serialization_sample(file: &str, sample: &Json, t: &mut Tally) {
    let desc = sample["description"].as_str().unwrap_or("?");
    let here = format!("{file}: {desc}");
    let expected = sample["expected_attributes"]
        .as_object()
        .unwrap_or_else(|| panic!("{here}: expected_attributes is not an object"));
    let code = expected["message_type"]
        .as_u64()
        .unwrap_or_else(|| panic!("{here}: message_type is not an integer"));
    let passthru = expected.get("payload").is_some_and(|p| !p.is_null());
    t.samples += 1;

    let mut decoded: Vec<(&str, Message)> = Vec::new();
    for (name, ser) in SERIALIZERS {
        let reps = sample["serializers"][name]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, rep) in reps.iter().enumerate() {
            let at = format!("{here} [{name} #{i}]");
            let bytes = match (rep["bytes_hex"].as_str(), rep["bytes"].as_str()) {
                (Some(h), text) => {
                    let b = hex(h);
                    if let Some(text) = text {
                        assert_eq!(text.as_bytes(), b, "{at}: `bytes` and `bytes_hex` disagree");
                    }
                    b
                }
                (None, Some(text)) => text.as_bytes().to_vec(),
                (None, None) => panic!("{at}: no bytes_hex"),
            };
            let result = ser.decode(&bytes);

            if code_name(code).is_none() {
                match result {
                    Err(e)
                        if e.to_string()
                            .contains(&format!("unknown message type {code}")) =>
                    {
                        t.rejected_unknown_type += 1
                    }
                    other => t.failures.push(format!(
                        "{at}: code {code} must be rejected as unknown, got {other:?}"
                    )),
                }
                continue;
            }
            if passthru {
                match result {
                    Err(_) => t.rejected_passthru += 1,
                    Ok(m) => t.failures.push(format!(
                        "{at}: Payload Passthru Mode is not modelled and must be rejected, but \
                         decoded as {m:?} (if it is now supported, update this test)"
                    )),
                }
                continue;
            }

            let m = match result {
                Ok(m) => m,
                Err(e) => {
                    t.failures.push(format!("{at}: does not decode: {e}"));
                    continue;
                }
            };
            *t.decoded.entry(name).or_default() += 1;
            for p in check_attributes(&m, expected) {
                t.failures.push(format!("{at}: {p}"));
            }
            // Re-encodes to an equivalent message.
            match ser.encode(&m) {
                Ok(enc) => {
                    match ser.decode(enc.as_bytes()) {
                        Ok(again) if again == m => {}
                        Ok(again) => t.failures.push(format!(
                            "{at}: re-encoding changed the message: {m:?} -> {again:?}"
                        )),
                        Err(e) => t
                            .failures
                            .push(format!("{at}: re-encoding does not decode: {e}")),
                    }
                    // Informational: do we produce one of the listed canonical byte strings?
                    let canonical = reps.iter().any(|r| {
                        r["bytes_hex"]
                            .as_str()
                            .is_some_and(|h| hex(h) == enc.as_bytes())
                    });
                    if canonical {
                        *t.reencoded_bytes_identical.entry(name).or_default() += 1;
                    }
                }
                Err(e) => t.failures.push(format!("{at}: does not re-encode: {e}")),
            }
            decoded.push((name, m));
        }
    }

    // Every representation, json, msgpack and cbor alike, carries the same message.
    if let Some((first_name, first)) = decoded.first() {
        let mut all_equal = true;
        for (name, m) in &decoded[1..] {
            if m != first {
                all_equal = false;
                t.failures.push(format!(
                    "{here}: {first_name} and {name} representations differ: {first:?} vs {m:?}"
                ));
            }
        }
        let has = |name: &str| decoded.iter().any(|(n, _)| *n == name);
        if all_equal && has("json") && has("msgpack") {
            t.cross_checked += 1;
            if has("cbor") {
                t.cross_checked_cbor += 1;
            }
        }
    }
}

/// The element index of Arguments for messages that carry a payload; a non-list there is
/// Payload Passthru Mode.
fn args_index(code: u64) -> Option<usize> {
    use wamp_proto::message::code;
    match code {
        code::ABORT => Some(3),
        code::ERROR => Some(5),
        code::PUBLISH | code::EVENT | code::CALL | code::INVOCATION => Some(4),
        code::RESULT | code::YIELD => Some(3),
        _ => None,
    }
}

fn validation_sample(file: &str, sample: &Json, t: &mut Tally) {
    let desc = sample["description"].as_str().unwrap_or("?");
    let here = format!("{file}: {desc}");
    let wmsg = sample["wmsg"]
        .as_array()
        .unwrap_or_else(|| panic!("{here}: wmsg is not an array"));
    t.validation_samples += 1;
    if sample.get("expected_error").is_some_and(|e| !e.is_null()) {
        t.validation_with_expected_error += 1;
    }
    let code = wmsg.first().and_then(Json::as_u64).unwrap_or(0);
    let passthru = args_index(code)
        .and_then(|i| wmsg.get(i))
        .is_some_and(|a| !a.is_array());

    let as_value = to_value(wmsg).expect("JSON converts to Value");
    let encodings = [
        (Serializer::Json, serde_json::to_vec(wmsg).expect("encodes")),
        (
            Serializer::MsgPack,
            rmp_serde::to_vec(&as_value).expect("encodes"),
        ),
        (Serializer::Cbor, cbor(&as_value)),
    ];
    for (ser, bytes) in encodings {
        let at = format!("{here} [{} from wmsg]", ser.name());
        match (ser.decode(&bytes), passthru) {
            (Err(_), true) => t.validation_passthru_rejected += 1,
            (Ok(m), true) => t
                .failures
                .push(format!("{at}: passthru payload decoded as {m:?}")),
            (Err(e), false) => t
                .failures
                .push(format!("{at}: structurally valid, but: {e}")),
            (Ok(m), false) => {
                // The codec keeps Options/Details exactly as sent; the router judges them.
                let sent = wmsg
                    .iter()
                    .find(|e| e.is_object())
                    .map(|o| to_value(o).expect("converts"));
                let attrs = attributes(&m);
                let kept = attrs.get("options").or_else(|| attrs.get("details"));
                if sent.as_ref() != kept {
                    t.failures
                        .push(format!("{at}: options changed: {sent:?} -> {kept:?}"));
                }
            }
        }
    }
}

#[test]
fn wamp_test_vectors() {
    let dir = match vectors_dir() {
        Ok(dir) => dir,
        Err(looked) => {
            let msg = format!(
                "WAMP test vectors not found at {} (no singlemessage/ folder): set \
             WAMP_TEST_VECTORS or put them in ../shared/vectors/wamp-proto-testsuite beside \
             the repository",
                looked.display()
            );
            if in_ci() {
                panic!("{msg} (CI is set, so this is a failure)");
            }
            eprintln!("NOTICE: {msg}; skipping");
            return;
        }
    };

    let mut files = Vec::new();
    json_files(&dir.join("singlemessage"), &mut files);
    let mut t = Tally::default();
    for path in &files {
        let file = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let doc: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let samples = doc["samples"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no samples"));
        t.files += 1;
        for sample in samples {
            if sample.get("wmsg").is_some() {
                validation_sample(&file, sample, &mut t);
            } else {
                serialization_sample(&file, sample, &mut t);
            }
        }
    }

    let mut report = String::new();
    let _ = writeln!(report, "WAMP test vectors from {}", dir.display());
    let _ = writeln!(
        report,
        "  {} files, {} serialization samples: decoded json {} / msgpack {} / cbor {} byte \
         strings (re-encoded byte-identically: json {} / msgpack {} / cbor {}), {} samples equal \
         across json and msgpack, {} of them across cbor too",
        t.files,
        t.samples,
        t.decoded.get("json").copied().unwrap_or(0),
        t.decoded.get("msgpack").copied().unwrap_or(0),
        t.decoded.get("cbor").copied().unwrap_or(0),
        t.reencoded_bytes_identical
            .get("json")
            .copied()
            .unwrap_or(0),
        t.reencoded_bytes_identical
            .get("msgpack")
            .copied()
            .unwrap_or(0),
        t.reencoded_bytes_identical
            .get("cbor")
            .copied()
            .unwrap_or(0),
        t.cross_checked,
        t.cross_checked_cbor,
    );
    let _ = writeln!(
        report,
        "  rejected as intended: {} byte strings of unknown message types, {} using Payload Passthru Mode",
        t.rejected_unknown_type, t.rejected_passthru
    );
    let _ = writeln!(
        report,
        "  {} validation samples ({} with an expected_error, enforced by the router, not the codec); \
         {} passthru decodes rejected",
        t.validation_samples, t.validation_with_expected_error, t.validation_passthru_rejected
    );
    eprint!("{report}");

    assert!(
        t.failures.is_empty(),
        "{} vector failures:\n  {}",
        t.failures.len(),
        t.failures.join("\n  ")
    );
    let ran = t.decoded.values().sum::<usize>();
    assert!(
        ran > 0,
        "no test vector sample ran (is {} empty?)",
        dir.display()
    );
    assert!(
        t.decoded.get("json").is_some_and(|&n| n > 0),
        "no json sample ran"
    );
    assert!(
        t.decoded.get("msgpack").is_some_and(|&n| n > 0),
        "no msgpack sample ran"
    );
    assert!(
        t.decoded.get("cbor").is_some_and(|&n| n > 0),
        "no cbor sample ran"
    );
    assert!(
        t.rejected_unknown_type > 0 || !files.iter().any(|f| f.ends_with("eventreceived.json"))
    );
}
