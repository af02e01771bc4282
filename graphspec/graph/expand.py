"""Expansion: a spec's shorthands — `repeat`, `sequential` chains, block instances with `${param}`
substitution — become flat, named nodes, with references resolved in the scope each was written in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any


from graphspec.errors import Diagnostic, did_you_mean
from graphspec.expressions import ExpressionError, evaluate
from graphspec.graph.nodes import (MAX_BLOCK_DEPTH, MAX_STRING_CHARS, Budget, GNode, LayerCall, LayerSpec, MergeCall,
                                   ModelCall, OpCall, OverBudget, SharedCall, TensorRef, with_instance)
from graphspec.loader import Document
from graphspec.policy import Policy, real_path, split_dotted
from graphspec.schema.catalog import FILE_ARGS, catalog
from graphspec.schema.values import judged_statically, layer_arg_problem
from graphspec.schema import models as m


_REF = re.compile(r"^([A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]+)\])?$")
_PARAM = re.compile(r"\$\{([^{}]*)\}")  # `${name}` or `${arithmetic}` (graphspec.expressions)
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


class Scope:
    """Names visible to `from:` in one place: the top level, a sub-model or a block instance."""

    def __init__(self, prefix: str = "", params: dict[str, Any] | None = None, renames: dict[str, str] | None = None):
        self.prefix = prefix
        self.aliases: dict[str, TensorRef] = {}
        self.failed_names: set[str] = set()  # names whose definition already failed with its own error
        self.failed = False  # a block instance with parameter errors: its nodes get no shapes
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
    scope: Scope
    paths: list[tuple]  # where each raw reference is written


@dataclass
class Wiring:
    """A node's `from:` flattened: references in order, where each is written, and the argument layout."""

    raw: list[str]
    suffixes: list[tuple]
    arguments: dict[str, int | list[int]] | None = None

    @classmethod
    def of(cls, value) -> Wiring:
        if isinstance(value, str):
            return cls([value], [("from",)])
        if isinstance(value, list):
            return cls(list(value), [("from", i) for i in range(len(value))])
        raw: list[str] = []
        suffixes: list[tuple] = []
        arguments: dict[str, int | list[int]] = {}
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
    def chained(cls, previous: str) -> Wiring:
        """The previous step of a chain, already resolved: its errors are its own."""
        return cls([f"@{previous}"], [()])


class Builder:
    """Expands one model's nodes; sub-models recurse into new builders."""

    def __init__(self, spec_defs: Definitions, doc: Document, found: list[Diagnostic], budget: Budget):
        self.defs = spec_defs
        self.doc = doc
        self.found = found
        self.budget = budget
        self.nodes: dict[str, GNode] = {}
        self.pending: list[_Pending] = []
        self.failed_reference = False  # a bad reference: reachability findings would only echo it
        self.within = ""  # the block instance being expanded, named by findings in its definition

    # -- naming ---------------------------------------------------------------
    def error(self, message: str, path: tuple, hint: str | None = None, severity="error") -> None:
        self.found.append(self.doc.diagnostic(with_instance(message, path, self.within), path, hint=hint,
                                              severity=severity))

    def add(self, node: GNode, wiring: Wiring, scope: Scope) -> None:
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
        node.failed = scope.failed or (isinstance(node, LayerCall) and node.spec.failed)
        node.arguments = wiring.arguments
        node.within = scope.within
        self.nodes[node.name] = node
        self.pending.append(_Pending(node, wiring.raw, scope, [node.path + suffix for suffix in wiring.suffixes]))

    # -- expansion --------------------------------------------------------------
    def substitute(self, value: Any, scope: Scope, path: tuple) -> Any:
        """Replace `$param` / `${param}` from the block instance; never evaluates anything."""
        if not scope.params and scope.prefix == "":
            return value
        if isinstance(value, dict):
            return {k: self.substitute(v, scope, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, scope, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            if value.startswith("$") and _REF.match(value[1:]) and "[" not in value:
                return self.param(value[1:], scope, path)
            whole = _PARAM.fullmatch(value)
            if whole:  # "${4 * filters}" keeps the number's type
                return self.placeholder(whole.group(1), scope, path)
            result = _PARAM.sub(lambda g: str(self.placeholder(g.group(1), scope, path)), value)
            if len(result) > MAX_STRING_CHARS:
                raise OverBudget(self.doc.diagnostic(
                    f"substituting block parameters makes a string of {len(result):,} characters "
                    f"(the limit is {MAX_STRING_CHARS:,})", path))
            return result
        return value

    def placeholder(self, text: str, scope: Scope, path: tuple) -> Any:
        """What `${text}` stands for: a parameter's value, or an arithmetic expression's."""
        name = _NAME.fullmatch(text)
        if name:
            return self.param(name.group(1), scope, path)
        try:
            return evaluate(text, scope.params)
        except ExpressionError as exc:
            scope.failed = True
            self.error(f"in '${{{text}}}': {exc}", path,
                       hint=f"parameters: {', '.join(scope.params) or 'none'}; operators + - * / // %, "
                            "parentheses, min(), max()")
            return None

    def param(self, name: str, scope: Scope, path: tuple) -> Any:
        if name in scope.params:
            return scope.params[name]
        scope.failed = True
        self.error(f"unknown block parameter '${name}'", path,
                   hint=did_you_mean(name, scope.params) or f"parameters: {', '.join(scope.params) or 'none'}")
        return None

    def layer_spec(self, definition: m.LayerDef, scope: Scope, path: tuple) -> LayerSpec:
        wrap: LayerSpec | str | None = None
        if isinstance(definition.wrap, m.LayerDef):
            wrap = self.layer_spec(definition.wrap, scope, (*path, "wrap"))
        elif isinstance(definition.wrap, str):
            wrap = definition.wrap
            if wrap not in self.defs.layer_names:
                self.error(f"'{wrap}' is not a shared layer or sub-model", (*path, "wrap"),
                           hint=did_you_mean(wrap, self.defs.layer_names))
        args = self.substitute(dict(definition.args), scope, (*path, "args"))
        layer = catalog().canonical_layer(definition.layer)
        if layer is None:  # a custom class path (the schema checked its form)
            layer = definition.layer
            module = split_dotted(layer)[0]
            if not self.defs.policy.allows(module):
                self.error(f"layer '{layer}' comes from module '{module}', which is not allowed",
                           (*path, "layer"), hint=self.defs.policy.refusal_hint(module))
        for arg in FILE_ARGS.get(layer, ()):
            if isinstance(args.get(arg), str):
                args[arg] = self.readable_file(args[arg], (*path, "args", arg))
        failed = isinstance(wrap, LayerSpec) and wrap.failed
        if "." not in layer and not scope.failed:
            failed |= not self.values_ok(layer, args, path)
        return LayerSpec(layer, args, wrap, failed, definition.adapt)

    def values_ok(self, layer: str, args: dict, path: tuple) -> bool:
        """Argument values as Keras will take them (after `$param` substitution); errors are reported."""
        owner = next((path[i + 1] for i in range(len(path) - 2, -1, -1)
                      if path[i] in ("nodes", "layers", "models")), None)
        label = f"{layer} '{owner}'" if isinstance(owner, str) else layer
        ok = True
        for arg, value in args.items():
            problem = layer_arg_problem(layer, arg, value)
            if problem:
                self.error(f"{label}: {arg}: {problem}", (*path, "args", arg))
                ok = False
            elif not judged_statically(layer, arg, value):
                self.error(f"{label}: the value of '{arg}' is checked at build (no static rule for it)",
                           (*path, "args", arg), severity="info")
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

    def repeat_count(self, definition: m.LayerDef | m.BlockNode, scope: Scope, path: tuple) -> int:
        count = self.substitute(definition.repeat, scope, (*path, "repeat"))
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            self.error(f"repeat must be a positive integer, got {count!r}", (*path, "repeat"))
            return 1
        return count

    def chain(self, name: str, steps: Sequence[tuple[m.LayerDef, tuple]], wiring: Wiring, scope: Scope,
              path: tuple, doc_text: str | None, options: dict | None = None) -> None:
        """Layers applied one after another; the last takes the node's own name."""
        counts = [self.repeat_count(step, scope, step_path) for step, step_path in steps]
        self.budget.ensure(sum(counts), self.doc, path)  # before the list of copies exists; add() spends them
        expanded = [(step, step_path) for (step, step_path), count in zip(steps, counts, strict=True)
                    for _ in range(count)]
        for position, (step, step_path) in enumerate(expanded, start=1):
            last = position == len(expanded)
            explicit = getattr(step, "name", None)
            layer_name = (scope.full(name) if last and not explicit
                          else scope.prefix + (explicit or f"{name}_{position}"))
            node = LayerCall(name=layer_name, path=step_path, doc=self.doc,
                             spec=self.layer_spec(step, scope, step_path), note=doc_text,
                             options=dict(options or {}) if position == 1 else {})
            self.add(node, wiring, scope)
            wiring = Wiring.chained(layer_name)
        scope.aliases[name] = TensorRef(wiring.raw[0][1:])

    def expand(self, nodes: dict[str, Any], scope: Scope, base: tuple, block_stack: tuple = ()) -> None:
        for name, node in nodes.items():
            path = (*base, name)
            wiring = Wiring.of(node.from_)
            full = scope.full(name)
            if isinstance(node, m.LayerNode):
                self.chain(name, [(node, path)], wiring, scope, path, node.doc, self.substitute(
                    dict(node.call), scope, (*path, "call")))
            elif isinstance(node, m.SequentialNode):
                self.chain(name, [(s, (*path, "sequential", i)) for i, s in enumerate(node.sequential)],
                           wiring, scope, path, node.doc)
            elif isinstance(node, m.MergeNode):
                spec = LayerSpec(node.merge.capitalize(), self.substitute(dict(node.args), scope, (*path, "args")))
                if not scope.failed:
                    spec.failed = not self.values_ok(spec.layer, spec.args, path)
                self.add(MergeCall(name=full, path=path, doc=self.doc, spec=spec, note=node.doc), wiring, scope)
                scope.aliases[name] = TensorRef(full)
            elif isinstance(node, m.OpNode):
                operand = {} if node.constant is None else {"constant": node.constant,
                                                             "constant_first": node.constant_first}
                self.add(OpCall(name=full, path=path, doc=self.doc, spec=LayerSpec(node.op, operand), note=node.doc),
                         wiring, scope)
                scope.aliases[name] = TensorRef(full)
            elif isinstance(node, m.ApplyNode):
                if node.apply not in self.defs.layer_names:
                    self.error(f"'{node.apply}' is not a shared layer or sub-model", (*path, "apply"),
                               hint=did_you_mean(node.apply, self.defs.layer_names))
                options = self.substitute(dict(node.call), scope, (*path, "call"))
                call = ModelCall if node.apply in self.defs.models else SharedCall
                self.add(call(name=full, path=path, doc=self.doc, target=node.apply, note=node.doc, options=options),
                         wiring, scope)
                scope.aliases[name] = TensorRef(full)
            elif isinstance(node, m.BlockNode):
                self.instances(name, node, wiring, scope, path, block_stack)

    def block_inputs(self, node: m.BlockNode, block: m.BlockDef, wiring: Wiring, path: tuple) -> Wiring | None:
        """A block's inputs in the order it declares them; a mapping names them (`from: {x: a, skip: b}`)."""
        if wiring.arguments is None:
            return wiring
        ok = True
        for formal, where in wiring.arguments.items():
            if formal not in block.inputs:
                self.error(f"block '{node.block}' has no input '{formal}'", (*path, "from", formal),
                           hint=did_you_mean(formal, block.inputs) or f"its inputs: {', '.join(block.inputs)}")
                ok = False
            elif isinstance(where, list):
                self.error(f"block input '{formal}' takes one tensor, not a list", (*path, "from", formal))
                ok = False
        missing = [formal for formal in block.inputs if formal not in wiring.arguments]
        if missing and ok:  # after a misspelt name, "missing" would only repeat it
            self.error(f"block '{node.block}' needs its input(s) {', '.join(map(repr, missing))}", (*path, "from"))
            ok = False
        if not ok:
            return None
        # Every block input is one tensor here (a list was refused above).
        order = [where for formal in block.inputs if isinstance(where := wiring.arguments[formal], int)]
        return Wiring([wiring.raw[i] for i in order], [wiring.suffixes[i] for i in order])

    def instances(self, name: str, node: m.BlockNode, wiring: Wiring, outer: Scope, path: tuple,
                  block_stack: tuple) -> None:
        """`repeat: n` chains n instances, each fed the previous one's output, named by `names` or `<node>_1` …;
        the node's name refers to the last one's output."""
        count = self.repeat_count(node, outer, path)
        block = self.defs.blocks.get(node.block)
        if block is not None:
            ordered = self.block_inputs(node, block, wiring, path)
            if ordered is None:
                outer.failed_names.add(name)
                return
            wiring = ordered
        if node.names is not None and len(node.names) != count:
            self.error(f"`names` gives {len(node.names)} name(s) for repeat {count}", (*path, "names"))
            outer.failed_names.add(name)
            return
        if count > 1 and block is not None and len(block.inputs) != 1:
            self.error(f"block '{node.block}' takes {len(block.inputs)} inputs; only a block with one input "
                       "can repeat (each instance feeds the next)", (*path, "repeat"))
            outer.failed_names.add(name)
            return
        self.budget.ensure(self.defs.block_size(node.block) * count, self.doc, path)
        names = node.names or [name if position == count else f"{name}_{position}" for position in range(1, count + 1)]
        for instance in names:
            self.instantiate(instance, node, wiring, outer, path, block_stack)
            wiring = Wiring([instance], [()])
        if names[-1] != name:
            if names[-1] in outer.failed_names:
                outer.failed_names.add(name)
            else:
                outer.aliases[name] = outer.aliases[names[-1]]

    def instantiate(self, name: str, node: m.BlockNode, wiring: Wiring, outer: Scope, path: tuple,
                    block_stack: tuple) -> None:
        outer.failed_names.add(name)  # until the instance's output resolves below
        block = self.instantiable(node, path, block_stack)
        if block is None:
            return
        self.budget.ensure(self.defs.block_size(node.block), self.doc, path)
        given = self.substitute(dict(node.with_), outer, (*path, "with"))
        missing, unknown = self.check_parameters(node, block, given, path)
        if len(wiring.raw) != len(block.inputs):
            self.error(f"block '{node.block}' takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}), "
                       f"got {len(wiring.raw)}", (*path, "from"))
        # Missing parameters were reported above; binding them to None avoids a second report per use.
        params = {**{p: None for p in missing}, **block.defaults, **given}
        scope = Scope(prefix=f"{outer.prefix}{name}_", params=params,
                      renames={} if block.output_keeps_name else {block.output: outer.full(name)})
        scope.failed = outer.failed or bool(missing) or unknown
        bound = [self.resolve(r, outer, path + suffix) for r, suffix in zip(wiring.raw, wiring.suffixes, strict=True)]
        for formal, actual in zip(block.inputs, bound, strict=False):
            if actual is not None:
                scope.aliases[formal] = actual
        block_path = self.defs.block_paths[node.block]
        scope.within = f"in block instance '{outer.full(name)}', line {self.doc.position(path)[0]}" + (
            f", inside {outer.within.removeprefix('in block instance ')}" if outer.within else "")
        outer_within, self.within = self.within, scope.within
        self.expand(block.nodes, scope, (*block_path, "nodes"), (*block_stack, node.block))
        output = self.resolve(block.output, scope, (*block_path, "output"))
        self.within = outer_within
        if output is not None:
            outer.aliases[name] = output
            outer.failed_names.discard(name)

    def instantiable(self, node: m.BlockNode, path: tuple, block_stack: tuple) -> m.BlockDef | None:
        """The block an instance names, or None (reported) when it is unknown or would instantiate itself."""
        block = self.defs.blocks.get(node.block)
        if block is None:
            self.error(f"unknown block '{node.block}'", (*path, "block"),
                       hint=did_you_mean(node.block, self.defs.blocks))
            return None
        if node.block in block_stack or len(block_stack) >= MAX_BLOCK_DEPTH:
            cycle = " -> ".join((*block_stack, node.block))
            self.error(f"block instantiates itself: {cycle}", (*path, "block"))
            return None
        return block

    def check_parameters(self, node: m.BlockNode, block: m.BlockDef, given: dict,
                         path: tuple) -> tuple[list[str], bool]:
        """Report unknown and missing parameters of an instance: (the missing ones, whether any is unknown)."""
        known = set(block.params) | set(block.defaults)
        unknown = [key for key in given if key not in known]
        for key in unknown:
            self.error(f"block '{node.block}' has no parameter '{key}'", (*path, "with", key),
                       hint=did_you_mean(key, known) or f"parameters: {', '.join(sorted(known)) or 'none'}")
        missing = [p for p in block.params if p not in given]
        if missing:
            self.error(f"block '{node.block}' needs parameter(s) {', '.join(missing)}", (*path, "with"))
        return missing, bool(unknown)

    # -- references -------------------------------------------------------------
    def resolve(self, raw: str, scope: Scope, path: tuple) -> TensorRef | None:
        if raw.startswith("@"):
            return TensorRef(raw[1:])
        match = _REF.match(raw)
        if not match:
            self.error(f"bad reference '{raw}'", path)
            return None
        name, index = match.group(1), match.group(2)
        target = scope.aliases.get(name)
        if target is None:
            self.failed_reference = True
            if name in scope.failed_names:
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
            refs = [self.resolve(r, item.scope, path) for r, path in zip(item.raw, item.paths, strict=True)]
            item.node.inputs = [r for r in refs if r is not None]
            item.node.failed |= len(item.node.inputs) < len(refs)
        self.within = ""


@dataclass
class Definitions:
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
                total += self.block_size(node.block, (*stack, name)) * _fixed_repeat(node)
            elif isinstance(node, m.SequentialNode):
                total += sum(_fixed_repeat(step) for step in node.sequential)
            else:
                total += _fixed_repeat(node)
        self.sizes[name] = total
        return total


def _fixed_repeat(node) -> int:
    repeat = getattr(node, "repeat", 1)
    return repeat if isinstance(repeat, int) else 1
