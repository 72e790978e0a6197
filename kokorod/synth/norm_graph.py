"""The generator rewritten so its instance norms can take their statistics from outside.

Kokoro's generator normalises inside its AdaIN layers by each channel's mean and variance
over time (44 instance norms in the cut `gen.onnx`, 7 nodes each: ReduceMean → Sub → Mul →
ReduceMean → Add ε → Sqrt → Div). Run on a window, it normalises by the window's own
statistics, so a small or mostly silent window is scaled differently from the same frames
vocoded whole: silence becomes noise, speech loses clarity. Fed the statistics the whole
batch would have (predicted before vocoding: norm_stats.py), a window of any size sounds
like the whole.

The rewrite keeps every original node and adds, per norm k, inputs `norm_mean_k` and
`norm_var_k` (1, C, 1) and outputs `norm_own_mean_k` / `norm_own_var_k` (the window's own
statistics, which the tables are fitted from), and one scalar input `norm_own`: 1 uses the
window's own statistics (the original graph bit for bit), 0 the ones given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OWN = "norm_own"  # scalar input: 1.0 the window's own statistics, 0.0 those fed in


def mean_input(k: int) -> str:
    return f"norm_mean_{k}"


def var_input(k: int) -> str:
    return f"norm_var_{k}"


def own_mean_output(k: int) -> str:
    return f"norm_own_mean_{k}"


def own_var_output(k: int) -> str:
    return f"norm_own_var_{k}"


@dataclass(frozen=True)
class Norm:
    """One instance norm's nodes, found by the names the exporter gave them."""

    prefix: str
    x: str  # the tensor normalised
    mean: Any  # ReduceMean(x)
    sub: Any  # x - mean
    square: Any  # (x - mean)²
    var: Any  # ReduceMean of the square
    add_eps: Any  # var + ε


def find_norms(graph: Any) -> list[Norm]:
    """Every instance norm of the generator, in a fixed order (by name); [] if the graph
    does not have the exporter's pattern."""
    nodes = {n.name: n for n in graph.node}
    prefixes = sorted({n.name.rsplit("/", 1)[0] for n in graph.node
                       if n.op_type == "ReduceMean" and n.name.endswith("/ReduceMean")})
    out = []
    for p in prefixes:
        try:
            mean, sub, square = nodes[p + "/ReduceMean"], nodes[p + "/Sub"], nodes[p + "/Mul_2"]
            var, add_eps = nodes[p + "/ReduceMean_2"], nodes[p + "/Add_2"]
        except KeyError:
            return []
        if not (sub.input[1] == mean.output[0] and list(square.input) == [sub.output[0]] * 2
                and var.input[0] == square.output[0] and add_eps.input[0] == var.output[0]
                and sub.input[0] == mean.input[0]):
            return []
        out.append(Norm(p, mean.input[0], mean, sub, square, var, add_eps))
    return out


def channels(model: Any, norms: list[Norm], feed: dict[str, Any]) -> list[int]:
    """Each norm's channel count, from one small run of the original graph on `feed`."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    probe = type(model)()
    probe.CopyFrom(model)
    for n in norms:
        probe.graph.output.append(helper.make_tensor_value_info(n.mean.output[0],
                                                                TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    outs = session.run([n.mean.output[0] for n in norms], feed)
    return [int(o.shape[1]) for o in outs]


def rewrite(model: Any, feed: dict[str, Any]) -> list[int]:
    """Rewrite `model` (an onnx ModelProto of the cut generator) in place; each rewritten
    norm's channel count ([]: not the pattern, the model is left as it was). `feed`: a
    small input of the original graph, run once to learn the channel counts, which are
    also kept in the model's metadata (`norm_channels`)."""
    import json

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    norms = find_norms(graph)
    if not norms:
        return []
    sizes = channels(model, norms, feed)
    helper.set_model_props(model, {"norm_channels": json.dumps(sizes)})
    added = []
    graph.input.append(helper.make_tensor_value_info(OWN, TensorProto.FLOAT, []))
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "norm_one"))
    added.append(helper.make_node("Sub", ["norm_one", OWN], ["norm_given"], name="norm/given"))
    for k, n in enumerate(norms):
        q = f"norm/{k}/"
        shape = [1, sizes[k], 1]
        for name in (mean_input(k), var_input(k)):
            graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                             shape))
        own_mean, own_var = n.mean.output[0], n.var.output[0]
        # The window's own variance is taken around its own mean, as before.
        added.append(helper.make_node("Sub", [n.x, own_mean], [q + "d_own"], name=q + "d_own"))
        n.square.input[0] = n.square.input[1] = q + "d_own"
        for what, own, given in (("mean", own_mean, mean_input(k)),
                                 ("var", own_var, var_input(k))):
            added += [
                helper.make_node("Mul", [OWN, own], [q + what + "_a"], name=q + what + "_a"),
                helper.make_node("Mul", ["norm_given", given], [q + what + "_b"],
                                 name=q + what + "_b"),
                helper.make_node("Add", [q + what + "_a", q + what + "_b"], [q + what],
                                 name=q + what),
            ]
        n.sub.input[1] = q + "mean"
        n.add_eps.input[0] = q + "var"
        added += [helper.make_node("Identity", [own_mean], [own_mean_output(k)], name=q + "om"),
                  helper.make_node("Identity", [own_var], [own_var_output(k)], name=q + "ov")]
        for name in (own_mean_output(k), own_var_output(k)):
            graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                              shape))
    _sort(graph, [*graph.node, *added])
    return sizes


def channels_of(session: Any) -> list[int]:
    """The channel counts a rewritten generator's session holds ([]: not rewritten)."""
    import json

    meta = session.get_modelmeta().custom_metadata_map
    return [int(c) for c in json.loads(meta.get("norm_channels", "[]"))]


def _sort(graph: Any, nodes: list[Any]) -> None:
    """Put `nodes` into `graph` in an order where every input is made before it is read."""
    made = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    order, pending = [], nodes
    while pending:
        rest = []
        for node in pending:
            if all(i in made for i in node.input):
                order.append(node)
                made.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError("the rewritten generator has a cycle")
        pending = rest
    del graph.node[:]
    graph.node.extend(order)
