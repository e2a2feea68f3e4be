//! An incremental, strict decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1).
//!
//! Strict means every line ends in CRLF, sizes are bare hex digits (no sign, no spaces, no
//! `0x`, at most 15 digits), and the decoded total is bounded. Chunk extensions follow the
//! RFC's grammar (`;name`, `;name=token` or `;name="quoted"`, with optional whitespace after
//! `;` and around `=`, none between the size and `;`) and are dropped, as are trailers, each bounded in size. Any deviation is an
//! error, because lenient chunk parsing is how request smuggling works.

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// 400: the framing is malformed; the reason is for logs and tests.
    Malformed(&'static str),
    /// 413: the decoded body passes the limit.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        digits: u8,
    },
    /// A chunk extension (RFC 9112 §7.1.1), at the place named.
    Extension(Ext),
    /// Expecting the LF that ends the size line.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting CR LF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line, until CR.
    Trailer,
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
    Done,
}

/// Where in `;name[=value]` a chunk extension is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After `;`: whitespace, then the name's first character.
    BeforeName,
    Name,
    /// Whitespace after the name: then `=`, `;` or the end of the line.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    BeforeValue,
    Token,
    Quoted,
    /// After a backslash inside a quoted string.
    QuotedPair,
    /// After the value: whitespace, then `;` or the end of the line.
    AfterValue,
}

impl Ext {
    /// The next place after byte `b`, or why `b` cannot be there.
    fn next(self, b: u8) -> Result<Ext, &'static str> {
        let space = b == b' ' || b == b'\t';
        let tchar = proto::table::is_tchar(b);
        Ok(match (self, b) {
            (Ext::BeforeName, _) if space => Ext::BeforeName,
            (Ext::BeforeName, _) if tchar => Ext::Name,
            (Ext::BeforeName, _) => return Err("a chunk extension without a name"),
            (Ext::Name, _) if tchar => Ext::Name,
            (Ext::Name | Ext::AfterName, _) if space => Ext::AfterName,
            (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
            (Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b';') => Ext::BeforeName,
            (Ext::BeforeValue, _) if space => Ext::BeforeValue,
            (Ext::BeforeValue, b'"') => Ext::Quoted,
            (Ext::BeforeValue | Ext::Token, _) if tchar => Ext::Token,
            (Ext::BeforeValue, _) => return Err("a chunk extension without a value after ="),
            (Ext::Token | Ext::AfterValue, _) if space => Ext::AfterValue,
            (Ext::Quoted, b'"') => Ext::AfterValue,
            (Ext::Quoted, b'\\') => Ext::QuotedPair,
            (Ext::Quoted | Ext::QuotedPair, b'\t' | b' '..=b'~' | 0x80..=0xff) => Ext::Quoted,
            _ => return Err("a malformed chunk extension"),
        })
    }

    /// True where the size line may end.
    fn may_end(self) -> bool {
        matches!(self, Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue)
    }
}

/// Most bytes of extensions plus trailers one body may carry.
const MAX_METADATA: usize = 4096;
/// Hex digits in a chunk size: 15 digits is 2^60, far past any body limit, and cannot overflow.
const MAX_SIZE_DIGITS: u8 = 15;

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    remaining: u64,
    total: u64,
    max: u64,
    metadata: usize,
}

impl ChunkedDecoder {
    pub fn new(max_body: u64) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            total: 0,
            max: max_body,
            metadata: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending data to `out`. Returns how many bytes
    /// of `input` were consumed; once [`is_done`](Self::is_done), the rest belongs to the next
    /// message.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(v) = hex_value(b) {
                        if digits == MAX_SIZE_DIGITS {
                            return Err(ChunkError::Malformed("chunk size too long"));
                        }
                        self.remaining = (self.remaining << 4) | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(ChunkError::Malformed("chunk size is not hex"));
                    } else if b == b';' {
                        self.state = State::Extension(Ext::BeforeName);
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else {
                        return Err(ChunkError::Malformed("bad character after chunk size"));
                    }
                    i += 1;
                }
                State::Extension(at) => {
                    self.count_metadata()?;
                    self.state = match b {
                        b'\r' if at.may_end() => State::SizeLf,
                        b'\r' => return Err(ChunkError::Malformed("a chunk extension cut short")),
                        _ => State::Extension(at.next(b).map_err(ChunkError::Malformed)?),
                    };
                    i += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::Malformed("chunk size line does not end in CRLF"));
                    }
                    i += 1;
                    if self.remaining == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.total = self.total.saturating_add(self.remaining);
                        if self.total > self.max {
                            return Err(ChunkError::TooLarge);
                        }
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let take = (input.len() - i).min(self.remaining as usize);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::Malformed("chunk data longer than its size"));
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::Malformed("chunk data does not end in CRLF"));
                    }
                    self.state = State::Size { digits: 0 };
                    i += 1;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' { State::EndLf } else { State::Trailer };
                    if b == b'\n' {
                        return Err(ChunkError::Malformed("bare LF in trailers"));
                    }
                    self.count_metadata()?;
                    i += 1;
                }
                State::Trailer => {
                    self.count_metadata()?;
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => return Err(ChunkError::Malformed("bare LF in trailers")),
                        _ => {}
                    }
                    i += 1;
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::Malformed("bare CR in trailers"));
                    }
                    self.state = State::TrailerStart;
                    i += 1;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::Malformed("chunked body does not end in CRLF"));
                    }
                    self.state = State::Done;
                    i += 1;
                }
                State::Done => break,
            }
        }
        Ok(i)
    }

    fn count_metadata(&mut self) -> Result<(), ChunkError> {
        self.metadata += 1;
        if self.metadata > MAX_METADATA {
            return Err(ChunkError::Malformed("chunk extensions or trailers too large"));
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        assert!(d.is_done(), "incomplete");
        Ok((out, n))
    }

    #[test]
    fn decodes_whole_and_byte_by_byte() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let (out, n) = decode_all(input).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(&input[n..], b"NEXT");
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        for b in &input[..n] {
            assert_eq!(d.decode(std::slice::from_ref(b), &mut out), Ok(1));
        }
        assert!(d.is_done());
        assert_eq!(out, b"hello world");
    }

    fn assert_all_malformed(inputs: &[&[u8]]) {
        for input in inputs {
            let mut d = ChunkedDecoder::new(1 << 20);
            assert!(
                matches!(d.decode(input, &mut Vec::new()), Err(ChunkError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn chunk_extensions_follow_the_grammar() {
        let good: &[&[u8]] = &[
            b"5;a\r\nhello\r\n0\r\n\r\n",
            b"5;a=b;c\r\nhello\r\n0;last\r\n\r\n",
            b"5; a = b ;c=\"x;y \\\" z\"\r\nhello\r\n0\r\n\r\n",
        ];
        for input in good {
            assert_eq!(
                decode_all(input).map(|(out, _)| out),
                Ok(b"hello".to_vec()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bad: &[&[u8]] = &[
            b"1;\r\na\r\n0\r\n\r\n",
            b"1; \r\na\r\n0\r\n\r\n",
            b"1;=b\r\na\r\n0\r\n\r\n",
            b"1;a=\r\na\r\n0\r\n\r\n",
            b"1;a=\"b\r\na\r\n0\r\n\r\n",
            b"1;a b\r\na\r\n0\r\n\r\n",
            b"1;a=b c\r\na\r\n0\r\n\r\n",
            b"1;a,b\r\na\r\n0\r\n\r\n",
            b"1;a\x01\r\na\r\n0\r\n\r\n",
            b"1;a\n\r\na\r\n0\r\n\r\n",
        ];
        assert_all_malformed(bad);
    }

    #[test]
    fn malformed_framing_is_refused() {
        let bad: &[&[u8]] = &[
            b"x\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello!\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"0\r\n\n",
            b"0\r\nX: a\nb\r\n\r\n",
        ];
        assert_all_malformed(bad);
    }

    #[test]
    fn total_is_bounded() {
        let mut d = ChunkedDecoder::new(10);
        assert_eq!(d.decode(b"6\r\nabcdef\r\n", &mut Vec::new()), Ok(11));
        assert_eq!(d.decode(b"5\r\n", &mut Vec::new()), Err(ChunkError::TooLarge));
        let mut d = ChunkedDecoder::new(u64::MAX);
        assert_eq!(d.decode(b"fffffffffffffff\r\n", &mut Vec::new()), Ok(17));
    }
}
