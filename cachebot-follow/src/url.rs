//! `postgres://user:password@host:port/database` into the parts the
//! replication connection takes.

/// The parts of a connection URL the replication connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnParts {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

/// Parse `postgres://` / `postgresql://` URLs. Query parameters are
/// ignored (the replication connection has no TLS here); a missing user is
/// `postgres`, a missing database is the user's name, as libpq does.
pub(crate) fn parse(url: &str) -> Result<ConnParts, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("the database URL must start with postgres:// or postgresql://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (decode(u)?, decode(p)?),
            None => (decode(u)?, String::new()),
        },
        None => (String::new(), String::new()),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
        (h.to_owned(), after.strip_prefix(':').unwrap_or_default())
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => (hostport.to_owned(), ""),
        }
    };
    let port = if port.is_empty() {
        5432
    } else {
        port.parse::<u16>()
            .map_err(|_| format!("bad port {port:?} in the database URL"))?
    };
    let user = if user.is_empty() {
        "postgres".to_owned()
    } else {
        user
    };
    let database = match decode(path)? {
        d if d.is_empty() => user.clone(),
        d => d,
    };
    Ok(ConnParts {
        host: if host.is_empty() {
            "localhost".to_owned()
        } else {
            decode(&host)?
        },
        port,
        user,
        password,
        database,
    })
}

/// Percent-decoding.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let p = parse("postgres://u%40x:p%3Aw@127.0.0.1:55433/db?sslmode=disable").unwrap();
        assert_eq!(
            p,
            ConnParts {
                host: "127.0.0.1".into(),
                port: 55433,
                user: "u@x".into(),
                password: "p:w".into(),
                database: "db".into(),
            }
        );
        let p = parse("postgresql://[::1]/").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.database.as_str()),
            ("::1", 5432, "postgres")
        );
        assert!(parse("mysql://x").is_err());
        assert!(parse("postgres://h:99999/d").is_err());
        assert!(parse("postgres://h/%zz").is_err());
        assert!(parse("postgres://h/%").is_err());
    }
}
