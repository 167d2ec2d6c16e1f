//! Reading CBOR (RFC 8949) without decoding it: where a value ends, and whether it is one that
//! decodes into a [`crate::Value`].
//!
//! `wamp.2.cbor` uses the part of CBOR that maps onto WAMP's data model: unsigned and negative
//! integers (down to `i64::MIN`, as MessagePack), byte strings (binary), UTF-8 text strings,
//! arrays, maps with text-string keys, `false`/`true`/`null` and half, single and double
//! precision floats, all with definite lengths. Everything else is refused, by the ordinary
//! decoder and by the router's pass-through alike (both run [`skip`]): indefinite-length items,
//! tags (bignums, dates, ...), `undefined` and the other simple values, the reserved additional
//! information values 28-30, a stray break, and more than 127 arrays and maps nested in one
//! another (the message array included), the limit of the JSON and MessagePack decoders.

use super::MAX_NESTING;

/// Why [`skip`] refused the bytes (the text ends up in ABORT's `Details.message`).
pub(crate) type Malformed = &'static str;

const TRUNCATED: Malformed = "truncated CBOR item";

/// The head of a data item at `at`: (major type, argument, offset after the head).
///
/// The argument is the count or length for strings, arrays and maps, the value for integers
/// and the raw bits for floats (major type 7, additional information 25-27).
fn head(b: &[u8], at: usize) -> Result<(u8, u64, usize), Malformed> {
    let ib = *b.get(at).ok_or(TRUNCATED)?;
    let (major, info) = (ib >> 5, ib & 0x1f);
    let next = at + 1;
    let n = match info {
        0..=23 => return Ok((major, u64::from(info), next)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 if major == 7 => return Err("unexpected CBOR break"),
        31 => return Err("indefinite-length CBOR items are not supported"),
        _ => return Err("reserved CBOR additional information"),
    };
    let arg = b.get(next..next + n).ok_or(TRUNCATED)?;
    let arg = arg.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    Ok((major, arg, next + n))
}

/// A definite-length array header at `at`: (element count, offset of the first element).
pub(crate) fn array_header(b: &[u8], at: usize) -> Option<(usize, usize)> {
    match head(b, at).ok()? {
        (4, len, next) => Some((usize::try_from(len).ok()?, next)),
        _ => None,
    }
}

/// An unsigned integer at `at`: (value, offset after it).
pub(crate) fn uint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    match head(b, at).ok()? {
        (0, n, next) => Some((n, next)),
        _ => None,
    }
}

/// Whether an item starting with this byte is an array (its length is checked by [`skip`]).
pub(crate) fn is_array_marker(first: u8) -> bool {
    first >> 5 == 4
}

/// Whether an item starting with this byte is a map.
pub(crate) fn is_map_marker(first: u8) -> bool {
    first >> 5 == 5
}

/// Skips one CBOR data item starting at `at`, returning where it ends.
///
/// Accepts exactly what decodes into a [`crate::Value`] under the rules of this module, at
/// most [`MAX_NESTING`] containers deep (`depth`: the containers around the item at `at`).
/// Never panics; every length is bounds-checked against the input before it is trusted.
pub(crate) fn skip(b: &[u8], at: usize, depth: usize) -> Result<usize, Malformed> {
    let (major, arg, next) = head(b, at)?;
    if matches!(major, 4 | 5) && depth >= MAX_NESTING {
        return Err("CBOR nesting too deep");
    }
    let blob = |utf8: bool| -> Result<usize, Malformed> {
        let len = usize::try_from(arg).map_err(|_| TRUNCATED)?;
        let end = next.checked_add(len).ok_or(TRUNCATED)?;
        let s = b.get(next..end).ok_or(TRUNCATED)?;
        if utf8 && std::str::from_utf8(s).is_err() {
            return Err("CBOR text string is not UTF-8");
        }
        Ok(end)
    };
    match major {
        0 => Ok(next),
        // -1 - arg must fit an i64, as in MessagePack.
        1 if arg <= i64::MAX as u64 => Ok(next),
        1 => Err("negative integer below -2^63"),
        2 => blob(false),
        3 => blob(true),
        4 => {
            // Each element takes at least one byte.
            if arg > (b.len() - next) as u64 {
                return Err(TRUNCATED);
            }
            let mut at = next;
            for _ in 0..arg {
                at = skip(b, at, depth + 1)?;
            }
            Ok(at)
        }
        5 => {
            if arg > ((b.len() - next) / 2) as u64 {
                return Err(TRUNCATED);
            }
            let mut at = next;
            for _ in 0..arg {
                if *b.get(at).ok_or(TRUNCATED)? >> 5 != 3 {
                    return Err("CBOR map keys must be text strings"); // WAMP dict keys
                }
                at = skip(b, at, depth + 1)?;
                at = skip(b, at, depth + 1)?;
            }
            Ok(at)
        }
        6 => Err("CBOR tags are not supported"),
        // false, true, null; half, single and double precision floats (head() read the bits).
        _ => match b[at] & 0x1f {
            20..=22 | 25..=27 => Ok(next),
            _ => Err("unsupported CBOR simple value"),
        },
    }
}

/// Checks that `b` is exactly one acceptable CBOR data item (the ordinary decoder's
/// precondition: the serde decoder then only maps it onto types).
pub(crate) fn check(b: &[u8]) -> Result<(), Malformed> {
    if skip(b, 0, 0)? != b.len() {
        return Err("trailing bytes after the CBOR item");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn accepts_every_supported_kind_of_item() {
        // Examples from RFC 8949 appendix A, plus the extremes WAMP needs.
        for hex in [
            "00",
            "17",
            "1818",
            "1903e8",
            "1b001fffffffffffff",
            "1bffffffffffffffff", // 2^64 - 1
            "20",                 // -1
            "3b7fffffffffffffff", // -2^63
            "f90000",             // 0.0 as a half
            "fa47c35000",         // 100000.0
            "fb3ff199999999999a", // 1.1
            "f4",                 // false
            "f5",                 // true
            "f6",                 // null
            "40",                 // h''
            "4401020304",         // h'01020304'
            "60",                 // ""
            "62c3bc",             // "ü"
            "80",                 // []
            "8301820203820405",   // [1, [2, 3], [4, 5]]
            "a0",                 // {}
            "a26161016162820203", // {"a": 1, "b": [2, 3]}
            "98190102030405060708090a0b0c0d0e0f101112131415161718181819", // 25 elements
        ] {
            let b = unhex(hex);
            assert_eq!(skip(&b, 0, 0), Ok(b.len()), "{hex}");
            assert_eq!(check(&b), Ok(()), "{hex}");
        }
    }

    #[test]
    fn refuses_what_wamp_cannot_carry() {
        for (hex, why) in [
            ("3b8000000000000000", "below -2^63"),
            ("c11a514b67b0", "tags"), // 1(1363896240), an epoch date
            ("c249010000000000000000", "tags"), // bignum 2^64
            ("5f42010243030405ff", "indefinite"), // (_ h'0102', h'030405')
            ("7f657374726561646d696e67ff", "indefinite"),
            ("9fff", "indefinite"),
            ("bf61610161629f0203ffff", "indefinite"),
            ("f7", "simple"),   // undefined
            ("f0", "simple"),   // simple(16)
            ("f818", "simple"), // simple(24)
            ("ff", "break"),
            ("1c", "reserved"),
            ("5d", "reserved"),
            ("a10102", "keys"),      // {1: 2}
            ("a1420102f6", "keys"),  // {h'0102': null}
            ("62c328", "UTF-8"),     // invalid UTF-8
            ("a162ff0001", "UTF-8"), // a key that is not UTF-8
        ] {
            let b = unhex(hex);
            let e = skip(&b, 0, 0).expect_err(hex);
            assert!(e.contains(why), "{hex}: {e}");
        }
    }

    #[test]
    fn refuses_truncated_and_lying_lengths() {
        let good = unhex("a26161016162820203");
        for cut in 0..good.len() {
            assert!(skip(&good[..cut], 0, 0).is_err(), "cut at {cut}");
        }
        for hex in [
            "9bffffffffffffffff",
            "bbffffffffffffffff",
            "5bffffffffffffffff00",
        ] {
            assert!(skip(&unhex(hex), 0, 0).is_err(), "{hex}");
        }
        assert_eq!(
            check(&unhex("0000")),
            Err("trailing bytes after the CBOR item")
        );
    }

    #[test]
    fn bounds_nesting() {
        let mut ok = vec![0x81; MAX_NESTING];
        ok.push(0xf6);
        assert_eq!(skip(&ok, 0, 0), Ok(ok.len()));
        let mut deep = vec![0x81; MAX_NESTING + 1];
        deep.push(0xf6);
        assert_eq!(skip(&deep, 0, 0), Err("CBOR nesting too deep"));
        let mut deep = vec![0x81; 100_000];
        deep.push(0xf6);
        assert!(skip(&deep, 0, 0).is_err());
    }

    #[test]
    fn heads_of_arrays_and_integers() {
        assert_eq!(array_header(&[0x83], 0), Some((3, 1)));
        assert_eq!(array_header(&[0x98, 30], 0), Some((30, 2)));
        assert_eq!(array_header(&[0x9f], 0), None);
        assert_eq!(array_header(&[0xa0], 0), None);
        assert_eq!(uint(&[0x18, 48], 0), Some((48, 2)));
        assert_eq!(uint(&[0x20], 0), None);
        assert!(is_array_marker(0x80) && is_array_marker(0x9f) && !is_array_marker(0xa0));
        assert!(is_map_marker(0xa0) && is_map_marker(0xbf) && !is_map_marker(0xc0));
    }
}
