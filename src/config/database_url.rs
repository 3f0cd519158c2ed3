//! `url = "postgres://user:password@host:port/dbname"` for a `[databases.NAME]`,
//! read the way libpq reads a connection URI: percent-decoded parts, `postgresql://`
//! as a synonym, and `?host=/dir` (or a percent-encoded `%2Fdir` host) for a unix socket.

use url::{Host, Url};

/// Where and as whom to connect, from a URL or from the discrete keys; absent parts
/// take the `[databases.NAME]` defaults.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionParts {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Problems never quote the URL: it may hold a password.
pub(crate) fn parse(text: &str) -> Result<ConnectionParts, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("not a valid URL: {error}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "unsupported URL scheme `{}`: expected postgres:// or postgresql://",
            url.scheme()
        ));
    }
    if url.fragment().is_some() {
        return Err("a database URL has no #fragment".to_owned());
    }

    let mut target = ConnectionParts {
        host: match url.host() {
            Some(Host::Domain(host)) => Some(percent_decode(host)?).filter(|host| !host.is_empty()),
            Some(Host::Ipv4(address)) => Some(address.to_string()),
            Some(Host::Ipv6(address)) => Some(address.to_string()),
            None => None,
        },
        port: url.port(),
        dbname: non_empty(percent_decode(url.path().trim_start_matches('/'))?),
        user: non_empty(percent_decode(url.username())?),
        password: url.password().map(percent_decode).transpose()?,
    };
    if target.port == Some(0) {
        return Err("the URL's port must be 1-65535".to_owned());
    }

    for (parameter, value) in url.query_pairs() {
        match parameter.as_ref() {
            "host" => target.host = non_empty(value.into_owned()),
            "port" => {
                target.port = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|port| *port != 0)
                        .ok_or("the URL's port parameter must be 1-65535")?,
                )
            }
            other => {
                return Err(format!(
                    "unsupported URL parameter `{other}`: only `host` and `port` are read"
                ))
            }
        }
    }
    Ok(target)
}

fn non_empty(text: String) -> Option<String> {
    Some(text).filter(|text| !text.is_empty())
}

/// RFC 3986 percent-decoding; the `url` crate leaves user, password, path and
/// non-special hosts encoded.
fn percent_decode(encoded: &str) -> Result<String, String> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| "the URL is not valid UTF-8 once percent-decoded".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url_is_split_and_decoded() {
        let target = parse("postgres://app%40corp:p%3Ass%2Fw0rd@db.internal:6543/my%20db").unwrap();
        assert_eq!(
            target,
            ConnectionParts {
                host: Some("db.internal".into()),
                port: Some(6543),
                dbname: Some("my db".into()),
                user: Some("app@corp".into()),
                password: Some("p:ss/w0rd".into()),
            }
        );
    }

    #[test]
    fn postgresql_scheme_and_missing_parts() {
        let target = parse("postgresql://db").unwrap();
        assert_eq!(target.host.as_deref(), Some("db"));
        assert_eq!(
            (target.port, target.dbname, target.user, target.password),
            (None, None, None, None)
        );
    }

    #[test]
    fn ip_hosts() {
        assert_eq!(
            parse("postgres://127.0.0.1/x").unwrap().host.as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            parse("postgres://[::1]:5433/x").unwrap().host.as_deref(),
            Some("::1")
        );
    }

    #[test]
    fn unix_socket_hosts() {
        assert_eq!(
            parse("postgres://%2Fvar%2Frun%2Fpostgresql/app")
                .unwrap()
                .host
                .as_deref(),
            Some("/var/run/postgresql")
        );
        let target = parse("postgres:///app?host=/tmp&port=5433").unwrap();
        assert_eq!(target.host.as_deref(), Some("/tmp"));
        assert_eq!(target.port, Some(5433));
        assert_eq!(target.dbname.as_deref(), Some("app"));
    }

    #[test]
    fn rejected_urls_never_echo_the_password() {
        for bad in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@h:0/d",
            "postgres://u:hunter2@h/d?sslmode=require",
            "postgres://u:hunter2@h:99999/d",
            "not a url hunter2",
        ] {
            let problem = parse(bad).unwrap_err();
            assert!(!problem.contains("hunter2"), "{bad} → {problem}");
        }
    }
}
