//! Dot segments in request paths: the rule that keeps a request inside its integration's path
//! prefix.
//!
//! 1. Before routing, the path's dot segments are resolved as RFC 3986 §5.2.4 says, with `%2e`
//!    counted as a dot (it is one once a backend decodes it): `/a/./b` is `/a/b`,
//!    `/a/%2e%2e/b` is `/b`. A `..` that would climb above `/` is refused (400), as nginx
//!    does: no client has a reason to send one.
//! 2. After routing, a path parameter's value (`{param}` or `{proxy+}`) is refused (400) if
//!    any of its segments is `.` or `..` once decoded, where `/`, `\`, `%2f` and `%5c` all
//!    separate segments: `..%2fsecret` stays encoded on its way to the backend, and a backend
//!    that decodes it before resolving the path would otherwise climb out of the prefix.
//!
//! Both are pure and allocate only for a path that has a dot segment.

use std::borrow::Cow;

/// The path was refused: it climbs above the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveRoot;

/// What a segment is once `%2e` is read as a dot.
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Dot,
    DotDot,
    Other,
}

fn classify(segment: &[u8]) -> Segment {
    let mut dots = 0;
    let mut rest = segment;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2].eq_ignore_ascii_case(&b'e')
        {
            rest = &rest[3..];
        } else {
            return Segment::Other;
        }
        dots += 1;
        if dots > 2 {
            return Segment::Other;
        }
    }
    match dots {
        1 => Segment::Dot,
        2 => Segment::DotDot,
        _ => Segment::Other,
    }
}

/// True when some segment of `path` may be a dot segment (the quick test on every request).
fn may_have_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.windows(2).any(|w| w[0] == b'/' && (w[1] == b'.' || w[1] == b'%'))
}

/// `path` (origin-form, starting with `/`, no query) with its dot segments resolved.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, AboveRoot> {
    if !may_have_dot_segment(path) {
        return Ok(Cow::Borrowed(path));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments.iter().all(|s| classify(s.as_bytes()) == Segment::Other) {
        return Ok(Cow::Borrowed(path));
    }
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match classify(segment.as_bytes()) {
            Segment::Other => kept.push(segment),
            Segment::Dot => {}
            Segment::DotDot => {
                if kept.pop().is_none() {
                    return Err(AboveRoot);
                }
            }
        }
        // A dot segment at the end leaves the path ending in `/` (RFC 3986: `/a/b/..` is `/a/`).
        if i == last && classify(segment.as_bytes()) != Segment::Other {
            kept.push("");
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when no segment of a path parameter's value is `.` or `..` once decoded, with `/`,
/// `\`, `%2f` and `%5c` as separators.
pub fn parameter_is_contained(value: &str) -> bool {
    let bytes = value.as_bytes();
    if !bytes.iter().any(|&b| b == b'.' || b == b'%') {
        return true;
    }
    let mut start = 0;
    let mut i = 0;
    while i <= bytes.len() {
        let separator_len = match bytes.get(i) {
            None => 1,
            Some(b'/' | b'\\') => 1,
            Some(b'%') if bytes.len() >= i + 3 && is_encoded_separator(bytes[i + 1], bytes[i + 2]) => 3,
            Some(_) => 0,
        };
        if separator_len == 0 {
            i += 1;
            continue;
        }
        if classify(&bytes[start..i]) != Segment::Other {
            return false;
        }
        i += separator_len;
        start = i;
    }
    true
}

/// `%2f` (`/`) or `%5c` (`\`), either case.
fn is_encoded_separator(high: u8, low: u8) -> bool {
    (high == b'2' && low.eq_ignore_ascii_case(&b'f')) || (high == b'5' && low.eq_ignore_ascii_case(&b'c'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_resolved_with_encoded_dots_too() {
        let ok = |p: &str| normalize(p).unwrap().into_owned();
        assert_eq!(ok("/a/b"), "/a/b");
        assert!(matches!(normalize("/a/b.txt/.well-known/x"), Ok(Cow::Borrowed(_))));
        assert_eq!(ok("/a/./b"), "/a/b");
        assert_eq!(ok("/a/../b"), "/b");
        assert_eq!(ok("/static/../internal/secret.txt"), "/internal/secret.txt");
        assert_eq!(ok("/a/%2e%2e/b"), "/b");
        assert_eq!(ok("/a/%2E./b"), "/b");
        assert_eq!(ok("/a/.%2e/b"), "/b");
        assert_eq!(ok("/a/%2e/b"), "/a/b");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/."), "/a/");
        assert_eq!(ok("/a/.."), "/");
        assert_eq!(ok("/..."), "/...");
        assert_eq!(ok("/a/%2e%2e%2e"), "/a/%2e%2e%2e");
        assert_eq!(ok("/a//../b"), "/a/b");
        assert_eq!(normalize("/.."), Err(AboveRoot));
        assert_eq!(normalize("/a/../../etc/passwd"), Err(AboveRoot));
        assert_eq!(normalize("/%2e%2e/x"), Err(AboveRoot));
    }

    #[test]
    fn parameters_that_would_leave_their_prefix_are_caught() {
        for bad in [
            "..",
            ".",
            "../x",
            "a/../../x",
            "..%2fsecret",
            "..%2Fsecret",
            "%2e%2e%2fx",
            "x%5c..%5cy",
            "..\\x",
            "a/.",
            "%2E",
        ] {
            assert!(!parameter_is_contained(bad), "{bad} passed");
        }
        for good in ["a", "v1.2", "a/b.txt", "...", "a%2fb", "%2e%2e%2e", ".hidden", "a..b", "%20..x"] {
            assert!(parameter_is_contained(good), "{good} refused");
        }
    }
}
