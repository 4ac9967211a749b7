//! One scrape target's HTTP/1.1: a kept-alive connection, its two GET requests written once
//! (the whole exposition, and the mapped gauges only), and one buffer its answers are read
//! into, again and again.
//!
//! A general client (reqwest) parsed the URL, built the request and allocated a body for every
//! scrape: about half of what a scrape of a few hundred bytes cost the runner. The scraper
//! needs much less: GET, a status, a body framed by length, chunks or the connection's end, and
//! a redirect within the server (Starlette answers `/metrics` with a 307 to `/metrics/`). The
//! framing is the load generator's ([`sweep_load::http`]).

use std::io;
use std::ops::Range;

use sweep_load::http::{parse_head, Chunked, Framing, Head};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a scrape did not answer an exposition's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server does not serve the path: nothing listens there, or it answers 404.
    Absent(String),
    /// A timeout, a 5xx, a connection that broke: the next round may do better.
    Transient(String),
}

#[derive(Debug)]
pub struct Endpoint {
    url: reqwest::Url,
    /// What `?name[]=…` the gauges-only request adds to the path.
    gauges_query: String,
    /// `GET <path> HTTP/1.1` and its headers, whole and gauges only.
    whole: Vec<u8>,
    gauges: Vec<u8>,
    stream: Option<TcpStream>,
    /// The connection of the scrape under way was kept from an earlier one.
    reused: bool,
    /// What [`Endpoint::send`] did, for [`Endpoint::receive`].
    sent: Option<Result<(), Broken>>,
    /// Set while an exchange is under way: one that a timeout dropped half-read leaves its
    /// connection unusable, and the next scrape opens another.
    busy: bool,
    /// The raw answer, head and body.
    raw: Vec<u8>,
    /// A chunked body, decoded.
    decoded: Vec<u8>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Raw(Range<usize>),
    Decoded,
}

/// Redirects followed within a server before giving up.
const REDIRECTS: usize = 3;

impl Endpoint {
    /// An endpoint for `url` (`http://host:port/path`), asking for the gauges only with
    /// `gauges_query` (`name%5B%5D=…&…`). Connects at the first scrape.
    pub fn new(url: &str, gauges_query: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!("{url}: only http:// endpoints are scraped"));
        }
        if url.host_str().is_none() {
            return Err(format!("{url} names no host"));
        }
        let mut endpoint = Endpoint {
            url,
            gauges_query: gauges_query.to_owned(),
            whole: Vec::new(),
            gauges: Vec::new(),
            stream: None,
            reused: false,
            sent: None,
            busy: false,
            raw: Vec::with_capacity(64 * 1024),
            decoded: Vec::new(),
            body: Body::Raw(0..0),
        };
        endpoint.write_requests();
        Ok(endpoint)
    }

    fn write_requests(&mut self) {
        let host = match self.url.port() {
            Some(port) => format!("{}:{port}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_owned(),
        };
        let request = |target: &str| {
            format!(
                "GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain;version=0.0.4, */*;q=0.1\r\n\
                 User-Agent: sweep-runner\r\n\r\n"
            )
            .into_bytes()
        };
        let path = self.url.path();
        let whole = match self.url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let separator = if whole.contains('?') { '&' } else { '?' };
        self.gauges = request(&format!("{whole}{separator}{}", self.gauges_query));
        self.whole = request(&whole);
    }

    /// The URL the gauges-only scrapes ask for.
    #[cfg(test)]
    pub fn gauges_url(&self) -> String {
        let separator = if self.url.query().is_some() { '&' } else { '?' };
        format!("{}{separator}{}", self.url, self.gauges_query)
    }

    /// The body of the last answer [`Endpoint::receive`] returned `Ok` for.
    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::Raw(range) => &self.raw[range.clone()],
            Body::Decoded => &self.decoded,
        }
    }

    /// One scrape: the whole exposition, or the gauges only. The body is then in
    /// [`Endpoint::body`]. The caller bounds it in time.
    #[cfg(test)]
    pub async fn get(&mut self, gauges: bool) -> Result<(), Failure> {
        self.send(gauges).await;
        self.receive(gauges).await
    }

    /// The first half of a scrape: writes the request (connecting first when there is no
    /// connection). [`Endpoint::receive`] reads the answer, and reports what went wrong here.
    pub async fn send(&mut self, gauges: bool) {
        if std::mem::replace(&mut self.busy, true) {
            self.stream = None;
        }
        self.reused = self.stream.is_some();
        self.sent = Some(self.write(gauges).await);
    }

    /// The second half of a scrape: its answer, after following redirects within the server.
    pub async fn receive(&mut self, gauges: bool) -> Result<(), Failure> {
        let mut answer = match self.sent.take() {
            Some(Ok(())) => self.read().await,
            Some(Err(broken)) => Err(broken),
            None => self.exchange(gauges).await,
        };
        let mut redirects = 0;
        let result = loop {
            let head = match self.recover(answer, gauges).await {
                Ok(head) => head,
                Err(failure) => break Err(failure),
            };
            match head.status {
                200..=299 => break Ok(()),
                404 | 405 => break Err(Failure::Absent(format!("HTTP {}", head.status))),
                301 | 302 | 303 | 307 | 308 if redirects < REDIRECTS => {
                    redirects += 1;
                    if let Err(why) = self.redirect(head.location.as_deref()) {
                        break Err(Failure::Transient(why));
                    }
                    self.reused = self.stream.is_some();
                    answer = self.exchange(gauges).await;
                }
                status => break Err(Failure::Transient(format!("HTTP {status}"))),
            }
        };
        self.busy = false;
        result
    }

    /// Follows a redirect's `Location` when it stays on this server (from then on every scrape
    /// asks there); else says where it pointed.
    fn redirect(&mut self, location: Option<&str>) -> Result<(), String> {
        let location = location.ok_or("a redirect without a Location")?;
        let to = self.url.join(location).map_err(|e| format!("redirected to {location}: {e}"))?;
        if to.scheme() != self.url.scheme()
            || to.host_str() != self.url.host_str()
            || to.port_or_known_default() != self.url.port_or_known_default()
        {
            return Err(format!("redirected to another server, {to}"));
        }
        self.url = to;
        self.write_requests();
        Ok(())
    }

    /// An exchange's outcome, retried once on a new connection when a kept-alive one the
    /// server closed meanwhile failed before any byte of the answer.
    async fn recover(&mut self, answer: Result<Head, Broken>, gauges: bool) -> Result<Head, Failure> {
        let answer = match answer {
            Err(Broken::Io(_, false)) if self.reused => {
                self.stream = None;
                self.reused = false;
                self.exchange(gauges).await
            }
            answer => answer,
        };
        answer.map_err(|broken| {
            self.stream = None;
            match broken {
                // Nothing listens there (Dynamo's workers), or the name does not resolve.
                Broken::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    Failure::Absent("connection refused".into())
                }
                Broken::Connect(e) => Failure::Absent(format!("cannot connect: {e}")),
                Broken::Io(e, _) => Failure::Transient(e.to_string()),
            }
        })
    }

    async fn exchange(&mut self, gauges: bool) -> Result<Head, Broken> {
        self.write(gauges).await?;
        self.read().await
    }

    async fn write(&mut self, gauges: bool) -> Result<(), Broken> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                // An IPv6 literal is written in brackets in a URL, and resolved without them.
                let host =
                    self.url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
                let port = self.url.port_or_known_default().unwrap_or(80);
                let stream = TcpStream::connect((host, port)).await.map_err(Broken::Connect)?;
                let _ = stream.set_nodelay(true);
                self.stream.insert(stream)
            }
        };
        let request = if gauges { &self.gauges } else { &self.whole };
        stream.write_all(request).await.map_err(|e| Broken::Io(e, false))
    }

    async fn read(&mut self) -> Result<Head, Broken> {
        let Some(stream) = &mut self.stream else {
            return Err(Broken::Io(io::Error::new(io::ErrorKind::NotConnected, "not connected"), false));
        };
        self.raw.clear();
        let mut head: Option<Head> = None;
        let mut chunked = Chunked::default();
        let mut decoded_to = 0;
        loop {
            if self.raw.capacity() - self.raw.len() < 16 * 1024 {
                self.raw.reserve(64 * 1024);
            }
            let n = stream.read_buf(&mut self.raw).await.map_err(|e| Broken::Io(e, !self.raw.is_empty()))?;
            if head.is_none() {
                head = parse_head(&self.raw).map_err(|e| Broken::Io(e, true))?;
                if let Some(h) = &head {
                    decoded_to = h.length;
                    self.decoded.clear();
                }
            }
            let Some(h) = &head else {
                if n == 0 {
                    let some = !self.raw.is_empty();
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "closed before answering");
                    return Err(Broken::Io(e, some));
                }
                continue;
            };
            let done = match h.framing {
                Framing::Length(length) => {
                    let end = h.length + length;
                    (self.raw.len() >= end).then_some(Body::Raw(h.length..end))
                }
                Framing::Chunked => {
                    decoded_to += chunked
                        .decode(&self.raw[decoded_to..], &mut self.decoded)
                        .map_err(|e| Broken::Io(e, true))?;
                    chunked.done.then_some(Body::Decoded)
                }
                Framing::Close => (n == 0).then_some(Body::Raw(h.length..self.raw.len())),
            };
            if let Some(body) = done {
                let head = h.clone();
                if !head.keep_alive {
                    self.stream = None;
                }
                self.body = body;
                return Ok(head);
            }
            if n == 0 {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the answer was cut short");
                return Err(Broken::Io(e, true));
            }
        }
    }
}

/// What broke an exchange.
#[derive(Debug)]
enum Broken {
    Connect(io::Error),
    /// Reading or writing, and whether any of the answer had arrived.
    Io(io::Error, bool),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};

    /// The request lines a test server read, with the connection each came on.
    type Seen = Arc<Mutex<Vec<(usize, String)>>>;

    /// A server on a free loopback port answering each request with the next of `answers`
    /// (closing the connection after it when told), then closing. Returns its port and the
    /// request lines it read, with the connection each came on.
    fn serve(answers: Vec<(&'static str, bool)>) -> (u16, Seen) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                loop {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    while !request.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => request.push(byte[0]),
                            _ => break,
                        }
                    }
                    if request.is_empty() {
                        break;
                    }
                    let line =
                        String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
                    log.lock().expect("log").push((connection, line));
                    let Some((answer, close)) = answers.next() else { return };
                    let _ = stream.write_all(answer.as_bytes());
                    if close {
                        break;
                    }
                }
            }
        });
        (port, seen)
    }

    fn ok(body: &str) -> String {
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn endpoint(port: u16) -> Endpoint {
        Endpoint::new(&format!("http://127.0.0.1:{port}/metrics"), "name%5B%5D=a%3Ab").expect("a URL")
    }

    #[tokio::test]
    async fn answers_are_read_by_length_by_chunks_and_to_the_end_on_one_kept_connection() {
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n4\r\nb 2\n\r\n0\r\n\r\n";
        let closing = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nc 3\n";
        let (port, seen) = serve(vec![
            (leak(ok("x 1\n")), false),
            (chunked, false),
            (closing, true),
            (leak(ok("y 2\n")), false),
        ]);
        let mut e = endpoint(port);
        e.get(false).await.expect("by length");
        assert_eq!(e.body(), b"x 1\n");
        e.get(true).await.expect("chunked");
        assert_eq!(e.body(), b"a 1\nb 2\n");
        e.get(false).await.expect("to the end");
        assert_eq!(e.body(), b"c 3\n");
        e.get(false).await.expect("on a new connection");
        assert_eq!(e.body(), b"y 2\n");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(
            seen,
            vec![
                (0, "GET /metrics HTTP/1.1".to_owned()),
                (0, "GET /metrics?name%5B%5D=a%3Ab HTTP/1.1".to_owned()),
                (0, "GET /metrics HTTP/1.1".to_owned()),
                (1, "GET /metrics HTTP/1.1".to_owned()),
            ]
        );
    }

    /// Starlette answers `/metrics` with a 307 to `/metrics/`; from then on the endpoint asks
    /// there. A kept connection the server closed between scrapes is retried on a new one.
    #[tokio::test]
    async fn a_redirect_within_the_server_is_followed_and_remembered_and_a_closed_connection_retried() {
        let redirect = "HTTP/1.1 307 Temporary Redirect\r\nLocation: /metrics/\r\nContent-Length: 0\r\n\r\n";
        let (port, seen) =
            serve(vec![(redirect, false), (leak(ok("x 1\n")), true), (leak(ok("x 2\n")), false)]);
        let mut e = endpoint(port);
        e.get(false).await.expect("redirected");
        assert_eq!(e.body(), b"x 1\n");
        e.get(true).await.expect("retried on a new connection");
        assert_eq!(e.body(), b"x 2\n");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(
            seen,
            vec![
                (0, "GET /metrics HTTP/1.1".to_owned()),
                (0, "GET /metrics/ HTTP/1.1".to_owned()),
                (1, "GET /metrics/?name%5B%5D=a%3Ab HTTP/1.1".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn failures_say_whether_the_endpoint_is_absent_or_may_answer_later() {
        let missing = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let broken = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        let away = "HTTP/1.1 302 Found\r\nLocation: http://10.9.9.9:1/metrics\r\nContent-Length: 0\r\n\r\n";
        let cut = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nx 1\n";
        let (port, _) = serve(vec![(missing, false), (broken, false), (away, false), (cut, true)]);
        let mut e = endpoint(port);
        assert_eq!(e.get(false).await, Err(Failure::Absent("HTTP 404".into())));
        assert_eq!(e.get(false).await, Err(Failure::Transient("HTTP 500".into())));
        assert_eq!(
            e.get(false).await,
            Err(Failure::Transient("redirected to another server, http://10.9.9.9:1/metrics".into()))
        );
        assert_eq!(e.get(false).await, Err(Failure::Transient("the answer was cut short".into())));
        // Nothing listens on a port just freed.
        let free =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        assert_eq!(endpoint(free).get(false).await, Err(Failure::Absent("connection refused".into())));
        assert!(Endpoint::new("https://h/metrics", "").is_err_and(|e| e.contains("only http://")));
    }
}
