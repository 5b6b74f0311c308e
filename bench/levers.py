#!/usr/bin/env python3
"""Model-side speed levers for the PP-OCRv6 tiny recognizer, measured on real
text lines under ONNX Runtime's CPU provider, one thread, the session settings
pagefleet uses (all graph optimisations, the tanh GELU).

    bench/levers.sh [SAMPLES_DIR]   (sets up the pinned venv, then runs
                                     levers.py REC_MODEL PNG_DIR OCR_OUT DET_MODEL)

Each lever is a rewritten model timed against the unchanged one, interleaved
over several rounds (the best round of each is compared, as the machine's
speed drifts), and checked on every line: how many lines' greedy CTC
decoding changes, or the largest output difference.

- int8:  static post-training quantisation (QDQ, per channel, 64 calibration
         lines) of every Conv and MatMul.
- quick: GELU as x * sigmoid(1.702 x), which ONNX Runtime's NCHWc layout can
         keep blocked (a BatchNormalization scale, a Sigmoid and a Mul).
- sink:  ONNX Runtime's own optimised graph with the layout reorders around
         each unary elementwise node (GELU, ...) removed: an elementwise op
         does not care about the layout, so it can run on the blocked
         tensor. Exact.
- openvino: lists the devices the OpenVINO plugin provider offers here.

The detector gets `sink` too, on the first page scaled to pagefleet's
detection size (longest side 1,280, sides multiples of 32).
"""

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from PIL import Image

ort.set_default_logger_severity(3)
ROUNDS = int(os.environ.get("ROUNDS", "4"))


def lines(png_dir, results):
    """Every recognised line of `pagefleet ocr`'s result.json files, cropped
    from the page images and scaled to the recognizer's input."""
    out = []
    for result in sorted(Path(results).glob("*/result.json")):
        doc = result.parent.name
        for page in json.load(open(result))["pages"]:
            png = Path(png_dir) / f"{doc}.png"
            image = Image.open(png).convert("RGB")
            for line in page["lines"]:
                xs = [p[0] for p in line["polygon"]]
                ys = [p[1] for p in line["polygon"]]
                crop = image.crop((int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1))
                width = max(16, round(crop.width * 48 / crop.height))
                a = np.asarray(crop.resize((width, 48), Image.BILINEAR), np.float32)
                out.append(((a[:, :, ::-1] / 127.5 - 1.0).transpose(2, 0, 1)[None]).copy())
    return out


def session(model, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, save=None):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.graph_optimization_level = level
    o.add_session_config_entry("optimization.enable_gelu_approximation", "1")
    if save:
        o.optimized_model_filepath = save
    return ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])


def decode(probs):
    best = probs.argmax(-1)
    out, prev = [], 0
    for c in best:
        if c != prev and c != 0:
            out.append(int(c))
        prev = c
    return tuple(out)


def compare(base, variants, inputs):
    """Best-round seconds of each session over `inputs`, and how each
    variant's output differs from the base's."""
    sessions = {"base": base, **variants}
    outputs = {n: [s.run(None, {"x": x})[0] for x in inputs] for n, s in sessions.items()}
    times = {n: [] for n in sessions}
    for _ in range(ROUNDS):
        for n, s in sessions.items():
            start = time.perf_counter()
            for x in inputs:
                s.run(None, {"x": x})
            times[n].append(time.perf_counter() - start)
    best = {n: min(t) for n, t in times.items()}
    for n in variants:
        changed = sum(decode(a[0]) != decode(b[0]) for a, b in zip(outputs["base"], outputs[n]))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["base"], outputs[n]))
        print(
            f"| {n} | {best['base']:.2f} | {best[n]:.2f} | {best[n] / best['base']:.3f} "
            f"| {changed} of {len(inputs)} | {diff:.2g} |"
        )


def int8(model, inputs, work):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quant_pre_process, quantize_static
    from onnx import version_converter

    # Per-channel QDQ needs opset 13; the model is opset 11.
    upgraded = version_converter.convert_version(onnx.load(model), 17)
    onnx.save(upgraded, f"{work}/opset17.onnx")
    quant_pre_process(f"{work}/opset17.onnx", f"{work}/pre.onnx", skip_symbolic_shape=True)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(inputs), min(64, len(inputs)), replace=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": inputs[i]} for i in chosen])

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        f"{work}/pre.onnx", f"{work}/int8.onnx", Reader(), quant_format=QuantFormat.QDQ,
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        reduce_range=True, op_types_to_quantize=["Conv", "MatMul"],
    )
    return f"{work}/int8.onnx"


def quick_gelu(model, work):
    m = onnx.load(model)
    g = m.graph
    channels = {}
    for v in onnx.shape_inference.infer_shapes(m).graph.value_info:
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4:
            channels[v.name] = dims[1].dim_value
    nodes, out, extra, i, k = list(g.node), [], [], 0, 0
    while i < len(nodes):
        n = nodes[i]
        # PaddlePaddle's GELU: Div(x, sqrt 2), Erf, Add 1, Mul x, Mul 0.5.
        if n.op_type == "Div" and i + 4 < len(nodes) and nodes[i + 1].op_type == "Erf":
            x, y, c, p = n.input[0], nodes[i + 4].output[0], channels[n.input[0]], f"quick{k}"
            for part, value in (("s", 1.702), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
                extra.append(numpy_helper.from_array(np.full(c, value, np.float32), f"{p}_{part}"))
            out += [
                helper.make_node("BatchNormalization", [x] + [f"{p}_{q}" for q in "sbmv"], [p + "z"], epsilon=0.0),
                helper.make_node("Sigmoid", [p + "z"], [p + "g"]),
                helper.make_node("Mul", [x, p + "g"], [y]),
            ]
            i, k = i + 5, k + 1
            continue
        out.append(n)
        i += 1
    del g.node[:]
    g.node.extend(out)
    g.initializer.extend(extra)
    onnx.save(m, f"{work}/quick.onnx")
    return f"{work}/quick.onnx"


def sink_reorders(model, work):
    session(model, save=f"{work}/optimised.onnx")
    m = onnx.load(f"{work}/optimised.onnx")
    g = m.graph
    nodes = list(g.node)
    unary = {"FastGelu", "Gelu", "Erf", "Sigmoid", "HardSigmoid", "Relu", "Tanh"}
    blocked = lambda n: n.op_type == "ReorderOutput" and not any(
        a.name == "channels_last" and a.i == 1 for a in n.attribute)
    k, changed = 0, True
    while changed:
        changed = False
        producer = {o: n for n in nodes for o in n.output}
        for n in nodes:
            r = producer.get(n.input[0]) if n.input else None
            if n.op_type in unary and r is not None and blocked(r):
                # The op reads the blocked tensor; a reorder restores its output.
                k += 1
                old, new = n.output[0], f"{n.output[0]}_blocked{k}"
                n.input[0], n.output[0] = r.input[0], new
                back = helper.make_node("ReorderOutput", [new], [old], name=f"sunk{k}", domain=r.domain)
                back.attribute.extend(r.attribute)
                nodes.insert(nodes.index(n) + 1, back)
                changed = True
                break
        producer = {o: n for n in nodes for o in n.output}
        users = collections.defaultdict(list)
        for n in nodes:
            for i in n.input:
                users[i].append(n)
        for n in list(nodes):
            r = producer.get(n.input[0]) if n.op_type == "ReorderInput" else None
            if r is not None and blocked(r):
                for u in users[n.output[0]]:
                    u.input[:] = [r.input[0] if i == n.output[0] else i for i in u.input]
                nodes.remove(n)
                changed = True
        users = {i for n in nodes for i in n.input} | {o.name for o in g.output}
        before = len(nodes)
        nodes = [n for n in nodes if n.op_type != "ReorderOutput" or n.output[0] in users]
        changed |= len(nodes) != before
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    onnx.save(m, f"{work}/sunk.onnx")
    return f"{work}/sunk.onnx"


def openvino():
    try:
        import onnxruntime_ep_openvino as ov
    except ImportError:
        print("openvino: onnxruntime-ep-openvino is not installed")
        return
    ort.register_execution_provider_library("OpenVINOExecutionProvider", ov.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "OpenVINOExecutionProvider"]
    cpu = [d.device.vendor for d in ort.get_ep_devices() if d.ep_name == "CPUExecutionProvider"]
    print(f"openvino: {len(devices)} device(s) offered on this {', '.join(cpu)} CPU: "
          + ", ".join(f"{d.device.type} {d.device.vendor}" for d in devices))


def page_input(png):
    """A page as the detector's input: longest side 1,280, ImageNet normalised."""
    image = Image.open(png).convert("RGB")
    scale = 1280 / max(image.size)
    w, h = (max(32, round(d * scale / 32) * 32) for d in image.size)
    a = np.asarray(image.resize((w, h), Image.BILINEAR), np.float32) / 255
    a = (a - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return a.astype(np.float32).transpose(2, 0, 1)[None].copy()


def main():
    model, png_dir, results, det = sys.argv[1:5]
    inputs = lines(png_dir, results)
    # The ones timed: every other line by width, all widths covered.
    timed = sorted(inputs, key=lambda a: a.shape[3])[::2]
    print(f"{len(inputs)} lines ({sum(a.shape[3] for a in inputs)} columns at height 48), {len(timed)} timed")
    print("| lever | base s | lever s | ratio | lines decoded differently | largest output difference |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        base = session(model)
        compare(base, {"int8": session(int8(model, inputs, work))}, timed)
        compare(base, {"quick": session(quick_gelu(model, work))}, timed)
        sunk = sink_reorders(model, work)
        off = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        compare(session(f"{work}/optimised.onnx", off), {"sink": session(sunk, off)}, timed)
    with tempfile.TemporaryDirectory() as work:
        sunk = sink_reorders(det, work)
        page = page_input(sorted(Path(png_dir).glob("*.png"))[0])
        print(f"detector, one page of {page.shape[3]} x {page.shape[2]}, five runs a round:")
        off = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        compare_maps(session(f"{work}/optimised.onnx", off), session(sunk, off), page)
    openvino()


def compare_maps(base, sunk, page):
    """The detector's best-round seconds, base and `sink`, and the largest
    difference of their probability maps."""
    a, b = base.run(None, {"x": page})[0], sunk.run(None, {"x": page})[0]
    times = {"base": [], "sink": []}
    for _ in range(ROUNDS):
        for name, s in (("base", base), ("sink", sunk)):
            start = time.perf_counter()
            for _ in range(5):
                s.run(None, {"x": page})
            times[name].append(time.perf_counter() - start)
    base_s, sink_s = min(times["base"]), min(times["sink"])
    print(f"| sink (detector) | {base_s:.2f} | {sink_s:.2f} | {sink_s / base_s:.3f} "
          f"| - | {float(np.abs(a - b).max()):.2g} |")


if __name__ == "__main__":
    main()
