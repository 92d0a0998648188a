"""The bundled detector's ONNX graph as a trainable PyTorch module, and back.

`inspector train` fine-tunes the network the plant already runs rather than a re-implementation
of it: the part of the graph that computes the anomaly map is interpreted op by op in torch, its
convolution weights become parameters, and after training they are written back into a copy of
the same ONNX file. The exported model is therefore the bundled one with other numbers in it: the
same inputs, outputs, normal-statistics head and cost per frame. Only the ops the bundled network
uses are known; any other is refused by name.
"""

from __future__ import annotations

from inspector.errors import InspectorError


class GraphError(InspectorError):
    """An ONNX graph this module cannot turn into a trainable network."""


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def needed_nodes(graph, output: str) -> list:
    """The nodes `output` depends on, in graph order."""
    producers = {o: n for n in graph.node for o in n.output}
    need, stack = set(), [output]
    while stack:
        t = stack.pop()
        n = producers.get(t)
        if n is None or id(n) in need:
            continue
        need.add(id(n))
        stack.extend(i for i in n.input if i)
    return [n for n in graph.node if id(n) in need]


def build(model, output: str, also: tuple[str, ...] = ()):
    """A torch.nn.Module computing `output` (and the tensors in `also`) of `model` (an
    onnx.ModelProto) from its one image input; every Conv weight and bias is a Parameter.
    Returns (module, {initializer name: parameter name})."""
    import numpy as np
    import torch
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    nodes = needed_nodes(g, output)
    for t in also:
        have = {id(n) for n in nodes}
        nodes += [n for n in needed_nodes(g, t) if id(n) not in have]
    order = {id(n): i for i, n in enumerate(g.node)}
    nodes.sort(key=lambda n: order[id(n)])
    graph_inputs = [i.name for i in g.input if i.name not in inits]
    if len(graph_inputs) != 1:
        raise GraphError(f"expected one image input, found {graph_inputs}")
    known = {"Cast", "Transpose", "Mul", "Div", "Add", "Sub", "Conv", "Relu", "ReduceMean", "Concat",
             "Sigmoid", "Constant", "Identity", "Clip"}
    odd = sorted({n.op_type for n in nodes} - known)
    if odd:
        raise GraphError(f"the network uses {odd}, which inspector train cannot fine-tune")

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterDict()
            self.names: dict[str, str] = {}
            self.consts: dict[str, torch.Tensor] = {}
            for n in nodes:
                if n.op_type == "Conv":
                    for t in n.input[1:]:
                        if t and t in inits and t not in self.names:
                            key = f"p{len(self.names)}"
                            self.names[t] = key
                            self.params[key] = torch.nn.Parameter(torch.from_numpy(np.array(inits[t], np.float32)))
            for name, arr in inits.items():
                if name not in self.names:
                    self.consts[name] = torch.from_numpy(np.array(arr))

        def tensor(self, env, name):
            if name in env:
                return env[name]
            if name in self.names:
                return self.params[self.names[name]]
            return self.consts[name]

        def forward(self, x):
            env = {graph_inputs[0]: x}
            for n in nodes:
                a = _attrs(n)
                ins = [self.tensor(env, i) if i else None for i in n.input]
                op = n.op_type
                if op == "Constant":
                    out = torch.from_numpy(np.array(numpy_helper.to_array(a["value"])))
                elif op == "Cast":
                    out = ins[0].float()
                elif op == "Transpose":
                    out = ins[0].permute(*a["perm"])
                elif op in ("Mul", "Div", "Add", "Sub"):
                    fn = {"Mul": torch.mul, "Div": torch.div, "Add": torch.add, "Sub": torch.sub}[op]
                    out = fn(ins[0].float(), ins[1].float())
                elif op == "Conv":
                    pads = a.get("pads", [0, 0, 0, 0])
                    if pads[:2] != pads[2:]:
                        raise GraphError(f"Conv {n.name}: asymmetric padding {pads}")
                    out = torch.nn.functional.conv2d(
                        ins[0], ins[1], ins[2] if len(ins) > 2 else None, stride=tuple(a.get("strides", [1, 1])),
                        padding=tuple(pads[:2]), dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))
                elif op == "Relu":
                    out = torch.relu(ins[0])
                elif op == "Clip":
                    out = torch.clamp(ins[0], None if len(ins) < 2 or ins[1] is None else float(ins[1]),
                                      None if len(ins) < 3 or ins[2] is None else float(ins[2]))
                elif op == "ReduceMean":
                    axes = a.get("axes") or (ins[1].tolist() if len(ins) > 1 and ins[1] is not None else None)
                    out = torch.mean(ins[0], dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))
                elif op == "Concat":
                    out = torch.cat(ins, dim=a["axis"])
                elif op == "Sigmoid":
                    out = torch.sigmoid(ins[0])
                else:  # Identity
                    out = ins[0]
                env[n.output[0]] = out
            return (env[output], *(env[t] for t in also))

    m = Graph()
    return m, dict(m.names)


def write_back(model, module, names: dict[str, str]):
    """A copy of `model` with the trained parameters in place of the initializers they came from."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        key = names.get(init.name)
        if key is not None:
            arr = module.params[key].detach().cpu().numpy().astype(numpy_helper.to_array(init).dtype)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return out
