"""Write the served artifacts: SavedModel, float32 TFLite and ONNX, from a Keras model or what a user brings.

Every served artifact takes one image input ``[N,H,W,3]`` float32 pixels in 0..255 (docs/contracts.md
§2), so what a source model expects besides that is baked in here (``Wrap``): its normalisation,
an NCHW layout, a softmax over logits. The SavedModel has one signature, ``serving_default``, whose
input and output names are the manifest's; the TFLite file is converted from that SavedModel and
the ONNX file too (tf2onnx), or, for a ``.tflite`` import, from the flatbuffer.

TensorFlow, tf2onnx and onnx are imported inside the functions: the command line's list and push
never load them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fnvision_common.manifest import Normalisation

if TYPE_CHECKING:
    import keras
    import onnx
    import tensorflow as tf

__all__ = [
    "ONNX_OPSET",
    "SIGNATURE",
    "Wrap",
    "onnx_from_onnx",
    "onnx_from_savedmodel",
    "onnx_from_tflite",
    "run_with_wrap",
    "savedmodel_from_keras",
    "savedmodel_from_savedmodel",
    "tflite_from_savedmodel",
]

SIGNATURE = "serving_default"
ONNX_OPSET = 17
"""ONNX opset of the exported graphs (onnxruntime 1.32 runs 7..23; 17 is what tf2onnx tests most)."""


@dataclass(frozen=True)
class Wrap:
    """What the served artifacts add around a source model so that it takes NHWC 0..255 pixels."""

    normalisation: Normalisation = field(default_factory=Normalisation)
    nchw: bool = False
    """The source model takes [N,3,H,W]: transpose the served NHWC input."""
    softmax: bool = False
    """The source model answers logits: apply a softmax over the last axis of every output."""

    @property
    def is_identity(self) -> bool:
        """True when the source model already takes what is served."""
        return self.normalisation.is_identity and not self.nchw and not self.softmax

    def pre_tf(self, x: tf.Tensor) -> tf.Tensor:
        """Served input -> the source model's input (TensorFlow ops)."""
        import tensorflow as tf

        if not self.normalisation.is_identity:
            x = (x - tf.constant(self.normalisation.mean, tf.float32)) / tf.constant(self.normalisation.std, tf.float32)
        return tf.transpose(x, [0, 3, 1, 2]) if self.nchw else x

    def post_tf(self, y: tf.Tensor) -> tf.Tensor:
        """Source model output -> served output (TensorFlow ops)."""
        import tensorflow as tf

        return tf.nn.softmax(y, axis=-1) if self.softmax else y


def _input_spec(name: str, height: int, width: int) -> tf.TensorSpec:
    import tensorflow as tf

    return tf.TensorSpec([None, height, width, 3], tf.float32, name=name)


def _named_outputs(result: Any, names: Sequence[str], wrap: Wrap) -> dict[str, tf.Tensor]:
    """Map what a model call returned (tensor, list or dict) to the manifest's output names."""
    if isinstance(result, dict):
        values = [result[n] for n in names] if set(names) <= set(result) else list(result.values())
    elif isinstance(result, list | tuple):
        values = list(result)
    else:
        values = [result]
    if len(values) != len(names):
        raise ValueError(f"the model returns {len(values)} outputs, expected {len(names)} ({list(names)})")
    return {n: wrap.post_tf(v) for n, v in zip(names, values, strict=True)}


def savedmodel_from_keras(
    model: keras.Model,
    target: Path,
    input_name: str,
    size: tuple[int, int],
    output_names: Sequence[str],
    wrap: Wrap | None = None,
) -> None:
    """Write a SavedModel whose ``serving_default`` maps ``input_name`` to the named outputs."""
    from keras.export import ExportArchive

    wrap = wrap or Wrap()
    archive = ExportArchive()
    archive.track(model)

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return _named_outputs(model(wrap.pre_tf(images), training=False), output_names, wrap)

    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[_input_spec(input_name, *size)])
    archive.write_out(str(target), verbose=False)


def savedmodel_from_savedmodel(
    source: Path,
    signature: str,
    target: Path,
    input_name: str,
    size: tuple[int, int],
    output_names: Sequence[str],
    wrap: Wrap | None = None,
) -> None:
    """Re-save a SavedModel signature as ``serving_default`` with the manifest's names, wrapped."""
    import tensorflow as tf

    wrap = wrap or Wrap()
    loaded = tf.saved_model.load(str(source))
    fn = loaded.signatures[signature]
    (source_input,) = fn.structured_input_signature[1]
    module = tf.Module()
    module.source = loaded  # tracked: the variables the signature reads are saved with the module

    def call(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return _named_outputs(fn(**{source_input: wrap.pre_tf(images)}), output_names, wrap)

    serve = tf.function(call, input_signature=[_input_spec(input_name, *size)])
    module.serve = serve
    tf.saved_model.save(module, str(target), signatures={SIGNATURE: serve})


def tflite_from_savedmodel(savedmodel: Path, target: Path) -> None:
    """Convert the SavedModel's ``serving_default`` to a float32 .tflite flatbuffer."""
    import tensorflow as tf

    # from_saved_model, not from_keras_model: the latter prints the whole signature to stdout.
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[SIGNATURE])
    target.write_bytes(converter.convert())


def _rename_values(model: onnx.ModelProto, renames: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every reference to them) in place."""
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]


def onnx_from_savedmodel(savedmodel: Path, target: Path, input_name: str, size: tuple[int, int]) -> None:
    """Convert the SavedModel's ``serving_default`` to ONNX with tf2onnx (names kept)."""
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(savedmodel))  # referenced until tf2onnx is done: it owns the variables
    fn = loaded.signatures[SIGNATURE]
    spec = _input_spec(input_name, *size)
    # tf2onnx traces a tf.function; a loaded signature is a concrete function, so wrap it.
    traced = tf.function(lambda images: fn(**{input_name: images}), input_signature=[spec])
    model, _ = tf2onnx.convert.from_function(traced, input_signature=[spec], opset=ONNX_OPSET)
    _check_and_save(model, target)
    del loaded


def onnx_from_tflite(tflite: Path, target: Path, input_name: str, output_names: Sequence[str]) -> None:
    """Convert a .tflite to ONNX with tf2onnx and give its input/outputs the signature's names."""
    import tf2onnx

    model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=ONNX_OPSET)
    inputs = [v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}]
    outputs = [v.name for v in model.graph.output]
    if len(inputs) != 1 or len(outputs) != len(output_names):
        raise ValueError(f"tf2onnx made {len(inputs)} inputs / {len(outputs)} outputs from {tflite.name}")
    renames = {inputs[0]: input_name}
    renames.update(_tflite_output_renames(tflite, outputs, output_names))
    _rename_values(model, renames)
    _check_and_save(model, target)


def _tflite_output_renames(tflite: Path, onnx_outputs: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """Map tf2onnx's output names (tensor names + ":0") to the signature's output names."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    by_index = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        details = runner.get_output_details()
        tensor_of = {name: by_index[d["index"]] for name, d in details.items()}
    else:
        tensor_of = {name: d["name"] for name, d in zip(names, interpreter.get_output_details(), strict=False)}
    renames = {}
    for name in names:
        tensor = tensor_of.get(name)
        match = [o for o in onnx_outputs if o in (tensor, f"{tensor}:0")]
        if not match:
            raise ValueError(f"cannot find output {name!r} (tensor {tensor!r}) among tf2onnx's {list(onnx_outputs)}")
        renames[match[0]] = name
    return renames


def onnx_from_onnx(
    source: Path, target: Path, input_name: str, output_names: Sequence[str], wrap: Wrap | None = None
) -> None:
    """Copy an ONNX model with the manifest's names, prepending/appending the nodes ``wrap`` asks for.

    The served input ``input_name`` is float32 NHWC 0..255; Sub/Div (normalisation) and a Transpose
    (NCHW sources) feed the source graph's input, and a Softmax follows each output when asked.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    wrap = wrap or Wrap()
    model = onnx.load(str(source))
    graph = model.graph
    initialisers = {i.name for i in graph.initializer}
    (source_input,) = [v for v in graph.input if v.name not in initialisers]
    outputs = [v.name for v in graph.output]
    if len(outputs) != len(output_names):
        raise ValueError(f"{source.name} has {len(outputs)} outputs, expected {len(output_names)}")
    prepared = f"{input_name}__prepared" if not wrap.is_identity else input_name
    renames = {source_input.name: prepared}
    renames.update({o: (f"{n}__raw" if wrap.softmax else n) for o, n in zip(outputs, output_names, strict=True)})
    _rename_values(model, renames)

    nodes: list[onnx.NodeProto] = []
    current = input_name
    if not wrap.normalisation.is_identity:
        mean = np.asarray(wrap.normalisation.mean, np.float32).reshape(1, 1, 1, 3)
        std = np.asarray(wrap.normalisation.std, np.float32).reshape(1, 1, 1, 3)
        graph.initializer.extend(
            [numpy_helper.from_array(mean, "fnvision_mean"), numpy_helper.from_array(std, "fnvision_std")]
        )
        nodes += [
            helper.make_node("Sub", [current, "fnvision_mean"], ["fnvision_centred"]),
            helper.make_node("Div", ["fnvision_centred", "fnvision_std"], ["fnvision_normalised"]),
        ]
        current = "fnvision_normalised"
    if wrap.nchw:
        nodes.append(helper.make_node("Transpose", [current], ["fnvision_nchw"], perm=[0, 3, 1, 2]))
        current = "fnvision_nchw"
    if not wrap.is_identity:
        nodes.append(helper.make_node("Identity", [current], [prepared]))
        dims = [d.dim_value or d.dim_param or None for d in source_input.type.tensor_type.shape.dim]
        nhwc = [dims[0], dims[2], dims[3], dims[1]] if wrap.nchw else dims
        served = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, nhwc)
        graph.input.remove(next(v for v in graph.input if v.name == prepared))
        graph.input.insert(0, served)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    if wrap.softmax:
        for name in output_names:
            graph.node.append(helper.make_node("Softmax", [f"{name}__raw"], [name], axis=-1))
            out = next(v for v in graph.output if v.name == f"{name}__raw")
            out.name = name
    _check_and_save(model, target)


def _check_and_save(model: onnx.ModelProto, target: Path) -> None:
    import onnx

    onnx.checker.check_model(model)
    target.write_bytes(model.SerializeToString())


def run_with_wrap(call: Callable[[Any], dict[str, Any]], wrap: Wrap) -> Callable[[Any], dict[str, Any]]:
    """A numpy reference of what the wrapped artifacts compute (``call`` runs the source model)."""
    import numpy as np

    def run(batch: Any) -> dict[str, Any]:
        x = np.asarray(batch, np.float32)
        if not wrap.normalisation.is_identity:
            mean, std = (np.asarray(v, np.float32) for v in (wrap.normalisation.mean, wrap.normalisation.std))
            x = ((x - mean) / std).astype(np.float32)
        if wrap.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        outputs = call(x)
        if wrap.softmax:
            outputs = {k: _softmax(np.asarray(v, np.float64)).astype(np.float32) for k, v in outputs.items()}
        return outputs

    return run


def _softmax(x: Any) -> Any:
    import numpy as np

    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
