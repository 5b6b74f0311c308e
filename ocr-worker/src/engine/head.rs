//! Edits of a recognizer's output: its output layer cut to the characters of
//! one script, and a summary of each timestep as its only output
//! ([`summarize_steps`]). The wire format they edit is [`super::wire`]'s;
//! the scripts are [`super::script`]'s.
//!
//! PP-OCR's recognizers end in one linear layer and a softmax over every
//! symbol of their dictionary: 6,906 classes for PP-OCRv6 tiny, 18,710 for
//! small, nearly all of them CJK. A Latin-script document needs a few hundred.
//! Cutting the layer's weight columns to those classes makes the last matrix
//! product and the softmax a tenth of their size, and a Latin line can no
//! longer come out with a CJK look-alike in it. The cut is made on the model's
//! bytes when it is loaded, so the file on disk stays the checksummed one the
//! bootstrap installed.
//!
//! The edit works on the protobuf wire format and copies every field it does
//! not change byte for byte: it rewrites the two initializers of the output
//! layer (the only `[features, classes]` weight and `[classes]` bias), drops
//! the graph's recorded intermediate shapes (ONNX Runtime infers them again)
//! and the output's shape.
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_varint, encode_key, encode_varint};

use super::wire::*;

/// Cuts the output layer of the ONNX model `model` (a `[features, classes]`
/// weight and a `[classes]` bias feeding the output) to the classes `keep`,
/// in that order. Returns the new model, or why the layer cannot be cut.
pub fn cut_output_layer(
    model: &[u8],
    classes: usize,
    keep: &[usize],
) -> Result<Vec<u8>, EditError> {
    if let Some(&bad) = keep.iter().find(|&&k| k >= classes) {
        return Err(EditError::from(format!(
            "class {bad} is past the model's {classes} classes"
        )));
    }
    let mut found = Found::default();
    let out = rewrite(model, &mut |field| {
        Ok(match field.number {
            MODEL_GRAPH => Edit::Replace(cut_graph(field.payload, classes, keep, &mut found)?),
            _ => Edit::Keep,
        })
    })?;
    match (found.weights, found.biases) {
        (1, 0 | 1) => Ok(out),
        (0, _) => Err(EditError::from(format!(
            "no [features, {classes}] weight in the graph: not a recognizer with a linear output layer"
        ))),
        (w, b) => Err(EditError::from(format!(
            "{w} weights and {b} biases end in {classes} classes: cannot tell which is the output layer"
        ))),
    }
}

/// Appends to the recognizer `model` a summary of each output timestep and
/// makes it the model's only output: a `[batch, steps, 4]` float tensor of the
/// most probable class (ArgMax, the first on ties, as the host decoder
/// picks), its probability, the probability of class `space` (the evidence
/// for a space among blanks; class 0 when the vocabulary has none), and the
/// number of classes the network has.
///
/// This is what greedy CTC decoding reads of the `[batch, steps, classes]`
/// probabilities, so on an accelerator only three numbers a step leave the
/// device instead of every class (6,906 for PP-OCRv6 tiny). Needs a model of
/// ONNX opset 11 or later (GatherElements) with one output.
pub fn summarize_steps(model: &[u8], space: Option<usize>) -> Result<Vec<u8>, EditError> {
    let opset = default_opset(model)?;
    if opset < 11 {
        return Err(EditError::from(format!(
            "opset {opset} is older than 11, which the step summary needs"
        )));
    }
    let mut done = false;
    let out = rewrite(model, &mut |field| {
        Ok(match field.number {
            MODEL_GRAPH => {
                done = true;
                Edit::Replace(summarize_graph(field.payload, space.unwrap_or(0))?)
            }
            _ => Edit::Keep,
        })
    })?;
    if !done {
        return Err("not an ONNX model: no graph".into());
    }
    Ok(out)
}

/// Name of the output [`summarize_steps`] gives the model.
const STEPS_OUTPUT: &str = "pagefleet.steps";

/// The version of the default ONNX operator set a model imports.
fn default_opset(model: &[u8]) -> Result<u64, EditError> {
    let mut version = None;
    for field in fields(model)? {
        if field.number != MODEL_OPSET_IMPORT {
            continue;
        }
        let (mut domain, mut v) = (&[][..], 0);
        for f in fields(field.payload)? {
            match f.number {
                OPSET_DOMAIN => domain = f.payload,
                OPSET_VERSION => v = varint(f.payload)?,
                _ => {}
            }
        }
        if domain.is_empty() || domain == b"ai.onnx" {
            version = Some(v);
        }
    }
    version.ok_or_else(|| "the model imports no default ONNX operator set".into())
}

/// The names of the inputs a model is fed: its graph's inputs that are not
/// initializers (older exports list weights among the inputs).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(super) fn graph_inputs(model: &[u8]) -> Result<Vec<String>, EditError> {
    let graph = fields(model)?
        .into_iter()
        .find(|f| f.number == MODEL_GRAPH)
        .ok_or("not an ONNX model: no graph")?;
    let name_of = |msg: &[u8], number: u32| -> Result<Option<String>, EditError> {
        Ok(fields(msg)?
            .into_iter()
            .find(|f| f.number == number)
            .map(|f| String::from_utf8_lossy(f.payload).into_owned()))
    };
    let mut inputs = Vec::new();
    let mut weights = std::collections::HashSet::new();
    for f in fields(graph.payload)? {
        match f.number {
            GRAPH_INPUT => inputs.extend(name_of(f.payload, VALUE_INFO_NAME)?),
            GRAPH_INITIALIZER => weights.extend(name_of(f.payload, TENSOR_NAME)?),
            _ => {}
        }
    }
    inputs.retain(|i| !weights.contains(i));
    Ok(inputs)
}

fn summarize_graph(graph: &[u8], space: usize) -> Result<Vec<u8>, EditError> {
    let outputs: Vec<Field<'_>> = fields(graph)?
        .into_iter()
        .filter(|f| f.number == GRAPH_OUTPUT)
        .collect();
    let [output] = outputs.as_slice() else {
        return Err(EditError::from(format!(
            "the recognizer has {} outputs; the step summary needs one",
            outputs.len()
        )));
    };
    let probs = fields(output.payload)?
        .into_iter()
        .find(|f| f.number == VALUE_INFO_NAME)
        .map(|f| String::from_utf8_lossy(f.payload).into_owned())
        .ok_or("the recognizer's output has no name")?;
    let [
        best,
        p,
        sp,
        best_f,
        space_index,
        shape,
        class_index,
        classes,
        classes_f,
        like,
        per_step,
    ] = [
        "best",
        "p",
        "space",
        "best_f",
        "space_index",
        "shape",
        "class_index",
        "classes",
        "classes_f",
        "classes_like",
        "classes_steps",
    ]
    .map(|part| format!("{STEPS_OUTPUT}.{part}"));
    let int = int_attribute;
    let nodes = [
        node(
            "ArgMax",
            &[&probs],
            &best,
            &[int("axis", 2), int("keepdims", 1)],
        ),
        node("GatherElements", &[&probs, &best], &p, &[int("axis", 2)]),
        node("Gather", &[&probs, &space_index], &sp, &[int("axis", 2)]),
        node("Cast", &[&best], &best_f, &[int("to", FLOAT as i64)]),
        // The class count in every step, so that the engine can still check
        // its vocabulary against the network.
        node("Shape", &[&probs], &shape, &[]),
        node(
            "Gather",
            &[&shape, &class_index],
            &classes,
            &[int("axis", 0)],
        ),
        node("Cast", &[&classes], &classes_f, &[int("to", FLOAT as i64)]),
        node("Shape", &[&best], &like, &[]),
        node("Expand", &[&classes_f, &like], &per_step, &[]),
        node(
            "Concat",
            &[&best_f, &p, &sp, &per_step],
            STEPS_OUTPUT,
            &[int("axis", 2)],
        ),
    ];

    // The old output goes; nodes and the index are appended (protobuf merges
    // repeated fields wherever they appear), then the new output.
    let mut out = rewrite(graph, &mut |f| {
        Ok(match f.number {
            GRAPH_OUTPUT => Edit::Drop,
            _ => Edit::Keep,
        })
    })?;
    for n in &nodes {
        put_bytes(GRAPH_NODE, n, &mut out);
    }
    put_bytes(
        GRAPH_INITIALIZER,
        &int64_vector(&space_index, space as i64),
        &mut out,
    );
    put_bytes(GRAPH_INITIALIZER, &int64_vector(&class_index, 2), &mut out);
    let mut elem = Vec::new();
    encode_key(TYPE_TENSOR_ELEM_TYPE, WireType::Varint, &mut elem);
    encode_varint(FLOAT, &mut elem);
    let mut ty = Vec::new();
    put_bytes(TYPE_TENSOR, &elem, &mut ty);
    let mut value = Vec::new();
    put_bytes(VALUE_INFO_NAME, STEPS_OUTPUT.as_bytes(), &mut value);
    put_bytes(VALUE_INFO_TYPE, &ty, &mut value);
    put_bytes(GRAPH_OUTPUT, &value, &mut out);
    Ok(out)
}

#[derive(Default)]
struct Found {
    weights: usize,
    biases: usize,
}

fn cut_graph(
    graph: &[u8],
    classes: usize,
    keep: &[usize],
    found: &mut Found,
) -> Result<Vec<u8>, EditError> {
    rewrite(graph, &mut |field| {
        Ok(match field.number {
            GRAPH_INITIALIZER => match cut_tensor(field.payload, classes, keep)? {
                Some((cut, rows)) => {
                    match rows {
                        Some(_) => found.weights += 1,
                        None => found.biases += 1,
                    }
                    Edit::Replace(cut)
                }
                None => Edit::Keep,
            },
            GRAPH_VALUE_INFO => Edit::Drop,
            GRAPH_OUTPUT => Edit::Replace(without_shape(field.payload)?),
            _ => Edit::Keep,
        })
    })
}

/// A graph output (`ValueInfoProto`) without its tensor shape.
fn without_shape(value_info: &[u8]) -> Result<Vec<u8>, EditError> {
    edit_field(
        value_info,
        VALUE_INFO_TYPE,
        Some(&|ty| {
            edit_field(
                ty,
                TYPE_TENSOR,
                Some(&|t| edit_field(t, TENSOR_TYPE_SHAPE, None)),
            )
        }),
    )
}

/// The tensor cut to `keep` along its last axis when it is a `[rows,
/// classes]` or `[classes]` float tensor, with its row count (`None` for a
/// bias); `None` for every other tensor.
#[allow(clippy::type_complexity)]
fn cut_tensor(
    tensor: &[u8],
    classes: usize,
    keep: &[usize],
) -> Result<Option<(Vec<u8>, Option<usize>)>, EditError> {
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut data: Option<Vec<f32>> = None;
    let mut external = false;
    for field in fields(tensor)? {
        match (field.number, field.wire) {
            (TENSOR_DIMS, WireType::Varint) => dims.push(varint(field.payload)?),
            (TENSOR_DIMS, WireType::LengthDelimited) => {
                let mut buf = field.payload;
                while buf.has_remaining() {
                    dims.push(decode_varint(&mut buf).map_err(|e| e.to_string())?);
                }
            }
            (TENSOR_DATA_TYPE, _) => data_type = varint(field.payload)?,
            (TENSOR_RAW_DATA | TENSOR_FLOAT_DATA, WireType::LengthDelimited) => {
                data = Some(
                    field
                        .payload
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                );
            }
            (TENSOR_EXTERNAL_DATA, _) => external = true,
            (TENSOR_DATA_LOCATION, _) => external |= varint(field.payload)? == 1,
            _ => {}
        }
    }
    let rows = match dims.as_slice() {
        [rows, last] if *last == classes as u64 => Some(*rows as usize),
        [last] if *last == classes as u64 => None,
        _ => return Ok(None),
    };
    if data_type != FLOAT || external {
        return Err("the output layer is not stored as float data inside the model".into());
    }
    let data = data.ok_or("the output layer has no data")?;
    let n_rows = rows.unwrap_or(1);
    if data.len() != n_rows * classes {
        return Err(EditError::from(format!(
            "the output layer holds {} values for {n_rows} × {classes}",
            data.len()
        )));
    }
    let mut raw = Vec::with_capacity(n_rows * keep.len() * 4);
    for row in data.chunks_exact(classes) {
        for &k in keep {
            raw.extend_from_slice(&row[k].to_le_bytes());
        }
    }
    let mut dims = vec![keep.len() as u64];
    if let Some(r) = rows {
        dims.insert(0, r as u64);
    }
    let mut out = rewrite(tensor, &mut |f| {
        Ok(match f.number {
            TENSOR_DIMS | TENSOR_FLOAT_DATA | TENSOR_RAW_DATA => Edit::Drop,
            _ => Edit::Keep,
        })
    })?;
    for d in dims {
        encode_key(TENSOR_DIMS, WireType::Varint, &mut out);
        encode_varint(d, &mut out);
    }
    put_bytes(TENSOR_RAW_DATA, &raw, &mut out);
    Ok(Some((out, rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, content) in fields {
            put_bytes(*n, content, &mut out);
        }
        out
    }

    fn varint_field(n: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(n, WireType::Varint, &mut out);
        encode_varint(v, &mut out);
        out
    }

    fn tensor(name: &str, dims: &[u64], values: &[f32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            t.extend(varint_field(TENSOR_DIMS, d));
        }
        t.extend(varint_field(TENSOR_DATA_TYPE, FLOAT));
        put_bytes(8, name.as_bytes(), &mut t);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        put_bytes(TENSOR_RAW_DATA, &raw, &mut t);
        t
    }

    /// Name, dims and values of a tensor.
    fn read_tensor(t: &[u8]) -> (String, Vec<u64>, Vec<f32>) {
        let mut name = String::new();
        let mut dims = Vec::new();
        let mut values = Vec::new();
        for f in fields(t).unwrap() {
            match f.number {
                TENSOR_DIMS => dims.push(varint(f.payload).unwrap()),
                8 => name = String::from_utf8(f.payload.to_vec()).unwrap(),
                TENSOR_RAW_DATA => {
                    values = f
                        .payload
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect()
                }
                _ => {}
            }
        }
        (name, dims, values)
    }

    fn graph_of(model: &[u8]) -> Vec<u8> {
        fields(model)
            .unwrap()
            .into_iter()
            .find(|f| f.number == MODEL_GRAPH)
            .unwrap()
            .payload
            .to_vec()
    }

    #[test]
    fn the_output_layer_keeps_the_chosen_columns_and_the_rest_is_untouched() {
        // A [2, 4] weight, a [4] bias, an unrelated [4, 4] tensor whose last
        // axis is not the class count, and an output with a shape.
        let weight = tensor("w", &[2, 4], &[0., 1., 2., 3., 10., 11., 12., 13.]);
        let bias = tensor("b", &[4], &[0.5, 1.5, 2.5, 3.5]);
        let other = tensor("o", &[3, 3], &[1.0; 9]);
        let output = message(&[
            (1, b"probs".to_vec()),
            (
                VALUE_INFO_TYPE,
                message(&[(TYPE_TENSOR, message(&[(TENSOR_TYPE_SHAPE, vec![8, 4])]))]),
            ),
        ]);
        let graph = message(&[
            (1, b"node bytes".to_vec()),
            (GRAPH_INITIALIZER, weight),
            (GRAPH_INITIALIZER, bias),
            (GRAPH_INITIALIZER, other.clone()),
            (GRAPH_OUTPUT, output),
            (GRAPH_VALUE_INFO, b"stale shape".to_vec()),
        ]);
        let mut model = varint_field(1, 6);
        model.extend(message(&[(MODEL_GRAPH, graph), (8, b"opset".to_vec())]));

        let cut = cut_output_layer(&model, 4, &[0, 3]).unwrap();
        let top = fields(&cut).unwrap();
        assert_eq!(top[0].raw, &varint_field(1, 6)[..], "ir_version copied");
        assert_eq!(top[2].payload, b"opset");
        let graph = graph_of(&cut);
        let g = fields(&graph).unwrap();
        let numbers: Vec<u32> = g.iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 5, 5, 5, 12], "value_info dropped, order kept");
        assert_eq!(g[0].payload, b"node bytes");
        assert_eq!(
            read_tensor(g[1].payload),
            ("w".into(), vec![2, 2], vec![0., 3., 10., 13.])
        );
        assert_eq!(
            read_tensor(g[2].payload),
            ("b".into(), vec![2], vec![0.5, 3.5])
        );
        assert_eq!(
            g[3].payload,
            &other[..],
            "other tensors are copied as they are"
        );
        // The output keeps its name and type, without the old shape.
        let out = fields(g[4].payload).unwrap();
        assert_eq!(out[0].payload, b"probs");
        let ty = fields(out[1].payload).unwrap();
        assert!(fields(ty[0].payload).unwrap().is_empty());
    }

    #[test]
    fn models_without_one_clear_output_layer_are_refused() {
        let graph = |tensors: Vec<Vec<u8>>| {
            let g = message(
                &tensors
                    .into_iter()
                    .map(|t| (GRAPH_INITIALIZER, t))
                    .collect::<Vec<_>>(),
            );
            message(&[(MODEL_GRAPH, g)])
        };
        let none = graph(vec![tensor("x", &[2, 3], &[0.0; 6])]);
        let err = cut_output_layer(&none, 4, &[0]).unwrap_err();
        assert!(err.message().contains("no [features, 4] weight"), "{err}");
        let two = graph(vec![
            tensor("a", &[2, 4], &[0.0; 8]),
            tensor("b", &[3, 4], &[0.0; 12]),
        ]);
        let err = cut_output_layer(&two, 4, &[0]).unwrap_err();
        assert!(err.message().contains("cannot tell"), "{err}");
        let short = graph(vec![tensor("a", &[2, 4], &[0.0; 5])]);
        assert!(
            cut_output_layer(&short, 4, &[0])
                .unwrap_err()
                .message()
                .contains("5 values")
        );
        assert!(
            cut_output_layer(&short, 4, &[4])
                .unwrap_err()
                .message()
                .contains("past")
        );
        assert!(
            cut_output_layer(b"\xff\xff\xff", 4, &[0])
                .unwrap_err()
                .message()
                .contains("not an ONNX model")
        );
    }

    fn opset(version: u64) -> Vec<u8> {
        let mut op = Vec::new();
        put_bytes(OPSET_DOMAIN, b"", &mut op);
        op.extend(varint_field(OPSET_VERSION, version));
        op
    }

    fn strings(msg: &[u8], number: u32) -> Vec<String> {
        fields(msg)
            .unwrap()
            .into_iter()
            .filter(|f| f.number == number)
            .map(|f| String::from_utf8(f.payload.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn the_step_summary_becomes_the_only_output_and_the_rest_is_kept() {
        let output = message(&[(VALUE_INFO_NAME, b"probs".to_vec())]);
        let graph = message(&[
            (GRAPH_NODE, b"node bytes".to_vec()),
            (GRAPH_INITIALIZER, tensor("w", &[2, 4], &[0.0; 8])),
            (GRAPH_OUTPUT, output),
        ]);
        let mut model = varint_field(1, 6);
        model.extend(message(&[
            (MODEL_GRAPH, graph),
            (MODEL_OPSET_IMPORT, opset(11)),
        ]));

        let summarized = summarize_steps(&model, Some(3)).unwrap();
        let top = fields(&summarized).unwrap();
        assert_eq!(top[0].raw, &varint_field(1, 6)[..], "ir_version copied");
        assert_eq!(top[2].payload, &opset(11)[..]);
        let graph = graph_of(&summarized);
        let g = fields(&graph).unwrap();
        assert_eq!(g[0].payload, b"node bytes");
        assert_eq!(read_tensor(g[1].payload).0, "w");
        let nodes: Vec<&Field<'_>> = g
            .iter()
            .filter(|f| f.number == GRAPH_NODE)
            .skip(1)
            .collect();
        let ops: Vec<String> = nodes
            .iter()
            .flat_map(|n| strings(n.payload, NODE_OP_TYPE))
            .collect();
        assert_eq!(
            ops,
            [
                "ArgMax",
                "GatherElements",
                "Gather",
                "Cast",
                "Shape",
                "Gather",
                "Cast",
                "Shape",
                "Expand",
                "Concat"
            ]
        );
        // Everything reads the old output, and the last node makes the new one.
        assert_eq!(strings(nodes[0].payload, NODE_INPUT), ["probs"]);
        assert_eq!(strings(nodes[9].payload, NODE_OUTPUT), [STEPS_OUTPUT]);
        // The space's index is the one given; the class count is dimension 2.
        let indices: Vec<(String, Vec<u8>)> = g
            .iter()
            .filter(|f| f.number == GRAPH_INITIALIZER)
            .skip(1)
            .map(|t| {
                let raw = fields(t.payload).unwrap();
                let name = raw.iter().find(|f| f.number == TENSOR_NAME).unwrap();
                let data = raw.iter().find(|f| f.number == TENSOR_RAW_DATA).unwrap();
                (
                    String::from_utf8(name.payload.to_vec()).unwrap(),
                    data.payload.to_vec(),
                )
            })
            .collect();
        assert_eq!(indices.len(), 2);
        assert_eq!(indices[0].1, 3i64.to_le_bytes());
        assert_eq!(indices[1].1, 2i64.to_le_bytes());
        let outputs: Vec<&Field<'_>> = g.iter().filter(|f| f.number == GRAPH_OUTPUT).collect();
        assert_eq!(outputs.len(), 1);
        assert_eq!(strings(outputs[0].payload, VALUE_INFO_NAME), [STEPS_OUTPUT]);
        // Without a space the blank's probability fills the column.
        let no_space = graph_of(&summarize_steps(&model, None).unwrap());
        let space_index = fields(&no_space)
            .unwrap()
            .into_iter()
            .filter(|f| f.number == GRAPH_INITIALIZER)
            .nth(1)
            .unwrap()
            .payload
            .to_vec();
        let data = fields(&space_index)
            .unwrap()
            .into_iter()
            .find(|f| f.number == TENSOR_RAW_DATA)
            .unwrap()
            .payload
            .to_vec();
        assert_eq!(data, 0i64.to_le_bytes());
    }

    #[test]
    fn a_summary_needs_one_output_and_opset_11() {
        let out = |name: &[u8]| (GRAPH_OUTPUT, message(&[(VALUE_INFO_NAME, name.to_vec())]));
        let model = |outputs: Vec<(u32, Vec<u8>)>, version: Option<u64>| {
            let mut fields = vec![(MODEL_GRAPH, message(&outputs))];
            fields.extend(version.map(|v| (MODEL_OPSET_IMPORT, opset(v))));
            message(&fields)
        };
        let err = summarize_steps(&model(vec![out(b"p")], Some(10)), None).unwrap_err();
        assert!(err.message().contains("opset 10"), "{err}");
        let err = summarize_steps(&model(vec![out(b"p")], None), None).unwrap_err();
        assert!(
            err.message().contains("no default ONNX operator set"),
            "{err}"
        );
        let err = summarize_steps(&model(vec![out(b"p"), out(b"q")], Some(13)), None).unwrap_err();
        assert!(err.message().contains("2 outputs"), "{err}");
        assert!(summarize_steps(&model(vec![out(b"p")], Some(13)), None).is_ok());
    }

    #[test]
    fn a_models_inputs_are_its_graph_inputs_less_its_weights() {
        let input = |name: &[u8]| (GRAPH_INPUT, message(&[(VALUE_INFO_NAME, name.to_vec())]));
        let graph = message(&[
            input(b"x"),
            input(b"w"),
            (GRAPH_INITIALIZER, tensor("w", &[1], &[0.0])),
            input(b"y"),
        ]);
        let model = message(&[(MODEL_GRAPH, graph)]);
        assert_eq!(graph_inputs(&model).unwrap(), ["x", "y"]);
        assert!(graph_inputs(&message(&[(1, b"no graph".to_vec())])).is_err());
    }
}
