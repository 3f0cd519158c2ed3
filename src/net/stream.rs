use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll, RawWaker, RawWakerVTable, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsStream;

/// A connected socket: TCP, unix domain, or TLS over TCP (either direction: pgmux as the
/// TLS server towards clients, as the TLS client towards PostgreSQL).
///
/// An enum rather than a trait object so the relay's reads and writes stay statically
/// dispatched. TLS state is boxed: it is large and only TLS connections pay for it.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// What is left after a failed TLS handshake took the socket: every operation fails.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl Stream {
    /// Waits until the socket has something to read (or is closed) without reading it:
    /// an idle client owns no read buffer while it waits here.
    ///
    /// TLS: first sends whatever rustls still holds of earlier writes (see
    /// `poll_write`), then is ready at once when rustls already holds decrypted bytes (or
    /// the peer's close_notify), else when the socket is readable. The bytes that arrive
    /// may be only part of a TLS record, so a following `try_read*` may still say
    /// `WouldBlock`. An idle TLS client keeps rustls's (small) buffers: unlike a plain
    /// socket it is not free, but costs a few kilobytes.
    pub async fn readable(&mut self) -> io::Result<()> {
        // A poll function, not tokio's `readable()` futures: those keep a waiter node
        // (about 170 bytes) in every idle client's task; the socket's own read-waker slot
        // serves one reader just as well.
        std::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
            Stream::Tls(s) => {
                if let Poll::Ready(Err(error)) = push_pending(s, cx) {
                    return Poll::Ready(Err(error));
                }
                let (socket, state) = s.get_ref();
                if !state.wants_read() {
                    return Poll::Ready(Ok(()));
                }
                socket.poll_read_ready(cx)
            }
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    /// Non-blocking read into a slice. Costs no syscall when the reactor has seen nothing
    /// arrive.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
            Stream::Tls(_) => {
                let mut read = ReadBuf::new(buf);
                self.poll_now(&mut read)?;
                Ok(read.filled().len())
            }
            Stream::Closed => Err(closed()),
        }
    }

    /// Non-blocking read. Costs no syscall when the reactor has seen nothing arrive.
    pub fn try_read_buf(&mut self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
            Stream::Tls(_) => {
                use bytes::BufMut;
                let spare = buf.chunk_mut();
                // SAFETY: ReadBuf::uninit never de-initialises, and only `filled` bytes
                // (initialised by the read) are exposed through advance_mut.
                let spare = unsafe { spare.as_uninit_slice_mut() };
                let mut read = ReadBuf::uninit(spare);
                self.poll_now(&mut read)?;
                let n = read.filled().len();
                // SAFETY: the first n bytes of the spare capacity were just written.
                unsafe { buf.advance_mut(n) };
                Ok(n)
            }
            Stream::Closed => Err(closed()),
        }
    }

    /// One poll of a TLS read, without a task to wake: `Pending` becomes `WouldBlock`,
    /// like the plain sockets' `try_read`.
    fn poll_now(&mut self, read: &mut ReadBuf<'_>) -> io::Result<()> {
        let Stream::Tls(s) = self else {
            unreachable!("only TLS streams are polled without a task")
        };
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        // The TLS stream's own poll_read: no pending-write push, which would park a
        // no-op waker in the socket's write slot.
        match Pin::new(s.as_mut()).poll_read(&mut cx, read) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Reads into the spare capacity of `buf` (the caller reserves it): how the relay
    /// reads, with both directions polled from one task.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
    ) -> Poll<io::Result<usize>> {
        use bytes::BufMut;
        let spare = buf.chunk_mut();
        // SAFETY: ReadBuf::uninit never de-initialises, and only `filled` bytes
        // (initialised by the read) are exposed through advance_mut.
        let spare = unsafe { spare.as_uninit_slice_mut() };
        let mut read = ReadBuf::uninit(spare);
        ready!(Pin::new(&mut *self).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        // SAFETY: the first n bytes of the spare capacity were just written.
        unsafe { buf.advance_mut(n) };
        Poll::Ready(Ok(n))
    }

    pub fn peer_description(&self) -> String {
        let tcp = match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.get_ref().0,
            Stream::Unix(_) => return "unix".into(),
            Stream::Closed => return "?".into(),
        };
        tcp.peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into())
    }

    /// The TCP socket underneath (plain or TLS); None for unix sockets.
    pub fn tcp_socket(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Tls(s) => Some(s.get_ref().0),
            Stream::Unix(_) | Stream::Closed => None,
        }
    }

    /// For a unix socket, the port in its name (`.s.PGSQL.<port>`): with `listen_port = 0`
    /// the kernel picked it, and the setting says 0.
    pub fn unix_port(&self) -> Option<u16> {
        let Stream::Unix(socket) = self else {
            return None;
        };
        let addr = socket.local_addr().ok()?;
        let name = addr.as_pathname()?.file_name()?.to_str()?;
        name.strip_prefix(".s.PGSQL.")?.parse().ok()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The TLS version and cipher as PgBouncer logs them in `tls=…`
    /// (`TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519`); None when not TLS.
    pub fn tls_description(&self) -> Option<String> {
        let Stream::Tls(s) = self else {
            return None;
        };
        let (_, state) = s.get_ref();
        let version = match state.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        };
        let mut text = version;
        if let Some(suite) = state.negotiated_cipher_suite() {
            // OpenSSL's (and so PgBouncer's) names for the TLS 1.3 suites.
            let name = suite.suite().as_str().unwrap_or("unknown");
            text.push('/');
            text.push_str(&name.replace("TLS13_", "TLS_"));
        }
        if let Some(group) = state.negotiated_key_exchange_group() {
            text.push_str(&format!("/ECDH={:?}", group.name()));
        }
        Some(text)
    }

    /// Takes the stream out, leaving `Closed`: for wrapping a TCP socket in TLS.
    pub fn take(&mut self) -> Stream {
        std::mem::replace(self, Stream::Closed)
    }

    /// The certificate the TLS peer presented (DER, leaf first), if any.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        match self {
            Stream::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.as_ref()),
            _ => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => {
                // Drive out what an earlier write left in rustls; a Pending here just
                // registers interest in writability, the read goes on regardless.
                if let Poll::Ready(Err(error)) = push_pending(s, cx) {
                    return Poll::Ready(Err(error));
                }
                Pin::new(s.as_mut()).poll_read(cx, buf)
            }
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            // rustls may accept plaintext and then find the socket full: the record stays
            // in rustls, and `write_all` returns without a flush (plain sockets never need
            // one, so the relay does not flush). Leftovers are therefore pushed before new
            // data is taken, after it (best effort), and by every read and `readable`,
            // which is where the relay waits next.
            Stream::Tls(s) => {
                ready!(push_pending(s, cx))?;
                let written = ready!(Pin::new(s.as_mut()).poll_write(cx, buf))?;
                if let Poll::Ready(Err(error)) = push_pending(s, cx) {
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(Ok(written))
            }
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// Writes out TLS records rustls holds from earlier writes.
fn push_pending(s: &mut TlsStream<TcpStream>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if s.get_ref().1.wants_write() {
        Pin::new(s).poll_flush(cx)
    } else {
        Poll::Ready(Ok(()))
    }
}

/// A waker that does nothing (`Waker::noop` needs a newer Rust than our MSRV).
fn noop_waker() -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |_| RawWaker::new(std::ptr::null(), &VTABLE),
        |_| {},
        |_| {},
        |_| {},
    );
    // SAFETY: every vtable function ignores the (null) data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}
