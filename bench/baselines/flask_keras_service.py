"""BASELINE, not part of fn-vision: the classic "Flask app + Keras model" service.

This is how the seed projects served the model: a Flask app that loads a Keras model when it
starts and calls ``model.predict`` per request. The benchmark runs it on the same model (the
same EfficientNet-Lite0 weights, rebuilt in Keras), the same machine and the same thread count as
fn-vision, to show what the serverless path is compared against.

Run: ``python bench/baselines/flask_keras_service.py --model .local/bench/lite0.keras --port 8090``
POST /predict with a `.npy` uint8 batch [N,224,224,3]; `?mode=predict_on_batch` uses the cheaper
call (best practice of its kind), the default is ``model.predict`` as in the seeds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="path of a .keras file")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--threads", type=int, default=2, help="TF intra/inter op threads")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from flask import Flask, request

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    started = time.perf_counter()
    model = keras.models.load_model(args.model, compile=False)
    load_s = time.perf_counter() - started
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> tuple[str, int, dict[str, str]]:
        batch = np.load(io.BytesIO(request.get_data()), allow_pickle=False).astype("float32")
        if request.args.get("mode") == "predict_on_batch":
            probs = model.predict_on_batch(batch)
        else:
            probs = model.predict(batch, verbose=0)
        top = np.argsort(-probs, axis=1)[:, :5]
        body = [
            [{"index": int(i), "score": float(p[i])} for i in row] for row, p in zip(top, probs, strict=True)
        ]
        return json.dumps({"predictions": body}), 200, {"Content-Type": "application/json"}

    @app.get("/health")
    def health() -> tuple[str, int]:
        return json.dumps({"ok": True, "load_s": load_s}), 200

    print(f"ready on 127.0.0.1:{args.port} (model loaded in {load_s:.2f}s)", file=sys.stderr, flush=True)
    app.run(host="127.0.0.1", port=args.port, threaded=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
