//! The cheapest client that still reads every streamed token when it arrives: a closed loop of
//! chat requests on kept-alive connections, one `epoll` loop on one thread, each read a `recvmsg`
//! with the kernel's receive timestamp — and nothing else (no HTTP parsing beyond spotting the
//! end of a response, no JSON, no records, no timeouts).
//!
//! It is not a load generator. `scripts/bench/runner-vs-aiperf.sh` runs it beside `sweep-runner`
//! and aiperf to measure the floor: the CPU per token that the kernel charges any client that
//! reads tokens one by one (the read, the ACK it sends, and on loopback the server side's
//! handling of that ACK), which sets how small a client's share of aiperf's CPU can be.
//!
//! Usage: `read_floor HOST:PORT CONCURRENCY REQUESTS [PAUSE_US]`, against the simulated engine
//! (its streamed events say `"content":` once per token). Prints `requests tokens reads` to stdout.

use std::io::{IoSliceMut, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Option<(String, usize, usize, u64)> {
        Some((
            args.first()?.clone(),
            args.get(1)?.parse().ok()?,
            args.get(2)?.parse().ok()?,
            args.get(3).map_or(Some(500), |p| p.parse().ok())?,
        ))
    })();
    let Some((address, concurrency, requests, pause_us)) = parsed else {
        eprintln!("usage: read_floor HOST:PORT CONCURRENCY REQUESTS [PAUSE_US]");
        return ExitCode::from(2);
    };
    match run(&address, concurrency, requests, Duration::from_micros(pause_us)) {
        Ok((tokens, reads)) => {
            println!("{requests} {tokens} {reads}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("read_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(address: &str, concurrency: usize, requests: usize, pause: Duration) -> std::io::Result<(u64, u64)> {
    let prompt: Vec<String> = (0..32).map(|i| format!("w{i}")).collect();
    let body = format!(
        r#"{{"model":"tiny","messages":[{{"role":"user","content":"{}"}}],"stream":true,"max_tokens":256,"min_tokens":256,"ignore_eos":true}}"#,
        prompt.join(" ")
    );
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let epoll = Epoll::new(EpollCreateFlags::empty())?;
    let mut connections = Vec::new();
    // The last bytes of each connection's previous read, so an end marker split across two reads
    // is still seen.
    let mut tails: Vec<Vec<u8>> = Vec::new();
    for index in 0..concurrency.min(requests) {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        setsockopt(&stream, sockopt::ReceiveTimestampns, &true)?;
        (&stream).write_all(request.as_bytes())?;
        stream.set_nonblocking(true)?;
        epoll.add(stream.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, index as u64))?;
        connections.push(stream);
        tails.push(Vec::new());
    }
    let (mut sent, mut done, mut tokens, mut reads) = (connections.len(), 0, 0u64, 0u64);
    let mut buf = vec![0u8; 16 * 1024];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut stamped = 0u64;
    while done < requests {
        let ready = epoll.wait(&mut events, EpollTimeout::NONE)?;
        for event in &events[..ready] {
            let index = event.data() as usize;
            let stream = &connections[index];
            let bytes = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let message =
                    match recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                        Ok(message) => message,
                        Err(nix::errno::Errno::EAGAIN) => continue,
                        Err(e) => return Err(e.into()),
                    };
                if message.cmsgs()?.any(|c| matches!(c, ControlMessageOwned::ScmTimestampns(_))) {
                    stamped += 1;
                }
                message.bytes
            };
            if bytes == 0 {
                return Err(std::io::Error::other("the server closed a connection"));
            }
            reads += 1;
            let tail = &mut tails[index];
            tail.extend_from_slice(&buf[..bytes]);
            tokens += memchr::memmem::find_iter(tail, b"\"content\":").count() as u64;
            let finished = memchr::memmem::find(tail, b"data: [DONE]").is_some();
            // Keep fewer bytes than either marker, so nothing is counted twice.
            let keep = tail.len().saturating_sub(9);
            tail.drain(..keep);
            if finished {
                tail.clear();
                done += 1;
                if sent < requests {
                    (&connections[index]).write_all(request.as_bytes())?;
                    sent += 1;
                }
            }
        }
        // As sweep-runner's idle pause: one wait then finds many sockets' bytes.
        std::thread::sleep(pause);
    }
    if stamped < reads {
        eprintln!("read_floor: {} of {reads} reads had no kernel timestamp", reads - stamped);
    }
    Ok((tokens, reads))
}
