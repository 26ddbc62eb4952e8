//! `rtmp[s]://HOST[:PORT]/APP/NAME[?QUERY]` split into what a connection needs (for our
//! clients: the load tool, `ferrocast push`). Pure parsing, no IO.

/// A URL that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad URL {url:?}: {why} (expected rtmp[s]://HOST[:PORT]/APP/NAME[?key=SECRET])")]
pub struct UrlError {
    /// The URL (truncated).
    pub url: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A parsed RTMP(S) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps`: TLS over TCP.
    pub tls: bool,
    /// Host name or IP address (without brackets for IPv6).
    pub host: String,
    /// TCP port (default 1935 for rtmp, 443 for rtmps).
    pub port: u16,
    /// The application: the first path segment.
    pub app: String,
    /// The stream name with its query, e.g. `demo?key=s3cret`.
    pub name: String,
}

impl RtmpUrl {
    /// Parses `rtmp[s]://HOST[:PORT]/APP/NAME[?QUERY]`.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let bad = |why: &'static str| UrlError {
            url: s.chars().take(200).collect(),
            why,
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("rtmps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("rtmp://") {
            (false, r)
        } else {
            return Err(bad("scheme must be rtmp or rtmps"));
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no application"))?;
        let (app, name) = path.split_once('/').ok_or_else(|| bad("no stream name"))?;
        if app.is_empty() || name.is_empty() || name.starts_with('?') {
            return Err(bad("empty application or stream name"));
        }
        let default_port = if tls { 443 } else { 1935 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("junk after ]")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Self {
            tls,
            host,
            port,
            app: app.to_string(),
            name: name.to_string(),
        })
    }

    /// The `tcUrl` sent in `connect`: everything up to the application.
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.app)
    }

    /// The same URL for stream `name` (keeping the query, if any).
    pub fn with_name(&self, name: &str) -> Self {
        let query = self.name.split_once('?').map(|(_, q)| q);
        let name = match query {
            Some(q) => format!("{name}?{q}"),
            None => name.to_string(),
        };
        Self {
            name,
            ..self.clone()
        }
    }

    /// The stream name without its query.
    pub fn bare_name(&self) -> &str {
        self.name.split_once('?').map_or(&self.name, |(n, _)| n)
    }

    /// The URL without its query (no secrets in messages).
    pub fn display(&self) -> String {
        format!("{}/{}", self.tc_url(), self.bare_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_tls_and_ipv6() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1935/live/bench").unwrap();
        assert_eq!(
            (
                u.tls,
                u.host.as_str(),
                u.port,
                u.app.as_str(),
                u.name.as_str()
            ),
            (false, "127.0.0.1", 1935, "live", "bench")
        );
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:1935/live");

        let u = RtmpUrl::parse("rtmps://example.org/live/cam?key=s3").unwrap();
        assert_eq!(
            (u.tls, u.port, u.name.as_str(), u.bare_name()),
            (true, 443, "cam?key=s3", "cam")
        );
        assert_eq!(u.with_name("cam-2").name, "cam-2?key=s3");

        let u = RtmpUrl::parse("rtmp://[::1]:1940/app/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1940));
        assert_eq!(u.tc_url(), "rtmp://[::1]:1940/app");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for s in [
            "http://h/live/x",
            "rtmp://h/live",
            "rtmp://h/live/",
            "rtmp://h:99999/live/x",
            "rtmp://:1935/live/x",
            "rtmp://[::1/live/x",
        ] {
            assert!(RtmpUrl::parse(s).is_err(), "{s}");
        }
    }
}
