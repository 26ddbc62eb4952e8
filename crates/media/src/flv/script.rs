//! FLV script data (FLV spec v10.1 E.4.4): the `onMetaData` tag, as FLV files and RTMP data
//! messages carry it.

use crate::amf0::{self, Value};
use crate::InvalidMessage;

/// The `onMetaData` object of a script data tag or an RTMP data message, `Ok(None)` for
/// other script data.
///
/// Accepts both shapes found in the wild: `["onMetaData", {...}]` (files written by ffmpeg's
/// muxer, and what servers send to players) and `["@setDataFrame", "onMetaData", {...}]` (what
/// RTMP publishers send, and what some tools keep in files). Fails only if the body is not
/// AMF0.
pub fn parse_metadata(data: &[u8]) -> Result<Option<Value>, InvalidMessage> {
    let mut values = amf0::decode_all(data)?.into_iter();
    let mut first = values.next();
    if first.as_ref().and_then(Value::as_str) == Some("@setDataFrame") {
        first = values.next();
    }
    if first.as_ref().and_then(Value::as_str) != Some("onMetaData") {
        return Ok(None);
    }
    Ok(values.next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes() {
        let meta = Value::EcmaArray(vec![("width".into(), Value::Number(1280.0))]);
        let bare = amf0::encode_all(&[Value::string("onMetaData"), meta.clone()]);
        assert_eq!(parse_metadata(&bare), Ok(Some(meta.clone())));
        let wrapped = amf0::encode_all(&[
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            meta.clone(),
        ]);
        assert_eq!(parse_metadata(&wrapped), Ok(Some(meta)));
        let other = amf0::encode_all(&[Value::string("onCuePoint"), Value::Null]);
        assert_eq!(parse_metadata(&other), Ok(None));
        let empty = amf0::encode_all(&[Value::string("onMetaData")]);
        assert_eq!(parse_metadata(&empty), Ok(None));
        assert!(parse_metadata(&[0x11]).is_err());
    }
}
