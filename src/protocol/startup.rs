//! The untagged first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest
//! or CancelRequest, told apart by the code after the length.

use bytes::{Buf, BytesMut};

/// PostgreSQL's own limit for a startup packet (MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_LEN: usize = 10_000;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol 3.0 is what pgmux speaks; 3.x clients are negotiated down to it.
pub const PROTOCOL_MAJOR: u16 = 3;
pub const PROTOCOL_MINOR: u16 = 0;

#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { process_id: i32, secret: Vec<u8> },
    Startup(StartupMessage),
}

#[derive(Debug, PartialEq, Eq, Default)]
pub struct StartupMessage {
    /// The minor version the client asked for; above 0 needs NegotiateProtocolVersion.
    pub minor_version: u16,
    pub params: Vec<(String, String)>,
    /// `_pq_.*` protocol options pgmux does not support (reported back, never applied).
    pub protocol_options: Vec<String>,
}

impl StartupMessage {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartupError {
    #[error("invalid length of startup packet")]
    BadLength,
    #[error("unsupported frontend protocol {0}.{1}: server supports 3.0 to 3.0")]
    UnsupportedProtocol(u16, u16),
    #[error("invalid startup packet layout: expected terminator as last byte")]
    Malformed,
}

/// Takes one startup packet off the front of `buf`; `Ok(None)` until it is all there.
/// The length is checked before anything is buffered beyond it.
pub fn read_startup(buf: &mut BytesMut) -> Result<Option<StartupPacket>, StartupError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = (&buf[..4]).get_u32() as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&length) {
        return Err(StartupError::BadLength);
    }
    if buf.len() < length {
        return Ok(None);
    }
    let mut packet = buf.split_to(length);
    packet.advance(4);
    let code = packet.get_u32();
    let parsed = match code {
        SSL_REQUEST => StartupPacket::SslRequest,
        GSSENC_REQUEST => StartupPacket::GssEncRequest,
        CANCEL_REQUEST => {
            if packet.len() < 8 {
                return Err(StartupError::BadLength);
            }
            let process_id = packet.get_i32();
            StartupPacket::Cancel {
                process_id,
                secret: packet.to_vec(),
            }
        }
        _ => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            if major != PROTOCOL_MAJOR {
                return Err(StartupError::UnsupportedProtocol(major, minor));
            }
            StartupPacket::Startup(parse_params(&packet, minor)?)
        }
    };
    Ok(Some(parsed))
}

fn parse_params(mut body: &[u8], minor_version: u16) -> Result<StartupMessage, StartupError> {
    let mut message = StartupMessage {
        minor_version,
        ..Default::default()
    };
    loop {
        let (name, rest) = super::frame::take_cstr(body).ok_or(StartupError::Malformed)?;
        if name.is_empty() {
            if !rest.is_empty() {
                return Err(StartupError::Malformed);
            }
            return Ok(message);
        }
        let (value, rest) = super::frame::take_cstr(rest).ok_or(StartupError::Malformed)?;
        if name.starts_with("_pq_.") {
            message.protocol_options.push(name.to_owned());
        } else {
            message.params.push((name.to_owned(), value.to_owned()));
        }
        body = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn packet(code: u32, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32((payload.len() + 8) as u32);
        buf.put_u32(code);
        buf.put_slice(payload);
        buf
    }

    #[test]
    fn startup_message_params() {
        let mut buf = packet(196_608, b"user\0app\0database\0db\0\0");
        let Some(StartupPacket::Startup(msg)) = read_startup(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(msg.param("user"), Some("app"));
        assert_eq!(msg.param("database"), Some("db"));
        assert!(buf.is_empty());
    }

    #[test]
    fn protocol_3_2_with_options_is_accepted_for_negotiation() {
        let mut buf = packet(196_610, b"user\0app\0_pq_.thing\0x\0\0");
        let Some(StartupPacket::Startup(msg)) = read_startup(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(msg.minor_version, 2);
        assert_eq!(msg.protocol_options, vec!["_pq_.thing".to_owned()]);
    }

    #[test]
    fn other_major_versions_are_refused() {
        let mut buf = packet(2 << 16, b"\0");
        assert_eq!(
            read_startup(&mut buf),
            Err(StartupError::UnsupportedProtocol(2, 0))
        );
    }

    #[test]
    fn ssl_gss_and_cancel() {
        assert_eq!(
            read_startup(&mut packet(SSL_REQUEST, b"")).unwrap(),
            Some(StartupPacket::SslRequest)
        );
        assert_eq!(
            read_startup(&mut packet(GSSENC_REQUEST, b"")).unwrap(),
            Some(StartupPacket::GssEncRequest)
        );
        let mut cancel = packet(CANCEL_REQUEST, &[0, 0, 0, 7, 1, 2, 3, 4]);
        assert_eq!(
            read_startup(&mut cancel).unwrap(),
            Some(StartupPacket::Cancel {
                process_id: 7,
                secret: vec![1, 2, 3, 4]
            })
        );
    }

    #[test]
    fn absurd_lengths_are_refused_before_buffering() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(read_startup(&mut buf), Err(StartupError::BadLength));
        let mut tiny = BytesMut::from(&[0, 0, 0, 4][..]);
        assert_eq!(read_startup(&mut tiny), Err(StartupError::BadLength));
    }

    #[test]
    fn partial_packets_wait() {
        let full = packet(196_608, b"user\0app\0\0");
        let mut buf = BytesMut::from(&full[..6]);
        assert_eq!(read_startup(&mut buf).unwrap(), None);
    }

    #[test]
    fn missing_terminator_is_malformed() {
        let mut buf = packet(196_608, b"user\0app\0");
        assert_eq!(read_startup(&mut buf), Err(StartupError::Malformed));
    }
}
