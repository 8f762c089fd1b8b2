"""The numbers in a file: the weights index (weights.json) over weights.bin, the optimizer's
step counter and slots, and the rng state of seeded Dropout layers (docs/file_format.md).

Reads a model only through its public view (`layers`, `built`, `trainable`, `optimizer`,
`compiled`); imports no model code.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from .. import layers as layers_mod
from .archive import BIN, INDEX, check_dict, is_int, need
from .serialization import jsonable

DTYPE = "<f4"


# =============================================================================================
# writing: model -> (arrays, index)
# =============================================================================================
def _weight_names(layer):
    n = len(layer.weights_list)
    if hasattr(layer, "kernel") and n <= 2:
        return ["kernel", "bias"][:n]
    return [f"weight_{i}" for i in range(n)]


def _push(arrays, a):
    offset = sum(x.size for x in arrays) * 4
    arrays.append(np.ascontiguousarray(a, dtype=DTYPE))
    return offset


def weights_index(model):
    """(arrays, index): the weights of every layer that has some, in model order."""
    arrays, entries = [], []
    for layer in model.layers:
        if not layer.weights_list:
            continue
        ws = []
        for name, w in zip(_weight_names(layer), layer.weights_list):
            ws.append({"name": name, "shape": list(w.shape), "offset": _push(arrays, w)})
        entries.append({"name": layer.name, "class_name": type(layer).__name__, "weights": ws})
    return arrays, {"dtype": DTYPE, "layers": entries}


def _trained_params(model):
    # Exactly the list the training step hands to optimizer.apply (slots follow its order).
    return [w for layer in model.layers if model.trainable for w in layer._trainable_arrays()]


def optimizer_state(model, arrays):
    """The index's "optimizer" entry (its slot arrays appended to `arrays`), or None."""
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or opt is None:
        return None
    params = _trained_params(model)
    slots = None
    if opt._slots is not None and opt._weights_ids == [id(w) for w in params]:
        slots = [[None if a is None else {"shape": list(a.shape), "offset": _push(arrays, a)}
                  for a in s] for s in opt._slots]
    return {"iterations": int(opt.iterations), "slots": slots}


def rng_states(model):
    out = []
    for layer in model.layers:
        gen = getattr(layer, "_rng", None)
        if isinstance(layer, layers_mod.Dropout) and gen is not None:
            out.append({"layer": layer.name, "state": jsonable(gen.bit_generator.state)})
    return out


def finish_index(index, arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(memoryview(a).cast("B"))
    index["nbytes"] = sum(a.nbytes for a in arrays)
    index["sha256"] = h.hexdigest()


# =============================================================================================
# reading: (index, blob) -> checked arrays -> model
# =============================================================================================
def _check_array_entry(src, entry, what, offset, blob):
    check_dict(src, entry, what, ("shape", "offset"), ("name",))
    shape = entry["shape"]
    need(src, isinstance(shape, list) and len(shape) <= 8 and
         all(is_int(d) and 0 <= d < 2**40 for d in shape), f"{what}: invalid shape {shape!r}")
    need(src, entry["offset"] == offset, f"{what}: offset {entry['offset']!r}, expected "
         f"{offset} (entries must be back to back)")
    nbytes = math.prod(shape) * 4
    need(src, offset + nbytes <= len(blob), f"{what}: data for shape {tuple(shape)} runs past "
         f"the end of {BIN} ({len(blob)} bytes): the file is truncated or corrupt")
    arr = np.frombuffer(blob, dtype=DTYPE, count=math.prod(shape), offset=offset)
    arr = arr.astype(np.float32).reshape(shape)
    need(src, np.isfinite(arr).all(), f"{what}: contains "
         f"{int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite values")
    return arr, offset + nbytes


def _check_optimizer_entry(src, opt, offset, blob):
    check_dict(src, opt, f"{INDEX} optimizer", ("iterations", "slots"))
    need(src, is_int(opt["iterations"]) and 0 <= opt["iterations"] < 2**62,
         f"{INDEX}: optimizer iterations must be a non-negative int")
    slots = None
    if opt["slots"] is not None:
        need(src, isinstance(opt["slots"], list), f"{INDEX}: optimizer slots must be a list")
        slots = []
        for i, s in enumerate(opt["slots"]):
            need(src, isinstance(s, list) and len(s) <= 8, f"{INDEX}: optimizer slots "
                 f"of weight {i} must be a list")
            row = []
            for j, se in enumerate(s):
                if se is None:
                    row.append(None)
                    continue
                a, offset = _check_array_entry(src, se, f"optimizer slot {j} of trained "
                                               f"weight {i}", offset, blob)
                row.append(a)
            slots.append(row)
    return (opt["iterations"], slots), offset


def check_index(src, index, blob, with_optimizer):
    """Validate weights.json against weights.bin; returns the decoded arrays."""
    check_dict(src, index, INDEX, ("dtype", "nbytes", "sha256", "layers", "optimizer", "rng"))
    need(src, index["dtype"] == DTYPE, f"{INDEX}: unsupported dtype {index['dtype']!r} "
         f"(expected {DTYPE!r}, little-endian float32)")
    need(src, isinstance(index["layers"], list), f"{INDEX}: 'layers' must be a list")
    offset, layers = 0, []
    for i, le in enumerate(index["layers"]):
        check_dict(src, le, f"{INDEX} layer {i}", ("name", "class_name", "weights"))
        need(src, isinstance(le["name"], str) and isinstance(le["weights"], list),
             f"{INDEX} layer {i}: invalid entry")
        arrs = []
        for j, we in enumerate(le["weights"]):
            a, offset = _check_array_entry(src, we, f"weight {j} of layer '{le['name']}'",
                                           offset, blob)
            arrs.append(a)
        layers.append((le["name"], le["class_name"], arrs))
    opt_state = None
    if index["optimizer"] is not None:
        opt_state, offset = _check_optimizer_entry(src, index["optimizer"], offset, blob)
    need(src, index["nbytes"] == offset == len(blob), f"{BIN} holds {len(blob)} bytes but "
         f"the index describes {offset} (and declares {index['nbytes']!r}): truncated or "
         "corrupt")
    need(src, isinstance(index["rng"], list), f"{INDEX}: 'rng' must be a list")
    for r in index["rng"]:
        check_dict(src, r, f"{INDEX} rng entry", ("layer", "state"))
    return {"layers": layers, "optimizer": opt_state if with_optimizer else None,
            "rng": index["rng"]}


def assign_weights(src, model, saved, exact_names):
    """Set every layer's weights from `saved` (check_index output) after checking that all of
    them fit: nothing changes unless every array does."""
    own = [layer for layer in model.layers if layer.weights_list]
    file_layers = saved["layers"]
    desc = lambda ls: [(n, [tuple(a.shape) for a in arrs]) for n, _, arrs in ls]  # noqa: E731
    mine = [(layer.name, [tuple(w.shape) for w in layer.weights_list]) for layer in own]
    if len(own) != len(file_layers):
        src.fail(f"the file has weights for {len(file_layers)} layers {desc(file_layers)}, but "
                 f"model '{model.name}' has {len(own)} layers with weights {mine}: different "
                 "architecture")
    for layer, (name, cls_name, arrs) in zip(own, file_layers):
        if exact_names and layer.name != name:
            src.fail(f"weights for layer '{name}' do not belong to layer '{layer.name}'")
        shapes = [tuple(a.shape) for a in arrs]
        want = [tuple(w.shape) for w in layer.weights_list]
        if shapes != want:
            src.fail(f"layer '{layer.name}' ({type(layer).__name__}) of model '{model.name}' "
                     f"has weight shapes {want}, but the file has {shapes} (saved from layer "
                     f"'{name}' ({cls_name})): different architecture")
    for layer, (_, _, arrs) in zip(own, file_layers):
        layer.set_weights(arrs)


def restore_optimizer(src, model, state):
    if state is None or model.optimizer is None:
        return
    iterations, slots = state
    opt = model.optimizer
    if slots is not None:
        params = _trained_params(model)
        need(src, len(slots) == len(params), f"optimizer state has slots for {len(slots)} "
             f"weights but the model trains {len(params)}")
        opt.build(params)
        for i, (mine, theirs) in enumerate(zip(opt._slots, slots)):
            ok = len(mine) == len(theirs) and all(
                (a is None) == (b is None) and (a is None or a.shape == b.shape)
                for a, b in zip(mine, theirs))
            need(src, ok, f"optimizer slots of trained weight {i} do not match "
                 f"{type(opt).__name__}({opt.get_config()})")
        for mine, theirs in zip(opt._slots, slots):
            for a, b in zip(mine, theirs):
                if a is not None:
                    a[...] = b
    opt.iterations = int(iterations)


def restore_rng(src, model, entries):
    by_name = {layer.name: layer for layer in model.layers}
    for r in entries:
        layer = by_name.get(r["layer"])
        need(src, isinstance(layer, layers_mod.Dropout) and layer._rng is not None,
             f"rng state for {r['layer']!r}, which is not a seeded Dropout layer")
        st = r["state"]
        ok = isinstance(st, dict) and st.get("bit_generator") == type(
            layer._rng.bit_generator).__name__
        if ok:
            try:
                layer._rng.bit_generator.state = st
            except (TypeError, ValueError, KeyError, OverflowError):
                ok = False
        need(src, ok, f"invalid rng state for Dropout layer '{layer.name}'")
