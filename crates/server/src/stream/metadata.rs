//! A publisher's onMetaData as late joiners get it: checked against the size limit and
//! encoded once for the players on message stream 1, shared by all of them (like a
//! [`Frame`](super::Frame)'s encoding).

use bytes::Bytes;
use rtmp_proto::{amf0::Value, session::encode_metadata};

/// onMetaData, with its RTMP encoding for message stream 1.
#[derive(Debug)]
pub struct Metadata {
    /// The metadata object.
    pub value: Value,
    encoded: Bytes,
}

impl Metadata {
    /// `None` when the encoded message would be longer than
    /// [`rtmp_proto::session::MAX_METADATA_SIZE`].
    pub fn new(value: Value) -> Option<Self> {
        let encoded = encode_metadata(1, &value)?.into();
        Some(Self { value, encoded })
    }

    /// RTMP chunks of this metadata for a player on `stream_id`: the shared encoding for
    /// stream 1, a fresh one otherwise.
    pub fn encoded(&self, stream_id: u32) -> Bytes {
        if stream_id == 1 {
            self.encoded.clone()
        } else {
            encode_metadata(stream_id, &self.value)
                .map(Bytes::from)
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_once_and_too_large_is_refused() {
        let m = Metadata::new(Value::EcmaArray(vec![(
            "width".into(),
            Value::Number(1280.0),
        )]))
        .unwrap();
        let a = m.encoded(1);
        // The same buffer for every player on stream 1, not a copy.
        assert_eq!(a.as_ptr(), m.encoded(1).as_ptr());
        assert_ne!(m.encoded(2), a);
        let big = Value::EcmaArray(vec![(
            "junk".into(),
            Value::string("x".repeat(rtmp_proto::session::MAX_METADATA_SIZE)),
        )]);
        assert!(Metadata::new(big).is_none());
    }
}
