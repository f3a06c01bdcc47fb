"""The front end's runtime ONNX files, derived from openWakeWord's two (trainer side, needs onnx).

    melspectrogram_db.onnx  melspectrogram.onnx cut before its last step (torchlibrosa's top_db
                            clamp against the maximum of the whole call): the log-mel in dB;
                            `frontend.FrontEnd` applies the floor per frame instead
    embedding_a.onnx        speech_embedding's layers up to its third max-pool, with a free
                            time axis: mel frames (b, 1, T, 32) -> (b, 72, (T - 24) / 4 + 1, 4)
    embedding_b.onnx        the remaining layers: 14 of those frames -> one 96-dim embedding

Why the split: every convolution of speech_embedding is "valid" in time and its poolings
stride 2, 1, 2, 1, 2 frames, so the network is exactly shift-equivariant for shifts of 8 mel
frames (80 ms). Frame j of part A's output depends on mel frames [4 j, 4 j + 24) only, and
embedding k on a grid of `stride` frames is part B applied to part-A frames
[k stride / 4, k stride / 4 + 14). Part A over a whole clip or the new part of a stream, then
part B per grid position, gives the same numbers as the original model on each 76-frame window
(bit-identical in tests/kws/test_embedding.py) at a third of the cost: part A is 84 % of the
network's 84 MFLOP and is no longer recomputed for the 52 frames that consecutive 240 ms
positions share. The .eim carries these three files; nothing of `onnx` runs on the device.
"""

from __future__ import annotations

from functools import lru_cache

from kwtrain.embedding.onnxfiles import (
    EMB_A_FILE,
    EMB_B_FILE,
    EMB_FILE,
    MEL_DB_FILE,
    MEL_FILE,
    RUNTIME_FILES,
    FrontEndUnavailable,
    model_files,
)

_MEL_DB_TENSOR = "onnx::ReduceMax_31"  # melspectrogram.onnx's log-mel in dB, before the clamp
_CUT_POOL = 2  # part A ends with the third MaxPool (index 2)


def _onnx():
    try:
        import onnx

        return onnx
    except ImportError:
        raise FrontEndUnavailable(
            "deriving the front end's runtime files needs the onnx package (pip install onnx; "
            "requirements-train.txt)"
        ) from None


def mel_db_model(mel_onnx: bytes) -> bytes:
    onnx = _onnx()
    model = onnx.load_from_string(mel_onnx)
    graph = model.graph
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if _MEL_DB_TENSOR in node.output:
            break
    else:
        raise FrontEndUnavailable(f"{MEL_FILE}: no tensor {_MEL_DB_TENSOR} (another version?)")
    _keep(graph, nodes)
    graph.output[0].name = _MEL_DB_TENSOR
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _keep(graph, nodes) -> None:
    """Replace the graph's nodes with `nodes` and drop the initializers they do not use."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _part(source, nodes, inp: tuple[str, list], out: tuple[str, list]) -> bytes:
    onnx = _onnx()
    from onnx import TensorProto, helper

    used = {name for node in nodes for name in node.input}
    inits = [t for t in source.graph.initializer if t.name in used]
    graph = helper.make_graph(
        nodes,
        "speech_embedding_part",
        [helper.make_tensor_value_info(inp[0], TensorProto.FLOAT, inp[1])],
        [helper.make_tensor_value_info(out[0], TensorProto.FLOAT, out[1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=source.opset_import)
    model.ir_version = source.ir_version
    onnx.checker.check_model(model)
    return model.SerializeToString()


def embedding_parts(emb_onnx: bytes) -> tuple[bytes, bytes]:
    """(part A, part B) of embedding_model.onnx, split after its third MaxPool."""
    onnx = _onnx()
    source = onnx.load_from_string(emb_onnx)
    nodes = list(source.graph.node)
    pools = [i for i, n in enumerate(nodes) if n.op_type == "MaxPool"]
    if nodes[0].op_type != "Reshape" or len(pools) != 5 or nodes[-1].op_type != "Reshape":
        raise FrontEndUnavailable(f"{EMB_FILE}: not the expected speech_embedding graph")
    cut = pools[_CUT_POOL]
    a_in = nodes[0].output[0]  # after the input reshape: (b, 1, 76, 32)
    a_out = nodes[cut].output[0]
    part_a = _part(
        source, nodes[1 : cut + 1], (a_in, [None, 1, None, 32]), (a_out, [None, 72, None, 4])
    )
    part_b = _part(
        source,
        nodes[cut + 1 :],
        (a_out, [None, 72, 14, 4]),
        (source.graph.output[0].name, [None, 1, 1, 96]),
    )
    return part_a, part_b


def derive(files: dict[str, bytes]) -> dict[str, bytes]:
    """The runtime files from the two original ones."""
    part_a, part_b = embedding_parts(files[EMB_FILE])
    return {MEL_DB_FILE: mel_db_model(files[MEL_FILE]), EMB_A_FILE: part_a, EMB_B_FILE: part_b}


@lru_cache(maxsize=2)
def _derived(mel: bytes, emb: bytes) -> dict[str, bytes]:
    return derive({MEL_FILE: mel, EMB_FILE: emb})


def runtime_files(files: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The three files the front end runs (RUNTIME_FILES): taken from `files` when they are
    there, else derived from its original two (default: `onnxfiles.model_files()`)."""
    files = files or model_files()
    if all(name in files for name in RUNTIME_FILES):
        return {name: files[name] for name in RUNTIME_FILES}
    return dict(_derived(files[MEL_FILE], files[EMB_FILE]))
