//! Records to JSON: the `omnisaga.v1.Envelope` (and its payload) decoded
//! dynamically from a `FileDescriptorSet`, so a newer producer's fields
//! show when its descriptor set is given; a record that does not decode is
//! kept with the reason and its raw bytes.

use anyhow::{Context, Result};
use base64::{engine::general_purpose::STANDARD, Engine};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::{json, Map, Value};

/// The descriptor set checked in beside the protos (`schemas/omnisaga_v1.binpb`).
pub const BUILT_IN: &[u8] = include_bytes!("../../../schemas/omnisaga_v1.binpb");

/// The message every record's value is.
const ENVELOPE: &str = "omnisaga.v1.Envelope";

/// One Kafka record, as read.
#[derive(Debug, Clone, Default)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, if the record has a timestamp.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub value: Option<&'a [u8]>,
}

/// Decodes record values as `omnisaga.v1.Envelope`s.
pub struct Decoder {
    envelope: MessageDescriptor,
}

impl Decoder {
    /// A decoder from an encoded `FileDescriptorSet` holding `omnisaga.v1.Envelope`.
    pub fn new(descriptor_set: &[u8]) -> Result<Self> {
        let pool = DescriptorPool::decode(descriptor_set)
            .context("the descriptor set is not a FileDescriptorSet")?;
        let envelope = pool
            .get_message_by_name(ENVELOPE)
            .with_context(|| format!("the descriptor set has no {ENVELOPE}"))?;
        Ok(Self { envelope })
    }

    /// A decoder from the descriptor set in `path`, else the built-in one.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self> {
        match path {
            None => Self::new(BUILT_IN),
            Some(path) => {
                let bytes =
                    std::fs::read(path).with_context(|| format!("Failed to read {}", path.display()))?;
                Self::new(&bytes).with_context(|| format!("{} cannot decode records", path.display()))
            }
        }
    }

    /// The envelope in `value` as proto3 JSON with the proto's field names.
    pub fn envelope(&self, value: &[u8]) -> Result<Value> {
        let message =
            DynamicMessage::decode(self.envelope.clone(), value).context("not an omnisaga.v1.Envelope")?;
        let options = SerializeOptions::new().use_proto_field_name(true);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .context("the envelope has no JSON form")
    }

    /// The record as one JSON line: where it was, its key and headers, and
    /// the decoded `envelope`, or an `error` with the value in `value_base64`.
    pub fn record(&self, record: &Record) -> Value {
        let mut line = json!({
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp_ms.and_then(rfc3339),
            "key": record.key.map(text),
            "headers": headers(&record.headers),
        });
        match record.value.map(|v| self.envelope(v)) {
            Some(Ok(envelope)) => line["envelope"] = envelope,
            Some(Err(e)) => {
                line["error"] = json!(format!("{e:#}"));
                line["value_base64"] = json!(STANDARD.encode(record.value.unwrap_or_default()));
            }
            None => line["error"] = json!("the record has no value"),
        }
        line
    }
}

/// Header values as text (base64 when they are not UTF-8).
fn headers(headers: &[(&str, Option<&[u8]>)]) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map_or(Value::Null, |v| json!(text(v)))))
        .collect();
    Value::Object(map)
}

/// Bytes as UTF-8, or `base64:` and their base64 when they are not.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("base64:{}", STANDARD.encode(bytes)),
    }
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests;
