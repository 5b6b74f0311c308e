//! Elementwise operators on ONNX Runtime's channel-blocked tensors.
//!
//! On x86 ONNX Runtime's CPU provider runs convolutions on tensors whose
//! channels are interleaved in blocks of 8 or 16 (NCHWc), and puts a reorder
//! back to plain NCHW in front of every operator its layout pass does not
//! know, and another one after it. PP-OCR's networks put a GELU between most
//! convolutions, which that pass does not know: about 40 reorders in the
//! recognizer and the detector, each a full pass over an activation tensor.
//! An elementwise operator does not care how its tensor is laid out, so on
//! ONNX Runtime's own optimised graph it can read the blocked tensor
//! directly; the reorder that followed it then cancels against the next
//! convolution's. The padding channels of a blocked tensor are zeros, so only
//! operators that keep zero at zero are moved.
//!
//! Measured (`bench/levers.sh`, one thread, two runs): 2-6% off the
//! recognizer's time and 1.5-7% off the detector's, with outputs identical
//! to the bit.

use super::wire::{
    ATTRIBUTE_I, ATTRIBUTE_NAME, Edit, EditError, GRAPH_NODE, GRAPH_OUTPUT, MODEL_GRAPH,
    NODE_ATTRIBUTE, NODE_INPUT, NODE_NAME, NODE_OP_TYPE, NODE_OUTPUT, VALUE_INFO_NAME, fields,
    put_bytes, rewrite, varint,
};

/// Unary elementwise operators with `f(0) = 0`.
const ZERO_KEEPING: [&str; 5] = ["FastGelu", "Gelu", "Erf", "Relu", "Tanh"];
const NCHWC: &str = "com.microsoft.nchwc";
const NODE_DOMAIN: u32 = 7;

/// ONNX Runtime's optimised `model` with every zero-keeping elementwise
/// operator moved onto the blocked tensor it was reordered from, and the
/// reorders this frees removed. Returns the model and how many reorders went.
pub(crate) fn sink_reorders(model: &[u8]) -> Result<(Vec<u8>, usize), EditError> {
    let mut removed = 0;
    let out = rewrite(model, &mut |field| {
        Ok(match field.number {
            MODEL_GRAPH => {
                let (graph, n) = sink_graph(field.payload)?;
                removed += n;
                Edit::Replace(graph)
            }
            _ => Edit::Keep,
        })
    })?;
    Ok((out, removed))
}

/// A node of the graph: what the rewrite reads of it, and its bytes.
#[derive(Debug, Clone)]
struct Node {
    raw: Vec<u8>,
    op: String,
    domain: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// `channels_last` is set (a reorder to or from NHWC, left alone).
    channels_last: bool,
    /// Inputs, outputs or name differ from `raw`'s.
    edited: bool,
}

impl Node {
    fn parse(raw: &[u8]) -> Result<Self, EditError> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut node = Node {
            raw: raw.to_vec(),
            op: String::new(),
            domain: String::new(),
            name: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            channels_last: false,
            edited: false,
        };
        for f in fields(raw)? {
            match f.number {
                NODE_INPUT => node.inputs.push(text(f.payload)),
                NODE_OUTPUT => node.outputs.push(text(f.payload)),
                NODE_NAME => node.name = text(f.payload),
                NODE_OP_TYPE => node.op = text(f.payload),
                NODE_DOMAIN => node.domain = text(f.payload),
                NODE_ATTRIBUTE => {
                    let attr = fields(f.payload)?;
                    let named = attr
                        .iter()
                        .any(|a| a.number == ATTRIBUTE_NAME && a.payload == b"channels_last");
                    if named {
                        for a in attr.iter().filter(|a| a.number == ATTRIBUTE_I) {
                            node.channels_last |= varint(a.payload)? != 0;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(node)
    }

    fn encode(&self) -> Result<Vec<u8>, EditError> {
        if !self.edited {
            return Ok(self.raw.clone());
        }
        let mut out = rewrite(&self.raw, &mut |f| {
            Ok(match f.number {
                NODE_INPUT | NODE_OUTPUT | NODE_NAME => Edit::Drop,
                _ => Edit::Keep,
            })
        })?;
        for i in &self.inputs {
            put_bytes(NODE_INPUT, i.as_bytes(), &mut out);
        }
        for o in &self.outputs {
            put_bytes(NODE_OUTPUT, o.as_bytes(), &mut out);
        }
        put_bytes(NODE_NAME, self.name.as_bytes(), &mut out);
        Ok(out)
    }

    /// A reorder from blocked to plain layout that the rewrite may move past.
    fn to_plain(&self) -> bool {
        self.op == "ReorderOutput" && self.domain == NCHWC && !self.channels_last
    }

    fn to_blocked(&self) -> bool {
        self.op == "ReorderInput" && self.domain == NCHWC && !self.channels_last
    }

    fn zero_keeping(&self) -> bool {
        matches!(self.domain.as_str(), "" | "ai.onnx" | "com.microsoft")
            && ZERO_KEEPING.contains(&self.op.as_str())
            && self.inputs.len() == 1
            && self.outputs.len() == 1
    }
}

fn sink_graph(graph: &[u8]) -> Result<(Vec<u8>, usize), EditError> {
    let mut nodes = Vec::new();
    let mut outputs = Vec::new();
    for f in fields(graph)? {
        match f.number {
            GRAPH_NODE => nodes.push(Node::parse(f.payload)?),
            GRAPH_OUTPUT => outputs.extend(
                fields(f.payload)?
                    .into_iter()
                    .filter(|v| v.number == VALUE_INFO_NAME)
                    .map(|v| String::from_utf8_lossy(v.payload).into_owned()),
            ),
            _ => {}
        }
    }
    let before = nodes
        .iter()
        .filter(|n| n.to_plain() || n.to_blocked())
        .count();
    let mut fresh = 0;
    loop {
        let mut changed = false;
        // An elementwise op fed by a reorder to plain layout reads the blocked
        // tensor instead, and a reorder after it gives its old output.
        let mut i = 0;
        while i < nodes.len() {
            let source = nodes[i]
                .zero_keeping()
                .then(|| producer(&nodes, &nodes[i].inputs[0]))
                .flatten()
                .filter(|&r| nodes[r].to_plain());
            if let Some(r) = source {
                fresh += 1;
                let plain = nodes[i].outputs[0].clone();
                let blocked = format!("{plain}.blocked{fresh}");
                let mut back = nodes[r].clone();
                back.inputs = vec![blocked.clone()];
                back.outputs = vec![plain];
                back.name = format!("{}.sunk{fresh}", nodes[r].name);
                back.edited = true;
                let source = nodes[r].inputs[0].clone();
                let node = &mut nodes[i];
                node.inputs[0] = source;
                node.outputs[0] = blocked;
                node.edited = true;
                nodes.insert(i + 1, back);
                changed = true;
            }
            i += 1;
        }
        // A reorder to blocked layout of a reorder to plain one is the
        // blocked tensor itself.
        let mut i = 0;
        while i < nodes.len() {
            let source = nodes[i]
                .to_blocked()
                .then(|| producer(&nodes, &nodes[i].inputs[0]))
                .flatten()
                .filter(|&r| nodes[r].to_plain());
            match source {
                Some(r) => {
                    let (from, to) = (nodes[r].inputs[0].clone(), nodes[i].outputs[0].clone());
                    if outputs.contains(&to) {
                        i += 1;
                        continue;
                    }
                    nodes.remove(i);
                    for n in nodes.iter_mut() {
                        for input in n.inputs.iter_mut().filter(|x| **x == to) {
                            *input = from.clone();
                            n.edited = true;
                        }
                    }
                    changed = true;
                }
                None => i += 1,
            }
        }
        // Reorders nothing reads any more.
        let used: std::collections::HashSet<String> = nodes
            .iter()
            .flat_map(|n| n.inputs.iter().cloned())
            .chain(outputs.iter().cloned())
            .collect();
        let count = nodes.len();
        nodes.retain(|n| !n.to_plain() || n.outputs.iter().any(|o| used.contains(o)));
        changed |= nodes.len() != count;
        if !changed {
            break;
        }
    }
    let after = nodes
        .iter()
        .filter(|n| n.to_plain() || n.to_blocked())
        .count();
    // The nodes go where the first node was; every other field stays.
    let mut encoded = Vec::new();
    for n in &nodes {
        put_bytes(GRAPH_NODE, &n.encode()?, &mut encoded);
    }
    let mut placed = false;
    let out = rewrite(graph, &mut |f| {
        Ok(match f.number {
            GRAPH_NODE if !placed => {
                placed = true;
                Edit::Raw(std::mem::take(&mut encoded))
            }
            GRAPH_NODE => Edit::Drop,
            _ => Edit::Keep,
        })
    })?;
    Ok((out, before.saturating_sub(after)))
}

/// The node that outputs `name`.
fn producer(nodes: &[Node], name: &str) -> Option<usize> {
    nodes
        .iter()
        .position(|n| n.outputs.iter().any(|o| o == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            put_bytes(NODE_INPUT, i.as_bytes(), &mut n);
        }
        for o in outputs {
            put_bytes(NODE_OUTPUT, o.as_bytes(), &mut n);
        }
        put_bytes(NODE_NAME, format!("{op}:{}", outputs[0]).as_bytes(), &mut n);
        put_bytes(NODE_OP_TYPE, op.as_bytes(), &mut n);
        put_bytes(NODE_DOMAIN, domain.as_bytes(), &mut n);
        n
    }

    fn model(nodes: &[Vec<u8>], output: &str) -> Vec<u8> {
        let mut graph = Vec::new();
        for n in nodes {
            put_bytes(GRAPH_NODE, n, &mut graph);
        }
        let mut value = Vec::new();
        put_bytes(VALUE_INFO_NAME, output.as_bytes(), &mut value);
        put_bytes(GRAPH_OUTPUT, &value, &mut graph);
        let mut m = Vec::new();
        put_bytes(MODEL_GRAPH, &graph, &mut m);
        m
    }

    /// The graph's nodes as "op(inputs)->outputs".
    fn read(model: &[u8]) -> Vec<String> {
        let graph = fields(model).unwrap().remove(0).payload.to_vec();
        fields(&graph)
            .unwrap()
            .into_iter()
            .filter(|f| f.number == GRAPH_NODE)
            .map(|f| {
                let n = Node::parse(f.payload).unwrap();
                format!("{}({})->{}", n.op, n.inputs.join(","), n.outputs.join(","))
            })
            .collect()
    }

    #[test]
    fn a_gelu_between_two_blocked_convolutions_runs_on_the_blocked_tensor() {
        // conv -> to plain -> GELU -> to blocked -> conv -> to plain: the
        // shape ONNX Runtime gives every GELU of PP-OCR.
        let m = model(
            &[
                node("Conv", NCHWC, &["x"], &["a"]),
                node("ReorderOutput", NCHWC, &["a"], &["a.plain"]),
                node("FastGelu", "com.microsoft", &["a.plain"], &["g"]),
                node("ReorderInput", NCHWC, &["g"], &["g.blocked"]),
                node("Conv", NCHWC, &["g.blocked"], &["b"]),
                node("ReorderOutput", NCHWC, &["b"], &["y"]),
            ],
            "y",
        );
        let (sunk, removed) = sink_reorders(&m).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(
            read(&sunk),
            [
                "Conv(x)->a",
                "FastGelu(a)->g.blocked1",
                "Conv(g.blocked1)->b",
                "ReorderOutput(b)->y"
            ]
        );
    }

    #[test]
    fn a_plain_tensor_that_others_read_stays_and_other_ops_are_left_alone() {
        // The plain GELU output is also read by a Mul, and a Sigmoid (0 -> 0.5)
        // must not see the blocked tensor's padding.
        let m = model(
            &[
                node("Conv", NCHWC, &["x"], &["a"]),
                node("ReorderOutput", NCHWC, &["a"], &["a.plain"]),
                node("Gelu", "com.microsoft", &["a.plain"], &["g"]),
                node("Mul", "", &["g", "g"], &["m"]),
                node("ReorderInput", NCHWC, &["g"], &["g.blocked"]),
                node("Conv", NCHWC, &["g.blocked"], &["b"]),
                node("ReorderOutput", NCHWC, &["b"], &["b.plain"]),
                node("Sigmoid", "", &["b.plain"], &["s"]),
                node("Add", "", &["m", "s"], &["y"]),
            ],
            "y",
        );
        let (sunk, removed) = sink_reorders(&m).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(
            read(&sunk),
            [
                "Conv(x)->a",
                "Gelu(a)->g.blocked1",
                "ReorderOutput(g.blocked1)->g",
                "Mul(g,g)->m",
                "Conv(g.blocked1)->b",
                "ReorderOutput(b)->b.plain",
                "Sigmoid(b.plain)->s",
                "Add(m,s)->y"
            ]
        );
        // A graph with nothing to move comes back as it was.
        let plain = model(&[node("Relu", "", &["x"], &["y"])], "y");
        assert_eq!(sink_reorders(&plain).unwrap(), (plain.clone(), 0));
    }
}
