//! A JSON token file read from disk a chunk at a time: the fast front of
//! [`format::read_entries`](super::format::read_entries).
//!
//! serde_json reads a file (`IoRead`) a byte at a time through the reader, and copies each
//! entry's text into a string of its own to check it: at a million tokens, most of the time
//! of each of an import's two readings. Here the file is read in chunks of [`CHUNK`] bytes,
//! each entry of `tokens` is framed in the chunk (where its text ends: strings, escapes and
//! brackets, nothing more) and checked in place by the one check of entries
//! ([`Entries::check`]), which parses its text with serde_json's slice reader. Only one chunk
//! (or one entry, if larger) is held at a time.
//!
//! The framing checks the file's structure (`{"tokens": [ … ], "deployments_seen": […]}`) but
//! not the text of values: anything it does not expect — a syntax error, a key it does not
//! know, an entry whose text is not JSON, an I/O error — hands the file over to serde_json's
//! reader ([`format::read_entries`]), read again from the start, which refuses it with the
//! error it always gave (or reads what the framing was too strict for). The entries this
//! reading already handed over are checked again but not handed over twice. A refused entry
//! is refused here, with the same error: both readers check entries through
//! [`Entries::check`], in file order.

use std::io::{self, Read as _};
use std::ops::ControlFlow;

use super::format::{self, Entries, FileContentError, TokenFileFormat};
use crate::record::TokenEntry;
use crate::store::DeploymentSeen;

/// Bytes read at a time (the buffer grows only for an entry larger than this).
const CHUNK: usize = 1 << 20;

/// Reads the JSON token file `file` from its current position, at most `cap` bytes, handing
/// each checked entry to `each` (see [`format::read_entries`]: the same answers and errors).
pub(crate) fn read_json<R: io::Read + io::Seek>(
    mut file: R,
    cap: u64,
    across: bool,
    mut each: impl FnMut(TokenEntry) -> ControlFlow<()>,
) -> Result<Option<Vec<DeploymentSeen>>, FileContentError> {
    let format = TokenFileFormat::Json;
    let io_error = |e: io::Error| FileContentError::syntax(format, e.to_string());
    let start = file.stream_position().map_err(io_error)?;
    let mut handed = 0usize;
    let framed = read_framed(
        &mut Frames::new((&mut file).take(cap)),
        Entries::new(across),
        |entry| {
            handed += 1;
            each(entry)
        },
    );
    if let Ok(read) = framed {
        return read;
    }
    file.seek(io::SeekFrom::Start(start)).map_err(io_error)?;
    let reader = io::BufReader::with_capacity(1 << 16, (&mut file).take(cap));
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut skip = handed;
    format::read_entries(&mut de, format, across, |entry| {
        if skip > 0 {
            skip -= 1;
            return ControlFlow::Continue(());
        }
        each(entry)
    })
}

/// The framing met something it does not expect: serde_json's reader takes over.
struct Unsure;

/// What [`read_json`] answers.
type Read = Result<Option<Vec<DeploymentSeen>>, FileContentError>;

/// The file's outer object, framed. `Err(Unsure)` hands it over.
fn read_framed<R: io::Read>(
    frames: &mut Frames<R>,
    mut entries: Entries,
    mut each: impl FnMut(TokenEntry) -> ControlFlow<()>,
) -> Result<Read, Unsure> {
    let format = TokenFileFormat::Json;
    frames.expect(b'{')?;
    let (mut tokens, mut deployments_seen) = (false, None);
    loop {
        match frames.value()? {
            b"\"tokens\"" if !tokens => {
                tokens = true;
                frames.expect(b':')?;
                frames.expect(b'[')?;
                if frames.peek()? == b']' {
                    frames.bump();
                } else {
                    loop {
                        let text = std::str::from_utf8(frames.value()?).map_err(|_| Unsure)?;
                        match entries.check(text, format) {
                            Ok(entry) => {
                                if each(entry).is_break() {
                                    return Ok(Ok(None));
                                }
                            }
                            // Not JSON: serde's reader says where.
                            Err(FileContentError::Syntax { .. }) => return Err(Unsure),
                            Err(refused) => return Ok(Err(refused)),
                        }
                        match frames.next()? {
                            b',' => continue,
                            b']' => break,
                            _ => return Err(Unsure),
                        }
                    }
                }
            }
            b"\"deployments_seen\"" if deployments_seen.is_none() => {
                frames.expect(b':')?;
                let values: Vec<serde_json::Value> =
                    serde_json::from_slice(frames.value()?).map_err(|_| Unsure)?;
                match format::deployments(values, format) {
                    Ok(seen) => deployments_seen = Some(seen),
                    Err(refused) => return Ok(Err(refused)),
                }
            }
            _ => return Err(Unsure),
        }
        match frames.next()? {
            b',' => continue,
            b'}' => break,
            _ => return Err(Unsure),
        }
    }
    if !tokens || frames.peek_or_end()?.is_some() {
        return Err(Unsure);
    }
    Ok(Ok(Some(deployments_seen.unwrap_or_default())))
}

/// A reader's bytes, a chunk at a time, and the framing of JSON values in them.
struct Frames<R> {
    reader: R,
    /// The chunk; the unread part is `buf[at..end]`.
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

impl<R: io::Read> Frames<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            buf: vec![0; CHUNK],
            at: 0,
            end: 0,
        }
    }

    /// Reads more: the unread part moves to the front, the buffer doubles when the unread
    /// part fills it. `false` at the end of the file; `Err` on a read error (serde's reader
    /// meets it again, and reports it).
    fn fill(&mut self) -> Result<bool, Unsure> {
        self.buf.copy_within(self.at..self.end, 0);
        self.end -= self.at;
        self.at = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(read) => {
                    self.end += read;
                    return Ok(read > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Unsure),
            }
        }
    }

    /// Reads more, or `Err` at the end of the file (inside a value: serde's reader says so).
    fn more(&mut self) -> Result<(), Unsure> {
        match self.fill()? {
            true => Ok(()),
            false => Err(Unsure),
        }
    }

    /// The byte `offset` bytes after the unread part's start, reading more if needed.
    #[inline]
    fn byte(&mut self, offset: usize) -> Result<u8, Unsure> {
        while self.at + offset >= self.end {
            self.more()?;
        }
        Ok(self.buf[self.at + offset])
    }

    /// The next byte that is not JSON whitespace (not consumed); `None` at the end of the
    /// file.
    fn peek_or_end(&mut self) -> Result<Option<u8>, Unsure> {
        loop {
            if self.at == self.end && !self.fill()? {
                return Ok(None);
            }
            match self.buf[self.at] {
                b' ' | b'\t' | b'\n' | b'\r' => self.at += 1,
                byte => return Ok(Some(byte)),
            }
        }
    }

    /// The next byte that is not JSON whitespace (not consumed).
    fn peek(&mut self) -> Result<u8, Unsure> {
        self.peek_or_end()?.ok_or(Unsure)
    }

    /// Consumes the byte [`peek`](Self::peek) answered.
    fn bump(&mut self) {
        self.at += 1;
    }

    /// The next byte that is not JSON whitespace, consumed.
    fn next(&mut self) -> Result<u8, Unsure> {
        let byte = self.peek()?;
        self.bump();
        Ok(byte)
    }

    fn expect(&mut self, expected: u8) -> Result<(), Unsure> {
        match self.next()? {
            byte if byte == expected => Ok(()),
            _ => Err(Unsure),
        }
    }

    /// The text of the next value, consumed: a string, an object or an array (to its
    /// matching bracket, strings skipped whole), or a scalar (to the next delimiter). Not
    /// checked: its reader does that.
    fn value(&mut self) -> Result<&[u8], Unsure> {
        let length = match self.peek()? {
            b'"' => self.string_end(1)?,
            b'{' | b'[' => {
                let (mut depth, mut offset) = (0usize, 0);
                loop {
                    let byte = self.byte(offset)?;
                    offset += 1;
                    match byte {
                        b'"' => offset = self.string_end(offset)?,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                break offset;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                let mut offset = 0;
                while !matches!(
                    self.byte(offset)?,
                    b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    offset += 1;
                }
                offset
            }
        };
        let start = self.at;
        self.at += length;
        Ok(&self.buf[start..start + length])
    }

    /// The offset just after the closing quote of the string whose text starts `offset`
    /// bytes after the unread part's start (after its opening quote).
    fn string_end(&mut self, mut offset: usize) -> Result<usize, Unsure> {
        loop {
            let unread = &self.buf[self.at + offset..self.end];
            match unread.iter().position(|&b| b == b'"' || b == b'\\') {
                Some(found) => {
                    offset += found;
                    if self.buf[self.at + offset] == b'"' {
                        return Ok(offset + 1);
                    }
                    // An escape: the next byte is never the end.
                    self.byte(offset + 1)?;
                    offset += 2;
                }
                None => {
                    offset = self.end - self.at;
                    self.more()?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use chrono::Utc;

    use super::*;
    use crate::NewToken;

    /// What a reading answers and hands over, as text: the error's, or the deployments', and
    /// the uids handed over, in order.
    type Outcome = (String, Vec<String>);

    fn chunked(text: &[u8], across: bool) -> Outcome {
        let mut uids = Vec::new();
        let read = read_json(Cursor::new(text), u64::MAX, across, |entry| {
            uids.push(entry.token.uid);
            ControlFlow::Continue(())
        });
        (format!("{read:?}"), uids)
    }

    /// serde_json's reader over the same bytes: what the chunked reading must answer.
    fn serde(text: &[u8], across: bool) -> Outcome {
        let mut uids = Vec::new();
        let mut de = serde_json::Deserializer::from_reader(Cursor::new(text));
        let read = format::read_entries(&mut de, TokenFileFormat::Json, across, |entry| {
            uids.push(entry.token.uid);
            ControlFlow::Continue(())
        });
        (format!("{read:?}"), uids)
    }

    fn entries(n: usize, description: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                let (_, entry) = NewToken::new(format!("t{i}"))
                    .description(description)
                    .mint_entry(Utc::now())
                    .unwrap();
                serde_json::to_string(&entry).unwrap()
            })
            .collect()
    }

    fn file(entries: &[String]) -> String {
        format!("{{\"tokens\": [\n{}\n]}}\n", entries.join(",\n"))
    }

    #[test]
    fn every_file_reads_as_through_serde_json() {
        let three = entries(3, "");
        let valid = file(&three);
        let mut cases: Vec<Vec<u8>> = vec![
            valid.clone().into(),
            // Whatever the framing leaves to serde's reader, valid or not.
            valid.replacen("\"tokens\"", "\"tok\\u0065ns\"", 1).into(),
            valid
                .replace("]}\n", "], \"deployments_s\\u0065en\": []}")
                .into(),
            valid
                .replace("]}\n", "], \"deployments_seen\": [{\"name\": \"a\", \"last_seen\": \"2026-01-01T00:00:00Z\"}]}")
                .into(),
            valid.replace("]}\n", "], \"deployments_seen\": [{\"name\": \"no such name!\"}]}").into(),
            valid.replace("]}\n", "], \"deployments_seen\": 7}").into(),
            valid.replace("{\"tokens\"", "{\"deployments_seen\": [], \"tokens\"").into(),
            valid.replace("]}\n", "], \"tokens\": []}").into(),
            valid.replace("]}\n", "], \"other\": 1}").into(),
            valid.replace("]}\n", "]} x").into(),
            valid.replace("\n]}", ",\n]}").into(),
            valid[..valid.len() - 10].into(),
            valid.replacen("\"name\":", "\"secret\": \"x\", \"name\":", 1).into(),
            valid.replacen("\"name\":", "\"name\": 12e, \"x\":", 1).into(),
            valid.replacen("{\"uid\"", "7, {\"uid\"", 1).into(),
            valid.replacen("{\"uid\"", "[{\"uid\"", 1).into(),
            format!("{{\"tokens\": [{}, {}]}}", three[0], three[0]).into(),
            b"{\"tokens\": []}".to_vec(),
            b"{\"tokens\": [] }  \n".to_vec(),
            b"{}".to_vec(),
            b"[]".to_vec(),
            b"".to_vec(),
            b"  ".to_vec(),
            b"{\"tokens\": [\"pe_\\\"\"]}".to_vec(),
        ];
        // Not UTF-8 inside an entry.
        let mut bytes = valid.clone().into_bytes();
        let at = valid.find("\"t1\"").unwrap() + 1;
        bytes[at] = 0xff;
        cases.push(bytes);
        for case in cases {
            for across in [true, false] {
                assert_eq!(
                    chunked(&case, across),
                    serde(&case, across),
                    "{}",
                    String::from_utf8_lossy(&case)
                );
            }
        }
    }

    #[test]
    fn entries_across_chunks_and_larger_than_one_are_read_whole() {
        let mut many = entries(6_000, "");
        // Larger than a chunk: the buffer grows (the check then refuses its description).
        let big = entries(1, "d").remove(0);
        many.push(big.replace("\"d\"", &format!("\"{}\"", "d".repeat(CHUNK + 10))));
        let text = file(&many);
        assert!(text.len() > 2 * CHUNK);
        let (read, uids) = chunked(text.as_bytes(), true);
        assert_eq!((read.clone(), uids.clone()), serde(text.as_bytes(), true));
        assert_eq!(uids.len(), 6_000, "{read}");
    }

    #[test]
    fn a_valid_file_is_read_by_the_framing_alone() {
        let text = file(&entries(3, "")).replace("]}\n", "], \"deployments_seen\": []}");
        let mut frames = Frames::new(Cursor::new(text.as_bytes()));
        let mut handed = 0;
        let read = read_framed(&mut frames, Entries::new(true), |_| {
            handed += 1;
            ControlFlow::Continue(())
        });
        assert!(matches!(read, Ok(Ok(Some(_)))));
        assert_eq!(handed, 3);
    }

    #[test]
    fn a_hand_over_after_some_entries_hands_none_twice() {
        let text = file(&entries(5, "")).replace("]}\n", "], \"deployments_s\\u0065en\": []}");
        let mut uids = Vec::new();
        let read = read_json(Cursor::new(text.as_bytes()), u64::MAX, false, |entry| {
            uids.push(entry.token.uid);
            ControlFlow::Continue(())
        });
        assert_eq!(read, Ok(Some(Vec::new())));
        let mut unique = uids.clone();
        unique.dedup();
        assert_eq!((uids.len(), unique.len()), (5, 5));
    }
}
