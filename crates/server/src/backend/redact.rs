//! Backend URLs without their secrets: `redis://USER:PASS@HOST` shows as
//! `redis://USER:***@HOST` wherever it is printed (errors, logs, `/healthz`, `Debug`), and
//! error text from a backend client has the password scrubbed out in case it echoes the URL.

/// A backend URL whose `Display` and `Debug` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl {
    url: String,
}

impl RedactedUrl {
    /// Wraps `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
        }
    }

    /// The real URL, for the client that connects with it (never for printing).
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The password, if the URL carries one: `scheme://[user]:PASS@host…`.
    fn password(&self) -> Option<&str> {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let userinfo = authority.rsplit_once('@')?.0;
        userinfo
            .split_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.is_empty())
    }

    /// `text` with the password (and the whole URL) replaced: for a backend client's error
    /// message, which may quote the URL it was given.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.to_string());
        if let Some(p) = self.password() {
            out = out.replace(p, "***");
        }
        out
    }
}

impl std::fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.password() {
            None => f.write_str(&self.url),
            Some(p) => {
                // Only the password inside the userinfo (the same text could appear elsewhere).
                let at = self.url.find(&format!(":{p}@")).map(|i| i + 1);
                match at {
                    Some(i) => write!(f, "{}***{}", &self.url[..i], &self.url[i + p.len()..]),
                    None => f.write_str("[url hidden: it carries a password]"),
                }
            }
        }
    }
}

impl std::fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_prints() {
        let u = RedactedUrl::new("redis://ferro:s3cr%21t@10.0.0.5:6380/2");
        assert_eq!(u.to_string(), "redis://ferro:***@10.0.0.5:6380/2");
        assert_eq!(format!("{u:?}"), "\"redis://ferro:***@10.0.0.5:6380/2\"");
        assert_eq!(u.expose(), "redis://ferro:s3cr%21t@10.0.0.5:6380/2");
        let only_pass = RedactedUrl::new("rediss://:hunter2@cache:6379");
        assert_eq!(only_pass.to_string(), "rediss://:***@cache:6379");
        let plain = RedactedUrl::new("redis://127.0.0.1:6379");
        assert_eq!(plain.to_string(), "redis://127.0.0.1:6379");
        // A user without a password has nothing to hide.
        assert_eq!(
            RedactedUrl::new("redis://ferro@h:1").to_string(),
            "redis://ferro@h:1"
        );
    }

    #[test]
    fn client_errors_are_scrubbed() {
        let u = RedactedUrl::new("redis://ferro:hunter2@h:1");
        let msg = u.scrub("cannot connect to redis://ferro:hunter2@h:1: auth hunter2 failed");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("redis://ferro:***@h:1"), "{msg}");
    }
}
