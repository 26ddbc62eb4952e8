//! AMF0 values (Adobe "Action Message Format -- AMF 0"), as carried in RTMP command and data
//! messages. Decoding is bounded in nesting depth and element count so hostile input cannot
//! exhaust memory or the stack.

/// Deepest object nesting accepted; real commands nest two or three levels.
pub const MAX_DEPTH: usize = 16;
/// Most properties or array elements accepted in one container.
pub const MAX_ELEMENTS: usize = 4096;

/// A decoded AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 0x00 number (IEEE-754 double).
    Number(f64),
    /// 0x01 boolean.
    Boolean(bool),
    /// 0x02 string and 0x0C long string.
    String(String),
    /// 0x03 anonymous object (also 0x10 typed object, whose class name is dropped).
    Object(Vec<(String, Value)>),
    /// 0x05 null.
    Null,
    /// 0x06 undefined.
    Undefined,
    /// 0x08 ECMA array (associative), as used by onMetaData.
    EcmaArray(Vec<(String, Value)>),
    /// 0x0A strict array.
    StrictArray(Vec<Value>),
    /// 0x0B date: milliseconds since the epoch (time zone dropped).
    Date(f64),
}

impl Value {
    /// The string inside a `String`, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside a `Number`, if this is one.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Looks up a property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Shorthand for an object built from string keys.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Shorthand for a string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// Why AMF0 bytes could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Amf0Error {
    /// The value ran past the end of the message.
    #[error("value truncated at byte {0}")]
    Truncated(usize),
    /// A type marker this decoder does not know (or that AMF0 forbids in a message).
    #[error("unsupported type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("objects nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A container with more than [`MAX_ELEMENTS`] entries.
    #[error("container has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Amf0Error::Truncated(self.pos))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(Amf0Error::Truncated(self.pos))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }
    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| Amf0Error::InvalidUtf8)
    }
    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let n = self.u16()? as usize;
        self.utf8(n)
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            // An empty key followed by the object-end marker closes the object. Some encoders
            // omit the marker at the very end of a message; accept that too.
            if key.is_empty() {
                if self.pos == self.buf.len() {
                    return Ok(props);
                }
                if self.buf[self.pos] == 0x09 {
                    self.pos += 1;
                    return Ok(props);
                }
            }
            if props.len() >= MAX_ELEMENTS {
                return Err(Amf0Error::TooManyElements);
            }
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Value::Number(self.f64()?),
            0x01 => Value::Boolean(self.u8()? != 0),
            0x02 => Value::String(self.short_string()?),
            0x03 => Value::Object(self.properties(depth)?),
            0x05 => Value::Null,
            0x06 => Value::Undefined,
            0x08 => {
                // The count is only a hint; the list is terminated like an object.
                let _ = self.u32()?;
                Value::EcmaArray(self.properties(depth)?)
            }
            0x0A => {
                let n = self.u32()? as usize;
                if n > MAX_ELEMENTS {
                    return Err(Amf0Error::TooManyElements);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            0x0B => {
                let ms = self.f64()?;
                let _tz = self.u16()?;
                Value::Date(ms)
            }
            0x0C => {
                let n = self.u32()? as usize;
                Value::String(self.utf8(n)?)
            }
            0x10 => {
                let _class = self.short_string()?;
                Value::Object(self.properties(depth)?)
            }
            other => return Err(Amf0Error::UnsupportedMarker(other)),
        })
    }
}

/// Decodes every value in `buf` (a command message is a sequence of values).
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while r.pos < buf.len() {
        if out.len() >= MAX_ELEMENTS {
            return Err(Amf0Error::TooManyElements);
        }
        out.push(r.value(0)?);
    }
    Ok(out)
}

fn encode_key(out: &mut Vec<u8>, k: &str) {
    let b = k.as_bytes();
    let n = b.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

fn encode_props(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (k, v) in props {
        encode_key(out, k);
        encode(out, v);
    }
    out.extend_from_slice(&[0, 0, 0x09]);
}

/// Appends the AMF0 encoding of `v` to `out`.
pub fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[0x01, *b as u8]),
        Value::String(s) if s.len() <= u16::MAX as usize => {
            out.push(0x02);
            encode_key(out, s);
        }
        Value::String(s) => {
            out.push(0x0C);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Object(props) => {
            out.push(0x03);
            encode_props(out, props);
        }
        Value::Null => out.push(0x05),
        Value::Undefined => out.push(0x06),
        Value::EcmaArray(props) => {
            out.push(0x08);
            out.extend_from_slice(&(props.len() as u32).to_be_bytes());
            encode_props(out, props);
        }
        Value::StrictArray(items) => {
            out.push(0x0A);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                encode(out, i);
            }
        }
        Value::Date(ms) => {
            out.push(0x0B);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// Encodes a sequence of values (a whole command message body).
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trimmed connect command in the shape ffmpeg sends (the full real capture is tested in
    /// `session`).
    const FFMPEG_CONNECT: &[u8] = &[
        0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', // "connect"
        0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,    // 1.0
        0x03, // {
        0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', //
        0x00, 0x04, b't', b'y', b'p', b'e', 0x02, 0x00, 0x0a, b'n', b'o', b'n', b'p', b'r', b'i',
        b'v', b'a', b't', b'e', //
        0x00, 0x05, b't', b'c', b'U', b'r', b'l', 0x02, 0x00, 0x1a, b'r', b't', b'm', b'p', b':',
        b'/', b'/', b'1', b'2', b'7', b'.', b'0', b'.', b'0', b'.', b'1', b':', b'1', b'9', b'3',
        b'5', b'/', b'l', b'i', b'v', b'e', //
        0x00, 0x00, 0x09,
    ];

    #[test]
    fn decodes_connect() {
        let v = decode_all(FFMPEG_CONNECT).unwrap();
        assert_eq!(v[0].as_str(), Some("connect"));
        assert_eq!(v[1].as_number(), Some(1.0));
        assert_eq!(v[2].get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(
            v[2].get("tcUrl").and_then(Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
    }

    #[test]
    fn roundtrip() {
        let vals = vec![
            Value::string("onMetaData"),
            Value::EcmaArray(vec![
                ("width".into(), Value::Number(1280.0)),
                ("stereo".into(), Value::Boolean(true)),
                ("enc".into(), Value::Null),
                (
                    "arr".into(),
                    Value::StrictArray(vec![Value::Undefined, Value::Date(5.0)]),
                ),
                ("nested".into(), Value::object([("a", Value::string("b"))])),
            ]),
            Value::String("x".repeat(70_000)),
        ];
        let bytes = encode_all(&vals);
        assert_eq!(decode_all(&bytes).unwrap(), vals);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for n in 0..FFMPEG_CONNECT.len() {
            let r = decode_all(&FFMPEG_CONNECT[..n]);
            // A prefix may end on a value boundary; only the last byte (the object-end
            // marker, which some encoders omit) may be missing from a whole connect.
            if let Ok(v) = r {
                assert!(
                    v.len() < 3 || n == FFMPEG_CONNECT.len() - 1,
                    "prefix {n} decoded a whole connect"
                );
            }
        }
    }

    #[test]
    fn hostile_inputs() {
        // Deep nesting.
        let mut deep = vec![0x03u8; 10_000];
        deep.extend_from_slice(&[0, 0, 9]);
        assert!(matches!(
            decode_all(&deep),
            Err(Amf0Error::TooDeep) | Err(Amf0Error::Truncated(_))
        ));
        // Huge strict array count with no body.
        assert_eq!(
            decode_all(&[0x0A, 0xff, 0xff, 0xff, 0xff]),
            Err(Amf0Error::TooManyElements)
        );
        // Long string claiming 4 GiB.
        assert!(matches!(
            decode_all(&[0x0C, 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(Amf0Error::Truncated(_))
        ));
        assert_eq!(decode_all(&[0x11]), Err(Amf0Error::UnsupportedMarker(0x11)));
    }
}
