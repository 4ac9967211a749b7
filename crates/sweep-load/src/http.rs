//! The load generator's own HTTP/1.1 client: one request at a time per connection, kept alive in
//! a pool, the response read with `recvmsg` so that every read carries the kernel's receive
//! timestamp (`SO_TIMESTAMPNS`) — when the bytes reached this host, not when a busy client got
//! round to reading them. A general-purpose client (reqwest, hyper) cannot give those, and
//! costs several times more CPU per streamed token.

use std::io::{self, IoSliceMut, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};

/// One connection: a non-blocking socket, read by a [`super::reader::Reader`]'s own `epoll`
/// loop, not by the async runtime.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// How many responses it has carried (a reused connection may have been closed by the server).
    pub served: u64,
    /// The reading task that watches it and its key there, once it has carried a request.
    pub watch: Option<(usize, u64)>,
}

/// Where requests go, and the idle connections to it.
#[derive(Debug)]
pub struct Pool {
    address: SocketAddr,
    /// `host:port` for the `Host` header.
    host: String,
    idle: Mutex<Vec<Connection>>,
}

/// One read: how many bytes, and the wall-clock ns at which the kernel received the last of them.
pub type Read = (usize, Option<u64>);

impl Pool {
    pub fn new(address: SocketAddr, host: String) -> Self {
        Pool { address, host, idle: Mutex::new(Vec::new()) }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// An idle connection, else a new one.
    pub async fn get(&self) -> io::Result<Connection> {
        match self.try_get() {
            Some(connection) => Ok(connection),
            None => self.connect().await,
        }
    }

    /// An idle connection, if there is one, without waiting.
    pub fn try_get(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Gives back a connection that carried nothing since it was taken.
    pub fn give_back(&self, connection: Connection) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(connection);
    }

    /// A new connection, connected by the runtime (a connect can take long) and then handed to
    /// plain non-blocking I/O.
    pub async fn connect(&self) -> io::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        // Without timestamps the reads still work; arrival is then taken when read.
        let _ = setsockopt(&stream, sockopt::ReceiveTimestampns, &true);
        let stream = stream.into_std()?;
        Ok(Connection { stream, served: 0, watch: None })
    }

    /// Keeps a connection whose response was read to its end.
    pub fn put(&self, mut connection: Connection) {
        connection.served += 1;
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(connection);
    }
}

impl Connection {
    /// Writes what the socket takes now, from any thread, without waiting: the bytes written,
    /// or `WouldBlock`.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        (&self.stream).write(bytes)
    }

    /// One read of what has arrived, without waiting (`WouldBlock` when nothing has); 0 bytes
    /// means the server closed the connection. `cmsg` (from [`cmsg_buffer`]) takes the receive
    /// timestamp; a reading task keeps one for all its connections.
    pub fn try_read(&self, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Read> {
        let mut iov = [IoSliceMut::new(buf)];
        cmsg.clear();
        let message = recvmsg::<()>(self.stream.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
        // Acknowledge at once, every read (Linux drops quick-ack mode by itself). A server that
        // writes its stream without TCP_NODELAY (Dynamo 1.6.1's frontend) holds each small
        // write until the last one is acknowledged; with the kernel's delayed ACK (up to 40 ms)
        // a kept-alive stream then arrived whole ~43 ms late, where a user's client saw its
        // first token in 4 ms. One `setsockopt` per read is the cost.
        if message.bytes > 0 {
            let _ = socket2::SockRef::from(&self.stream).set_tcp_quickack(true);
        }
        let mut stamp = None;
        if let Ok(cmsgs) = message.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(t) = c {
                    stamp = Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64);
                }
            }
        }
        Ok((message.bytes, stamp))
    }
}

/// Room for a read's receive timestamp.
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::sys::time::TimeSpec)
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// An HTTP/1.1 body's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// The status line and the headers that matter here, once the head has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    pub keep_alive: bool,
    /// Bytes of the buffer the head took.
    pub length: usize,
    /// Where a redirect (3xx) points; kept for redirects only, so an answer allocates nothing.
    pub location: Option<String>,
}

/// Parses a response head at the start of `buf`; `None` until it is complete.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad response head: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut framing = Framing::Close;
    let mut keep_alive = response.version == Some(1);
    let mut location = None;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or_default().trim();
        if header.name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if header.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let n = value
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
            framing = Framing::Length(n);
        } else if header.name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        } else if (300..400).contains(&status) && header.name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        }
    }
    if framing == Framing::Close {
        keep_alive = false;
    }
    Ok(Some(Head { status, framing, keep_alive, length, location }))
}

/// Incremental decoding of a chunked body.
#[derive(Debug, Default)]
pub struct Chunked {
    /// Data bytes left in the current chunk; `None` while reading a size line.
    left: Option<usize>,
    /// Expecting the CRLF that ends a chunk's data.
    crlf: bool,
    /// The last (empty) chunk was seen: reading the trailer up to its blank line.
    trailer: bool,
    pub done: bool,
}

impl Chunked {
    /// Decodes what it can from `input` into `out`; returns the bytes consumed.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut at = 0;
        while at < input.len() && !self.done {
            if let Some(left) = self.left {
                let n = left.min(input.len() - at);
                out.extend_from_slice(&input[at..at + n]);
                at += n;
                if left == n {
                    self.left = None;
                    self.crlf = true;
                } else {
                    self.left = Some(left - n);
                }
                continue;
            }
            let Some(end) = input[at..].windows(2).position(|w| w == b"\r\n") else { break };
            let line = &input[at..at + end];
            at += end + 2;
            if self.crlf {
                if !line.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "chunk data not followed by CRLF",
                    ));
                }
                self.crlf = false;
            } else if self.trailer {
                if line.is_empty() {
                    self.done = true;
                }
            } else {
                let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                let size = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                if size == 0 {
                    self.trailer = true;
                } else {
                    self.left = Some(size);
                }
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        for split in 0..body.len() {
            let mut decoder = Chunked::default();
            let mut out = Vec::new();
            let mut pending = body[..split].to_vec();
            let used = decoder.decode(&pending, &mut out).expect("valid");
            pending.drain(..used);
            pending.extend_from_slice(&body[split..]);
            let used = decoder.decode(&pending, &mut out).expect("valid");
            assert_eq!(used, pending.len(), "split at {split}");
            assert_eq!(out, b"hello, world");
            assert!(decoder.done, "split at {split}");
        }
        assert!(Chunked::default().decode(b"zz\r\n", &mut Vec::new()).is_err());
    }

    /// A response (head and chunked body) cut into random reads decodes as it does whole;
    /// mutated bytes are an error or a shorter body, never a panic or a loop that does not end.
    /// 100,000 cases: `cargo test --release -p sweep-load -- --ignored fuzz`.
    fn fuzz_response(cases: u32) {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let response: &[u8] =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
            5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        let decode = |bytes: &[u8], cuts: &[usize]| -> Result<(Option<Head>, Vec<u8>, bool), io::Error> {
            let mut pending: Vec<u8> = Vec::new();
            let mut head = None;
            let mut decoder = Chunked::default();
            let mut out = Vec::new();
            let mut at = 0;
            let mut cuts = cuts.iter().cycle();
            while at < bytes.len() {
                let end = (at + cuts.next().copied().unwrap_or(bytes.len())).min(bytes.len());
                pending.extend_from_slice(&bytes[at..end]);
                at = end;
                if head.is_none() {
                    match parse_head(&pending)? {
                        Some(h) => {
                            pending.drain(..h.length);
                            head = Some(h);
                        }
                        None => continue,
                    }
                }
                let used = decoder.decode(&pending, &mut out)?;
                assert!(used <= pending.len());
                pending.drain(..used);
            }
            Ok((head, out, decoder.done))
        };
        let (head, body, done) = decode(response, &[response.len()]).expect("valid");
        assert_eq!(
            (head.map(|h| (h.status, h.framing)), body.as_slice(), done),
            (Some((200, Framing::Chunked)), &b"hello, world"[..], true)
        );
        let strategy = (
            prop::collection::vec(1usize..40, 1..12),
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        );
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        runner
            .run(&strategy, |(cuts, flips)| {
                let split = decode(response, &cuts).expect("a valid response in any reads");
                prop_assert_eq!(split.1.as_slice(), &b"hello, world"[..]);
                prop_assert!(split.2);
                let mut mutated = response.to_vec();
                for (at, byte) in &flips {
                    let i = at % mutated.len();
                    mutated[i] ^= byte | 1;
                }
                // Whatever it decodes to, it returns.
                let _ = decode(&mutated, &cuts);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn fuzz_http_responses() {
        fuzz_response(2_000);
    }

    #[test]
    #[ignore = "100,000 cases: cargo test --release -p sweep-load -- --ignored fuzz"]
    fn fuzz_http_responses_long() {
        fuzz_response(100_000);
    }

    #[test]
    fn reads_carry_the_kernels_receive_time() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
            let address = listener.local_addr().expect("address");
            let pool = Pool::new(address, address.to_string());
            let connection = pool.connect().await.expect("connects");
            let (mut server, _) = listener.accept().await.expect("accepts");
            let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
            // The kernel turns receive stamps on a moment after the first socket asks (a deferred
            // static key) and now and then delivers a read without one; those reads are timed when
            // read (the caller's fallback). So a few tries, of which one must carry a stamp.
            for _ in 0..5 {
                let before = now();
                server.write_all(b"hello").await.expect("writes");
                // Read late: the stamp still says when the bytes came, not when they were read.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let read_at = now();
                let mut buf = [0u8; 16];
                let (n, stamp) = connection.try_read(&mut buf, &mut cmsg_buffer()).expect("reads");
                assert_eq!(&buf[..n], b"hello");
                if let Some(stamp) = stamp {
                    assert!(
                        stamp >= before.as_nanos() as u64 && stamp + 40_000_000 < read_at.as_nanos() as u64,
                        "{stamp}"
                    );
                    return;
                }
            }
            panic!("no read carried a kernel receive timestamp (SO_TIMESTAMPNS)");
        });
    }

    #[test]
    fn heads_say_how_the_body_ends() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\ndata")
            .expect("valid")
            .expect("whole");
        assert_eq!(
            (head.status, head.framing, head.keep_alive, head.length),
            (200, Framing::Chunked, true, 47)
        );
        let head = parse_head(b"HTTP/1.1 503 x\r\ncontent-length: 12\r\nconnection: close\r\n\r\n")
            .expect("ok")
            .expect("whole");
        assert_eq!((head.status, head.framing, head.keep_alive), (503, Framing::Length(12), false));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-").expect("ok"), None);
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
