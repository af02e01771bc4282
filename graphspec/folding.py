"""Find repeated structures in an imported spec and write them as parameterized blocks.

Example:

    >>> from graphspec.folding import fold_blocks
    >>> nodes = {f"b{i}_{part}": node for i in (1, 2) for part, node in (
    ...     ("dense", {"layer": "Dense", "args": {"units": 4 * i}, "from": "x" if i == 1 else "b1_out"}),
    ...     ("out", {"layer": "ReLU", "from": f"b{i}_dense"}))}
    >>> blocks, folded = fold_blocks(nodes, ["b2_out"])
    >>> blocks["b"]["params"], folded["b2"]
    (['dense_units'], {'block': 'b', 'with': {'dense_units': 8}, 'from': 'b1'})

Keras names the layers of a repeated block after the block (`conv2_block1_1_conv`,
`conv2_block1_out`): nodes that share a name prefix, take one tensor in and give one out,
and have the same structure as another such group (layer classes, wiring, argument names)
become instances of one block. Argument values that differ between instances become block
parameters. The instances keep every layer name (`output_keeps_name`), so the folded spec
builds exactly the model the unfolded one does.
"""

from __future__ import annotations

import functools
import json
import re

_INDEXED = re.compile(r"^(.*?)(\[[0-9]+\])?$")
FOLDABLE = ("layer", "merge", "op")


def _refs(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return list(value)
    return [ref for refs in value.values() for ref in _refs(refs)]


def _map_refs(value, mapping):
    if isinstance(value, str):
        return mapping(value)
    if isinstance(value, list):
        return [mapping(v) for v in value]
    return {k: _map_refs(v, mapping) for k, v in value.items()}


def split_ref(ref: str) -> tuple[str, str]:
    """`conv[1]` → ("conv", "[1]"); `conv` → ("conv", "")."""
    match = _INDEXED.match(ref)
    assert match is not None, ref  # the pattern matches any string
    return match.group(1), match.group(2) or ""


def _users(nodes: dict[str, dict]) -> dict[str, set[str]]:
    """Node name → the nodes that take one of its tensors."""
    used_by: dict[str, set[str]] = {}
    for name, node in nodes.items():
        for ref in _refs(node.get("from", [])):
            used_by.setdefault(split_ref(ref)[0], set()).add(name)
    return used_by


def _group(nodes: dict[str, dict], prefix: str, used_by: dict[str, set[str]], outputs: set[str]):
    """The nodes named `<prefix>_…` if they form a one-in, one-out group: (members, input, output)."""
    members = [name for name in nodes if name.startswith(prefix + "_")]
    if len(members) < 2 or not all(_foldable(nodes[m]) for m in members):
        return None
    inside = set(members)
    external = {ref for m in members for ref in _refs(nodes[m]["from"]) if split_ref(ref)[0] not in inside}
    leaving = [m for m in members if m in outputs or used_by.get(m, set()) - inside]
    if len(external) != 1 or len(leaving) != 1:
        return None
    return members, external.pop(), leaving[0]


def _foldable(node: dict) -> bool:
    return any(k in node for k in FOLDABLE) and "repeat" not in node


def _signature(nodes: dict[str, dict], prefix: str, members: list[str], output: str, full: str) -> str:
    """The structure of a group: node names, classes, wrapping, call options and wiring, not argument values."""
    cut = len(prefix) + 1
    shape = []
    for m in members:
        node = {k: v for k, v in nodes[m].items() if k not in ("args", full)}
        node["from"] = _map_refs(node["from"], lambda r: (r[cut:] if split_ref(r)[0] in members else "$in"))
        shape.append((m[cut:], json.dumps(node, sort_keys=True)))
    return json.dumps([shape, output[cut:]])


def _block_name(prefix: str, taken: set[str]) -> str:
    stem = re.sub(r"_+", "_", re.sub(r"[0-9]+", "", prefix)).strip("_") or "block"
    name, count = stem, 1
    while name in taken:
        count += 1
        name = f"{stem}_{count}"
    return name


def fold_blocks(nodes: dict[str, dict], outputs: list[str], full: str = "__full_args__"
                ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Blocks found in `nodes`, and the nodes with each group replaced by one block instance.

    A node's `full` key, when present, holds every constructor argument with its value: an argument
    one instance leaves at its default and another sets becomes a parameter with both values."""
    output_names = {split_ref(o)[0] for o in outputs}
    chosen, covered = _chosen(_candidates(nodes, output_names, full))
    blocks: dict[str, dict] = {}
    replaced: dict[str, str] = {}  # output node → the instance's name
    instance_at: dict[str, tuple[str, dict]] = {}
    for instances in chosen:
        name = _block_name(instances[0][0], set(blocks))
        varying, values_of = _varying(nodes, instances, full)
        blocks[name] = _block(nodes, instances[0], varying)
        for number, (prefix, members, source, output) in enumerate(instances):
            given = {param: values_of[key][number] for key, param in varying.items()}
            instance = {"block": name, **({"with": given} if given else {}), "from": source}
            instance_at[members[0]] = (prefix, instance)
            replaced[output] = prefix
    folded: dict[str, dict] = {}
    for name, node in nodes.items():
        if name in instance_at:
            prefix, instance = instance_at[name]
            folded[prefix] = instance
        elif name not in covered:
            folded[name] = node
    for node in folded.values():
        node["from"] = _map_refs(node["from"], functools.partial(_renamed, replaced=replaced))
    return blocks, _repeated(folded, output_names)


def _candidates(nodes: dict[str, dict], output_names: set[str], full: str) -> dict[str, list]:
    """Groups of nodes sharing a name prefix, by their structure (`_signature`)."""
    used_by = _users(nodes)
    candidates: dict[str, list] = {}
    prefixes = {"_".join(name.split("_")[:k]) for name in nodes for k in range(1, len(name.split("_")))}
    for prefix in sorted(prefixes):
        if prefix in nodes:
            continue  # the instance node would take a name already in use
        found = _group(nodes, prefix, used_by, output_names)
        if found is not None:
            members, source, output = found
            candidates.setdefault(_signature(nodes, prefix, members, output, full), []).append(
                (prefix, members, source, output))
    return candidates


def _chosen(candidates: dict[str, list]) -> tuple[list[list], set[str]]:
    """The groups to fold, largest first, none sharing a node with another; and the nodes they cover."""
    chosen: list[list] = []
    covered: set[str] = set()
    for group in sorted((g for g in candidates.values() if len(g) > 1), key=lambda g: -len(g) * len(g[0][1])):
        instances = [i for i in group if not covered & set(i[1])]
        if len(instances) > 1:
            chosen.append(instances)
            covered |= {m for i in instances for m in i[1]}
    return chosen, covered


def _varying(nodes: dict[str, dict], instances: list, full: str) -> tuple[dict, dict]:
    """The arguments whose values differ between instances: (position, argument) → parameter name, and →
    each instance's value (its default where it leaves the argument out)."""
    first_prefix, first_members, _, _ = instances[0]
    cut = len(first_prefix) + 1
    varying: dict[tuple[int, str], str] = {}
    values_of: dict[tuple[int, str], list] = {}
    for position, member in enumerate(first_members):
        written = [nodes[i[1][position]].get("args", {}) for i in instances]
        for arg in dict.fromkeys(a for args in written for a in args):
            if all(arg in args and args[arg] == written[0].get(arg) for args in written):
                continue
            param = f"{member[cut:]}_{arg}"
            varying[(position, arg)] = param if re.match(r"[A-Za-z_]", param) else f"p{param}"
            values_of[(position, arg)] = [
                args[arg] if arg in args else nodes[i[1][position]].get(full, {}).get(arg)
                for args, i in zip(written, instances, strict=True)]
    return varying, values_of


def _block(nodes: dict[str, dict], first: tuple, varying: dict[tuple[int, str], str]) -> dict:
    """The block definition, from the first instance's nodes with the varying arguments as parameters."""
    first_prefix, first_members, _, first_output = first
    cut = len(first_prefix) + 1
    block_nodes = {}
    for position, member in enumerate(first_members):
        node = json.loads(json.dumps(nodes[member]))
        node["from"] = _map_refs(node["from"], functools.partial(_inside_block, cut=cut, members=first_members))
        for (where, arg), param in varying.items():
            if where == position:
                node.setdefault("args", {})[arg] = f"${param}"
        block_nodes[member[cut:]] = node
    return {"params": list(varying.values()), "inputs": ["x"], "nodes": block_nodes,
            "output": first_output[cut:], "output_keeps_name": True}


def _renamed(ref: str, replaced: dict[str, str]) -> str:
    base, index = split_ref(ref)
    return replaced.get(base, base) + index


def _repeated(nodes: dict[str, dict], outputs: set[str]) -> dict[str, dict]:
    """Chains of instances of one block with the same parameters, each fed only by the one before, as one
    node with `repeat:`; `names:` keeps each instance's (Keras's) name."""
    used_by = _users(nodes)
    result: dict[str, dict] = {}
    for name, node in nodes.items():
        source = node["from"]
        previous = result.get(source) if isinstance(source, str) else None
        if ("block" in node and previous is not None and previous.get("block") == node["block"]
                and previous.get("with") == node.get("with") and used_by.get(source) == {name}
                and source not in outputs):
            names = previous.get("names", [source])
            del result[source]
            node = {"block": node["block"], **({"with": node["with"]} if "with" in node else {}),
                    "repeat": len(names) + 1, "names": [*names, name], "from": previous["from"]}
        result[name] = node
    return result


def _inside_block(ref: str, cut: int, members: list[str]) -> str:
    """A member's reference as the block writes it: another member by its name inside the block, else the
    block's input `x`."""
    return ref[cut:] if split_ref(ref)[0] in members else "x"
