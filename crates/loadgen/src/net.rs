//! Connecting: the `rtmp-io` connector of the tool. For `rtmps` any certificate is accepted
//! (benchmark servers use self-signed ones); the verifier is rtmp-io's, the one of the
//! workspace.

use std::time::Duration;

use rtmp_io::{ConnectOptions, Connector, Verify};
use rtmp_proto::ClientConfig;

use crate::{url::RtmpUrl, Error};

/// A connector for `url` whose session must be started (Publish.Start / Play.Start) within
/// `start` of the connect.
pub fn connector(url: &RtmpUrl, start: Duration) -> Result<Connector, Error> {
    let mut session = ClientConfig::default();
    session.start_timeout(start);
    let mut options = ConnectOptions::default();
    options
        .verify(url.tls.then_some(Verify::Insecure))
        .session(session);
    Ok(Connector::new(options)?)
}
