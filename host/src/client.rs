//! One request over pharosd's control socket, bounded in time, with errors that say what is
//! wrong with the path rather than only the errno.

use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the CLI waits for pharosd by default: connecting, sending and the whole answer.
/// A live daemon answers in well under a millisecond; a stopped (SIGSTOPped) or wedged one
/// never does, and the operator should hear so quickly. `pharos --timelimit` changes it.
pub const DEFAULT_TIMELIMIT: Duration = Duration::from_secs(5);

/// Longest answer accepted (a `status` of 256 nodes is about 20 KiB).
const MAX_ANSWER: usize = 1 << 20;

/// What kind of file `path` is, for messages ("a regular file", "a directory").
fn what_is(path: &Path) -> Option<&'static str> {
    let t = std::fs::metadata(path).ok()?.file_type();
    Some(if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a socket"
    })
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

fn no_answer(socket: &Path, limit: Duration) -> String {
    format!(
        "no answer from pharosd at {} within {} (is it stopped or hung?)",
        socket.display(),
        seconds(limit)
    )
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Why connecting to `socket` failed, in words an operator can act on.
fn connect_error(socket: &Path, e: &io::Error, limit: Duration) -> String {
    let p = socket.display();
    if timed_out(e) {
        // A full accept queue: the daemon is not accepting.
        return no_answer(socket, limit);
    }
    match what_is(socket) {
        None if e.kind() == io::ErrorKind::NotFound => {
            format!("no control socket at {p} (is pharosd running?)")
        }
        Some(kind) if kind != "a socket" => {
            format!("{p} is {kind}, not a pharosd control socket")
        }
        Some(_) if e.kind() == io::ErrorKind::ConnectionRefused => {
            format!("nothing listens on {p}: pharosd is not running (the socket is stale)")
        }
        _ => format!("cannot connect to pharosd at {p}: {e}"),
    }
}

fn connect(socket: &Path, limit: Duration) -> Result<UnixStream, String> {
    let fail = |e: io::Error| connect_error(socket, &e, limit);
    let addr = SockAddr::unix(socket).map_err(fail)?;
    let s = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
    // A blocking connect to a Unix socket whose accept queue is full waits up to the send
    // time-out (SO_SNDTIMEO), then fails with EAGAIN.
    s.set_write_timeout(Some(limit)).map_err(fail)?;
    s.connect(&addr).map_err(fail)?;
    Ok(s.into())
}

/// Sends one request line and returns the daemon's one-line JSON answer (without the newline).
/// Everything, from connecting to the last byte of the answer, happens within `limit`.
pub fn request(socket: &Path, line: &str, limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut s = connect(socket, limit)?;
    let _ = s.set_write_timeout(left().or(Some(Duration::from_millis(1))));
    s.write_all(line.as_bytes()).map_err(|e| {
        if timed_out(&e) {
            no_answer(socket, limit)
        } else {
            format!("cannot send to pharosd: {e}")
        }
    })?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(wait) = left() else {
            return Err(no_answer(socket, limit));
        };
        let _ = s.set_read_timeout(Some(wait));
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                if answer.contains(&b'\n') || answer.len() > MAX_ANSWER {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => return Err(no_answer(socket, limit)),
            Err(e) => return Err(format!("no answer from pharosd: {e}")),
        }
    }
    if answer.is_empty() {
        return Err("pharosd closed the connection without answering".into());
    }
    let end = answer
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(answer.len());
    String::from_utf8(answer[..end].to_vec())
        .map_err(|_| "pharosd answered with bytes that are not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    use crate::scratch::Scratch;

    #[test]
    fn the_path_is_named_for_what_it_is() {
        let d = Scratch::new("kinds");
        let limit = Duration::from_secs(1);
        let file = d.join("file");
        std::fs::write(&file, "x").unwrap();
        let e = request(&file, "ping\n", limit).unwrap_err();
        assert!(
            e.ends_with("file is a regular file, not a pharosd control socket"),
            "{e}"
        );
        let e = request(&d.0, "ping\n", limit).unwrap_err();
        assert!(
            e.contains("is a directory, not a pharosd control socket"),
            "{e}"
        );
        let e = request(&d.join("missing"), "ping\n", limit).unwrap_err();
        assert!(e.starts_with("no control socket at ") && e.ends_with("(is pharosd running?)"));
        // A socket nobody listens on any more (the daemon died without removing it).
        let stale = d.join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let e = request(&stale, "ping\n", limit).unwrap_err();
        assert!(e.contains("the socket is stale"), "{e}");
    }

    #[test]
    fn a_daemon_that_does_not_answer_times_out() {
        let d = Scratch::new("silent");
        let path = d.join("s.sock");
        // Accepts (the kernel does, into the backlog) but never reads or answers: what a
        // SIGSTOPped daemon looks like from the client.
        let _listener = UnixListener::bind(&path).unwrap();
        let started = Instant::now();
        let e = request(&path, "ping\n", Duration::from_millis(300)).unwrap_err();
        let took = started.elapsed();
        assert!(
            e.starts_with("no answer from pharosd at ") && e.contains("within 0.3 s"),
            "{e}"
        );
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn a_full_accept_queue_times_out_too() {
        let d = Scratch::new("backlog");
        let path = d.join("s.sock");
        let l = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        l.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        l.listen(0).unwrap();
        // One waiting connection fills a queue of length 0; the next connect must wait.
        let _waiting = UnixStream::connect(&path).unwrap();
        let e = connect(&path, Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("within 0.2 s"), "{e}");
    }

    #[test]
    fn the_answer_is_one_line() {
        let d = Scratch::new("answer");
        let path = d.join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            for reply in [&b"{\"pong\":true,\"pnn\":1}\nrest"[..], b""] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 64];
                let _ = c.read(&mut buf).unwrap();
                c.write_all(reply).unwrap();
            }
        });
        let limit = Duration::from_secs(5);
        assert_eq!(
            request(&path, "ping\n", limit).unwrap(),
            "{\"pong\":true,\"pnn\":1}"
        );
        let e = request(&path, "ping\n", limit).unwrap_err();
        assert!(e.contains("without answering"), "{e}");
        t.join().unwrap();
    }
}
