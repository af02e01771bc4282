"""Arithmetic in block parameters: `"${4 * filters}"`, parsed by a small grammar, never by Python's eval.

Example:

    >>> from graphspec.expressions import evaluate
    >>> evaluate("4 * filters // 2 + max(1, depth - 3)", {"filters": 16, "depth": 2})
    33
    >>> evaluate("(width + 1) / 2", {"width": 5})
    3.0

Grammar (the usual precedence, left to right; unary minus binds tightest):

    expression := term (("+" | "-") term)*
    term       := factor (("*" | "/" | "//" | "%") factor)*
    factor     := "-" factor | NUMBER | NAME | NAME "(" expression ("," expression)* ")" | "(" expression ")"

Names are block parameters holding numbers; the only functions are `min` and `max`.
Anything else raises `ExpressionError` with a message saying what was expected where.
"""

from __future__ import annotations

import math
import operator as operator_module
import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*/%(),]))")
_FUNCTIONS: dict[str, Callable] = {"min": min, "max": max}
MAX_LENGTH = 500  # characters of one expression; real ones are a few words


class ExpressionError(ValueError):
    """A malformed expression, an unknown name, or arithmetic that has no value (division by zero)."""


def _tokens(text: str) -> list[str | int | float]:
    tokens: list = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip() == "":
                break
            raise ExpressionError(f"unexpected {text[position:].strip()[:10]!r} at character {position + 1}")
        number, name, symbol = match.groups()
        if number is not None:
            tokens.append(float(number) if "." in number else int(number))
        else:
            tokens.append(name or symbol)
        position = match.end()
    return tokens


def evaluate(text: str, names: dict[str, object]) -> int | float:
    """The value of `text` with `names` bound; ints stay ints unless `/` or a float is involved."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    tokens = _tokens(text)
    if not tokens:
        raise ExpressionError("empty expression")
    parser = _Parser(tokens, names)
    value = parser.expression()
    if parser.position != len(tokens):
        raise ExpressionError(f"unexpected {parser.peek()!r} after a complete expression")
    return value


_ARITHMETIC: dict[str, Callable] = {"*": lambda a, b: a * b, "/": lambda a, b: a / b,
                                    "//": lambda a, b: a // b, "%": lambda a, b: a % b}
MAX_MAGNITUDE = 2**64  # past any size, count or seed Keras takes; also keeps every value printable


def _bounded(operation: Callable[..., Any], *operands: int | float) -> int | float:
    """One arithmetic step, refused when it leaves the finite numbers Keras could take (`1e308 * 10`, a
    `10**400 / 3` Python cannot turn into a float)."""
    try:
        value = operation(*operands)
    except (OverflowError, ValueError):
        value = float("inf")
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
        raise ExpressionError(f"the result is out of range (beyond ±{MAX_MAGNITUDE:.3g})")
    return value


class _Parser:
    def __init__(self, tokens: list, names: dict[str, object]):
        self.tokens = tokens
        self.names = names
        self.position = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self):
        token = self.peek()
        self.position += 1
        return token

    def expect(self, symbol: str) -> None:
        token = self.take()
        if token != symbol:
            raise ExpressionError(f"expected {symbol!r}, found {'the end' if token is None else repr(token)}")

    def expression(self):
        value = self.term()
        while self.peek() in ("+", "-"):
            operator, right = self.take(), self.term()
            value = _bounded(operator_module.add if operator == "+" else operator_module.sub, value, right)
        return value

    def term(self):
        value = self.factor()
        while self.peek() in ("*", "/", "//", "%"):
            operator, right = self.take(), self.factor()
            if operator != "*" and right == 0:
                raise ExpressionError("division by zero")
            value = _bounded(_ARITHMETIC[operator], value, right)
        return value

    def arguments(self) -> list:
        """A function's arguments, from its opening parenthesis to its closing one."""
        self.take()
        arguments = [self.expression()]
        while self.peek() == ",":
            self.take()
            arguments.append(self.expression())
        self.expect(")")
        return arguments

    def parameter(self, name: str):
        if name not in self.names:
            raise ExpressionError(f"unknown parameter {name!r}")
        value = self.names[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ExpressionError(f"parameter {name!r} is {value!r}, not a number")
        return _bounded(lambda: value)

    def factor(self):
        self.depth += 1
        if self.depth > 50:
            raise ExpressionError("expression nested more than 50 levels deep")
        try:
            token = self.take()
            if token == "-":
                return -self.factor()
            if token == "(":
                value = self.expression()
                self.expect(")")
                return value
            if isinstance(token, (int, float)):
                return _bounded(lambda: token)
            if isinstance(token, str) and token in _FUNCTIONS and self.peek() == "(":
                return _FUNCTIONS[token](self.arguments())
            if isinstance(token, str) and (token[0].isalpha() or token[0] == "_"):
                return self.parameter(token)
            raise ExpressionError(f"expected a number, a parameter or '(', found "
                                  f"{'the end' if token is None else repr(token)}")
        finally:
            self.depth -= 1
