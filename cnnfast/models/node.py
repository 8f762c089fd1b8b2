"""The public view of a model's graph: `model.nodes`."""
from __future__ import annotations

from typing import NamedTuple


class Node(NamedTuple):
    """One layer call of a model, as `model.nodes` lists them (topological order).

    layer           the Layer (or nested Model) called
    inbound_layers  the layers whose outputs it consumes, in argument order; () for an
                    InputLayer (and for the first layer of a Sequential without an input yet)
    """
    layer: object
    inbound_layers: tuple
