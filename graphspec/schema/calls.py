"""How a node calls its layer: tensors by call-argument name (`from:`) and options (`call:`).

Example:

    >>> from graphspec.schema.calls import call_problems
    >>> from graphspec.schema.catalog import catalog
    >>> attention = catalog().call("MultiHeadAttention")
    >>> call_problems(attention, ["query", "value"], {"use_causal_mask": True})
    []
    >>> [p.message for p in call_problems(attention, None, {})]
    ["MultiHeadAttention needs the call argument 'value': write `from: {query: ..., value: ...}`"]
    >>> [p.hint for p in call_problems(attention, ["quey", "value"], {})]
    ["did you mean 'query'?"]

A positional `from:` (a name or a list) feeds the first argument of the layer's
`call()`; a mapping names the arguments, as `layer(x, initial_state=[h, c])` does.
The names are checked against the signature recorded in the catalog, so a typo
fails at validate, without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphspec.errors import did_you_mean
from graphspec.schema.catalog import CallSignature
from graphspec.schema.values import a_bool, by_default


@dataclass(frozen=True)
class CallProblem:
    message: str
    at: tuple  # below the node: ("from", "quey") or ("call", "training")
    hint: str | None = None


def _example(signature: CallSignature, names: list[str]) -> str:
    return "`from: {" + ", ".join(f"{n}: ..." for n in names) + "}`"


def call_problems(signature: CallSignature, tensors: list[str] | None, options: dict[str, Any],
                  owner: str | None = None) -> list[CallProblem]:
    """What is wrong with a call: `tensors` are the argument names a `from:` mapping gives
    (None for a positional `from:`, which feeds the first argument), `options` the `call:` mapping."""
    owner = owner or signature.name
    given = [signature.first] if tensors is None and signature.first else list(tensors or [])
    found = [_wired_problem(signature, name, owner) for name in tensors or []]
    found += [_option_problem(signature, name, options[name], given, owner) for name in options]
    problems = [problem for problem in found if problem is not None]
    missing = [name for name in signature.required if name not in given]
    if missing and not problems:  # after a misspelt name, "missing" would only repeat it
        problems.append(_missing(signature, missing, owner))
    return problems


def _missing(signature: CallSignature, missing: list[str], owner: str) -> CallProblem:
    what = "argument" + ("s" if len(missing) > 1 else "")
    return CallProblem(f"{owner} needs the call {what} {', '.join(repr(m) for m in missing)}: "
                       f"write {_example(signature, list(signature.required))}", ("from",))


def _unknown(signature: CallSignature, name: str, owner: str, where: str) -> CallProblem:
    hint = did_you_mean(name, signature.args) or f"{owner} takes: {', '.join(signature.order)}"
    return CallProblem(f"unknown call argument '{name}' for {owner}", (where, name), hint)


def _wired_problem(signature: CallSignature, name: str, owner: str) -> CallProblem | None:
    """What is wrong with a call argument named in a `from:` mapping."""
    if name not in signature.args:
        return None if signature.accepts_kwargs else _unknown(signature, name, owner, "from")
    if not signature.takes_tensor(name):
        return CallProblem(f"'{name}' of {owner} is an option, not a tensor: give it under `call:`", ("from", name))
    return None


def _option_problem(signature: CallSignature, name: str, value: Any, given: list[str],
                    owner: str) -> CallProblem | None:
    """What is wrong with a `call:` option."""
    if name not in signature.args:
        return None if signature.accepts_kwargs else _unknown(signature, name, owner, "call")
    if name in given:
        return CallProblem(f"'{name}' is given twice, in `from:` and in `call:`", ("call", name))
    if signature.takes_tensor(name):
        return CallProblem(f"'{name}' of {owner} takes a tensor: wire it under `from:`", ("call", name),
                           f"e.g. {_example(signature, [n for n in (signature.first, name) if n])}")
    check = a_bool if name == "training" else by_default(signature.args[name].get("default"))
    problem = check(value) if check is not None else None
    return CallProblem(f"call argument '{name}' of {owner}: {problem}", ("call", name)) if problem else None


def model_call_problems(model: str, input_names: list[str], tensors: list[str] | None,
                        options: dict[str, Any]) -> list[CallProblem]:
    """A sub-model called by name: `from:` maps its input names; the only option is `training`."""
    problems: list[CallProblem] = []
    for name in tensors or []:
        if name not in input_names:
            hint = did_you_mean(name, input_names) or f"its inputs: {', '.join(input_names)}"
            problems.append(CallProblem(f"sub-model '{model}' has no input '{name}'", ("from", name), hint))
    missing = [name for name in input_names if tensors is not None and name not in tensors]
    if missing and not problems:
        problems.append(CallProblem(f"sub-model '{model}' needs its input(s) {', '.join(map(repr, missing))}",
                                    ("from",)))
    for name, value in options.items():
        if name != "training":
            problems.append(CallProblem(f"a sub-model call takes only the option 'training', not '{name}'",
                                        ("call", name)))
        elif a_bool(value):
            problems.append(CallProblem(f"call argument 'training': {a_bool(value)}", ("call", name)))
    return problems
