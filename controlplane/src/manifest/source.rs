//! A manifest document's text, and where in it a field is written, for the line an error
//! names. The lines each key is written on are indexed once per document, so locating every
//! error of a large manifest is linear in its size, not in size times errors.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

pub struct Source {
    text: Box<str>,
    index: OnceLock<KeyLines>,
}

/// For each key text (hashed), the lines it may be written on as `key:`, in order. A superset:
/// each line found is confirmed with [`has_key`].
struct KeyLines {
    lines: Vec<(usize, usize)>,
    keys: HashMap<u64, Vec<u32>>,
}

impl Source {
    pub fn new(text: &str) -> Source {
        Source { text: text.into(), index: OnceLock::new() }
    }

    /// The 0-based line within the document where the field at `path`
    /// (`routes["GET /x"].integration.uri`) is written: each segment is searched as a key
    /// (`name:`, `"GET /x":`) from the line of the previous one.
    pub fn locate(&self, path: &str) -> usize {
        let index = self.index.get_or_init(|| KeyLines::new(&self.text));
        let mut cursor = 0;
        for segment in path_segments(path) {
            match index.first_from(&self.text, segment, cursor) {
                Some(i) => cursor = i,
                None => break,
            }
        }
        cursor
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({} bytes)", self.text.len())
    }
}

fn hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Bytes after which a key may start (besides the start of a line).
fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'{' | b',' | b'\t')
}

impl KeyLines {
    /// Every text that stands between a key start (a line start or a delimiter) and the next
    /// `:`, with the quotes of a quoted key taken off: each start is paired with one colon, so
    /// this is linear in the text.
    fn new(text: &str) -> KeyLines {
        let mut lines = Vec::new();
        let mut keys: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut offset = 0;
        for (number, line) in text.split('\n').enumerate() {
            lines.push((offset, offset + line.len()));
            offset += line.len() + 1;
            let bytes = line.as_bytes();
            let mut starts = vec![0];
            for (i, &b) in bytes.iter().enumerate() {
                if b == b':' {
                    for &start in &starts {
                        let key = &line[start..i];
                        let unquoted = ['"', '\'']
                            .iter()
                            .find_map(|&q| key.strip_prefix(q).and_then(|k| k.strip_suffix(q)))
                            .unwrap_or(key);
                        let found = keys.entry(hash(unquoted)).or_default();
                        if found.last() != Some(&(number as u32)) {
                            found.push(number as u32);
                        }
                    }
                    starts.clear();
                } else if is_delimiter(b) {
                    starts.push(i + 1);
                }
            }
        }
        KeyLines { lines, keys }
    }

    /// The first line at or after `from` where `segment` is written as a key.
    fn first_from(&self, text: &str, segment: &str, from: usize) -> Option<usize> {
        let line = |i: usize| {
            let (start, end) = self.lines[i];
            text[start..end].strip_suffix('\r').unwrap_or(&text[start..end])
        };
        if segment.contains(':') {
            // Not indexed (a key ends at the first colon): searched line by line.
            return (from..self.lines.len()).find(|&i| has_key(line(i), segment));
        }
        let candidates = self.keys.get(&hash(segment))?;
        let first = candidates.partition_point(|&n| (n as usize) < from);
        candidates[first..].iter().map(|&n| n as usize).find(|&i| has_key(line(i), segment))
    }
}

/// True when `line` has `segment:` (plain or quoted) where a key may start.
fn has_key(line: &str, segment: &str) -> bool {
    let keys = [format!("{segment}:"), format!("\"{segment}\":"), format!("'{segment}':")];
    keys.iter().any(|k| {
        line.match_indices(k.as_str()).any(|(at, _)| at == 0 || is_delimiter(line.as_bytes()[at - 1]))
    })
}

/// Splits `routes["GET /x"].integration.uri` into `routes`, `GET /x`, `integration`, `uri`.
fn path_segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix("[\"") {
            let end = inner.find("\"]").unwrap_or(inner.len());
            out.push(&inner[..end]);
            rest = inner.get(end + 2..).unwrap_or("");
        } else if let Some(inner) = rest.strip_prefix('[') {
            // A list index: the line search cannot count items, so it is skipped.
            let end = inner.find(']').unwrap_or(inner.len());
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let rest_trim = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trim.find(['.', '[']).unwrap_or(rest_trim.len());
            out.push(&rest_trim[..end]);
            rest = &rest_trim[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_on_their_own_lines() {
        let text = "kind: Api\nname: a\nroutes:\n  GET /x:\n    integration: { type: MOCK }\n  \"GET /y\":\n    integration:\n      uri: 'http://h:1/'\n  'GET /z': { integration: { type: HTTP, uri: u } }\n";
        let source = Source::new(text);
        assert_eq!(source.locate("name"), 1);
        assert_eq!(source.locate(r#"routes["GET /x"].integration.type"#), 4);
        assert_eq!(source.locate(r#"routes["GET /y"].integration.uri"#), 7);
        assert_eq!(source.locate(r#"routes["GET /z"].integration.uri"#), 8);
        // A field not written stops at its nearest written parent.
        assert_eq!(source.locate(r#"routes["GET /y"].integration.timeout"#), 6);
        assert_eq!(source.locate("nothing"), 0);
    }

    #[test]
    fn the_index_agrees_with_a_line_by_line_search() {
        let text = "a: 1\nb: { c: 2, d e: 3 }\n  d e:\n x,c: 4\nf:g: 5\n\"h i\": 6\n";
        let source = Source::new(text);
        let lines: Vec<&str> = text.split('\n').collect();
        for segment in ["a", "b", "c", "d e", "e", "x", "f", "g", "f:g", "h i", "h", "zz"] {
            for from in 0..lines.len() {
                let slow = (from..lines.len()).find(|&i| has_key(lines[i], segment));
                let index = source.index.get_or_init(|| KeyLines::new(text));
                assert_eq!(index.first_from(text, segment, from), slow, "{segment} from {from}");
            }
        }
    }
}
