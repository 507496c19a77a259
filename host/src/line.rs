//! Framing of the control protocol's request line, independent of any socket: feed it the bytes
//! as they arrive, get back one line, an error, or "need more". End of input (a client that
//! half-closes without a newline) ends the line too. Kept free of I/O so that every shell frames
//! requests the same way.

use std::fmt;

/// Why the bytes received are not a request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// More than this many bytes before the newline (or the end of input).
    TooLong(usize),
    /// The line is not UTF-8.
    NotUtf8,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong(max) => write!(f, "request too long (more than {max} bytes)"),
            LineError::NotUtf8 => f.write_str("request is not UTF-8"),
        }
    }
}

impl std::error::Error for LineError {}

/// Collects one line of at most `max` bytes (not counting the newline).
///
/// It yields at most one line: once [`LineFramer::push`] or [`LineFramer::finish`] has returned
/// a line or an error, the framer is done and later input is ignored (`Ok(None)`), which is
/// what a one-request-per-connection protocol wants.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    max: usize,
    done: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        LineFramer {
            buf: Vec::new(),
            max,
            done: false,
        }
    }

    /// Adds received bytes. `Ok(Some(line))`: the line is complete (without its newline; bytes
    /// after the newline are ignored); `Ok(None)`: need more; `Err`: the input cannot become
    /// a line, and will not (the error is reported as soon as it is certain).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<&str>, LineError> {
        if self.done {
            return Ok(None);
        }
        let newline = bytes.iter().position(|&b| b == b'\n');
        let part = &bytes[..newline.unwrap_or(bytes.len())];
        if self.buf.len() + part.len() > self.max {
            self.done = true;
            return Err(LineError::TooLong(self.max));
        }
        self.buf.extend_from_slice(part);
        if newline.is_none() {
            return Ok(None);
        }
        self.line().map(Some)
    }

    /// The input ended. `Ok(Some(line))`: what was received since the last push forms the line
    /// (a request without its newline); `Ok(None)`: nothing was received (or the line was
    /// already returned).
    pub fn finish(&mut self) -> Result<Option<&str>, LineError> {
        if self.done || self.buf.is_empty() {
            self.done = true;
            return Ok(None);
        }
        self.line().map(Some)
    }

    /// Whether a line or an error has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn line(&mut self) -> Result<&str, LineError> {
        self.done = true;
        std::str::from_utf8(&self.buf).map_err(|_| LineError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_arrives_in_pieces() {
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"sta"), Ok(None));
        assert_eq!(f.push(b""), Ok(None));
        assert_eq!(f.push(b"tus\nextra"), Ok(Some("status")));
        assert!(f.is_done());
        // One line per framer: the rest is ignored.
        assert_eq!(f.push(b"more\n"), Ok(None));
        assert_eq!(f.finish(), Ok(None));
    }

    #[test]
    fn end_of_input_ends_the_line() {
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"ping"), Ok(None));
        assert_eq!(f.finish(), Ok(Some("ping")));
        assert_eq!(f.finish(), Ok(None));
    }

    #[test]
    fn nothing_then_end_of_input_is_no_line() {
        let mut f = LineFramer::new(64);
        assert_eq!(f.finish(), Ok(None));
        assert!(f.is_done());
        // An empty line is a line (the request parser refuses it with a message).
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"\n"), Ok(Some("")));
    }

    #[test]
    fn the_limit_counts_bytes_before_the_newline() {
        let mut f = LineFramer::new(4);
        assert_eq!(f.push(b"ping\n"), Ok(Some("ping")));
        let mut f = LineFramer::new(4);
        assert_eq!(f.push(b"pi"), Ok(None));
        assert_eq!(f.push(b"ng"), Ok(None));
        assert_eq!(f.finish(), Ok(Some("ping")));
        // Too long is known before any newline arrives, and stays an error.
        let mut f = LineFramer::new(4);
        assert_eq!(f.push(b"pin"), Ok(None));
        assert_eq!(f.push(b"gs"), Err(LineError::TooLong(4)));
        assert_eq!(f.push(b"\n"), Ok(None));
        assert_eq!(f.finish(), Ok(None));
        let mut f = LineFramer::new(4);
        assert_eq!(f.push(b"pings\n"), Err(LineError::TooLong(4)));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"\xff\xfe\n"), Err(LineError::NotUtf8));
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"st\xc3"), Ok(None));
        assert_eq!(f.finish(), Err(LineError::NotUtf8));
        // A character split across pushes is fine.
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"caf\xc3"), Ok(None));
        assert_eq!(f.push(b"\xa9\n"), Ok(Some("caf\u{e9}")));
    }

    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded() {
        // A small deterministic generator instead of a dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut f = LineFramer::new(16);
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % 12) as usize;
                let chunk: Vec<u8> = (0..len).map(|i| (x >> (i * 5)) as u8).collect();
                if let Ok(Some(line)) = f.push(&chunk) {
                    assert!(line.len() <= 16 && !line.contains('\n'));
                }
                assert!(f.buf.len() <= 16);
            }
            let _ = f.finish();
        }
    }
}
