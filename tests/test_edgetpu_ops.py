"""Every shipped model must map onto the Coral Edge TPU whole: the flatbuffer's ops and tensor types checked
against what the Edge TPU compiler maps. The check itself must catch a float op, an unmapped op and a
dynamic shape (shipped models mutated in their flatbuffer)."""
from pathlib import Path

import flatbuffers
import pytest

from edgepara.assets import available_models, resolve_model
from edgepara.tflite_model import edgetpu_problems, multiply_accumulates

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")


@pytest.mark.parametrize("model", available_models())
def test_shipped_model_maps_whole_onto_the_edge_tpu(model):
    path, _ = resolve_model(model)
    assert edgetpu_problems(path) == []


def mutated(tmp_path: Path, change) -> Path:
    path, _ = resolve_model("edgepara-tiny")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    change(model, model.subgraphs[0])
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = tmp_path / "mutated.tflite"
    out.write_bytes(builder.Output())
    return out


def test_a_float_tensor_is_refused(tmp_path):
    def to_float(model, graph):
        graph.tensors[graph.operators[0].outputs[0]].type = schema.TensorType.FLOAT32

    problems = edgetpu_problems(mutated(tmp_path, to_float))
    assert any("op 0 (CONV_2D) output: expected int8, found float32" == p for p in problems), problems
    assert any("op 1 (DEPTHWISE_CONV_2D) input 0" in p and "float32" in p for p in problems), problems


def test_an_op_the_compiler_does_not_map_is_refused(tmp_path):
    def add_log(model, graph):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LOG
        model.operatorCodes.append(code)
        graph.operators[-1].opcodeIndex = len(model.operatorCodes) - 1

    problems = edgetpu_problems(mutated(tmp_path, add_log))
    assert any(p.endswith("(LOG): not an operation the Edge TPU compiler maps") for p in problems), problems


def test_a_dynamic_batch_is_refused(tmp_path):
    def dynamic(model, graph):
        graph.tensors[graph.inputs[0]].shapeSignature = [-1, 97, 40, 1]

    assert any("expected a static shape" in p for p in edgetpu_problems(mutated(tmp_path, dynamic)))
