//! The tasks that read every answer in flight: each an `epoll` loop over its sockets.
//!
//! A streamed answer is one small read per token. Waking an async task for each of them (the
//! reactor's event, the waker, the task's poll, its timeout polled again) cost more CPU than
//! the read itself; a reading task goes from the kernel's event straight to the read and the
//! parse, for every ready socket at once. The request's own task only starts an exchange and
//! waits for its end — one wake-up per request. The reading tasks run on the runtime's threads
//! (their `epoll` is watched by the runtime's poller), so an answer's end wakes its request
//! without a cross-thread hand-off: at 20,000 requests/s a reading thread of its own cost more
//! in wake-ups and registrations than it saved.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{oneshot, Notify};

use super::answer::{self, At, Fail, Measured};
use super::http::{cmsg_buffer, parse_head, Chunked, Connection, Framing, Head};

/// What a runtime thread does when it runs out of work. Waking at each answer's bytes costs
/// more CPU than reading them when a thousand streams each send a token every few milliseconds,
/// so an idle thread first pauses — and then finds the bytes of many sockets in one poll.
/// Arrival times do not move (they are the kernel's receive stamps); what a pause could cost is
/// bounded by what the reads so far showed: at most 1/10 of the time between a request's reads
/// (so a stream's consecutive tokens are not read together) and 1/100 of how long requests had
/// run when their bytes came (so a closed loop sends its next request only a little later).
#[derive(Debug, Default)]
pub struct Pace {
    /// Moving averages over reads, in ns: the time since the request's previous read (or its
    /// send), and the request's age.
    gap_ns: AtomicU64,
    age_ns: AtomicU64,
}

impl Pace {
    const LONGEST: Duration = Duration::from_micros(500);
    /// Shorter pauses cost about what they save.
    const SHORTEST: Duration = Duration::from_micros(50);

    fn observe(&self, gap: Duration, age: Duration) {
        // Averages over about 16 reads; the first sets them. Updates from several threads may
        // race; either value is a fair sample.
        let average = |slot: &AtomicU64, value: Duration| {
            let value = value.as_nanos().min(u128::from(u64::MAX >> 8)) as u64;
            let old = slot.load(Ordering::Relaxed);
            let new = if old == 0 { value } else { old - old / 16 + value / 16 };
            slot.store(new.max(1), Ordering::Relaxed);
        };
        average(&self.gap_ns, gap);
        average(&self.age_ns, age);
    }

    /// How long to pause before polling for events, if at all.
    pub fn pause(&self) -> Option<Duration> {
        let gap = self.gap_ns.load(Ordering::Relaxed) / 10;
        let age = self.age_ns.load(Ordering::Relaxed) / 100;
        let pause = Duration::from_nanos(gap.min(age)).min(Pace::LONGEST);
        (pause >= Pace::SHORTEST).then_some(pause)
    }
}

/// How an exchange ended, sent back to whoever started it.
#[derive(Debug)]
pub struct Outcome {
    pub measured: Measured,
    /// Whether the connection can carry another request, or how it failed.
    pub result: Result<bool, Fail>,
    /// The connection, when the answer was read to its end.
    pub connection: Option<Connection>,
}

/// One request on one connection: what is left to write, and the answer read so far.
#[derive(Debug)]
pub struct Exchange {
    connection: Connection,
    request: Arc<[u8]>,
    written: usize,
    stream: bool,
    at: At,
    /// The arrival of the read before (or the send), for the pace.
    last: Duration,
    state: State,
    measured: Measured,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Debug)]
enum State {
    Head { pending: Vec<u8> },
    Body { head: Head, chunked: Chunked, raw: Vec<u8>, data: Vec<u8>, received: usize, now: Duration },
}

impl Exchange {
    /// `request` of which the first `written` bytes are on `connection` already.
    pub fn new(
        connection: Connection,
        request: Arc<[u8]>,
        written: usize,
        stream: bool,
        at: At,
        measured: Measured,
        reply: oneshot::Sender<Outcome>,
    ) -> Self {
        Exchange {
            connection,
            request,
            written,
            stream,
            at,
            last: Duration::ZERO,
            state: State::Head { pending: Vec::new() },
            measured,
            reply,
        }
    }

    /// Writes what is left and reads what has arrived; `Some` once the exchange is over.
    /// `hung_up`: the event said the peer closed its side (or the socket failed), so the socket
    /// is read to its end: the close raised no edge of its own when it came with the last bytes.
    fn advance(&mut self, scratch: &mut Scratch, pace: &Pace, hung_up: bool) -> Option<Result<bool, Fail>> {
        while self.written < self.request.len() {
            match self.connection.try_write(&self.request[self.written..]) {
                Ok(0) => return Some(Err(Fail::BeforeAnswer(io::ErrorKind::WriteZero.into()))),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Some(Err(Fail::BeforeAnswer(e))),
            }
        }
        loop {
            let buf = &mut scratch.buf;
            let (n, stamp) = match self.connection.try_read(buf, &mut scratch.cmsg) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(self.broken(e))),
            };
            if n == 0 {
                return Some(self.closed());
            }
            let now = self.at.arrival(stamp);
            pace.observe(now.saturating_sub(self.last), now);
            self.last = now;
            self.measured.end = Some(now);
            if let Some(end) = self.take(&buf[..n], now, &mut scratch.spare) {
                return Some(end);
            }
            // A read that did not fill the buffer emptied the socket; the next bytes raise a
            // new edge. A close that came with these bytes does not: read on to it.
            if n < buf.len() && !hung_up {
                return None;
            }
        }
    }

    /// A read error: before any answer (worth a retry on a new connection) or inside one.
    fn broken(&self, e: io::Error) -> Fail {
        match &self.state {
            State::Head { pending } if pending.is_empty() => Fail::BeforeAnswer(e),
            _ => interrupted(e.to_string()),
        }
    }

    /// The server closed the connection.
    fn closed(&mut self) -> Result<bool, Fail> {
        match &self.state {
            State::Head { pending } if pending.is_empty() => Err(Fail::BeforeAnswer(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ))),
            State::Head { .. } => Err(interrupted("the connection closed inside the response head".into())),
            State::Body { head, .. } if head.framing == Framing::Close => Ok(self.finish()),
            State::Body { .. } => Err(interrupted("the connection closed before the response ended".into())),
        }
    }

    /// Takes one read's bytes, arrived at `now`; `Some` when the answer is complete. `spare` is
    /// the reading task's buffer: a stream's events are decoded there and parsed at once, so
    /// only the rest of an event cut by a read is kept with the exchange.
    fn take(&mut self, bytes: &[u8], now: Duration, spare: &mut Vec<u8>) -> Option<Result<bool, Fail>> {
        let fresh = match &mut self.state {
            State::Head { pending } => {
                pending.extend_from_slice(bytes);
                let head = match parse_head(pending) {
                    Ok(Some(head)) => head,
                    Ok(None) => return None,
                    Err(e) => return Some(Err(Fail::During("malformed_response", e.to_string()))),
                };
                let mut raw = std::mem::take(pending);
                raw.drain(..head.length);
                self.state = State::Body {
                    head,
                    chunked: Chunked::default(),
                    raw,
                    data: Vec::new(),
                    received: 0,
                    now,
                };
                &[][..]
            }
            State::Body { now: last, .. } => {
                *last = now;
                bytes
            }
        };
        let State::Body { head, chunked, raw, data, received, now } = &mut self.state else {
            return None;
        };
        let events = self.stream && (200..300).contains(&head.status);
        // Where the body's bytes go: straight to the spare buffer when nothing is left over.
        let to_spare = events && data.is_empty();
        let out = if to_spare {
            spare.clear();
            &mut *spare
        } else {
            &mut *data
        };
        let complete = match head.framing {
            Framing::Chunked => {
                let decoded = if raw.is_empty() {
                    chunked.decode(fresh, out).map(|used| raw.extend_from_slice(&fresh[used..]))
                } else {
                    raw.extend_from_slice(fresh);
                    chunked.decode(raw, out).map(|used| drop(raw.drain(..used)))
                };
                match decoded {
                    Ok(()) => chunked.done,
                    Err(e) => return Some(Err(Fail::During("malformed_response", e.to_string()))),
                }
            }
            Framing::Length(n) => {
                *received += raw.len() + fresh.len();
                out.append(raw);
                out.extend_from_slice(fresh);
                *received >= n
            }
            Framing::Close => {
                out.append(raw);
                out.extend_from_slice(fresh);
                false
            }
        };
        if events && !out.is_empty() {
            let consumed = answer::parse_events(out, *now, &mut self.measured);
            out.drain(..consumed);
            if to_spare {
                data.extend_from_slice(spare);
            }
        }
        complete.then(|| Ok(self.finish()))
    }

    /// The answer is whole: what it says, and whether the connection can carry another.
    fn finish(&mut self) -> bool {
        let State::Body { head, data, now, .. } = &self.state else { return false };
        if !(200..300).contains(&head.status) {
            let message: String = String::from_utf8_lossy(data).chars().take(500).collect();
            self.measured.error = answer::error(Some(head.status), "http_error", message);
        } else if !self.stream {
            match self.measured.take(data) {
                Ok(true) => {
                    self.measured.content_events = 1;
                    self.measured.content_times.push(*now);
                }
                Ok(false) => {}
                Err(e) => self.measured.error = answer::error(None, "malformed_response", e.to_string()),
            }
        }
        head.keep_alive
    }

    /// Sends the outcome back; the connection goes with it when it can carry another request.
    fn end(self, result: Result<bool, Fail>) {
        let connection = matches!(result, Ok(true)).then_some(self.connection);
        let _ = self.reply.send(Outcome { measured: self.measured, result, connection });
    }
}

fn interrupted(message: String) -> Fail {
    Fail::During("stream_interrupted", message)
}

/// The reading task's buffers, shared by all its exchanges (they stay in the cache).
struct Scratch {
    buf: Vec<u8>,
    cmsg: Vec<u8>,
    spare: Vec<u8>,
}

/// Where an exchange is read: which reading task, and its connection's key there.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    reader: usize,
    key: u64,
}

/// What the async side asks of a reading task.
#[derive(Default)]
struct Inbox {
    start: Vec<(u64, Exchange)>,
    abandon: Vec<u64>,
    /// Connections whose bytes (or end) came while no exchange was being read on them: the
    /// next exchange on one is read at once, since its edge has passed. A connection closed
    /// while idle leaves its key here; they are few and small.
    pending: HashSet<u64>,
}

/// An `epoll` instance that the runtime's own poller watches.
struct Polled(Epoll);

impl AsRawFd for Polled {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

struct Inner {
    epoll: AsyncFd<Polled>,
    inbox: Mutex<Inbox>,
    /// Rings for what the inbox holds that no socket event announces: abandons, and starts
    /// whose edge has passed.
    bell: Notify,
    next: AtomicU64,
}

impl Inner {
    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One reading task per runtime thread, each with its own `epoll` over the connections it
/// watches. A connection is registered with one of them the first time it carries a request and
/// stays there for its life (it leaves the `epoll` when it is closed), so a request costs no
/// registration.
pub struct Readers {
    tasks: Vec<(Arc<Inner>, tokio::task::JoinHandle<()>)>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("tasks", &self.tasks.len()).finish()
    }
}

impl Readers {
    /// Starts `count` reading tasks on the current runtime; `pace` learns from their reads.
    pub fn start(count: usize, pace: Arc<Pace>) -> io::Result<Self> {
        let tasks = (0..count.max(1))
            .map(|_| {
                let epoll = Polled(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?);
                // SAFETY: `Polled` owns its descriptor (an `OwnedFd` nobody else can reach),
                // so it stays open and the same for as long as the `AsyncFd` holds it.
                #[allow(unsafe_code)]
                let epoll = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE)? };
                let inner = Arc::new(Inner {
                    epoll,
                    inbox: Mutex::new(Inbox::default()),
                    bell: Notify::new(),
                    next: AtomicU64::new(0),
                });
                let task = tokio::spawn(read_loop(inner.clone(), pace.clone()));
                Ok((inner, task))
            })
            .collect::<io::Result<_>>()?;
        Ok(Readers { tasks, next: AtomicUsize::new(0) })
    }

    /// Hands `exchange` to the task that watches its connection (registering the connection
    /// with the next task in turn, the first time); its outcome comes on its reply channel.
    pub fn submit(&self, mut exchange: Exchange) -> io::Result<Ticket> {
        let (reader, key) = match exchange.connection.watch {
            Some(watch) => watch,
            None => {
                let reader = self.next.fetch_add(1, Ordering::Relaxed) % self.tasks.len();
                let inner = &self.tasks[reader].0;
                let key = inner.next.fetch_add(1, Ordering::Relaxed);
                // Edge-triggered: registering reports what is ready already, and after that
                // every new arrival (or room to write the rest) is one event.
                let flags =
                    EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
                inner.epoll.get_ref().0.add(exchange.connection.as_fd(), EpollEvent::new(flags, key))?;
                exchange.connection.watch = Some((reader, key));
                (reader, key)
            }
        };
        let inner = &self.tasks[reader].0;
        let mut inbox = inner.inbox();
        inbox.start.push((key, exchange));
        if inbox.pending.contains(&key) {
            inner.bell.notify_one();
        }
        Ok(Ticket { reader, key })
    }

    /// Stops reading the exchange of `ticket`: its outcome (what was measured so far, no
    /// connection) comes on its reply channel, unless it had ended already.
    pub fn abandon(&self, ticket: Ticket) {
        let inner = &self.tasks[ticket.reader].0;
        inner.inbox().abandon.push(ticket.key);
        inner.bell.notify_one();
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        // The exchanges still in flight go with their tasks; whoever awaits one hears that its
        // reply channel closed.
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// A reading task: one wait on its `epoll` (through the runtime's poller), then every ready
/// socket read in a loop, with no task woken per read.
async fn read_loop(inner: Arc<Inner>, pace: Arc<Pace>) {
    // Boxed, so the table itself stays small enough to stay in the cache.
    let mut exchanges: HashMap<u64, Box<Exchange>> = HashMap::new();
    let mut events = vec![EpollEvent::empty(); 1024];
    // Each ready connection's key, and whether its peer hung up.
    let mut ready: Vec<(u64, bool)> = Vec::new();
    let mut orphans: Vec<u64> = Vec::new();
    let mut scratch = Scratch { buf: vec![0u8; 16 * 1024], cmsg: cmsg_buffer(), spare: Vec::new() };
    loop {
        let failed = tokio::select! {
            biased;
            () = inner.bell.notified() => None,
            guard = inner.epoll.readable() => match guard {
                Ok(mut guard) => match guard.get_inner().0.wait(&mut events, EpollTimeout::ZERO) {
                    Ok(n) => {
                        // A full batch may have more behind it; otherwise the poller reports
                        // the next event (one that came since the wait keeps the readiness).
                        if n < events.len() {
                            guard.clear_ready();
                        }
                        let ends = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
                        ready.extend(events[..n].iter().map(|e| (e.data(), e.events().intersects(ends))));
                        None
                    }
                    Err(nix::errno::Errno::EINTR) => None,
                    Err(e) => Some(e.to_string()),
                },
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(e) = failed {
            // Cannot happen with a valid epoll descriptor; the answers in flight say so.
            for (_, exchange) in exchanges.drain() {
                exchange.end(Err(Fail::During("transport", format!("epoll_wait failed: {e}"))));
            }
            return;
        }
        {
            let mut inbox = inner.inbox();
            let Inbox { start, abandon, pending } = &mut *inbox;
            for (key, exchange) in start.drain(..) {
                // What came while no exchange was read may have been the close: read to the end.
                if pending.remove(&key) {
                    ready.push((key, true));
                }
                exchanges.insert(key, Box::new(exchange));
            }
            for key in abandon.drain(..) {
                if let Some(exchange) = exchanges.remove(&key) {
                    exchange.end(Err(Fail::During("abandoned", "no longer awaited".into())));
                }
            }
        }
        for (key, hung_up) in ready.drain(..) {
            let Some(exchange) = exchanges.get_mut(&key) else {
                orphans.push(key);
                continue;
            };
            if let Some(result) = exchange.advance(&mut scratch, &pace, hung_up) {
                if let Some(exchange) = exchanges.remove(&key) {
                    exchange.end(result);
                }
            }
        }
        if !orphans.is_empty() {
            // Marked under the lock that `submit` takes: a start that came since the drain
            // above rings for the next round, a later one finds its key marked.
            let mut inbox = inner.inbox();
            inbox.pending.extend(orphans.drain(..));
            if !inbox.start.is_empty() {
                inner.bell.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::client::{send, Request};

    #[test]
    fn an_idle_reader_pauses_only_as_long_as_the_reads_seen_allow() {
        let ms = Duration::from_millis;
        let pace = Pace::default();
        assert_eq!(pace.pause(), None, "nothing read yet: no pause");
        // Tokens every 20 ms in streams seconds long: the longest pause.
        for i in 1..200 {
            pace.observe(ms(20), ms(20 * i));
        }
        assert_eq!(pace.pause(), Some(Pace::LONGEST));
        // Tokens every 2 ms: a tenth of that.
        let pace = Pace::default();
        for _ in 0..100 {
            pace.observe(ms(2), ms(1000));
        }
        assert_eq!(pace.pause(), Some(Duration::from_micros(200)));
        // Whole answers in 3 ms: a hundredth of that is too short to be worth a pause.
        let pace = Pace::default();
        for _ in 0..100 {
            pace.observe(ms(3), ms(3));
        }
        assert_eq!(pace.pause(), None);
    }

    use crate::http::Pool;

    /// A server for one exchange: reads the request (after `delay`) to the end of its body and
    /// answers with `answer`, then holds the connection open.
    async fn server(delay: Duration, answer: Vec<u8>) -> (Pool, tokio::task::JoinHandle<usize>) {
        server_in_parts(delay, vec![(Duration::ZERO, answer)]).await
    }

    /// As `server`, writing the answer in parts, each after its pause.
    async fn server_in_parts(
        delay: Duration,
        parts: Vec<(Duration, Vec<u8>)>,
    ) -> (Pool, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accepts");
            tokio::time::sleep(delay).await;
            let mut request = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = socket.read(&mut buf).await.expect("reads");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .expect("content length");
                    if request.len() >= head_end + 4 + length {
                        break;
                    }
                }
            }
            for (pause, part) in parts {
                tokio::time::sleep(pause).await;
                socket.write_all(&part).await.expect("answers");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            request.len()
        });
        (Pool::new(address, address.to_string()), task)
    }

    fn at() -> At {
        let start = Instant::now();
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        At { start, wall_ns: wall.as_nanos() as u64 }
    }

    #[test]
    fn the_reading_task_writes_what_the_socket_did_not_take() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let body = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"completion_tokens":1,"prompt_tokens":3}}"#;
            let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            answer.extend_from_slice(body);
            // The server reads nothing for a while, so 16 MB cannot all go out at once.
            let (pool, server) = server(Duration::from_millis(100), answer).await;
            let prompt = "x".repeat(16 << 20);
            let request = Request::new("/v1/completions", pool.host(), "r", prompt.as_bytes(), false);
            let readers = Readers::start(1, Arc::default()).expect("readers");
            let mut measured = Measured::default();
            let stopped = send(&readers, &pool, &request, None, at(), &mut measured, std::future::pending::<()>());
            assert!(tokio::time::timeout(Duration::from_secs(20), stopped).await.expect("in time").is_none());
            assert!(measured.error.is_none(), "{:?}", measured.error);
            assert_eq!((measured.content_events, measured.output_tokens), (1, Some(1)));
            server.abort();
            assert!(pool.try_get().is_some(), "the connection is kept for the next request");
        });
    }

    #[test]
    fn events_cut_by_reads_are_kept_until_their_end_arrives() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let event =
                |text: &str| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n");
            let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
            // One chunk holding a whole event and the start of the next, then the rest of that
            // event in a chunk of its own, then a chunk cut inside its size line.
            let (one, two) = (event("a"), event("b"));
            let first = format!("{one}{}", &two[..10]);
            let third = chunk(&format!("{}data: [DONE]\n\n", event("c")));
            let parts = vec![
                (
                    Duration::ZERO,
                    format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}", chunk(&first))
                        .into_bytes(),
                ),
                (Duration::from_millis(40), chunk(&two[10..]).into_bytes()),
                (Duration::from_millis(40), third.as_bytes()[..1].to_vec()),
                (Duration::from_millis(40), format!("{}0\r\n\r\n", &third[1..]).into_bytes()),
            ];
            let (pool, server) = server_in_parts(Duration::ZERO, parts).await;
            let request = Request::new("/v1/chat/completions", pool.host(), "r", b"{}", true);
            let readers = Readers::start(1, Arc::default()).expect("readers");
            let mut measured = Measured::default();
            let stopped =
                send(&readers, &pool, &request, None, at(), &mut measured, std::future::pending::<()>());
            assert!(tokio::time::timeout(Duration::from_secs(5), stopped).await.expect("in time").is_none());
            assert!(measured.error.is_none(), "{:?}", measured.error);
            assert_eq!(measured.content_events, 3);
            // a, then b when its end came, then c: three reads with content, in order.
            let times = &measured.content_times;
            assert_eq!(times.len(), 3, "{times:?}");
            assert!(times[1] >= times[0] + Duration::from_millis(30), "{times:?}");
            assert!(times[2] >= times[1] + Duration::from_millis(60), "{times:?}");
            server.abort();
        });
    }

    #[test]
    fn an_answer_that_came_before_its_exchange_was_handed_over_is_read() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let body = br#"{"choices":[{"text":"hi"}],"usage":{"completion_tokens":1,"prompt_tokens":3}}"#;
            let mut answer =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            answer.extend_from_slice(body);
            // The second answer comes before the second request is even written: its only
            // event passes while no exchange is read on the connection.
            let parts = vec![(Duration::ZERO, answer.clone()), (Duration::from_millis(50), answer)];
            let (pool, server) = server_in_parts(Duration::ZERO, parts).await;
            let request = Request::new("/v1/completions", pool.host(), "r", b"{}", false);
            let readers = Readers::start(1, Arc::default()).expect("readers");
            for (round, pause) in [(1, 0), (2, 300)] {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let mut measured = Measured::default();
                let stop = tokio::time::sleep(Duration::from_secs(3));
                let stopped = send(&readers, &pool, &request, None, at(), &mut measured, stop).await;
                assert!(stopped.is_none(), "round {round}: read, not stopped by the timer");
                assert!(measured.error.is_none(), "round {round}: {:?}", measured.error);
                assert_eq!(measured.output_tokens, Some(1), "round {round}");
            }
            server.abort();
        });
    }

    /// The CLOSE-WAIT race: a server that dies mid-stream sends its last bytes and its close
    /// together, one edge for both. The request must fail at once, not wait for its timeout.
    #[test]
    fn a_close_that_came_with_the_last_bytes_ends_the_exchange_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
            let address = listener.local_addr().expect("address");
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.expect("accepts");
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await.expect("reads the request");
                // A head, one token, and the close in one go: one edge for all of it.
                let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                               31\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n\r\n";
                socket.write_all(answer).await.expect("answers");
                drop(socket);
            });
            let pool = Pool::new(address, address.to_string());
            let request = Request::new("/v1/chat/completions", pool.host(), "r", b"{}", true);
            let readers = Readers::start(1, Arc::default()).expect("readers");
            // Let the answer and the close both arrive before the reading task looks.
            let mut measured = Measured::default();
            let stop = tokio::time::sleep(Duration::from_secs(10));
            let stopped = send(&readers, &pool, &request, None, at(), &mut measured, stop).await;
            assert!(stopped.is_none(), "ended by the close, not by the 10 s timer");
            let error = measured.error.expect("a cut stream is an error");
            assert_eq!(error.kind, "stream_interrupted", "{error:?}");
            assert_eq!(measured.content_events, 1, "the token before the close is kept");
            server.await.expect("server");
        });
    }

    #[test]
    fn an_abandoned_exchange_hands_back_what_it_measured() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            // A head and one token, then nothing: a hung stream.
            let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                           31\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n\r\n"
                .to_vec();
            let (pool, server) = server(Duration::ZERO, answer).await;
            let request = Request::new("/v1/chat/completions", pool.host(), "r", b"{}", true);
            let readers = Readers::start(1, Arc::default()).expect("readers");
            let mut measured = Measured::default();
            let began = Instant::now();
            let stop = tokio::time::sleep(Duration::from_millis(300));
            let stopped = send(&readers, &pool, &request, None, at(), &mut measured, stop).await;
            assert!(stopped.is_some(), "stopped by the timer");
            assert!(began.elapsed() < Duration::from_secs(2));
            assert_eq!((measured.content_events, measured.content_times.len()), (1, 1));
            assert!(measured.end.is_some());
            server.abort();
            assert!(pool.try_get().is_none(), "an abandoned connection is not reused");
        });
    }
}
