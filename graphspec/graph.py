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

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from graphspec.errors import Diagnostic, GraphspecError, did_you_mean
from graphspec.expressions import ExpressionError, evaluate
from graphspec.loader import Document, load_file
from graphspec.policy import Policy, policy_for, real_path, split_dotted
from graphspec.schema import check_document
from graphspec.schema.calls import call_problems, model_call_problems
from graphspec.schema.catalog import FILE_ARGS, catalog
from graphspec.schema.values import judged_statically, layer_arg_problem
from graphspec.schema import models as m

NodeKind = Literal["input", "layer", "merge", "op", "apply"]
_REF = re.compile(r"^([A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]+)\])?$")
_PARAM = re.compile(r"\$\{([^{}]*)\}")  # `${name}` or `${arithmetic}` (graphspec.expressions)
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
MAX_BLOCK_DEPTH = 16
MAX_FILE_DEPTH = 16
MAX_MODEL_DEPTH = 64
MAX_STRING_CHARS = 10_000


def model_name_from_file(file: str) -> str:
    """A Keras model name from a file name that TensorFlow accepts as a root scope (`my spec.yaml` →
    `my_spec`, `_x.yaml` → `x`, `spéc.yaml` → `sp_c`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", Path(file).stem).lstrip("_")
    return name if name else "model"


def env_limit(variable: str, default: int) -> int:
    """A limit the person running graphspec may raise through an environment variable."""
    try:
        return int(os.environ.get(variable, default))
    except ValueError:
        return default


def max_nodes() -> int:
    """The expansion budget: 100,000 nodes (far above real models) unless GRAPHSPEC_MAX_NODES says otherwise."""
    return env_limit("GRAPHSPEC_MAX_NODES", 100_000)


class _OverBudget(Exception):
    """Expansion stopped: the diagnostic says which limit, where."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _Budget:
    """Nodes left to expand across every file and block of one spec."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def spend(self, count: int, doc: Document, path: tuple) -> None:
        self.ensure(count, doc, path)
        self.used += count

    def ensure(self, count: int, doc: Document, path: tuple) -> None:
        if self.used + count > self.limit:
            raise _OverBudget(doc.diagnostic(
                f"the spec expands to more than {self.limit:,} nodes (repeats and block instances multiply)",
                path, hint="a real model has far fewer; raise GRAPHSPEC_MAX_NODES if yours does not"))


@dataclass(frozen=True)
class TensorRef:
    node: str
    index: int | None = None

    def __str__(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"


@dataclass
class LayerSpec:
    """A layer to construct: Keras class, arguments, and what it wraps."""

    layer: str  # canonical Keras class name
    args: dict[str, Any]
    wrap: "LayerSpec | str | None" = None  # inline layer, or the name of a shared layer / sub-model
    invalid: bool = False  # an argument value was reported as wrong: shapes skip it rather than report it again


@dataclass
class GNode:
    name: str
    kind: NodeKind
    path: tuple
    doc: Document
    inputs: list[TensorRef] = field(default_factory=list)
    spec: LayerSpec | None = None  # layer, merge and op nodes (an op's `layer` is its keras.ops function)
    target: str | None = None  # apply nodes: shared layer or sub-model name
    input_spec: m.InputSpec | None = None  # input nodes
    note: str | None = None
    incomplete: bool = False  # an input names a node that failed validation: shapes skip it
    # A keyword call (`from: {query: a, value: b}`): each argument's index, or list of indices, in `inputs`.
    # None for a positional call, which hands `inputs` to the first argument (one tensor, or the list).
    arguments: dict[str, int | list[int]] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # `call:`, the non-tensor call arguments
    within: str = ""  # a node of a block: which instance made it, for errors located in the block's definition

    def input_labels(self) -> list[str]:
        """The inputs as summaries show them: `x`, or `query=x` for a call by argument name."""
        if self.arguments is None:
            return [str(ref) for ref in self.inputs]
        if len(self.inputs) < sum(1 if isinstance(w, int) else len(w) for w in self.arguments.values()):
            return [str(ref) for ref in self.inputs]  # a reference failed: the layout no longer applies
        return [f"{arg}={self.inputs[where]}" if isinstance(where, int)
                else f"{arg}=[{', '.join(str(self.inputs[i]) for i in where)}]"
                for arg, where in self.arguments.items()]

    def diagnostic(self, message: str, severity="error", hint=None, path: tuple | None = None) -> Diagnostic:
        path = self.path if path is None else path
        return self.doc.diagnostic(with_instance(message, path, self.within), path, severity=severity, hint=hint)


def with_instance(message: str, path: tuple, within: str) -> str:
    """A finding located in a block's definition also names the instance it came from, which a reader of a
    many-instance model needs to find the one at fault."""
    return f"{message} ({within})" if within and path[:1] == ("blocks",) else message


@dataclass
class Graph:
    """One model's DAG. Sub-models are Graphs of their own in `models`."""

    name: str
    doc: Document
    nodes: dict[str, GNode]
    outputs: list[TensorRef]
    output_paths: list[tuple]
    dag: nx.DiGraph
    order: list[str]
    kind: Literal["functional", "sequential"] = "functional"
    shared: dict[str, LayerSpec] = field(default_factory=dict)
    models: dict[str, "Graph"] = field(default_factory=dict)
    path: tuple = ()
    weights: str | None = None  # a resolved `.weights.h5` file the built model loads (top level only)

    @property
    def input_names(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].kind == "input"]


class _Scope:
    """Names visible to `from:` in one place: the top level, a sub-model or a block instance."""

    def __init__(self, prefix: str = "", params: dict[str, Any] | None = None, renames: dict[str, str] | None = None):
        self.prefix = prefix
        self.aliases: dict[str, TensorRef] = {}
        self.broken: set[str] = set()  # names whose definition already failed with its own error
        self.incomplete = False  # a block instance with parameter errors: its nodes get no shapes
        self.params = params or {}
        self.within = ""  # `in block instance 'b_1' (line 9)`, for findings located in the block's definition
        # A block's output node takes the instance's name, as a chain's last step takes its node's.
        self.renames = renames or {}

    def full(self, name: str) -> str:
        return self.renames.get(name, self.prefix + name)


@dataclass
class _Pending:
    node: GNode
    raw: list[str]
    scope: _Scope
    paths: list[tuple]  # where each raw reference is written


@dataclass
class _From:
    """A node's `from:` flattened: references in order, where each is written, and the argument layout."""

    raw: list[str]
    suffixes: list[tuple]
    arguments: dict[str, int | list[int]] | None = None

    @classmethod
    def of(cls, value) -> "_From":
        if isinstance(value, str):
            return cls([value], [("from",)])
        if isinstance(value, list):
            return cls(list(value), [("from", i) for i in range(len(value))])
        raw, suffixes, arguments = [], [], {}
        for arg, refs in value.items():
            if isinstance(refs, str):
                arguments[arg] = len(raw)
                raw.append(refs)
                suffixes.append(("from", arg))
            else:
                arguments[arg] = list(range(len(raw), len(raw) + len(refs)))
                raw.extend(refs)
                suffixes.extend(("from", arg, i) for i in range(len(refs)))
        return cls(raw, suffixes, arguments)

    @classmethod
    def chained(cls, previous: str) -> "_From":
        """The previous step of a chain, already resolved: its errors are its own."""
        return cls([f"@{previous}"], [()])


class _Builder:
    """Expands one model's nodes; sub-models recurse into new builders."""

    def __init__(self, spec_defs: "_Definitions", doc: Document, found: list[Diagnostic], budget: _Budget):
        self.defs = spec_defs
        self.doc = doc
        self.found = found
        self.budget = budget
        self.nodes: dict[str, GNode] = {}
        self.pending: list[_Pending] = []
        self.unresolved = False  # a bad reference: reachability findings would only echo it
        self.within = ""  # the block instance being expanded, named by findings in its definition

    # -- naming ---------------------------------------------------------------
    def error(self, message: str, path: tuple, hint: str | None = None, severity="error") -> None:
        self.found.append(self.doc.diagnostic(with_instance(message, path, self.within), path, hint=hint,
                                              severity=severity))

    def add(self, node: GNode, wiring: _From, scope: _Scope) -> None:
        self.budget.spend(1, node.doc, node.path)
        if node.name in self.nodes:
            first = self.nodes[node.name]
            line = first.doc.position(first.path)[0]
            self.error(f"duplicate name '{node.name}' (first defined on line {line})", node.path,
                       hint="every input, node and generated layer name must be unique")
            return
        if node.name in self.defs.layer_names:
            self.error(f"node '{node.name}' has the name of a shared layer or sub-model", node.path,
                       hint="Keras layer names must be unique in a model")
        node.incomplete = scope.incomplete or (node.spec is not None and node.spec.invalid)
        node.arguments = wiring.arguments
        node.within = scope.within
        self.nodes[node.name] = node
        self.pending.append(_Pending(node, wiring.raw, scope, [node.path + suffix for suffix in wiring.suffixes]))

    # -- expansion --------------------------------------------------------------
    def substitute(self, value: Any, scope: _Scope, path: tuple) -> Any:
        """Replace `$param` / `${param}` from the block instance; never evaluates anything."""
        if not scope.params and scope.prefix == "":
            return value
        if isinstance(value, dict):
            return {k: self.substitute(v, scope, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, scope, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str):
            if value.startswith("$") and _REF.match(value[1:]) and "[" not in value:
                return self.param(value[1:], scope, path)
            whole = _PARAM.fullmatch(value)
            if whole:  # "${4 * filters}" keeps the number's type
                return self.placeholder(whole.group(1), scope, path)
            result = _PARAM.sub(lambda g: str(self.placeholder(g.group(1), scope, path)), value)
            if len(result) > MAX_STRING_CHARS:
                raise _OverBudget(self.doc.diagnostic(
                    f"substituting block parameters makes a string of {len(result):,} characters "
                    f"(the limit is {MAX_STRING_CHARS:,})", path))
            return result
        return value

    def placeholder(self, text: str, scope: _Scope, path: tuple) -> Any:
        """What `${text}` stands for: a parameter's value, or an arithmetic expression's."""
        name = _NAME.fullmatch(text)
        if name:
            return self.param(name.group(1), scope, path)
        try:
            return evaluate(text, scope.params)
        except ExpressionError as exc:
            scope.incomplete = True
            self.error(f"in '${{{text}}}': {exc}", path,
                       hint=f"parameters: {', '.join(scope.params) or 'none'}; operators + - * / // %, "
                            "parentheses, min(), max()")
            return None

    def param(self, name: str, scope: _Scope, path: tuple) -> Any:
        if name in scope.params:
            return scope.params[name]
        scope.incomplete = True
        self.error(f"unknown block parameter '${name}'", path,
                   hint=did_you_mean(name, scope.params) or f"parameters: {', '.join(scope.params) or 'none'}")
        return None

    def layer_spec(self, definition: m.LayerDef, scope: _Scope, path: tuple) -> LayerSpec:
        wrap: LayerSpec | str | None = None
        if isinstance(definition.wrap, m.LayerDef):
            wrap = self.layer_spec(definition.wrap, scope, path + ("wrap",))
        elif isinstance(definition.wrap, str):
            wrap = definition.wrap
            if wrap not in self.defs.layer_names:
                self.error(f"'{wrap}' is not a shared layer or sub-model", path + ("wrap",),
                           hint=did_you_mean(wrap, self.defs.layer_names))
        args = self.substitute(dict(definition.args), scope, path + ("args",))
        layer = catalog().canonical_layer(definition.layer)
        if layer is None:  # a custom class path (the schema checked its form)
            layer = definition.layer
            module = split_dotted(layer)[0]
            if not self.defs.policy.allows(module):
                self.error(f"layer '{layer}' comes from module '{module}', which is not allowed",
                           path + ("layer",), hint=self.defs.policy.refusal_hint(module))
        for arg in FILE_ARGS.get(layer, ()):
            if isinstance(args.get(arg), str):
                args[arg] = self.readable_file(args[arg], path + ("args", arg))
        invalid = isinstance(wrap, LayerSpec) and wrap.invalid
        if "." not in layer and not scope.incomplete:
            invalid |= not self.values_ok(layer, args, path)
        return LayerSpec(layer, args, wrap, invalid)

    def values_ok(self, layer: str, args: dict, path: tuple) -> bool:
        """Argument values as Keras will take them (after `$param` substitution); errors are reported."""
        owner = next((path[i + 1] for i in range(len(path) - 2, -1, -1)
                      if path[i] in ("nodes", "layers", "models")), None)
        label = f"{layer} '{owner}'" if isinstance(owner, str) else layer
        ok = True
        for arg, value in args.items():
            problem = layer_arg_problem(layer, arg, value)
            if problem:
                self.error(f"{label}: {arg}: {problem}", path + ("args", arg))
                ok = False
            elif not judged_statically(layer, arg, value):
                self.error(f"{label}: the value of '{arg}' is checked at build (no static rule for it)",
                           path + ("args", arg), severity="info")
        return ok

    def readable_file(self, value: str, path: tuple) -> str:
        """A file a layer argument names, resolved against the spec's folder and kept inside its project."""
        if "://" in value:
            self.error(f"'{value}' is a URL; layer arguments read local files only", path)
            return value
        resolved = real_path(self.doc.folder / value)
        if not self.defs.policy.may_read(resolved):
            self.error(f"{self.defs.policy.outside(value, resolved)}: layer arguments may read files inside it only",
                       path, hint=Policy.READ_HINT)
        elif not resolved.is_file():
            self.error(f"'{value}' is not an existing file (resolved to {resolved})", path)
        return str(resolved)

    def repeat_count(self, definition: m.LayerDef | m.BlockNode, scope: _Scope, path: tuple) -> int:
        count = self.substitute(definition.repeat, scope, path + ("repeat",))
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            self.error(f"repeat must be a positive integer, got {count!r}", path + ("repeat",))
            return 1
        return count

    def chain(self, name: str, steps: list[tuple[m.LayerDef, tuple]], wiring: _From, scope: _Scope,
              path: tuple, doc_text: str | None, options: dict | None = None) -> None:
        """Layers applied one after another; the last takes the node's own name."""
        counts = [self.repeat_count(step, scope, step_path) for step, step_path in steps]
        self.budget.ensure(sum(counts), self.doc, path)  # before the list of copies exists; add() spends them
        expanded = [(step, step_path) for (step, step_path), count in zip(steps, counts) for _ in range(count)]
        for position, (step, step_path) in enumerate(expanded, start=1):
            last = position == len(expanded)
            explicit = getattr(step, "name", None)
            layer_name = scope.full(name) if last and not explicit else scope.prefix + (explicit or f"{name}_{position}")
            node = GNode(layer_name, "layer", step_path, self.doc, spec=self.layer_spec(step, scope, step_path),
                         note=doc_text, options=dict(options or {}) if position == 1 else {})
            self.add(node, wiring, scope)
            wiring = _From.chained(layer_name)
        scope.aliases[name] = TensorRef(wiring.raw[0][1:])

    def expand(self, nodes: dict[str, Any], scope: _Scope, base: tuple, block_stack: tuple = ()) -> None:
        for name, node in nodes.items():
            path = base + (name,)
            wiring = _From.of(node.from_)
            full = scope.full(name)
            if isinstance(node, m.LayerNode):
                self.chain(name, [(node, path)], wiring, scope, path, node.doc, self.substitute(
                    dict(node.call), scope, path + ("call",)))
            elif isinstance(node, m.SequentialNode):
                self.chain(name, [(s, path + ("sequential", i)) for i, s in enumerate(node.sequential)],
                           wiring, scope, path, node.doc)
            elif isinstance(node, m.MergeNode):
                spec = LayerSpec(node.merge.capitalize(), self.substitute(dict(node.args), scope, path + ("args",)))
                if not scope.incomplete:
                    spec.invalid = not self.values_ok(spec.layer, spec.args, path)
                self.add(GNode(full, "merge", path, self.doc, spec=spec, note=node.doc), wiring, scope)
                scope.aliases[name] = TensorRef(full)
            elif isinstance(node, m.OpNode):
                operand = {} if node.constant is None else {"constant": node.constant,
                                                             "constant_first": node.constant_first}
                self.add(GNode(full, "op", path, self.doc, spec=LayerSpec(node.op, operand), note=node.doc), wiring,
                         scope)
                scope.aliases[name] = TensorRef(full)
            elif isinstance(node, m.ApplyNode):
                if node.apply not in self.defs.layer_names:
                    self.error(f"'{node.apply}' is not a shared layer or sub-model", path + ("apply",),
                               hint=did_you_mean(node.apply, self.defs.layer_names))
                options = self.substitute(dict(node.call), scope, path + ("call",))
                self.add(GNode(full, "apply", path, self.doc, target=node.apply, note=node.doc, options=options),
                         wiring, scope)
                scope.aliases[name] = TensorRef(full)
            elif isinstance(node, m.BlockNode):
                self.instances(name, node, wiring, scope, path, block_stack)

    def block_inputs(self, node: m.BlockNode, block: m.BlockDef, wiring: _From, path: tuple) -> _From | None:
        """A block's inputs in the order it declares them; a mapping names them (`from: {x: a, skip: b}`)."""
        if wiring.arguments is None:
            return wiring
        ok = True
        for formal, where in wiring.arguments.items():
            if formal not in block.inputs:
                self.error(f"block '{node.block}' has no input '{formal}'", path + ("from", formal),
                           hint=did_you_mean(formal, block.inputs) or f"its inputs: {', '.join(block.inputs)}")
                ok = False
            elif isinstance(where, list):
                self.error(f"block input '{formal}' takes one tensor, not a list", path + ("from", formal))
                ok = False
        missing = [formal for formal in block.inputs if formal not in wiring.arguments]
        if missing and ok:  # after a misspelt name, "missing" would only repeat it
            self.error(f"block '{node.block}' needs its input(s) {', '.join(map(repr, missing))}", path + ("from",))
            ok = False
        if not ok:
            return None
        order = [wiring.arguments[formal] for formal in block.inputs]
        return _From([wiring.raw[i] for i in order], [wiring.suffixes[i] for i in order])

    def instances(self, name: str, node: m.BlockNode, wiring: _From, outer: _Scope, path: tuple,
                  block_stack: tuple) -> None:
        """`repeat: n` chains n instances, each fed the previous one's output, named by `names` or `<node>_1` …;
        the node's name refers to the last one's output."""
        count = self.repeat_count(node, outer, path)
        block = self.defs.blocks.get(node.block)
        if block is not None:
            wiring = self.block_inputs(node, block, wiring, path)
            if wiring is None:
                outer.broken.add(name)
                return
        if node.names is not None and len(node.names) != count:
            self.error(f"`names` gives {len(node.names)} name(s) for repeat {count}", path + ("names",))
            outer.broken.add(name)
            return
        if count > 1 and block is not None and len(block.inputs) != 1:
            self.error(f"block '{node.block}' takes {len(block.inputs)} inputs; only a block with one input "
                       "can repeat (each instance feeds the next)", path + ("repeat",))
            outer.broken.add(name)
            return
        self.budget.ensure(self.defs.block_size(node.block) * count, self.doc, path)
        names = node.names or [name if position == count else f"{name}_{position}" for position in range(1, count + 1)]
        for instance in names:
            self.instantiate(instance, node, wiring, outer, path, block_stack)
            wiring = _From([instance], [()])
        if names[-1] != name:
            if names[-1] in outer.broken:
                outer.broken.add(name)
            else:
                outer.aliases[name] = outer.aliases[names[-1]]

    def instantiate(self, name: str, node: m.BlockNode, wiring: _From, outer: _Scope, path: tuple,
                    block_stack: tuple) -> None:
        block = self.defs.blocks.get(node.block)
        outer.broken.add(name)  # until the instance's output resolves below
        if block is None:
            self.error(f"unknown block '{node.block}'", path + ("block",),
                       hint=did_you_mean(node.block, self.defs.blocks))
            return
        if node.block in block_stack or len(block_stack) >= MAX_BLOCK_DEPTH:
            cycle = " -> ".join(block_stack + (node.block,))
            self.error(f"block instantiates itself: {cycle}", path + ("block",))
            return
        self.budget.ensure(self.defs.block_size(node.block), self.doc, path)
        given = self.substitute(dict(node.with_), outer, path + ("with",))
        known = set(block.params) | set(block.defaults)
        for key in given:
            if key not in known:
                self.error(f"block '{node.block}' has no parameter '{key}'", path + ("with", key),
                           hint=did_you_mean(key, known) or f"parameters: {', '.join(sorted(known)) or 'none'}")
        missing = [p for p in block.params if p not in given]
        if missing:
            self.error(f"block '{node.block}' needs parameter(s) {', '.join(missing)}", path + ("with",))
        if len(wiring.raw) != len(block.inputs):
            self.error(f"block '{node.block}' takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}), "
                       f"got {len(wiring.raw)}", path + ("from",))
        # Missing parameters were reported above; binding them to None avoids a second report per use.
        params = {**{p: None for p in missing}, **block.defaults, **given}
        scope = _Scope(prefix=f"{outer.prefix}{name}_", params=params,
                       renames={} if block.output_keeps_name else {block.output: outer.full(name)})
        scope.incomplete = outer.incomplete or bool(missing) or any(key not in known for key in given)
        bound = [self.resolve(r, outer, path + suffix) for r, suffix in zip(wiring.raw, wiring.suffixes)]
        for formal, actual in zip(block.inputs, bound):
            if actual is not None:
                scope.aliases[formal] = actual
        block_path = self.defs.block_paths[node.block]
        scope.within = f"in block instance '{outer.full(name)}', line {self.doc.position(path)[0]}" + (
            f", inside {outer.within.removeprefix('in block instance ')}" if outer.within else "")
        outer_within, self.within = self.within, scope.within
        self.expand(block.nodes, scope, block_path + ("nodes",), block_stack + (node.block,))
        output = self.resolve(block.output, scope, block_path + ("output",))
        self.within = outer_within
        if output is not None:
            outer.aliases[name] = output
            outer.broken.discard(name)

    # -- references -------------------------------------------------------------
    def resolve(self, raw: str, scope: _Scope, path: tuple) -> TensorRef | None:
        if raw.startswith("@"):
            return TensorRef(raw[1:])
        match = _REF.match(raw)
        if not match:
            self.error(f"bad reference '{raw}'", path)
            return None
        name, index = match.group(1), match.group(2)
        target = scope.aliases.get(name)
        if target is None:
            self.unresolved = True
            if name in scope.broken:
                return None
            visible = sorted(scope.aliases)
            self.error(f"unknown reference '{name}'", path,
                       hint=did_you_mean(name, visible) or f"defined names: {', '.join(visible)}")
            return None
        if index is None:
            return target
        if target.index is not None:
            self.error(f"'{name}' already names tensor {target}; it cannot be indexed again", path)
            return None
        return TensorRef(target.node, int(index))

    def resolve_all(self) -> None:
        for item in self.pending:
            self.within = item.scope.within
            refs = [self.resolve(r, item.scope, path) for r, path in zip(item.raw, item.paths)]
            item.node.inputs = [r for r in refs if r is not None]
            item.node.incomplete |= len(item.node.inputs) < len(refs)
        self.within = ""


@dataclass
class _Definitions:
    """What a spec file defines for its nodes to use: shared layers, sub-models, blocks."""

    shared: dict[str, m.LayerDef]
    models: dict[str, Any]
    blocks: dict[str, m.BlockDef]
    block_paths: dict[str, tuple]
    policy: Policy
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def layer_names(self) -> set[str]:
        return set(self.shared) | set(self.models)

    def block_size(self, name: str, stack: tuple = ()) -> int:
        """How many nodes one instance of block `name` expands to (a `$param` repeat counts once),
        known before expanding anything, so an instance too big for the budget is refused at once."""
        if name in self.sizes:
            return self.sizes[name]
        block = self.blocks.get(name)
        if block is None or name in stack or len(stack) >= MAX_BLOCK_DEPTH:
            return 1  # reported when expanded
        total = 0
        for node in block.nodes.values():
            if isinstance(node, m.BlockNode):
                total += self.block_size(node.block, stack + (name,)) * _fixed_repeat(node)
            elif isinstance(node, m.SequentialNode):
                total += sum(_fixed_repeat(step) for step in node.sequential)
            else:
                total += _fixed_repeat(node)
        self.sizes[name] = total
        return total


def _fixed_repeat(node) -> int:
    repeat = getattr(node, "repeat", 1)
    return repeat if isinstance(repeat, int) else 1


def _build_dag(builder: _Builder, outputs: list[TensorRef], output_paths: list[tuple], name: str) -> nx.DiGraph:
    found, nodes = builder.found, builder.nodes
    position = {n: i for i, n in enumerate(nodes)}
    dag = nx.DiGraph()
    for node in nodes.values():
        dag.add_node(node.name)
        for ref in node.inputs:
            if ref.node in nodes:
                dag.add_edge(ref.node, node.name)
    try:
        order = list(nx.lexicographical_topological_sort(dag, key=position.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = [edge[0] for edge in nx.find_cycle(dag)]
        start = min(range(len(cycle)), key=lambda i: position[cycle[i]])  # report from the first declared
        names = cycle[start:] + cycle[:start] + [cycle[start]]
        first = nodes[names[0]]
        found.append(first.diagnostic(f"cycle: {' -> '.join(names)}",
                                      hint="a graph must be acyclic; one of these nodes must take another input"))
        order = []
    dag.graph["order"] = order
    if builder.unresolved:
        return dag
    inputs = {n for n, node in nodes.items() if node.kind == "input"}
    useful: set[str] = set()
    for ref, path in zip(outputs, output_paths):
        ancestors = nx.ancestors(dag, ref.node) if ref.node in dag else set()
        if order and ref.node not in inputs and not (ancestors & inputs):
            found.append(builder.doc.diagnostic(f"output '{ref}' cannot be reached from any input", path))
        useful |= ancestors | {ref.node}
    if order:
        for node_name in order:
            if node_name not in useful:
                node = nodes[node_name]
                what = "input" if node.kind == "input" else "node"
                found.append(node.diagnostic(f"{what} '{node_name}' reaches no output of '{name}'",
                                             severity="warning", hint="remove it or connect it"))
    return dag


def _graph_from(builder: _Builder, name: str, raw_outputs: list[str], outputs_path: tuple,
                scope: _Scope, kind="functional", path: tuple = ()) -> Graph:
    builder.resolve_all()
    outputs: list[TensorRef] = []
    output_paths: list[tuple] = []
    for i, raw in enumerate(raw_outputs):
        out_path = outputs_path + (i,)
        ref = builder.resolve(raw, scope, out_path)
        if ref is None:
            continue
        outputs.append(ref)
        output_paths.append(out_path)
    dag = _build_dag(builder, outputs, output_paths, name)
    return Graph(name, builder.doc, builder.nodes, outputs, output_paths, dag, dag.graph["order"], kind, path=path)


def _check_top_outputs(graph: Graph, raw_outputs: list[str], found: list[Diagnostic]) -> None:
    """Keras names a model's outputs after the layers producing them: make that the spec's name.
    A call of a shared layer or sub-model is the exception: the backend keys the outputs by name."""
    seen: set[str] = set()
    for raw, ref, path in zip(raw_outputs, graph.outputs, graph.output_paths):
        node = graph.nodes.get(ref.node)
        if node is None:
            continue
        problem = None
        if ref.index is not None:
            problem = f"output '{raw}' is one tensor of a multi-output layer; Keras cannot name it '{raw}'"
        elif node.kind == "input":
            problem = f"output '{raw}' is an input; a model output must be computed by a layer"
        elif ref.node != raw:
            problem = f"output '{raw}' is produced by layer '{ref.node}', so Keras would name it '{ref.node}'"
        if problem:
            found.append(graph.doc.diagnostic(problem, path,
                         hint="name the node producing it after the output, or add a layer node "
                              "(e.g. Activation linear) with the output's name"))
        if ref.node in seen:
            found.append(graph.doc.diagnostic(f"output '{raw}' is listed twice", path))
        seen.add(ref.node)


def _add_inputs(builder: _Builder, inputs: dict[str, m.InputSpec], scope: _Scope, base: tuple) -> None:
    for input_name, input_spec in inputs.items():
        builder.add(GNode(input_name, "input", base + (input_name,), builder.doc, input_spec=input_spec,
                          note=input_spec.doc), _From([], []), scope)
        scope.aliases[input_name] = TensorRef(input_name)


class _ModelResolver:
    """Builds sub-model graphs once each, following `file:` references and catching cycles."""

    def __init__(self, found: list[Diagnostic], policy: Policy):
        self.found = found
        self.policy = policy
        self.budget = _Budget(max_nodes())
        self.file_stack: list[str] = []
        self.building: list[str] = []

    def build_spec(self, spec: m.Spec, doc: Document, broken: frozenset[str] = frozenset()) -> Graph:
        defs = _Definitions(
            spec.layers, spec.models, spec.blocks, {name: ("blocks", name) for name in spec.blocks}, self.policy
        )
        model_graphs: dict[str, Graph] = {}
        for model_name, definition in spec.models.items():
            graph = self.build_model(model_name, definition, defs, doc, model_graphs)
            if graph is not None:
                model_graphs[model_name] = graph
        builder = _Builder(defs, doc, self.found, self.budget)
        scope = _Scope()
        scope.broken |= broken
        _add_inputs(builder, spec.inputs, scope, ("inputs",))
        builder.expand(spec.nodes, scope, ("nodes",))
        name = spec.name or model_name_from_file(doc.file)
        graph = _graph_from(builder, name, list(spec.outputs), ("outputs",), scope)
        graph.models = model_graphs
        graph.shared = {
            shared_name: builder.layer_spec(definition, _Scope(), ("layers", shared_name))
            for shared_name, definition in spec.layers.items()
        }
        for model_name, sub in model_graphs.items():
            if not isinstance(spec.models[model_name], m.FileModelDef):
                sub.shared, sub.models = graph.shared, model_graphs
        if spec.weights is not None:
            graph.weights = builder.readable_file(spec.weights, ("weights",))
        for shared_name, definition in spec.layers.items():
            if definition.repeat != 1:
                self.found.append(doc.diagnostic("a shared layer cannot repeat", ("layers", shared_name, "repeat")))
        return graph

    def build_model(self, name: str, definition: Any, defs: _Definitions, doc: Document,
                    built: dict[str, Graph]) -> Graph | None:
        path = ("models", name)
        if isinstance(definition, m.FileModelDef):
            return self.build_file(name, definition, doc, path)
        builder = _Builder(defs, doc, self.found, self.budget)
        scope = _Scope()
        if isinstance(definition, m.SequentialModelDef):
            input_name = f"{name}_input"
            _add_inputs(builder, {input_name: definition.input}, scope, path)
            builder.nodes[input_name].path = path + ("input",)
            steps = [(s, path + ("sequential", i)) for i, s in enumerate(definition.sequential)]
            builder.chain(f"{name}_output", steps, _From([input_name], [("input",)]), scope, path, None)
            # The chain's alias, not its last layer's name: a named last step is not itself a reference.
            return _graph_from(builder, name, [f"{name}_output"], path + ("sequential",), scope, "sequential", path)
        _add_inputs(builder, definition.inputs, scope, path + ("inputs",))
        builder.expand(definition.nodes, scope, path + ("nodes",))
        return _graph_from(builder, name, list(definition.outputs), path + ("outputs",), scope, path=path)

    def build_file(self, name: str, definition: m.FileModelDef, doc: Document, path: tuple) -> Graph | None:
        target = real_path(doc.folder / definition.file)
        if not self.policy.may_read(target):  # as for layer arguments: its findings would echo what it holds
            self.found.append(doc.diagnostic(
                f"sub-model file {self.policy.outside(definition.file, target)}: a spec may include files inside "
                "it only", path + ("file",), hint=Policy.READ_HINT))
            return None
        if str(target) in self.file_stack:
            chain = " -> ".join(Path(f).name for f in self.file_stack + [str(target)])
            self.found.append(doc.diagnostic(f"sub-model files include each other: {chain}", path + ("file",)))
            return None
        if len(self.file_stack) >= MAX_FILE_DEPTH:
            self.found.append(doc.diagnostic(f"sub-model files nest more than {MAX_FILE_DEPTH} deep",
                                             path + ("file",), hint=f"{Path(self.file_stack[0]).name} -> ... -> "
                                             f"{Path(doc.file).name} -> {definition.file}"))
            return None
        try:
            sub_doc = load_file(target)
        except GraphspecError as exc:
            self.found.append(doc.diagnostic(f"sub-model file '{definition.file}' cannot be loaded",
                                             path + ("file",)))
            self.found.extend(exc.diagnostics)
            return None
        sub_spec, sub_found = check_document(sub_doc)
        self.found.extend(sub_found)
        if sub_spec is None:
            return None
        self.file_stack.append(str(target))
        try:
            graph = self.build_spec(sub_spec, sub_doc)
        finally:
            self.file_stack.pop()
        graph.name = name
        graph.path = path
        return graph


def build_graph(spec: m.Spec, doc: Document, policy: Policy | None = None,
                broken: frozenset[str] = frozenset()) -> tuple[Graph, list[Diagnostic]]:
    """Expand and wire a validated spec. Returns the graph and every graph-level finding.

    `policy` says which modules custom layer classes may come from (none by default).
    `broken` names top-level nodes that failed schema validation and were left out: references
    to them are not reported again, and nodes that use them get no shapes.
    """
    found: list[Diagnostic] = []
    resolver = _ModelResolver(found, policy or policy_for(doc.folder))
    resolver.file_stack.append(str(real_path(doc.file)))
    try:
        graph = resolver.build_spec(spec, doc, broken)
    except _OverBudget as over:
        found.append(over.diagnostic)
        dag = nx.DiGraph(abandoned=True)
        return Graph(spec.name or Path(doc.file).stem, doc, {}, [], [], dag, []), found
    if not broken and not any(d.severity == "error" for d in found):  # else they would echo earlier errors
        _check_top_outputs(graph, list(spec.outputs), found)
    _check_model_use(graph, found)
    _check_calls(graph, found, set())
    return graph, found


def _check_calls(graph: Graph, found: list[Diagnostic], seen: set[int]) -> None:
    """Apply nodes name the arguments of what they call, known only now: a shared layer's call signature,
    or a sub-model's input names."""
    if id(graph) in seen:
        return
    seen.add(id(graph))
    for node in graph.nodes.values():
        if node.kind != "apply":
            continue
        tensors = list(node.arguments) if node.arguments is not None else None
        if node.target in graph.models:
            sub = graph.models[node.target]
            problems = model_call_problems(node.target, sub.input_names, tensors, node.options)
        elif node.target in graph.shared and "." not in graph.shared[node.target].layer:
            layer = graph.shared[node.target].layer
            problems = call_problems(catalog().call(layer), tensors, node.options, f"{layer} '{node.target}'")
        else:
            continue
        for problem in problems:
            found.append(node.diagnostic(problem.message, hint=problem.hint, path=node.path + problem.at))
        node.incomplete |= bool(problems)
    for sub in graph.models.values():
        _check_calls(sub, found, seen)


def _wrapped_names(spec: LayerSpec | None) -> list[str]:
    """Shared layers or sub-models a layer wraps, however deeply (TimeDistributed(Bidirectional(m)))."""
    names = []
    while spec is not None:
        if isinstance(spec.wrap, str):
            names.append(spec.wrap)
        spec = spec.wrap if isinstance(spec.wrap, LayerSpec) else None
    return names


def _check_model_use(graph: Graph, found: list[Diagnostic]) -> None:
    """Sub-models may apply other sub-models, but not themselves (directly, through others, or through a
    shared layer that wraps them), and may nest at most MAX_MODEL_DEPTH deep.

    Names are per file: a sub-model from another file is checked in its own file's namespace.
    """
    uses = nx.DiGraph()

    def called(name: str) -> list[str]:
        """The models a call of `name` runs: the model itself, or what a shared layer wraps."""
        if name in graph.models:
            return [name]
        return [t for t in _wrapped_names(graph.shared.get(name)) if t in graph.models]

    for model_name, sub in graph.models.items():
        uses.add_node(model_name)
        if sub.shared is not graph.shared:  # from another file: its names are its own
            _check_model_use(sub, found)
            continue
        for node in sub.nodes.values():
            targets = [node.target] if node.kind == "apply" else []
            targets += _wrapped_names(node.spec)
            for target in targets:
                for model in called(target):
                    uses.add_edge(model_name, model)
    try:
        cycle = nx.find_cycle(uses)
    except nx.NetworkXNoCycle:
        depth = nx.dag_longest_path_length(uses)
        if depth > MAX_MODEL_DEPTH:
            deepest = nx.dag_longest_path(uses)[0]
            graph.dag.graph["model_cycle"] = True
            found.append(graph.doc.diagnostic(
                f"sub-models nest {depth} deep, more than the limit of {MAX_MODEL_DEPTH}", ("models", deepest)))
        return
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    graph.dag.graph["model_cycle"] = True
    found.append(graph.doc.diagnostic(f"sub-models use each other in a cycle: {' -> '.join(names)}",
                                      ("models", names[0])))
