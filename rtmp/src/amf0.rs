//! AMF0, the encoding of RTMP commands and data messages: a decoder bounded
//! in nesting depth and in the number of values, and the small encoder the
//! server's answers need.
//!
//! Hand-written because the decoders at hand recurse without a depth limit
//! (a few hundred thousand nested containers overflow the stack and abort
//! the process) and size containers by the count the input claims (an ECMA
//! array claiming 2^32 entries asks for that much memory up front). Here a
//! container's claimed count is never used to allocate: entries are pushed
//! as they are decoded, and every value counts against
//! [`Amf0Limits::max_values`], so a decoded message is at most a small
//! multiple of its encoded size.

use thiserror::Error;

/// Bounds on one decoded AMF0 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amf0Limits {
    /// Containers (object, ECMA array, strict array, typed object) nested
    /// deeper than this are refused. OBS and ffmpeg nest two levels.
    pub max_depth: usize,
    /// Values (containers and their members included) in one message.
    pub max_values: usize,
}

impl Default for Amf0Limits {
    fn default() -> Self {
        Amf0Limits {
            max_depth: 16,
            max_values: 4096,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Amf0Error {
    #[error("AMF0 value truncated")]
    Truncated,
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    #[error("more than {0} AMF0 values in one message")]
    TooManyValues(usize),
    #[error("unsupported AMF0 marker {0:#04x}")]
    Marker(u8),
}

/// A decoded AMF0 value. Dates decode as their number of milliseconds;
/// XML documents and long strings as strings; references as `Undefined`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    /// Objects, typed objects and ECMA arrays: their members in order.
    Object(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    Null,
    Undefined,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;
const UNSUPPORTED: u8 = 0x0d;
const XML_DOCUMENT: u8 = 0x0f;
const TYPED_OBJECT: u8 = 0x10;

/// Decodes every value of `input` (a command or data message body).
pub fn decode_all(input: &[u8], limits: Amf0Limits) -> Result<Vec<Value>, Amf0Error> {
    let mut d = Decoder {
        input,
        pos: 0,
        values: 0,
        limits,
    };
    let mut out = Vec::new();
    while d.pos < input.len() {
        out.push(d.value(0)?);
    }
    Ok(out)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
    limits: Amf0Limits,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Amf0Error> {
        let end = self.pos.checked_add(n).ok_or(Amf0Error::Truncated)?;
        let s = self.input.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
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
        Ok(f64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self, len: usize) -> Result<String, Amf0Error> {
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()? as usize;
        self.string(len)
    }

    fn count(&mut self) -> Result<(), Amf0Error> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Amf0Error::TooManyValues(self.limits.max_values));
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        self.count()?;
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => Value::Boolean(self.u8()? != 0),
            STRING => Value::String(self.short_string()?),
            LONG_STRING | XML_DOCUMENT => {
                let len = self.u32()? as usize;
                Value::String(self.string(len)?)
            }
            NULL => Value::Null,
            UNDEFINED | UNSUPPORTED => Value::Undefined,
            REFERENCE => {
                self.u16()?;
                Value::Undefined
            }
            DATE => {
                let ms = self.f64()?;
                self.u16()?; // time zone, unused by the format
                Value::Number(ms)
            }
            OBJECT => Value::Object(self.members(depth + 1)?),
            TYPED_OBJECT => {
                self.short_string()?;
                Value::Object(self.members(depth + 1)?)
            }
            ECMA_ARRAY => {
                // The count is a hint that encoders get wrong; the members
                // end with the object end marker like an object's.
                self.u32()?;
                Value::Object(self.members(depth + 1)?)
            }
            STRICT_ARRAY => {
                let depth = self.enter(depth + 1)?;
                let n = self.u32()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(depth)?);
                }
                Value::StrictArray(items)
            }
            other => return Err(Amf0Error::Marker(other)),
        })
    }

    fn enter(&self, depth: usize) -> Result<usize, Amf0Error> {
        if depth > self.limits.max_depth {
            return Err(Amf0Error::TooDeep(self.limits.max_depth));
        }
        Ok(depth)
    }

    /// Object members up to the end marker (an empty key then 0x09). Input
    /// that ends before the marker ends the object (some encoders omit it
    /// at the end of a message).
    fn members(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let depth = self.enter(depth)?;
        let mut members = Vec::new();
        loop {
            if self.pos == self.input.len() {
                return Ok(members);
            }
            let key = self.short_string()?;
            if key.is_empty() && self.input.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(members);
            }
            let value = self.value(depth)?;
            members.push((key, value));
        }
    }
}

/// Appends the AMF0 encoding of `value`. Only used for the server's own
/// answers, whose depth is fixed by this crate.
pub fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, *b as u8]),
        Value::String(s) => {
            if s.len() <= u16::MAX as usize {
                out.push(STRING);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            } else {
                out.push(LONG_STRING);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Object(members) => {
            out.push(OBJECT);
            for (k, v) in members {
                // Keys are short strings: cut an over-long one at a char boundary.
                let mut end = k.len().min(u16::MAX as usize);
                while !k.is_char_boundary(end) {
                    end -= 1;
                }
                let k = &k.as_bytes()[..end];
                out.extend_from_slice(&(k.len() as u16).to_be_bytes());
                out.extend_from_slice(k);
                encode(out, v);
            }
            out.extend_from_slice(&[0, 0, OBJECT_END]);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for v in items {
                encode(out, v);
            }
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(members: &[(&str, Value)]) -> Value {
        Value::Object(members.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn round_trips_what_the_server_sends() {
        let values = vec![
            Value::String("_result".into()),
            Value::Number(1.0),
            obj(&[
                ("fmsVer", Value::String("FMS/3,0,1,123".into())),
                ("capabilities", Value::Number(31.0)),
            ]),
            Value::Null,
            Value::Boolean(true),
            Value::StrictArray(vec![Value::Number(2.0), Value::Undefined]),
        ];
        let mut bytes = vec![];
        for v in &values {
            encode(&mut bytes, v);
        }
        assert_eq!(decode_all(&bytes, Amf0Limits::default()).unwrap(), values);
    }

    #[test]
    fn decodes_ecma_arrays_dates_and_typed_objects() {
        let mut b = vec![ECMA_ARRAY, 0, 0, 0, 9]; // a wrong count is only a hint
        b.extend_from_slice(&[0, 8]);
        b.extend_from_slice(b"duration");
        b.push(NUMBER);
        b.extend_from_slice(&5.0f64.to_be_bytes());
        b.extend_from_slice(&[0, 0, OBJECT_END]);
        b.push(DATE);
        b.extend_from_slice(&7.0f64.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&[TYPED_OBJECT, 0, 1, b'T', 0, 0, OBJECT_END]);
        let v = decode_all(&b, Amf0Limits::default()).unwrap();
        assert_eq!(v[0].get("duration"), Some(&Value::Number(5.0)));
        assert_eq!(v[1], Value::Number(7.0));
        assert_eq!(v[2], Value::Object(vec![]));
    }

    #[test]
    fn refuses_deep_nesting_of_every_container() {
        let limits = Amf0Limits::default();
        for open in [
            vec![STRICT_ARRAY, 0, 0, 0, 1],
            vec![OBJECT, 0, 1, b'a'],
            vec![ECMA_ARRAY, 0, 0, 0, 1, 0, 1, b'a'],
        ] {
            let mut b = vec![];
            for _ in 0..200_000 {
                b.extend_from_slice(&open);
            }
            assert_eq!(decode_all(&b, limits), Err(Amf0Error::TooDeep(16)));
        }
        // Exactly at the limit is fine.
        let mut b = vec![];
        for _ in 0..16 {
            b.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        b.push(NULL);
        assert!(decode_all(&b, limits).is_ok());
    }

    #[test]
    fn claimed_counts_allocate_nothing_and_values_are_bounded() {
        // A strict array claiming 2^32-1 items, holding none.
        assert_eq!(
            decode_all(&[STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff], Amf0Limits::default()),
            Err(Amf0Error::Truncated)
        );
        let many = vec![NULL; 5000];
        assert_eq!(
            decode_all(&many, Amf0Limits::default()),
            Err(Amf0Error::TooManyValues(4096))
        );
        assert_eq!(decode_all(&[0x11], Amf0Limits::default()), Err(Amf0Error::Marker(0x11)));
        assert_eq!(
            decode_all(&[STRING, 0, 5, b'a'], Amf0Limits::default()),
            Err(Amf0Error::Truncated)
        );
    }
}
