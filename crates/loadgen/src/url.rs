//! RTMP URLs: the parser is `rtmp_proto::url`, shared with `ferrocast push`.

pub use rtmp_proto::url::{RtmpUrl, UrlError};

impl From<UrlError> for crate::Error {
    fn from(e: UrlError) -> Self {
        crate::Error::Url(e.to_string())
    }
}
