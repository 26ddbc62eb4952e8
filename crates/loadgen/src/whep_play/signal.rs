//! The HTTP half of WHEP (draft-ietf-wish-whep §4): POST the complete SDP offer, get `201
//! Created` with the answer and the session's `Location`; DELETE that URL to end it. Any
//! other status is a refusal whose body says why (the server's per-IP cap answers 429).

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use tokio::time::{timeout_at, Instant};

use crate::{
    http::{client_for, error_chain, parse_uri},
    Error,
};

/// Longest answer or error body read.
const MAX_BODY: usize = 64 << 10;

/// One WHEP endpoint (`http://HOST:PORT/whep/NAME[?rendition=…]`), shared by all viewers: one
/// connection pool.
#[derive(Clone)]
pub struct Signal {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: Uri,
}

/// What an accepted offer gives.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The answer SDP.
    pub answer: String,
    /// The session's URL (the `Location`, resolved against the endpoint).
    pub session: Uri,
}

impl Signal {
    /// The endpoint at `url` (plain `http://` only).
    pub fn new(url: &str, pool: usize) -> Result<Self, Error> {
        Ok(Self {
            client: client_for(pool),
            endpoint: parse_uri(url)?,
        })
    }

    /// The endpoint's host (where the media candidate will be too, unless the server
    /// advertises another).
    pub fn host(&self) -> &str {
        self.endpoint.host().unwrap_or("127.0.0.1")
    }

    /// The endpoint's port.
    pub fn port(&self) -> u16 {
        self.endpoint.port_u16().unwrap_or(80)
    }

    /// POSTs `offer`; the answer and session URL on 201, else the refusal.
    pub async fn offer(&self, offer: String, deadline: Instant) -> Result<Accepted, Error> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/sdp")
            .header(header::USER_AGENT, "ferrocast-bench")
            .body(Full::new(Bytes::from(offer)))
            .map_err(|e| Error::Http(e.to_string()))?;
        let (status, location, body) = self.send(req, deadline).await?;
        if status != StatusCode::CREATED {
            return Err(refusal(status, &body));
        }
        let location = location.ok_or_else(|| {
            Error::Http("201 without a Location header (where would DELETE go?)".into())
        })?;
        Ok(Accepted {
            answer: body,
            session: self.resolve(&location)?,
        })
    }

    /// DELETEs the session: its status (200 when it ended, 404 when it was gone already).
    pub async fn delete(&self, session: &Uri, deadline: Instant) -> Result<u16, Error> {
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(session.clone())
            .header(header::USER_AGENT, "ferrocast-bench")
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(self.send(req, deadline).await?.0.as_u16())
    }

    /// A `Location` (absolute, or a path on the endpoint's origin) as a URI.
    fn resolve(&self, location: &str) -> Result<Uri, Error> {
        let base = url::Url::parse(&self.endpoint.to_string())
            .map_err(|e| Error::Url(format!("{}: {e}", self.endpoint)))?;
        let joined = base
            .join(location)
            .map_err(|e| Error::Http(format!("Location {location:?}: {e}")))?;
        parse_uri(joined.as_str())
    }

    async fn send(
        &self,
        req: Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<(StatusCode, Option<String>, String), Error> {
        let resp = timeout_at(deadline, self.client.request(req))
            .await
            .map_err(|_| Error::Timeout("WHEP response"))?
            .map_err(|e| Error::Http(error_chain(&e)))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = timeout_at(
            deadline,
            http_body_util::Limited::new(resp.into_body(), MAX_BODY).collect(),
        )
        .await
        .map_err(|_| Error::Timeout("WHEP response body"))?
        .map_err(|e| Error::Http(format!("response body: {e}")))?
        .to_bytes();
        Ok((
            status,
            location,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }
}

/// A non-201 answer: the status groups it, the body (first line) says why.
fn refusal(status: StatusCode, body: &str) -> Error {
    Error::Refused {
        code: format!("HTTP {}", status.as_u16()),
        description: body.lines().next().unwrap_or("").trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_endpoint() {
        let s = Signal::new("http://127.0.0.1:8080/whep/demo?rendition=400", 1).unwrap();
        assert_eq!(
            s.resolve("/whep/demo/00ab").unwrap().to_string(),
            "http://127.0.0.1:8080/whep/demo/00ab"
        );
        assert_eq!(
            s.resolve("http://127.0.0.1:9000/whep/demo/1")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9000/whep/demo/1"
        );
        assert_eq!((s.host(), s.port()), ("127.0.0.1", 8080));
        assert!(Signal::new("https://x/whep/a", 1).is_err());
    }

    #[test]
    fn refusals_keep_the_status_and_the_reason() {
        let e = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "127.0.0.1 already holds 50 WebRTC sessions (the per-address limit); end one first\n",
        );
        assert_eq!(e.kind(), "HTTP 429");
        assert!(e.to_string().contains("per-address limit"), "{e}");
    }
}
