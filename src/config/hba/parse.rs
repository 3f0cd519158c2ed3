//! pg_hba.conf text → rules. Records are lines (a trailing backslash continues one),
//! `#` starts a comment, columns are separated by blanks, a column may be a
//! comma-separated list, and a double-quoted name (`""` for a quote) is never a keyword.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::{Address, ConnectionKind, HbaError, HbaMethod, HbaRule, Names};

/// `@file` includes nest at most this deep, which also stops a file including itself.
const MAX_INCLUDE_DEPTH: usize = 10;

/// One name of a column; a quoted one never acts as a keyword or an `@file`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
}

/// A column: one or more comma-separated tokens.
type Field = Vec<Token>;

/// A logical line with its first physical line number.
struct Record {
    line: usize,
    fields: Vec<Field>,
}

/// Where a token came from, for errors.
struct Location<'a> {
    path: &'a Path,
    line: usize,
}

impl Location<'_> {
    fn error(&self, message: impl Into<String>) -> HbaError {
        HbaError {
            path: self.path.to_owned(),
            line: self.line,
            message: message.into(),
        }
    }
}

pub(super) fn rules(text: &str, path: &Path) -> Result<Vec<HbaRule>, HbaError> {
    records(text, path)?
        .into_iter()
        .map(|record| rule(record, path))
        .collect()
}

fn records(text: &str, path: &Path) -> Result<Vec<Record>, HbaError> {
    let mut records = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    let mut finish = |line: usize, text: &str| -> Result<(), HbaError> {
        let fields = fields(text).map_err(|message| Location { path, line }.error(message))?;
        if !fields.is_empty() {
            records.push(Record { line, fields });
        }
        Ok(())
    };
    for (index, physical) in text.lines().enumerate() {
        let (line, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match physical.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                pending = Some((line, joined));
            }
            None => {
                joined.push_str(physical);
                finish(line, &joined)?;
            }
        }
    }
    if let Some((line, joined)) = pending {
        finish(line, &joined)?;
    }
    Ok(records)
}

fn fields(line: &str) -> Result<Vec<Field>, String> {
    let mut chars = line.chars().peekable();
    let mut fields = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if matches!(chars.peek(), None | Some('#')) {
            return Ok(fields);
        }
        let mut field = vec![token(&mut chars)?];
        while chars.next_if_eq(&',').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            field.push(token(&mut chars)?);
        }
        fields.push(field);
    }
}

fn token(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token, String> {
    if chars.next_if_eq(&'"').is_some() {
        let mut text = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("unterminated quoted name \"{text}")),
                Some('"') if chars.next_if_eq(&'"').is_some() => text.push('"'),
                Some('"') => break,
                Some(c) => text.push(c),
            }
        }
        return match chars.peek() {
            None | Some(',' | '#') => Ok(Token { text, quoted: true }),
            Some(c) if c.is_whitespace() => Ok(Token { text, quoted: true }),
            Some(_) => Err(format!(
                "unexpected text right after the quoted name \"{text}\""
            )),
        };
    }
    let mut text = String::new();
    while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !matches!(c, ',' | '#')) {
        if c == '"' {
            return Err(format!(
                "a quote inside the name {text}\"…: quote the whole name"
            ));
        }
        text.push(c);
    }
    if text.is_empty() {
        return Err("empty name in a comma-separated list".into());
    }
    Ok(Token {
        text,
        quoted: false,
    })
}

fn rule(record: Record, path: &Path) -> Result<HbaRule, HbaError> {
    let at = Location {
        path,
        line: record.line,
    };
    let mut fields = record.fields.into_iter();
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| at.error(format!("the {what} column is missing")))
    };
    let kind = connection_kind(&next("connection type")?).map_err(|m| at.error(m))?;
    let databases = names(&next("database")?, Column::Database, &at, 0)?;
    let users = names(&next("user")?, Column::User, &at, 0)?;
    let address = match kind {
        ConnectionKind::Local => None,
        _ => Some(address(&mut fields, &at)?),
    };
    let method_field = fields
        .next()
        .ok_or_else(|| at.error("the authentication method column is missing"))?;
    let method = method(&method_field).map_err(|m| at.error(m))?;
    if let Some(extra) = fields.next() {
        let text = &extra[0].text;
        return Err(at.error(match text.split_once('=') {
            Some((option, _)) => format!("authentication option {option} is not supported"),
            None => format!("unexpected column \"{text}\" after the authentication method"),
        }));
    }
    // PostgreSQL's checks: these methods only make sense on those connections.
    match (method, kind) {
        (HbaMethod::Peer, ConnectionKind::Local) => {}
        (HbaMethod::Peer, _) => {
            return Err(at.error("peer authentication is only supported on local sockets"))
        }
        (HbaMethod::Cert, ConnectionKind::HostSsl) => {}
        (HbaMethod::Cert, _) => {
            return Err(at.error("cert authentication is only supported on hostssl connections"))
        }
        _ => {}
    }
    Ok(HbaRule {
        line: record.line,
        kind,
        databases,
        users,
        address,
        method,
    })
}

/// The one unquoted word of a column that must be a keyword.
fn keyword(field: &Field) -> Option<&str> {
    match field.as_slice() {
        [token] if !token.quoted => Some(&token.text),
        _ => None,
    }
}

fn shown(field: &Field) -> String {
    field
        .iter()
        .map(|token| token.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn connection_kind(field: &Field) -> Result<ConnectionKind, String> {
    match keyword(field) {
        Some("local") => Ok(ConnectionKind::Local),
        Some("host") => Ok(ConnectionKind::Host),
        Some("hostssl") => Ok(ConnectionKind::HostSsl),
        Some("hostnossl") => Ok(ConnectionKind::HostNoSsl),
        Some(kind @ ("hostgssenc" | "hostnogssenc")) => {
            Err(format!("connection type {kind} is not supported"))
        }
        _ => Err(format!(
            "invalid connection type \"{}\": expected local, host, hostssl or hostnossl",
            shown(field)
        )),
    }
}

fn method(field: &Field) -> Result<HbaMethod, String> {
    let Some(name) = keyword(field) else {
        return Err(format!(
            "invalid authentication method \"{}\"",
            shown(field)
        ));
    };
    Ok(match name {
        "trust" => HbaMethod::Trust,
        "reject" => HbaMethod::Reject,
        "md5" => HbaMethod::Md5,
        "password" => HbaMethod::Password,
        "scram-sha-256" => HbaMethod::ScramSha256,
        "peer" => HbaMethod::Peer,
        "cert" => HbaMethod::Cert,
        "ident" | "gss" | "sspi" | "pam" | "bsd" | "ldap" | "radius" | "oauth" => {
            return Err(format!("authentication method {name} is not supported"))
        }
        _ => return Err(format!("invalid authentication method \"{name}\"")),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Database,
    User,
}

fn names(field: &Field, column: Column, at: &Location, depth: usize) -> Result<Names, HbaError> {
    let mut names = Names::default();
    add_names(&mut names, field, column, at, depth)?;
    Ok(names)
}

fn add_names(
    names: &mut Names,
    field: &Field,
    column: Column,
    at: &Location,
    depth: usize,
) -> Result<(), HbaError> {
    for token in field {
        let text = token.text.as_str();
        if token.quoted {
            names.names.insert(token.text.clone());
            continue;
        }
        match (column, text) {
            (_, "all") => names.all = true,
            (Column::Database, "sameuser") => names.same_user = true,
            (Column::Database, "replication") => names.replication = true,
            (Column::Database, "samerole" | "samegroup") => {
                return Err(at.error(format!(
                    "{text} is not supported (pgmux does not know role membership)"
                )))
            }
            _ if column == Column::User && text.starts_with('+') => {
                return Err(at.error(format!("group membership ({text}) is not supported")))
            }
            _ if text.starts_with('/') => {
                return Err(at.error(format!(
                "regular expressions ({text}) are not supported; quote the name if it is literal"
            )))
            }
            _ if text.starts_with('@') => include(names, &text[1..], column, at, depth)?,
            _ => {
                names.names.insert(token.text.clone());
            }
        }
    }
    Ok(())
}

/// `@file`: the names listed in another file (relative to the including file's
/// directory), separated by blanks, commas or lines.
fn include(
    names: &mut Names,
    file: &str,
    column: Column,
    at: &Location,
    depth: usize,
) -> Result<(), HbaError> {
    if file.is_empty() {
        return Err(at.error("@ must be followed by a file name"));
    }
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(at.error(format!(
            "@{file}: @file includes nest more than {MAX_INCLUDE_DEPTH} deep"
        )));
    }
    let included: PathBuf = at
        .path
        .parent()
        .map_or_else(|| PathBuf::from(file), |dir| dir.join(file));
    let text = std::fs::read_to_string(&included)
        .map_err(|error| at.error(format!("cannot read @file {}: {error}", included.display())))?;
    for record in records(&text, &included)? {
        let inner = Location {
            path: &included,
            line: record.line,
        };
        for field in &record.fields {
            add_names(names, field, column, &inner, depth + 1)?;
        }
    }
    Ok(())
}

/// `all`, `a.b.c.d/len`, `x::y/len`, or an address followed by a netmask column.
fn address(fields: &mut impl Iterator<Item = Field>, at: &Location) -> Result<Address, HbaError> {
    let field = fields
        .next()
        .ok_or_else(|| at.error("the address column is missing"))?;
    let Some(text) = keyword(&field) else {
        return Err(at.error(format!(
            "invalid address \"{}\": one unquoted address per line",
            shown(&field)
        )));
    };
    match text {
        "all" => return Ok(Address::All),
        "samehost" | "samenet" => return Err(at.error(format!("{text} is not supported"))),
        _ => {}
    }
    if let Some((addr, prefix)) = text.split_once('/') {
        let base = ip(addr, at)?;
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|prefix| *prefix <= width)
            .ok_or_else(|| {
                at.error(format!(
                    "invalid prefix length \"/{prefix}\" in {text}: expected 0 to {width}"
                ))
            })?;
        return Ok(Address::Net {
            base,
            mask: prefix_mask(base, prefix),
        });
    }
    let base = ip(text, at)?;
    let mask_field = fields.next();
    let mask = mask_field
        .as_ref()
        .and_then(keyword)
        .and_then(|mask| mask.parse::<IpAddr>().ok())
        .filter(|mask| mask.is_ipv4() == base.is_ipv4())
        .ok_or_else(|| {
            at.error(format!(
                "the address {text} needs a prefix length (as in {text}/{}) or a netmask column \
                 of the same family",
                if base.is_ipv4() { 32 } else { 128 }
            ))
        })?;
    Ok(Address::Net { base, mask })
}

fn ip(text: &str, at: &Location) -> Result<IpAddr, HbaError> {
    text.parse().map_err(|_| {
        at.error(format!(
            "invalid address \"{text}\": expected an IP address, a CIDR range or all \
             (host names are not supported)"
        ))
    })
}

fn prefix_mask(base: IpAddr, prefix: u32) -> IpAddr {
    match base {
        IpAddr::V4(_) => Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0)).into(),
        IpAddr::V6(_) => Ipv6Addr::from(u128::MAX.checked_shl(128 - prefix).unwrap_or(0)).into(),
    }
}
