"""The `search:` section: what `graphspec tune` samples (spec addresses → distributions) and what it rejects
statically.

Example:

    >>> from graphspec.schema.search import SearchSpec
    >>> search = SearchSpec.model_validate({"space": {
    ...     "nodes.hidden.args.units": {"int": [4, 256], "log": True},
    ...     "compile.optimizer.learning_rate": {"float": [1e-4, 0.1], "log": True},
    ...     "nodes.hidden.repeat": {"choice": [1, 2, 3]}}, "constraints": {"max_params": 2000}})
    >>> search.space["nodes.hidden.repeat"].kind, search.space["nodes.hidden.args.units"].bounds
    ('choice', (4, 256))

An address is a dotted path into the spec, as `--set` takes it. Whether it exists, and whether the values of
its range are valid there, is checked against the whole static pipeline by `graphspec.tuning.space`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, StringConstraints, model_validator

from graphspec.schema.models import Strict, schema_error
from graphspec.schema.values import is_int, is_number

ADDRESS_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$"
Address = Annotated[str, StringConstraints(pattern=ADDRESS_PATTERN, max_length=500)]


class Distribution(Strict):
    """One dimension: `{int: [low, high]}` (with `step`, `log`), `{float: [low, high]}` (with `step` or `log`),
    or `{choice: [any YAML values]}`."""

    int_range: Annotated[list[int], Field(min_length=2, max_length=2)] | None = Field(
        None, alias="int", description="Whole numbers from low to high, both included.")
    float_range: Annotated[list[float], Field(min_length=2, max_length=2)] | None = Field(
        None, alias="float", description="Numbers from low to high.")
    choice: Annotated[list[Any], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="One of these values (numbers, strings, mappings, lists).")
    step: Union[Annotated[int, Field(ge=1)], Annotated[float, Field(gt=0)]] | None = Field(
        None, description="Spacing of an int or float range (not with `log`).")
    log: bool = Field(False, description="Sample on a log scale (ranges above 0).")

    @property
    def kind(self) -> Literal["int", "float", "choice"]:
        return "int" if self.int_range is not None else "float" if self.float_range is not None else "choice"

    @property
    def bounds(self) -> tuple[Any, Any]:
        low, high = self.int_range or self.float_range or (None, None)
        return low, high

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k, v in (("int", self.int_range), ("float", self.float_range), ("choice", self.choice))
                 if v is not None]
        if len(given) != 1:
            raise schema_error(f"give exactly one of int, float or choice, got {', '.join(given) or 'none'}")
        if self.kind == "choice":
            if self.step is not None or self.log:
                raise schema_error("`step` and `log` go with an int or float range, not a choice")
            return self
        self._check_range()
        return self

    def _check_range(self) -> None:
        low, high = self.bounds
        if self.kind == "float" and not (is_number(low) and is_number(high)):
            raise schema_error(f"a float range needs finite numbers, got {low}..{high}")
        if low > high:
            raise schema_error(f"empty range: {low} is above {high}", None, (self.kind,))
        if self.log and (low <= 0 or self.step is not None):
            raise schema_error("`log` needs a range above 0 and no `step`", None, ("log",))
        if self.kind == "int" and self.step is not None and not is_int(self.step):
            raise schema_error(f"an int range takes a whole step, got {self.step}", None, ("step",))

    def values_to_check(self) -> list[Any]:
        """The values whose validity stands for the whole dimension: a range's ends, every choice."""
        if self.kind == "choice":
            assert self.choice is not None
            return list(self.choice)
        low, high = self.bounds
        if self.kind == "int" and self.step:
            high = low + (high - low) // self.step * self.step
        return [low, high] if low != high else [low]


class Constraints(Strict):
    """Limits a sampled spec must meet before it trains, judged statically (no TensorFlow)."""

    max_params: Annotated[int, Field(ge=1)] | None = Field(None, description="Most parameters a model may have.")
    max_size_mb: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="Largest size of the weights in MB (parameters × bytes of their dtype).")


class SearchSpec(Strict):
    """`graphspec tune`'s search: a study over spec addresses, trials judged by `train.monitor`."""

    space: Annotated[dict[Address, Distribution], Field(min_length=1, max_length=100)] = Field(
        description="Spec addresses (dotted, as `--set` takes them) → distributions.")
    constraints: Constraints | None = Field(None, description="Limits checked statically; a trial outside them is "
                                                              "pruned in milliseconds, with the reason.")
    pruner: Literal["none", "median", "hyperband"] = Field(
        "median", description="Optuna's pruner, fed the monitored figure after each epoch.")
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's sampler.")
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = Field(
        None, description="The sampler's seed: the same study samples the same values.")

    @model_validator(mode="after")
    def _log_ints_from_one(self):
        for address, dimension in self.space.items():
            if dimension.kind == "int" and dimension.log and dimension.bounds[0] < 1:
                raise schema_error("a log int range starts at 1 or above", None, (address,))
        return self
