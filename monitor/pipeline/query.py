"""The rule query language (DESIGN.md §3): tokenizer, recursive-descent parser, syntax tree. Pure.

    query   := or
    or      := and ("OR" and)*
    and     := near ("AND" near)*
    near    := unary ("NEAR/n" unary)*
    unary   := "NOT" unary | "title:" unary | primary
    primary := WORD | "PHRASE" | @id | "(" or ")"

Operators are upper case. Two operands side by side with no operator between them are an error, never an
implicit AND: an operator who writes `Karabakh shelling` meant a phrase or an AND, and must say which.
Hand-written because the grammar is six lines and errors must name the column in the operator's query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from monitor.errors import QuerySyntaxError
from monitor.pipeline.fold import fold_words


@dataclass(frozen=True)
class Term:
    """A literal word or phrase from the query; `*` may end any of its words."""

    text: str
    column: int


@dataclass(frozen=True)
class Ref:
    """`@id`: any name of an entity or any word of a term group."""

    id: str
    column: int


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


@dataclass(frozen=True)
class Near:
    """Some hit of `left` and some hit of `right` at most `distance` words apart, in either order."""

    left: Node
    right: Node
    distance: int


@dataclass(frozen=True)
class Title:
    """`part` must be satisfied by hits in the title alone."""

    part: Node


Node = Term | Ref | And | Or | Not | Near | Title

_REF = re.compile(r"[a-z0-9_]+")
_NEAR = re.compile(r"NEAR/([0-9]+)")
_BARE_END = re.compile(r'[\s()"]')


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD PHRASE REF LPAREN RPAREN AND OR NOT NEAR TITLE END
    value: str
    column: int


def _tokens(query: str) -> Iterator[_Token]:
    i = 0
    while i < len(query):
        char = query[i]
        column = i + 1
        if char.isspace():
            i += 1
        elif char in "()":
            yield _Token("LPAREN" if char == "(" else "RPAREN", char, column)
            i += 1
        elif char == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise QuerySyntaxError('unclosed quote: add the closing "', column)
            yield _Token("PHRASE", query[i + 1 : close], column)
            i = close + 1
        elif query.startswith("title:", i):
            yield _Token("TITLE", "title:", column)
            i += len("title:")
        else:
            end = _BARE_END.search(query, i)
            stop = end.start() if end else len(query)
            word = query[i:stop]
            i = stop
            if word in ("AND", "OR", "NOT"):
                yield _Token(word, word, column)
            elif word == "NEAR" or word.startswith("NEAR/"):
                near = _NEAR.fullmatch(word)
                if near is None:
                    raise QuerySyntaxError(f"{word!r}: write NEAR/n, n being the most words apart", column)
                yield _Token("NEAR", near.group(1), column)
            elif word.startswith("@"):
                if not _REF.fullmatch(word[1:]):
                    raise QuerySyntaxError(f"{word!r}: an @reference is @ and an id of [a-z0-9_]", column)
                yield _Token("REF", word[1:], column)
            else:
                yield _Token("WORD", word, column)
    yield _Token("END", "", len(query) + 1)


def check_term(text: str, column: int) -> None:
    """Raise unless `text` is a usable word or phrase: some letter or digit, `*` only ending a word."""
    for word in text.split():
        body = word[:-1] if word.endswith("*") else word
        if "*" in body:
            raise QuerySyntaxError(f"{text!r}: '*' may only end a word", column)
        if word.endswith("*") and not fold_words(body).strip():
            raise QuerySyntaxError(f"{text!r}: '*' must follow letters or digits", column)
    if not fold_words(text.replace("*", " ")).strip():
        raise QuerySyntaxError(f"{text!r} has no letters or digits to match", column)


_OPERAND_START = ("WORD", "PHRASE", "REF", "LPAREN", "NOT", "TITLE")


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = list(_tokens(query))
        self.at = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> Node:
        if self.token.kind == "END":
            raise QuerySyntaxError("the query is empty", 1)
        node = self.or_()
        if self.token.kind == "RPAREN":
            raise QuerySyntaxError("')' has no matching '('", self.token.column)
        if self.token.kind != "END":  # pragma: no cover - every other token is consumed or reported
            raise QuerySyntaxError(f"unexpected {self.token.value!r}", self.token.column)
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.token.kind == "OR":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Node:
        parts = [self.near()]
        while self.token.kind == "AND":
            self.take()
            parts.append(self.near())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def near(self) -> Node:
        node = self.unary()
        while self.token.kind == "NEAR":
            operator = self.take()
            right = self.unary()
            for side in (node, right):
                if _negated(side):
                    raise QuerySyntaxError("NEAR needs terms on both sides, not NOT", operator.column)
            node = Near(node, right, int(operator.value))
        if self.token.kind in _OPERAND_START:
            raise QuerySyntaxError(
                f"{self.token.value or self.token.kind!r} follows another term with no operator:"
                " put AND, OR or NEAR/n between them, or quote a phrase",
                self.token.column,
            )
        return node

    def unary(self) -> Node:
        token = self.token
        if token.kind == "NOT":
            self.take()
            return Not(self.unary())
        if token.kind == "TITLE":
            self.take()
            return Title(self.unary())
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("WORD", "PHRASE"):
            check_term(token.value, token.column)
            return Term(token.value, token.column)
        if token.kind == "REF":
            return Ref(token.value, token.column)
        if token.kind == "LPAREN":
            node = self.or_()
            if self.token.kind != "RPAREN":
                raise QuerySyntaxError(f"'(' at column {token.column} is never closed", self.token.column)
            self.take()
            return node
        if token.kind == "END":
            raise QuerySyntaxError("the query ends where a term was expected", token.column)
        raise QuerySyntaxError(f"{token.value!r} where a term was expected", token.column)


def _negated(node: Node) -> bool:
    """True when `node` can be satisfied without any hit, which NEAR cannot measure."""
    if isinstance(node, Not):
        return True
    if isinstance(node, Title):
        return _negated(node.part)
    if isinstance(node, Or):
        return any(_negated(p) for p in node.parts)
    if isinstance(node, And):
        return all(_negated(p) for p in node.parts)
    return False


def parse(query: str) -> Node:
    """The syntax tree of `query`, or QuerySyntaxError naming the column."""
    return _Parser(query).parse()


def refs(node: Node) -> Iterator[Ref]:
    """Every @reference in the tree, in query order."""
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, And | Or):
        for part in node.parts:
            yield from refs(part)
    elif isinstance(node, Not | Title):
        yield from refs(node.part)
    elif isinstance(node, Near):
        yield from refs(node.left)
        yield from refs(node.right)
