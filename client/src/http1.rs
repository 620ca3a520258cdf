//! The HTTP/1.1 transport under `HttpClient`: keep-alive TCP (or TLS over
//! TCP, for `https://` nodes) connections per node, each request written in
//! one buffer, each answer read with a small parser (status line, the headers
//! that frame the body, a `Content-Length`, chunked or close-delimited body).
//! It does what the gateway's API needs and no more (no redirects, proxies or
//! compression), so a call costs a few thousand instructions instead of a
//! general client's tens of thousands: the load tester must stay far lighter
//! than the server it loads.
//!
//! `parse_head` and `decode_chunked` are pure; `Node` is the I/O shell.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Most headers an answer may carry.
const HEADERS_MAX: usize = 64;
/// Most bytes of an answer's status line and headers.
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// A connection idle for longer than this is closed instead of used again: a
/// server may have closed it meanwhile (actix-web's keep-alive is 5 s), and a
/// request sent on it would fail with an unknown outcome.
const IDLE_REUSE_MAX: Duration = Duration::from_secs(2);
/// Idle connections kept per node at most; more are closed when returned.
const IDLE_CONNECTIONS_MAX: usize = 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// How an exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// No connection could be made: the request was not sent.
    Connect(String),
    /// The server's certificate is not the trusted one (or not valid for
    /// the node's name): the request was not sent, and sending it again to
    /// the same node cannot help.
    Untrusted(String),
    /// The request may have reached the server, but no whole answer came
    /// back (reset, closed, malformed answer).
    Lost(String),
    /// The answer's body is over the limit (the connection is closed).
    TooLarge,
}

/// A whole answer: its status and body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A status line and the headers that matter here, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    /// Bytes of the status line and headers, up to and with the blank line.
    pub length: usize,
    pub framing: Framing,
    /// The connection may carry another request after this answer.
    pub keep_alive: bool,
}

/// How the body's end is known.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// Parses an answer's head from the start of `buffer`: `Ok(None)` until the
/// blank line has arrived, `Err` with what is wrong for bytes that are not an
/// HTTP/1.x answer. Works on bytes: only the headers that frame the body are
/// read, and no other header needs to be UTF-8.
pub(crate) fn parse_head(buffer: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buffer, b"\r\n\r\n") else {
        if buffer.len() > HEAD_BYTES_MAX {
            return Err(format!("answer head over {HEAD_BYTES_MAX} bytes"));
        }
        return Ok(None);
    };
    let quoted = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut lines = buffer[..end].split(|&byte| byte == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let status_line = status_line.strip_suffix(b"\r").unwrap_or(status_line);
    let http_1_0 = match status_line.get(..9) {
        Some(b"HTTP/1.1 ") => false,
        Some(b"HTTP/1.0 ") => true,
        _ => {
            return Err(format!(
                "not an HTTP/1.x status line: {:?}",
                quoted(status_line)
            ))
        }
    };
    let status = match status_line.get(9..12) {
        Some(&[a, b, c])
            if a.is_ascii_digit()
                && b.is_ascii_digit()
                && c.is_ascii_digit()
                && a != b'0'
                && status_line.get(12).is_none_or(|&next| next == b' ') =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(format!("no status code in {:?}", quoted(status_line))),
    };
    let mut content_length = None;
    let mut chunked = false;
    let mut keep_alive = !http_1_0;
    for (index, line) in lines.enumerate() {
        if index >= HEADERS_MAX {
            return Err(format!("more than {HEADERS_MAX} headers"));
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line
            .iter()
            .position(|&byte| byte == b':')
            .ok_or_else(|| format!("malformed header line {:?}", quoted(line)))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse::<usize>().ok())
                .ok_or_else(|| format!("Content-Length {:?} is not a length", quoted(value)))?;
            if content_length.is_some_and(|known| known != length) {
                return Err("two different Content-Length headers".into());
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value
                .rsplit(|&byte| byte == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") && http_1_0 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        length: end + 4,
        framing,
        keep_alive,
    }))
}

/// Where `needle` (2 or 4 bytes, starting with `\r`) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(offset) = haystack[from..].iter().position(|&byte| byte == needle[0]) {
        let at = from + offset;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Decodes a chunked body from the start of `buffer`: `Ok(None)` until its
/// last chunk and trailer have arrived, else the body and the bytes the
/// encoding took.
pub(crate) fn decode_chunked(buffer: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&buffer[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buffer[at..at + line_end])
            .map_err(|_| "chunk size line is not UTF-8".to_owned())?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size {size_text:?} is not hexadecimal"))?;
        at += line_end + 2;
        if size == 0 {
            // Trailer lines, up to a blank line.
            loop {
                let Some(line_end) = find_crlf(&buffer[at..]) else {
                    return Ok(None);
                };
                at += line_end + 2;
                if line_end == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        let Some(chunk_end) = at.checked_add(size).filter(|end| end + 2 <= buffer.len()) else {
            return Ok(None);
        };
        if &buffer[chunk_end..chunk_end + 2] != b"\r\n" {
            return Err("a chunk does not end with CRLF".into());
        }
        body.extend_from_slice(&buffer[at..chunk_end]);
        at = chunk_end + 2;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    find(bytes, b"\r\n")
}

/// How connections to a node are made.
#[derive(Clone)]
pub(crate) enum Security {
    /// Plain TCP (`http://`).
    Plain,
    /// TLS over TCP (`https://`): the connector holds the client config that
    /// enforces the `Trust`, and `server_name` is checked against the
    /// certificate and sent as SNI.
    Tls {
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
}

impl Security {
    pub(crate) fn tls(config: Arc<rustls::ClientConfig>, server_name: ServerName<'static>) -> Self {
        Security::Tls {
            connector: TlsConnector::from(config),
            server_name,
        }
    }
}

/// One connection: plain TCP or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

/// Sorts a failed TLS handshake: a certificate the `Trust` refuses is
/// `Untrusted`, anything else (reset, timeout, no common version or suite)
/// is a failed connect.
fn handshake_failed(server_name: &ServerName<'_>, error: io::Error) -> ExchangeError {
    let name = server_name.to_str();
    let certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if certificate {
        ExchangeError::Untrusted(format!(
            "TLS: {name} showed a certificate the client does not trust ({error}); \
             trust its CA or certificate (HttpConfig::trust, --cert or --fingerprint)"
        ))
    } else {
        ExchangeError::Connect(format!("TLS handshake with {name} failed: {error}"))
    }
}

/// An idle connection and its read buffer (kept for its capacity).
struct Idle {
    stream: Stream,
    buffer: Vec<u8>,
    since: Instant,
}

/// One node: where to connect, how, and its idle connections.
pub(crate) struct Node {
    /// `host:port` to connect to.
    address: String,
    security: Security,
    idle: Mutex<Vec<Idle>>,
}

impl Node {
    pub(crate) fn new(address: String, security: Security) -> Node {
        Node {
            address,
            security,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection idle for at most `IDLE_REUSE_MAX`, or a new one (its TCP
    /// connect and TLS handshake both within `connect_timeout`).
    async fn connection(
        &self,
        connect_timeout: Duration,
    ) -> Result<(Stream, Vec<u8>), ExchangeError> {
        let now = Instant::now();
        while let Some(idle) = self.idle().pop() {
            if now.saturating_duration_since(idle.since) <= IDLE_REUSE_MAX {
                return Ok((idle.stream, idle.buffer));
            }
        }
        let stream = tokio::time::timeout(connect_timeout, self.connect())
            .await
            .map_err(|_| {
                ExchangeError::Connect(format!(
                    "no connection within {}",
                    humantime::format_duration(connect_timeout)
                ))
            })??;
        Ok((stream, Vec::with_capacity(READ_CHUNK_BYTES)))
    }

    async fn connect(&self) -> Result<Stream, ExchangeError> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|error| ExchangeError::Connect(error.to_string()))?;
        // Requests are written whole; waiting for more to coalesce only adds latency.
        let _ = stream.set_nodelay(true);
        match &self.security {
            Security::Plain => Ok(Stream::Plain(stream)),
            Security::Tls {
                connector,
                server_name,
            } => connector
                .connect(server_name.clone(), stream)
                .await
                .map(|tls| Stream::Tls(Box::new(tls)))
                .map_err(|error| handshake_failed(server_name, error)),
        }
    }

    fn give_back(&self, stream: Stream, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut idle = self.idle();
        if idle.len() < IDLE_CONNECTIONS_MAX {
            idle.push(Idle {
                stream,
                buffer,
                since: Instant::now(),
            });
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request) and reads its answer, with a
    /// body of at most `body_bytes_max`. Does not time out: the caller bounds it.
    pub(crate) async fn exchange(
        &self,
        request: &[u8],
        body_bytes_max: usize,
        connect_timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let (mut stream, mut buffer) = self.connection(connect_timeout).await?;
        let lost = |error: io::Error| ExchangeError::Lost(error.to_string());
        stream.write_all(request).await.map_err(lost)?;
        // TLS may hold the last record back until flushed (a no-op on TCP).
        stream.flush().await.map_err(lost)?;
        buffer.clear();
        let head = loop {
            if let Some(head) = parse_head(&buffer).map_err(ExchangeError::Lost)? {
                break head;
            }
            read_more(&mut stream, &mut buffer).await?;
        };
        let (body, used) = match head.framing {
            Framing::Length(length) => {
                if length > body_bytes_max {
                    return Err(ExchangeError::TooLarge);
                }
                let end = head.length + length;
                while buffer.len() < end {
                    read_more(&mut stream, &mut buffer).await?;
                }
                (buffer[head.length..end].to_vec(), end)
            }
            Framing::Chunked => loop {
                if let Some((body, used)) =
                    decode_chunked(&buffer[head.length..]).map_err(ExchangeError::Lost)?
                {
                    break (body, head.length + used);
                }
                if buffer.len() - head.length > body_bytes_max.saturating_mul(2) + 1024 {
                    return Err(ExchangeError::TooLarge);
                }
                read_more(&mut stream, &mut buffer).await?;
            },
            Framing::UntilClose => {
                loop {
                    if buffer.len() - head.length > body_bytes_max {
                        return Err(ExchangeError::TooLarge);
                    }
                    let before = buffer.len();
                    buffer.reserve(READ_CHUNK_BYTES);
                    let read = stream.read_buf(&mut buffer).await.map_err(lost)?;
                    if read == 0 || buffer.len() == before {
                        break;
                    }
                }
                (buffer[head.length..].to_vec(), buffer.len())
            }
        };
        if body.len() > body_bytes_max {
            return Err(ExchangeError::TooLarge);
        }
        // Bytes past the answer would belong to no request: do not reuse.
        if head.keep_alive && used == buffer.len() {
            self.give_back(stream, buffer);
        }
        Ok(Answer {
            status: head.status,
            body,
        })
    }
}

/// Reads at least one more byte into `buffer`; the end of the stream before a
/// whole answer is a lost answer.
async fn read_more(stream: &mut Stream, buffer: &mut Vec<u8>) -> Result<(), ExchangeError> {
    buffer.reserve(READ_CHUNK_BYTES);
    match stream.read_buf(buffer).await {
        Ok(0) => Err(ExchangeError::Lost(
            "the server closed the connection before a whole answer".into(),
        )),
        Ok(_) => Ok(()),
        Err(error) => Err(ExchangeError::Lost(error.to_string())),
    }
}

/// Appends `segment` percent-encoded as one path segment: everything but
/// unreserved characters and the sub-delimiters a segment may hold, so an id
/// holding `/` or `?` stays one segment.
pub(crate) fn push_segment(path: &mut String, segment: &str) {
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            path.push(byte as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            path.push('%');
            path.push(HEX[usize::from(byte >> 4)] as char);
            path.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
}

/// Whether `value` may be sent as a header value as it is: printable ASCII
/// and tabs, nothing that could end the header.
pub(crate) fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| byte == b'\t' || (b' '..=b'~').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_read_once_whole_and_frames_its_body() {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(parse_head(&answer[..20]), Ok(None));
        let head = parse_head(answer).unwrap().unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.framing, Framing::Length(12));
        assert!(head.keep_alive);
        assert_eq!(&answer[head.length..], b"{\"a\":1}");

        let closing = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n";
        let head = parse_head(closing).unwrap().unwrap();
        assert_eq!(head.framing, Framing::UntilClose);
        assert!(!head.keep_alive);

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_head(chunked).unwrap().unwrap().framing,
            Framing::Chunked
        );
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!parse_head(old).unwrap().unwrap().keep_alive);
    }

    #[test]
    fn what_is_not_an_answer_is_refused() {
        for bytes in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                parse_head(bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(parse_head(&vec![b'a'; HEAD_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded_once_whole() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n";
        for end in 0..body.len() {
            assert_eq!(decode_chunked(&body[..end]), Ok(None), "{end}");
        }
        assert_eq!(
            decode_chunked(body),
            Ok(Some((b"Wikipedia".to_vec(), body.len())))
        );
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"1\r\nab\r\n").is_err());
    }

    #[test]
    fn segments_are_encoded_whole() {
        let mut path = String::from("/v1/orders/");
        push_segment(&mut path, "a/b?c d%");
        assert_eq!(path, "/v1/orders/a%2Fb%3Fc%20d%25");
        assert!(is_header_value("Bearer abc-123"));
        assert!(!is_header_value("a\r\nb"));
        assert!(!is_header_value("é"));
    }
}
