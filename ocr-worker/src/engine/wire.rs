//! The protobuf wire format of ONNX models, as far as the engine's model
//! edits need it: onnx.proto's field numbers, a message's fields read in
//! order, rewritten field by field (every field not edited copied byte for
//! byte), and the few messages the edits add built.

use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};

// Field numbers of onnx.proto.
pub(super) const MODEL_GRAPH: u32 = 7;
pub(super) const MODEL_OPSET_IMPORT: u32 = 8;
pub(super) const OPSET_DOMAIN: u32 = 1;
pub(super) const OPSET_VERSION: u32 = 2;
pub(super) const GRAPH_NODE: u32 = 1;
pub(super) const NODE_INPUT: u32 = 1;
pub(super) const NODE_OUTPUT: u32 = 2;
pub(super) const NODE_NAME: u32 = 3;
pub(super) const NODE_OP_TYPE: u32 = 4;
pub(super) const NODE_ATTRIBUTE: u32 = 5;
pub(super) const ATTRIBUTE_NAME: u32 = 1;
pub(super) const ATTRIBUTE_I: u32 = 3;
pub(super) const ATTRIBUTE_TYPE: u32 = 20;
pub(super) const ATTRIBUTE_INT: u64 = 2;
pub(super) const VALUE_INFO_NAME: u32 = 1;
pub(super) const TYPE_TENSOR_ELEM_TYPE: u32 = 1;
pub(super) const TENSOR_NAME: u32 = 8;
pub(super) const INT64: u64 = 7;
pub(super) const GRAPH_INITIALIZER: u32 = 5;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(super) const GRAPH_INPUT: u32 = 11;
pub(super) const GRAPH_OUTPUT: u32 = 12;
pub(super) const GRAPH_VALUE_INFO: u32 = 13;
pub(super) const VALUE_INFO_TYPE: u32 = 2;
pub(super) const TYPE_TENSOR: u32 = 1;
pub(super) const TENSOR_TYPE_SHAPE: u32 = 2;
pub(super) const TENSOR_DIMS: u32 = 1;
pub(super) const TENSOR_DATA_TYPE: u32 = 2;
pub(super) const TENSOR_FLOAT_DATA: u32 = 4;
pub(super) const TENSOR_RAW_DATA: u32 = 9;
pub(super) const TENSOR_EXTERNAL_DATA: u32 = 13;
pub(super) const TENSOR_DATA_LOCATION: u32 = 14;
pub(super) const FLOAT: u64 = 1;

/// A `[1]` int64 `TensorProto`.
pub(super) fn int64_vector(name: &str, value: i64) -> Vec<u8> {
    let mut t = Vec::new();
    encode_key(TENSOR_DIMS, WireType::Varint, &mut t);
    encode_varint(1, &mut t);
    encode_key(TENSOR_DATA_TYPE, WireType::Varint, &mut t);
    encode_varint(INT64, &mut t);
    put_bytes(TENSOR_NAME, name.as_bytes(), &mut t);
    put_bytes(TENSOR_RAW_DATA, &value.to_le_bytes(), &mut t);
    t
}

/// A `NodeProto` of the default domain.
pub(super) fn node(op: &str, inputs: &[&str], output: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut n = Vec::new();
    for input in inputs {
        put_bytes(NODE_INPUT, input.as_bytes(), &mut n);
    }
    put_bytes(NODE_OUTPUT, output.as_bytes(), &mut n);
    put_bytes(NODE_NAME, format!("{output}.{op}").as_bytes(), &mut n);
    put_bytes(NODE_OP_TYPE, op.as_bytes(), &mut n);
    for a in attributes {
        put_bytes(NODE_ATTRIBUTE, a, &mut n);
    }
    n
}

/// An `AttributeProto` holding one integer.
pub(super) fn int_attribute(name: &str, value: i64) -> Vec<u8> {
    let mut a = Vec::new();
    put_bytes(ATTRIBUTE_NAME, name.as_bytes(), &mut a);
    encode_key(ATTRIBUTE_I, WireType::Varint, &mut a);
    encode_varint(value as u64, &mut a);
    encode_key(ATTRIBUTE_TYPE, WireType::Varint, &mut a);
    encode_varint(ATTRIBUTE_INT, &mut a);
    a
}

pub(super) type Inner<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, EditError>;

/// `msg` with the content of field `number` rewritten by `inner`, or the
/// field dropped without one.
pub(super) fn edit_field(
    msg: &[u8],
    number: u32,
    inner: Option<Inner<'_>>,
) -> Result<Vec<u8>, EditError> {
    rewrite(msg, &mut |f| {
        Ok(match (f.number == number, inner) {
            (false, _) => Edit::Keep,
            (true, None) => Edit::Drop,
            (true, Some(inner)) => Edit::Replace(inner(f.payload)?),
        })
    })
}

/// One field of a protobuf message.
pub(super) struct Field<'a> {
    pub(super) number: u32,
    pub(super) wire: WireType,
    /// The whole field, key included.
    pub(super) raw: &'a [u8],
    /// A length-delimited field's content, or a scalar's bytes.
    pub(super) payload: &'a [u8],
}

pub(super) enum Edit {
    Keep,
    Drop,
    /// New content for a length-delimited field.
    Replace(Vec<u8>),
    /// Whole fields, keys included, in the field's place.
    Raw(Vec<u8>),
}

/// The message's fields in order.
pub(super) fn fields(msg: &[u8]) -> Result<Vec<Field<'_>>, EditError> {
    let bad = |e: prost::DecodeError| format!("not an ONNX model: {e}");
    let mut out = Vec::new();
    let mut rest = msg;
    while rest.has_remaining() {
        let start = msg.len() - rest.len();
        let (number, wire) = decode_key(&mut rest).map_err(bad)?;
        let head = msg.len() - rest.len();
        let (from, to) = match wire {
            WireType::Varint => {
                decode_varint(&mut rest).map_err(bad)?;
                (head, msg.len() - rest.len())
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let n = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                if rest.len() < n {
                    return Err("not an ONNX model: truncated field".into());
                }
                rest.advance(n);
                (head, head + n)
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut rest).map_err(bad)? as usize;
                if rest.len() < len {
                    return Err("not an ONNX model: truncated field".into());
                }
                let from = msg.len() - rest.len();
                rest.advance(len);
                (from, from + len)
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err("not an ONNX model: protobuf groups".into());
            }
        };
        out.push(Field {
            number,
            wire,
            raw: &msg[start..to],
            payload: &msg[from..to],
        });
    }
    Ok(out)
}

/// The message with each field kept, dropped or given new content by `edit`.
pub(super) fn rewrite(
    msg: &[u8],
    edit: &mut dyn FnMut(&Field<'_>) -> Result<Edit, EditError>,
) -> Result<Vec<u8>, EditError> {
    let mut out = Vec::with_capacity(msg.len());
    for field in fields(msg)? {
        match edit(&field)? {
            Edit::Keep => out.extend_from_slice(field.raw),
            Edit::Drop => {}
            Edit::Replace(content) => put_bytes(field.number, &content, &mut out),
            Edit::Raw(fields) => out.extend_from_slice(&fields),
        }
    }
    Ok(out)
}

pub(super) fn put_bytes(number: u32, content: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(content.len() as u64, out);
    out.extend_from_slice(content);
}

pub(super) fn varint(mut bytes: &[u8]) -> Result<u64, EditError> {
    decode_varint(&mut bytes).map_err(|e| EditError::from(format!("not an ONNX model: {e}")))
}

/// A model edit that cannot be made: the bytes are not an ONNX model as the
/// edit reads it, or the model is not of the shape the edit expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EditError(String);

impl EditError {
    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<String> for EditError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for EditError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
