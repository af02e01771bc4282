"""Graph stage: a validated Spec → flat, named networkx DAGs (one per model).

Example:

    >>> from graphspec.loader import load_text
    >>> from graphspec.schema import check_document
    >>> from graphspec.graph import build_graph
    >>> doc = load_text('''
    ... graphspec: 1
    ... inputs: {x: {shape: [4]}}
    ... nodes:
    ...   hidden: {layer: Dense, args: {units: 8}, repeat: 2, from: x}
    ...   y: {layer: Dense, args: {units: 1}, from: hidden}
    ... outputs: [y]
    ... ''', "demo.yaml")
    >>> graph, found = build_graph(check_document(doc)[0], doc)
    >>> graph.order
    ['x', 'hidden_1', 'hidden', 'y']

Everything the spec's shorthands mean is expanded here, once: `repeat`,
`sequential` chains, block instances (with `$param` substitution) and
sub-models (inline, sequential or from another file). Later stages — shapes,
the Keras backend, plotting — only ever walk `Graph.nodes` in `Graph.order`.
"""

from graphspec.graph.build import build_graph
from graphspec.graph.nodes import (ApplyCall, GNode, Graph, InputNode, LayerCall, LayerSpec, MergeCall, ModelCall,
                                   OpCall, SharedCall, TensorRef, env_limit, with_instance)

__all__ = ["ApplyCall", "GNode", "Graph", "InputNode", "LayerCall", "LayerSpec", "MergeCall", "ModelCall", "OpCall",
           "SharedCall", "TensorRef", "build_graph", "env_limit", "with_instance"]
