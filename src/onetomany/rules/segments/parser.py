"""A recursive-descent parser from segment text to the tree in :mod:`.ast`.

One function per grammar rule (the grammar is in the package docstring). Every error names
the position and what was expected there, because segment texts live in TOML files and in
host code where a bare "syntax error" would send people hunting.
"""

from __future__ import annotations

from typing import NoReturn

from onetomany.errors import ConfigError
from onetomany.rules.segments.ast import (
    COLUMNS,
    And,
    Arith,
    Between,
    By,
    Compare,
    Count,
    CurrentTier,
    DaysInStage,
    DaysSince,
    Exists,
    Expr,
    Field,
    Health,
    HealthTrend,
    In,
    Last,
    Literal,
    Neg,
    Not,
    Or,
    SegmentRef,
    StageOf,
    Subject,
    children,
    walk,
)
from onetomany.rules.segments.tokens import Kind, Token, syntax_error, tokenize

FUNCTIONS = (
    "days_since",
    "count",
    "last",
    "exists",
    "missing",
    "segment",
    "tier",
    "stage",
    "days_in_stage",
    "health",
    "health_trend",
)
#: How many parentheses, ``not`` and unary minus may nest, and how deep the whole tree may be:
#: every evaluator walks the tree recursively, so both are kept far from Python's stack limit.
MAX_NESTING = 50
MAX_DEPTH = 100
#: How many operands one run of ``and`` or ``or`` may join; SQLite refuses a condition much
#: past this (its expression depth limit is 1,000), and a list reads better with ``in``.
MAX_TERMS = 250

#: Words that cannot start an operand; a field or function never has these names.
KEYWORDS = ("and", "or", "not", "in", "between", "true", "false", "null")


def parse(text: str, *, file: str | None = None, key: str | None = None) -> Expr:
    """Parse ``text``; raises :class:`ConfigError` (with ``file``/``key`` when given) if bad."""
    return _Parser(text, file=file, key=key).parse()


class _Parser:
    def __init__(self, text: str, *, file: str | None, key: str | None) -> None:
        self.text = text
        self.file = file
        self.key = key
        self.tokens = tokenize(text, file=file, key=key)
        self.i = 0
        self.nesting = 0
        # Where each last() call starts, to point at one used outside days_since()/exists().
        self.last_calls: list[tuple[Last, Token]] = []

    # -- helpers --------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Kind.END:
            self.i += 1
        return token

    def at(self, text: str) -> bool:
        return self.tok.kind in (Kind.OP, Kind.NAME) and self.tok.text == text

    def at_end(self) -> bool:
        # A method, not an inline test: mypy would keep the narrowing from before or_expr().
        return self.tok.kind is Kind.END

    def at_word(self, word: str) -> bool:
        return self.tok.kind is Kind.NAME and self.tok.text == word

    def fail(self, expected: str, token: Token | None = None) -> NoReturn:
        token = token or self.tok
        found = "the end of the expression" if token.kind is Kind.END else repr(token.text)
        raise syntax_error(
            self.text,
            token.pos,
            f"expected {expected}, found {found}",
            file=self.file,
            key=self.key,
        )

    def error(self, token: Token, message: str) -> ConfigError:
        return syntax_error(self.text, token.pos, message, file=self.file, key=self.key)

    def expect(self, text: str, expected: str | None = None) -> Token:
        if not self.at(text):
            self.fail(expected or repr(text))
        return self.advance()

    def expect_string(self, what: str) -> str:
        if self.tok.kind is not Kind.STRING:
            self.fail(what)
        value = self.advance().value
        assert isinstance(value, str)
        return value

    # -- grammar --------------------------------------------------------------------------

    def parse(self) -> Expr:
        if self.tok.kind is Kind.END:
            self.fail("an expression")
        node = self.or_expr()
        if not self.at_end():
            self.fail("'and', 'or', an operator or the end of the expression")
        if (depth := _depth(node)) > MAX_DEPTH:
            raise self.error(
                self.tokens[0],
                f"the expression nests {depth} levels deep; at most {MAX_DEPTH} are allowed "
                "(write long lists with 'in [...]', or split it into named segments)",
            )
        self.check_last_calls(node)
        return node

    def too_many(self, terms: list[Expr], token: Token) -> None:
        if len(terms) >= MAX_TERMS:
            raise self.error(
                token,
                f"more than {MAX_TERMS} terms joined by {token.text!r}; write a list of values "
                "as 'field in [...]', or split the expression into named segments",
            )

    def nested(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(
                token,
                f"more than {MAX_NESTING} parentheses, 'not' or '-' nest here; "
                "split the expression into named segments",
            )

    def check_last_calls(self, root: Expr) -> None:
        # last() yields an instant, which only days_since(), exists() and missing() take:
        # refusing it elsewhere keeps instants out of comparisons and arithmetic.
        allowed = {
            id(node.operand)
            for node in walk(root)
            if isinstance(node, DaysSince | Exists) and isinstance(node.operand, Last)
        }
        for node, token in self.last_calls:
            if id(node) not in allowed:
                raise self.error(
                    token,
                    "last() gives the time of an event; use it inside days_since(), exists() "
                    'or missing(), e.g. days_since(last("login")) > 30',
                )

    def or_expr(self) -> Expr:
        terms = [self.and_expr()]
        while self.at_word("or"):
            self.too_many(terms, self.advance())
            terms.append(self.and_expr())
        return _balanced(Or, terms)

    def and_expr(self) -> Expr:
        terms = [self.not_expr()]
        while self.at_word("and"):
            self.too_many(terms, self.advance())
            terms.append(self.not_expr())
        return _balanced(And, terms)

    def not_expr(self) -> Expr:
        if self.at_word("not"):
            self.nested(self.advance())
            node = Not(self.not_expr())
            self.nesting -= 1
            return node
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.sum()
        if self.tok.kind is Kind.OP and self.tok.text in ("==", "!=", "<", "<=", ">", ">="):
            op = self.advance().text
            return Compare(op, left, self.sum())
        if self.tok.kind is Kind.OP and self.tok.text == "=":
            self.fail("'==' (comparison) rather than '='")
        negated = False
        if self.at_word("not"):
            self.advance()
            negated = True
            if not (self.at_word("in") or self.at_word("between")):
                self.fail("'in' or 'between' after 'not'")
        if self.at_word("in"):
            self.advance()
            return In(left, self.literal_list(), negated)
        if self.at_word("between"):
            self.advance()
            low = self.sum()
            self.expect("and", "'and' (between LOW and HIGH)")
            return Between(left, low, self.sum(), negated)
        return left

    def sum(self) -> Expr:
        node = self.term()
        while self.tok.kind is Kind.OP and self.tok.text in ("+", "-"):
            op = self.advance().text
            node = Arith(op, node, self.term())
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.tok.kind is Kind.OP and self.tok.text in ("*", "/"):
            op = self.advance().text
            node = Arith(op, node, self.unary())
        return node

    def unary(self) -> Expr:
        if self.at("-"):
            self.advance()
            if self.tok.kind is Kind.NUMBER:
                # Folded so that "-5" is the literal -5, as it is inside a list.
                value = self.advance().value
                assert isinstance(value, int | float)
                return Literal(-value)
            self.nested(self.tokens[self.i - 1])
            node = Neg(self.unary())
            self.nesting -= 1
            return node
        return self.primary()

    def primary(self) -> Expr:
        token = self.tok
        if token.kind in (Kind.NUMBER, Kind.STRING):
            self.advance()
            return Literal(token.value)
        if self.at("("):
            self.nested(self.advance())
            node = self.or_expr()
            self.expect(")", "')' to close the '(' at position " + str(token.pos))
            self.nesting -= 1
            return node
        if self.at("["):
            self.fail("a value (a list is only allowed after 'in')")
        if token.kind is Kind.NAME:
            word = token.text
            if word in ("true", "false", "null"):
                self.advance()
                return Literal({"true": True, "false": False, "null": None}[word])
            if word in ("account", "contact"):
                return self.field()
            if word in FUNCTIONS:
                return self.call()
            if word in KEYWORDS:
                self.fail("a value")
            self.fail(
                "a value: a number, a string, true, false, null, account.<field>, "
                "contact.<field> or one of " + ", ".join(f"{f}()" for f in FUNCTIONS)
            )
        self.fail("a value")

    def literal(self) -> Literal:
        if self.at("-"):
            self.advance()
            if self.tok.kind is not Kind.NUMBER:
                self.fail("a number after '-'")
            value = self.advance().value
            assert isinstance(value, int | float)
            return Literal(-value)
        token = self.tok
        if token.kind in (Kind.NUMBER, Kind.STRING):
            self.advance()
            return Literal(token.value)
        if token.kind is Kind.NAME and token.text in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[token.text])
        self.fail("a literal (number, string, true, false or null) in the list")

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("[", "'[' to start the list after 'in'")
        items: list[Literal] = []
        while not self.at("]"):
            items.append(self.literal())
            if not self.at(","):
                break
            self.advance()
        self.expect("]", "',' or ']' in the list")
        return tuple(items)

    def field(self) -> Field:
        subject_token = self.advance()
        subject: Subject = "account" if subject_token.text == "account" else "contact"
        self.expect(".", f"'.' and a field name after {subject!r}")
        names: list[Token] = []
        while True:
            if self.tok.kind is not Kind.NAME:
                self.fail("a field or trait name")
            names.append(self.advance())
            if not self.at("."):
                break
            self.advance()
        path = tuple(t.text for t in names)
        if path[0] == "traits":
            # account.traits.id reaches a trait that a column name would otherwise hide.
            if len(path) == 1:
                self.fail(f"'.' and a trait name after {subject}.traits")
            return Field(subject, path[1:])
        if path[0] in COLUMNS[subject]:
            if len(path) > 1:
                raise self.error(
                    names[1],
                    f"{subject}.{path[0]} is a column and has no fields; "
                    f"write {subject}.traits.{'.'.join(path)} for a trait of that name",
                )
            return Field(subject, path, column=True)
        return Field(subject, path)

    def call(self) -> Expr:
        name_token = self.advance()
        name = name_token.text
        self.expect("(", f"'(' after {name}")
        if name in ("days_since", "exists", "missing"):
            arg = self.or_expr()
            self.expect(")", f"')' to close {name}(")
            if name == "days_since":
                return DaysSince(arg)
            return Exists(arg, missing=name == "missing")
        if name == "segment":
            segment = self.expect_string('a segment name in quotes, e.g. segment("at_risk")')
            self.expect(")", "')' to close segment(")
            return SegmentRef(segment)
        if name == "tier":
            self.expect(")", "')' after tier(: tier() takes no arguments")
            return CurrentTier()
        if name == "health":
            self.expect(")", "')' after health(: health() takes no arguments")
            return Health()
        if name == "health_trend":
            token = self.tok
            if token.kind is not Kind.NUMBER or not isinstance(token.value, int) or token.value < 1:
                self.fail("a whole number of days >= 1 in health_trend(), e.g. health_trend(30)")
            self.advance()
            assert isinstance(token.value, int)
            self.expect(")", "')' to close health_trend(")
            return HealthTrend(token.value)
        if name in ("stage", "days_in_stage"):
            journey = self.expect_string(f'a journey name in quotes, e.g. {name}("onboarding")')
            self.expect(")", f"')' to close {name}(")
            return StageOf(journey) if name == "stage" else DaysInStage(journey)
        event = self.expect_string(f'an event name in quotes, e.g. {name}("login")')
        days: int | None = None
        by: By = "account"
        allowed = ("days", "by") if name == "count" else ("by",)
        seen: set[str] = set()
        while self.at(","):
            self.advance()
            if self.tok.kind is not Kind.NAME or self.tok.text not in allowed:
                self.fail(" or ".join(f"{a}=" for a in allowed) + f" in {name}()")
            keyword = self.advance()
            if keyword.text in seen:
                raise self.error(keyword, f"{keyword.text}= given twice in {name}()")
            seen.add(keyword.text)
            self.expect("=", f"'=' after {keyword.text}")
            if keyword.text == "days":
                days = self.days()
            else:
                value_token = self.tok
                value = self.expect_string('"account" or "contact" after by=')
                if value not in ("account", "contact"):
                    raise self.error(
                        value_token, f'by= must be "account" or "contact", not {value!r}'
                    )
                by = "account" if value == "account" else "contact"
        self.expect(")", f"',' or ')' to close {name}(")
        if name == "count":
            return Count(event, days, by)
        last = Last(event, by)
        self.last_calls.append((last, name_token))
        return last

    def days(self) -> int:
        token = self.tok
        if token.kind is not Kind.NUMBER or not isinstance(token.value, int):
            self.fail("a whole number of days after days=")
        self.advance()
        assert isinstance(token.value, int)
        return token.value


def _balanced(op: type[And] | type[Or], terms: list[Expr]) -> Expr:
    """``a op b op c ...`` as a balanced tree: the same truth (both operators associate in
    three-valued logic too), and a 1,000-term chain is 10 levels deep rather than 1,000."""
    if len(terms) == 1:
        return terms[0]
    middle = (len(terms) + 1) // 2
    return op(_balanced(op, terms[:middle]), _balanced(op, terms[middle:]))


def _depth(root: Expr) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(node))
    return deepest
