"""Reading a .tflite flatbuffer: would the Edge TPU compiler map the model whole, and how many
multiply-accumulates does one inference take.

The Edge TPU check goes op by op and tensor by tensor, against what the compiler maps to the Coral Edge TPU (its documented list of operations and their
limits): a fully int8 model with static shapes and batch 1, one subgraph, and only those operations.

An op outside the list, or a float tensor anywhere, would split the model between the TPU and the CPU, and every
split costs a round trip over USB; so the shipped models must pass whole. Reads the schema that the LiteRT
package ships (`ai_edge_litert.schema_py_generated`); tflite-runtime on 32-bit boards has no schema, and this
check is for development machines anyway.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Builtin operators that the Edge TPU compiler maps (Coral's "supported operations" table).
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED",
    "HARD_SWISH", "L2_NORMALIZATION", "LOGISTIC", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM", "MAX_POOL_2D",
    "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV",
})
# int32 is allowed only where the compiler expects it: biases, and constant shape/axis operands.
INT32_OPERANDS = {"CONV_2D": (2,), "DEPTHWISE_CONV_2D": (2,), "FULLY_CONNECTED": (2,), "TRANSPOSE_CONV": (3, 0),
                  "RESHAPE": (1,), "MEAN": (1,), "SUM": (1,), "REDUCE_MAX": (1,), "REDUCE_MIN": (1,),
                  "PAD": (1,), "TRANSPOSE": (1,), "EXPAND_DIMS": (1,), "SLICE": (1, 2),
                  "STRIDED_SLICE": (1, 2, 3), "RESIZE_BILINEAR": (1,), "RESIZE_NEAREST_NEIGHBOR": (1,),
                  "SPLIT": (0,), "CONCATENATION": ()}
POOL_OPS = {"AVERAGE_POOL_2D", "MAX_POOL_2D"}


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _read(model_path: str | Path):
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(model_path).read_bytes(), 0))
    return schema, model, _names(schema.BuiltinOperator)


def _op_name(model, op, op_names: dict[int, str]) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def multiply_accumulates(model_path: str | Path) -> int:
    """Multiply-accumulates of one inference: convolutions, depthwise convolutions and dense layers (the rest
    of a small network's arithmetic is a rounding error next to them)."""
    _, model, op_names = _read(model_path)
    total = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            name = _op_name(model, op, op_names)
            if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                continue
            out = [int(d) for d in graph.tensors[op.outputs[0]].shape]
            weights = [int(d) for d in graph.tensors[op.inputs[1]].shape]
            if name == "CONV_2D":  # out (1, H, W, Cout), weights (Cout, kh, kw, Cin)
                total += int(np.prod(out)) * int(np.prod(weights[1:]))
            elif name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, Cout)
                total += int(np.prod(out)) * weights[1] * weights[2]
            else:  # out (rows, units), weights (units, inputs)
                total += int(np.prod(out)) * weights[1]
    return total


def edgetpu_problems(model_path: str | Path) -> list[str]:
    """Everything that would keep the Edge TPU compiler from mapping the model whole (empty: it maps)."""
    schema, model, op_names = _read(model_path)
    type_names = _names(schema.TensorType)
    problems = []
    if len(model.subgraphs) != 1:
        problems.append(f"expected 1 subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]

    def tensor_type(index: int) -> str:
        return type_names.get(graph.tensors[index].type, str(graph.tensors[index].type))

    def constant(index: int) -> np.ndarray | None:
        data = model.buffers[graph.tensors[index].buffer].data
        return None if data is None or len(data) == 0 else np.frombuffer(bytes(data), dtype=np.int32)

    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for index in indices:
            t = graph.tensors[index]
            shape = [int(d) for d in t.shape]
            signature = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else shape
            if tensor_type(index) != "INT8":
                problems.append(f"model {role} {index}: expected int8, found {tensor_type(index).lower()}")
            if -1 in signature:
                problems.append(f"model {role} {index}: expected a static shape, found {signature}")
            if not shape or shape[0] != 1:
                problems.append(f"model {role} {index}: expected batch 1, found shape {shape}")
    for position, op in enumerate(graph.operators):
        name = _op_name(model, op, op_names)
        where = f"op {position} ({name})"
        if name not in EDGETPU_OPS:
            problems.append(f"{where}: not an operation the Edge TPU compiler maps")
            continue
        int32_ok = INT32_OPERANDS.get(name, ())
        for slot, index in enumerate(op.inputs):
            if index < 0:
                continue  # an optional operand left out
            kind = tensor_type(index)
            if kind == "INT8" or (kind == "INT32" and slot in int32_ok):
                continue
            problems.append(f"{where} input {slot}: expected int8{' or int32' if slot in int32_ok else ''}, "
                            f"found {kind.lower()}")
        for index in op.outputs:
            if tensor_type(index) != "INT8":
                problems.append(f"{where} output: expected int8, found {tensor_type(index).lower()}")
        options = op.builtinOptions
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and options.dilationWFactor != options.dilationHFactor:
            problems.append(f"{where}: expected equal dilation in x and y, found "
                            f"{options.dilationHFactor} x {options.dilationWFactor}")
        if name in POOL_OPS and options.fusedActivationFunction != 0:
            problems.append(f"{where}: expected no fused activation")
        if name == "FULLY_CONNECTED" and options.weightsFormat != 0:
            problems.append(f"{where}: expected the default weights format")
        if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
            axes = constant(op.inputs[1])
            rank = len(graph.tensors[op.inputs[0]].shape)
            if axes is None:
                problems.append(f"{where}: expected constant axes")
                continue
            axes = [int(a) % rank for a in axes]
            if 0 in axes:
                problems.append(f"{where}: reduces the batch dimension")
            depth = int(graph.tensors[op.inputs[0]].shape[-1])
            if rank - 1 in axes and name == "MEAN" and depth % 4:
                problems.append(f"{where}: reduces a channel dimension of {depth}, expected a multiple of 4")
    return problems
