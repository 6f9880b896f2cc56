//! True file lines for CSV records. The csv crate reports a record at the position where the
//! previous one stopped, which is before any blank lines it skips and before the LF of a CRLF
//! (it ends a record at the CR): in a file saved by Excel every row would be numbered one line
//! early. [`LineBreaks`] notes where each run of two or more line-break bytes lies as the bytes
//! go by, so that the line a record really starts on can be told from its reported position.

use std::collections::VecDeque;
use std::io::{self, Read};

/// A reader that remembers the runs of `\r`/`\n` bytes longer than one byte still ahead of
/// the parser (a lone `\n` is always consumed with the record it ends, so it never matters).
pub struct LineBreaks<R> {
    inner: R,
    offset: u64,
    current: Option<Run>,
    runs: VecDeque<Run>,
}

#[derive(Debug)]
struct Run {
    start: u64,
    end: u64,
    /// Offsets of the run's `\n` bytes.
    lfs: Vec<u64>,
}

impl<R> LineBreaks<R> {
    pub fn new(inner: R) -> LineBreaks<R> {
        LineBreaks {
            inner,
            offset: 0,
            current: None,
            runs: VecDeque::new(),
        }
    }

    /// The line a record reported at (`line`, `byte`) starts on: its reported line plus the
    /// line feeds of the break run it was reported in front of. Call it for records in file
    /// order; runs behind `byte` are forgotten.
    pub fn true_line(&mut self, line: u64, byte: u64) -> u64 {
        while self.runs.front().is_some_and(|run| run.end <= byte) {
            self.runs.pop_front();
        }
        let skipped = match self.runs.front() {
            Some(run) if run.start <= byte => run.lfs.iter().filter(|&&lf| lf >= byte).count(),
            _ => 0,
        };
        line + skipped as u64
    }

    fn note(&mut self, bytes: &[u8]) {
        let mut last_break = None;
        for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
            let offset = self.offset + at as u64;
            let continues = self.current.as_ref().is_some_and(|run| run.end == offset);
            if !continues {
                self.close_run();
                self.current = Some(Run {
                    start: offset,
                    end: offset,
                    lfs: Vec::new(),
                });
            }
            let run = self.current.as_mut().expect("a run was just opened");
            run.end = offset + 1;
            if bytes[at] == b'\n' {
                run.lfs.push(offset);
            }
            last_break = Some(at);
        }
        if last_break != bytes.len().checked_sub(1) {
            // The chunk ends in ordinary bytes, so no run continues into the next one.
            self.close_run();
        }
        self.offset += bytes.len() as u64;
    }

    fn close_run(&mut self) {
        if let Some(run) = self.current.take()
            && run.end - run.start > 1
        {
            self.runs.push_back(run);
        }
    }
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.close_run();
        } else {
            self.note(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The true first line of every record of `input`, as ingest reads it.
    fn lines_of(input: &str, chunk: usize) -> Vec<u64> {
        let chunked = ChunkedReader {
            bytes: input.as_bytes(),
            chunk,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(LineBreaks::new(chunked));
        let mut record = csv::ByteRecord::new();
        let mut lines = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let position = record.position().unwrap();
            let (line, byte) = (position.line(), position.byte());
            lines.push(reader.get_mut().true_line(line, byte));
        }
        lines
    }

    /// Hands out at most `chunk` bytes a read, so runs cross read boundaries.
    struct ChunkedReader<'a> {
        bytes: &'a [u8],
        chunk: usize,
    }

    impl Read for ChunkedReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn records_are_numbered_by_the_line_they_start_on() {
        for chunk in [1, 2, 3, 1 << 16] {
            assert_eq!(lines_of("h\nA\nB\n", chunk), [1, 2, 3], "LF, chunk {chunk}");
            assert_eq!(lines_of("h\r\nA\r\nB\r\n", chunk), [1, 2, 3], "CRLF");
            assert_eq!(lines_of("h\nA\n\nB\n", chunk), [1, 2, 4], "a blank line");
            assert_eq!(
                lines_of("h\r\nA\r\n\r\n\r\nB", chunk),
                [1, 2, 5],
                "CRLF blanks"
            );
            assert_eq!(lines_of("\n\nh\nA\n", chunk), [3, 4], "blank lines first");
            assert_eq!(
                lines_of("h\n\"x\ny\"\n\nB\n", chunk),
                [1, 2, 5],
                "quoted newline"
            );
        }
    }
}
