//! memcached's meta protocol as the store speaks it: the commands it
//! writes by hand and the parser of the answers. The parser reads bytes a
//! server (or whoever answers on its address) sends, so it is written to
//! accept anything: it never reads past its input, never allocates by a
//! length it is told, and decides a prefix of an answer as "need more".
//! It is fuzzed (`crate::fuzzing::answers`).

use crate::error::StoreErrorKind;

/// The store name used in errors and traces.
pub(super) const NAME: &str = "memcached";

/// What to check when a memcached operation fails this way: said in the
/// error's message, after what failed.
pub(super) fn hint(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::Unavailable => {
            "is memcached running there, and is the address reachable from this host? Reads go \
             to the database meanwhile"
        }
        StoreErrorKind::Timeout => {
            "the server or the network is slow or overloaded; raise the store's `io_timeout` \
             if such delays are normal"
        }
        StoreErrorKind::Protocol => {
            "is it memcached 1.6 or later (meta protocol), and nothing else, listening there?"
        }
        StoreErrorKind::Rejected => "the server refused the command",
    }
}

/// A server's answer to one command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer<'a> {
    /// `VA`: the value.
    Value(&'a [u8]),
    /// `EN`: no such key.
    Miss,
    /// `HD`: done (stored).
    Stored,
    /// `NS`: not stored.
    NotStored,
}

/// `mg <key> v\r\n`: the value, or `EN`.
pub(super) fn push_get(_: usize, key: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"mg ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" v\r\n");
}

/// `ms <key> <len>\r\n<value>\r\n` (no TTL: never expires): `HD`.
pub(super) fn push_set(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_decimal(value.len() as u64, out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `ms <key> <len> T<ttl>\r\n<value>\r\n`: an entry, expiring after `ttl`
/// seconds (0: never), as the `exp` client writes it: `HD`.
#[cfg(any(test, feature = "async"))]
pub(super) fn push_set_ttl(key: &[u8], value: &[u8], ttl: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_decimal(value.len() as u64, out);
    out.extend_from_slice(b" T");
    push_decimal(u64::from(ttl), out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `ma <key> v D0 N1 J<initial> T0\r\n`: read a counter, or create it with
/// `initial` (see the store's docs for why `N1` then `T0`), flags in the
/// order the `exp` client writes them: the value, `VA <len>\r\n<decimal>`.
#[cfg(any(test, feature = "async"))]
pub(super) fn push_vivify(key: &[u8], initial: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ma ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" v D0 N1 J");
    push_decimal(initial, out);
    out.extend_from_slice(b" T0\r\n");
}

/// Append `n` in decimal.
pub(super) fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// An answer a command did not expect, described for an error.
pub(super) fn other_answer(answer: &Answer<'_>) -> String {
    let what = match answer {
        Answer::Value(_) => "a value",
        Answer::Miss => "EN",
        Answer::Stored => "HD",
        Answer::NotStored => "NS",
    };
    format!("unexpected answer {what}")
}

/// The longest answer line accepted (`VA <len> <flags>`, `CLIENT_ERROR
/// <message>`): the store asks for no flag, so its answers' lines are a few
/// bytes. A server that sends more without a line end is not followed
/// (reading it would take as much memory as it sends).
pub(super) const MAX_LINE: usize = 1024;

/// How the start of a server's answers parses: see [`parse_answer`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// Incomplete: the answer needs at least this many bytes.
    Need(usize),
    /// A status (`EN`, `HD`, `NS`) and the bytes it took.
    Status(Answer<'static>, usize),
    /// A value at `start..end`; the answer took `end + 2` bytes.
    Value(usize, usize),
}

/// Why an answer is not one the store accepts.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bad {
    /// `CLIENT_ERROR`: the server refused the command.
    Rejected(String),
    /// Anything else: garbage, a server error, a length over the limit.
    Protocol(String),
}

/// Parse the first answer in `buf` (`VA <len> ..\r\n<data>\r\n`, `EN`, `HD`,
/// `NS`), whatever `buf` holds: never reads past it, never allocates by
/// what it says (a value over `max_value` bytes or a line over
/// [`MAX_LINE`] is refused before it is read), and a prefix of an answer is
/// `Need` more, so the answer may arrive split anywhere.
pub(super) fn parse_answer(buf: &[u8], max_value: usize) -> Result<Parsed, Bad> {
    let Some(line_end) = find_crlf(&buf[..buf.len().min(MAX_LINE + 2)]) else {
        if buf.len() >= MAX_LINE + 2 {
            let text = String::from_utf8_lossy(&buf[..32]);
            return Err(Bad::Protocol(format!(
                "an answer line longer than {MAX_LINE} bytes: {text:?}..."
            )));
        }
        return Ok(Parsed::Need(buf.len() + 1));
    };
    let line = &buf[..line_end];
    match line {
        b"EN" => return Ok(Parsed::Status(Answer::Miss, line_end + 2)),
        b"HD" => return Ok(Parsed::Status(Answer::Stored, line_end + 2)),
        b"NS" => return Ok(Parsed::Status(Answer::NotStored, line_end + 2)),
        _ => {}
    }
    let Some(rest) = line.strip_prefix(b"VA ") else {
        let text = String::from_utf8_lossy(line);
        if line.starts_with(b"CLIENT_ERROR") {
            return Err(Bad::Rejected(text.into_owned()));
        }
        return Err(Bad::Protocol(format!("unexpected answer {text:?}")));
    };
    let digits = rest.split(|&b| b == b' ').next().unwrap_or_default();
    let Some(len) = parse_len(digits).filter(|&len| len <= max_value) else {
        let text = String::from_utf8_lossy(line);
        return Err(Bad::Protocol(format!("bad value length in {text:?}")));
    };
    let start = line_end + 2;
    let end = start + len;
    match buf.get(end..end + 2) {
        None => Ok(Parsed::Need(end + 2)),
        Some(b"\r\n") => Ok(Parsed::Value(start, end)),
        Some(_) => Err(Bad::Protocol(format!(
            "a {len}-byte value not followed by CRLF"
        ))),
    }
}

/// Parse `stream` as a server's answers, one after the other, until it
/// ends or one is refused, checking what the parser promises: a value lies
/// within the bytes and within `max_value`, and every prefix of a whole
/// answer asks for more bytes, never decides otherwise (so answers may
/// arrive split anywhere). Returns how many answers were parsed. For the
/// fuzz target and the randomized test (`crate::fuzzing`).
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_stream(stream: &[u8], max_value: usize) -> usize {
    let mut at = 0;
    let mut answers = 0;
    loop {
        let rest = &stream[at..];
        let used = match parse_answer(rest, max_value) {
            Ok(Parsed::Need(want)) => {
                assert!(want > rest.len(), "needs {want} with {} there", rest.len());
                return answers;
            }
            Ok(Parsed::Status(_, used)) => used,
            Ok(Parsed::Value(start, end)) => {
                assert!(start <= end && end + 2 <= rest.len(), "{start}..{end}");
                assert!(end - start <= max_value, "{} > {max_value}", end - start);
                end + 2
            }
            Err(_) => return answers,
        };
        assert!(used <= rest.len());
        for cut in [0, 1, used / 2, used.saturating_sub(2), used - 1] {
            match parse_answer(&rest[..cut.min(used - 1)], max_value) {
                Ok(Parsed::Need(want)) => assert!(want > cut.min(used - 1) && want <= used),
                other => panic!("a {used}-byte answer cut at {cut}: {other:?}"),
            }
        }
        at += used;
        answers += 1;
    }
}

/// The bytes a refused command's answer (`CLIENT_ERROR ...\r\n`) takes,
/// so that the answers after it can be read: a refusal is one line, and
/// [`parse_answer`] returned [`Bad::Rejected`] only having found its end.
#[cfg(any(test, feature = "async"))]
pub(super) fn line_len(buf: &[u8]) -> Option<usize> {
    find_crlf(&buf[..buf.len().min(MAX_LINE + 2)]).map(|end| end + 2)
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

/// A decimal length; memcached's items are far smaller than `usize`.
fn parse_len(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn commands() {
        let mut out = Vec::new();
        push_set_ttl(b"cb:e01", b"a\r\nb", 60, &mut out);
        assert_eq!(out, b"ms cb:e01 4 T60\r\na\r\nb\r\n");
        out.clear();
        push_vivify(b"cb:g01", 12345, &mut out);
        assert_eq!(out, b"ma cb:g01 v D0 N1 J12345 T0\r\n");
        out.clear();
        push_set(b"cb:g01", b"7", &mut out);
        assert_eq!(out, b"ms cb:g01 1\r\n7\r\n");
    }

    #[test]
    fn a_refusal_is_one_line() {
        let buf = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\nVA 1\r\n5\r\n";
        assert!(matches!(parse_answer(buf, 1000), Err(Bad::Rejected(_))));
        let used = line_len(buf).unwrap();
        assert_eq!(parse_answer(&buf[used..], 1000), Ok(Parsed::Value(6, 7)));
        assert_eq!(line_len(b"CLIENT_ERROR"), None);
    }

    #[test]
    fn answers_parse_from_bytes_alone() {
        let p = |b: &[u8]| parse_answer(b, 1000);
        assert_eq!(p(b""), Ok(Parsed::Need(1)));
        assert_eq!(p(b"EN\r\nHD"), Ok(Parsed::Status(Answer::Miss, 4)));
        assert_eq!(p(b"VA 3 f0\r\nab"), Ok(Parsed::Need(14)));
        assert_eq!(p(b"VA 3 f0\r\nabc\r\nEN\r\n"), Ok(Parsed::Value(9, 12)));
        assert!(matches!(p(b"VA 3\r\nabcd\r\n"), Err(Bad::Protocol(_))));
        assert!(matches!(p(b"VA 1001\r\n"), Err(Bad::Protocol(_))));
        assert!(matches!(p(b"VA 99999999999\r\n"), Err(Bad::Protocol(_))));
        assert!(matches!(p(b"CLIENT_ERROR x\r\n"), Err(Bad::Rejected(_))));
        // A line that does not end is followed up to its limit, not further.
        let endless = vec![b'9'; MAX_LINE + 1];
        assert_eq!(p(&endless), Ok(Parsed::Need(MAX_LINE + 2)));
        let endless = vec![b'9'; MAX_LINE + 2];
        assert!(matches!(p(&endless), Err(Bad::Protocol(_))));
        assert_eq!(parse_stream(b"VA 1\r\nx\r\nEN\r\nNS\r\nHD\r\n", 1000), 4);
    }

    #[test]
    fn lengths() {
        assert_eq!(parse_len(b"0"), Some(0));
        assert_eq!(parse_len(b"1048576"), Some(1_048_576));
        assert_eq!(parse_len(b""), None);
        assert_eq!(parse_len(b"1a"), None);
        assert_eq!(parse_len(b"99999999999"), None);
    }
}
