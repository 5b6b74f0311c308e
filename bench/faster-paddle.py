"""faster-paddle over a folder of page images, as bench/ocr-bench.sh runs it.

    PYTHONPATH=.pagefleet/bench/faster-paddle-1.0.4 python3 bench/faster-paddle.py PNG_DIR OUT

PNG_DIR holds <doc>-<page>.png; OUT gets <doc>/<page>.txt (pages counted from
1, three digits), the layout the scorer reads. One engine reads every image,
with its own scheduler over every core; the text is as it reconstructs it.
"""
import os, sys
from faster_paddle import OcrEngine
png, out = sys.argv[1], sys.argv[2]
engine = OcrEngine(model_size="tiny")
for name in sorted(os.listdir(png)):
    stem = name[:-4]
    doc, page = stem.rsplit("-", 1)
    os.makedirs(f"{out}/{doc}", exist_ok=True)
    with open(f"{png}/{name}", "rb") as f:
        text = engine.ocr(f.read())["text"]
    with open(f"{out}/{doc}/{int(page):03d}.txt", "w") as f:
        f.write(text)
