"""order.placed decoded by msgspec into structs derived from its contract, with the contract as the referee.

pydantic-core takes 60-75 us to check an ordinary order.placed (five lines, each with its shipment, address and
method): a fifth of what order_state spends on an order. msgspec decodes the same JSON into typed structs,
checking types, lengths, bounds, literals and unknown fields, in about 11 us. Its patterns are Python `re`
calls (1 us each, 60 fields), so they are checked here instead, at a few calls per order:

- *no control characters*, the rule of every free-text field, on the raw bytes at once: JSON can only carry a
  control character as an escape (or as a raw DEL or C1 byte), so a document without one has none anywhere;
- every other pattern (codes, countries, e-mail addresses) on all of the order's values of that pattern at
  once, joined by a character the pattern cannot match;
- `strip_whitespace` fields: a value with surrounding whitespace is left to the contract.

An object inside a list's items (a line's shipment: address and method, half of an order's bytes) is kept as
raw JSON while the document is decoded, then decoded and checked once per distinct JSON of it: lines that
repeat one shipment, as nearly all do, share one struct (placement writes it once too).

Whatever the fast path does not accept, for any reason, goes to the contract's own validator
(`services.runtime.documents.document_validator`), which either refuses it with the contract's own errors or
accepts it (a lax coercion such as "5" for 5, a name to strip, a time in another zone), and its result is
converted to the same structs. So the fast path may only ever be stricter, never more lenient, and what it
accepts equals what the contract makes of it: tests/unit/test_wire.py holds both to that on generated orders.

The structs are derived from the model (its core schema), so the model stays the one contract; a contract
using something the derivation does not know raises `Unsupported` when the consumer subscribes to its topic with
`as_documents`: the service does not start rather than decode it differently from its contract.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the stdlib's own regex parser
from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ValidationError

from schemas.envelope import NO_CONTROL_CHARACTERS, to_utc
from services.runtime.documents import _convert, document_validator

Document = Any  # a decoded event held as the structs derived from its contract (fields as attributes)


class Unsupported(TypeError):
    """The contract uses something the structs cannot check the way the contract does."""


class Wire(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Base of the derived structs. Fields are attributes; `doc["name"]` works too, for the contracts' document
    rules (`validate_document`) that are written for dicts."""

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


def _left_to_the_contract(raw: bytes) -> bool:
    """Whether `raw` may hold what only the contract's validator judges exactly: a control character (an escape of
    one: \\b \\f \\n \\r \\t, \\u0000-\\u001f, \\u007f-\\u009f; a raw DEL; a C1 character in UTF-8), a \\ud800-\\udfff
    escape (a character beyond the BMP written escaped, or a lone surrogate), or a fraction of a second past
    microseconds (msgspec rounds it, pydantic truncates). A false alarm only costs the slow path. Written with
    `bytes.find`, which skips to each candidate byte at memchr speed: one regular expression over the whole
    document costs 30 us."""
    if b"\x7f" in raw:
        return True
    find = raw.find
    at = find(b"\\")
    while at >= 0:
        escaped = raw[at + 1 : at + 2]
        if escaped == b"u":
            try:
                code = int(raw[at + 2 : at + 6], 16)
            except ValueError:
                return True
            if code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF:
                return True
            at = find(b"\\", at + 6)
        elif escaped in (b"\\", b'"', b"/"):
            at = find(b"\\", at + 2)
        else:
            return True
    at = find(b"\xc2")
    while at >= 0:
        if at + 1 < len(raw) and 0x80 <= raw[at + 1] <= 0x9F:
            return True
        at = find(b"\xc2", at + 1)
    return _FRACTION_PAST_MICROSECONDS(raw) is not None


_FRACTION_PAST_MICROSECONDS = re.compile(rb"\.[0-9]{7}").search  # a literal first: cheaper than a loop over each "."


_SEPARATOR = "\x00"  # joins the values of one pattern; no value holds it (the guard), no pattern may match it


def _can_match_nul(tree: Any) -> bool:
    """Whether a parsed pattern could match a string holding NUL (conservative: unknown constructs say yes)."""
    for op, arg in tree:
        name = str(op)
        if name == "LITERAL":
            if arg == 0:
                return True
        elif name == "NOT_LITERAL":
            if arg != 0:
                return True
        elif name == "IN":
            negated = bool(arg) and str(arg[0][0]) == "NEGATE"
            if _set_holds_nul(arg[1:] if negated else arg) != negated:
                return True
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            if _can_match_nul(arg[2]):
                return True
        elif name == "SUBPATTERN":
            if _can_match_nul(arg[-1]):
                return True
        elif name == "BRANCH":
            if any(_can_match_nul(branch) for branch in arg[1]):
                return True
        elif name != "AT":
            return True
    return False


def _set_holds_nul(items: Any) -> bool:
    for op, arg in items:
        name = str(op)
        if (name == "LITERAL" and arg == 0) or (name == "RANGE" and arg[0] == 0):
            return True
        if name == "CATEGORY" and str(arg).startswith("CATEGORY_NOT_"):
            return True
        if name not in ("LITERAL", "RANGE", "CATEGORY"):
            return True  # unknown: assume it does
    return False


def _joined_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern anchored at both ends as one for all values joined by NUL (fullmatch)."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        raise Unsupported(f"pattern {pattern!r} is not anchored at both ends")
    core = pattern[1:-1]
    if _can_match_nul(sre_parse.parse(core)):
        raise Unsupported(f"pattern {pattern!r} could match across the values it joins")
    return re.compile(f"(?:{core})(?:{_SEPARATOR}(?:{core}))*")


def _is_object(schema: dict[str, Any]) -> bool:
    """A nested model (with or without a document rule)."""
    kind = schema["type"]
    return kind == "typed-dict" or (kind == "function-after" and schema["schema"]["type"] == "typed-dict")


class _Derivation:
    """Builds the structs and the checker code for one contract."""

    def __init__(self, *, shared: bool = True) -> None:
        self.shared = shared  # objects inside list items decoded once per distinct JSON (see `struct`)
        self.patterns: dict[str, int] = {}  # pattern -> its list in the accumulator
        self.matchers: list[Callable[[str], Any]] = []  # by that index: the pattern joined (fullmatch)
        self.functions: dict[str, Callable[..., Any]] = {}  # names the generated code uses
        self.code: list[str] = []
        self.count = 0

    def name(self, prefix: str, value: Any = None) -> str:
        self.count += 1
        name = f"{prefix}{self.count}"
        if value is not None:
            self.functions[name] = value
        return name

    def struct(self, schema: dict[str, Any], title: str, *, in_list: bool = False) -> tuple[type, str]:
        """A struct for a typed-dict schema (optionally wrapped by the model's document rule), and the name of
        its generated checker.

        In a struct that is a list's item (`in_list`), a field holding an object is kept as its raw JSON
        (msgspec.Raw) while the document is decoded, and its checker decodes it into its struct then, once per
        distinct JSON in the document: an order's lines nearly always repeat one shipment (address and method,
        half of the order's bytes), which is then decoded, checked and held once, and its lines share it."""
        rule = None
        if schema["type"] == "function-after":
            rule, schema = schema["function"]["function"], schema["schema"]
        if schema["type"] != "typed-dict" or schema.get("extra_behavior") != "forbid":
            raise Unsupported(f"{title}: only models that refuse unknown fields are supported")
        fields: list[tuple[str, Any, Any]] = []
        lines: list[str] = []
        for field_name, field in schema["fields"].items():
            if field.get("validation_alias") is not None:
                raise Unsupported(f"{title}.{field_name}: aliases are not supported")
            inner = field["schema"]
            default: Any = msgspec.NODEFAULT
            if inner["type"] == "default":
                if "default_factory" in inner:
                    if inner.get("default_factory_takes_data"):
                        raise Unsupported(f"{title}.{field_name}: default factories taking data are not supported")
                    default = msgspec.field(default_factory=inner["default_factory"])
                else:
                    default = inner["default"]
                inner = inner["schema"]
            if in_list and self.shared and default is msgspec.NODEFAULT and _is_object(inner):
                annotation, check = self.shared_object(inner, f"{title}.{field_name}", f"o.{field_name}")
            else:
                annotation, check = self.value(inner, f"{title}.{field_name}", "v", f"o.{field_name}")
            fields.append((field_name, annotation, default))
            if check:
                if annotation is not msgspec.Raw:  # a shared object's lines take it from the struct
                    lines.append(f"    v = o.{field_name}")
                lines += [f"    {line}" for line in check]
        cls = msgspec.defstruct(
            title.replace(".", "_"),
            fields,
            bases=(Wire,),
            module=__name__,
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,
        )
        if rule is not None:
            rule_name = self.name("rule", rule)
            lines += [f"    {rule_name}(o)"]  # raises ValueError: the contract's verdict is asked for
        checker = self.name("check")
        self.code.append(f"def {checker}(o, acc):\n" + ("\n".join(lines) if lines else "    pass"))
        return cls, checker

    def shared_object(self, schema: dict[str, Any], title: str, field: str) -> tuple[Any, list[str]]:
        """An object field of a list item, as raw JSON, and the checker lines that put its struct in its place:
        decoded (msgspec raises for what its types refuse, which leaves the document to the contract) and checked
        once for each distinct JSON of it in the document, the same struct for each occurrence."""
        cls, checker = self.struct(schema, title)
        decode = self.name("decode", msgspec.json.Decoder(cls).decode)
        shared = self.name("shared")
        self.code.append(
            f"def {shared}(raw, acc):\n"
            f"    key = ({self.count}, bytes(raw))\n"
            f"    found = acc[-1].get(key)\n"
            f"    if found is None:\n"
            f"        found = acc[-1][key] = {decode}(raw)\n"
            f"        {checker}(found, acc)\n"
            f"    return found"
        )
        return msgspec.Raw, [f"{field} = {shared}({field}, acc)"]

    def value(self, schema: dict[str, Any], title: str, var: str, field: str | None = None) -> tuple[Any, list[str]]:
        """The msgspec type for a value schema, and the checker lines for a value in `var` (held by the struct's
        attribute `field`, when it is one)."""
        kind = schema["type"]
        if kind == "nullable":
            annotation, check = self.value(schema["schema"], title, var, field)
            guarded = [f"if {var} is not None:"] + [f"    {line}" for line in check] if check else []
            return annotation | None, guarded
        if kind == "str":
            return self.string(schema, title, var)
        if kind in ("int", "float"):
            unknown = set(schema) - {"type", "ge", "le", "gt", "lt", "metadata"}
            if unknown or schema.get("strict") is not None:
                raise Unsupported(f"{title}: {kind} with {sorted(unknown)}")
            bounds = {key: schema[key] for key in ("ge", "le", "gt", "lt") if key in schema}
            base = int if kind == "int" else float
            return (Annotated[base, msgspec.Meta(**bounds)] if bounds else base), []
        if kind == "bool":
            return bool, []
        if kind == "uuid" and set(schema) <= {"type", "metadata"}:
            return uuid.UUID, []
        if kind == "date" and set(schema) <= {"type", "metadata"}:
            return date, []
        if kind == "datetime" and schema.get("microseconds_precision", "truncate") == "truncate":
            if set(schema) - {"type", "microseconds_precision", "metadata"}:
                raise Unsupported(f"{title}: datetime with {sorted(schema)}")
            return datetime, []
        if kind == "literal":
            return Literal[tuple(schema["expected"])], []  # type: ignore[misc]
        if kind == "function-after" and schema["schema"]["type"] == "datetime":
            if schema["function"].get("function") is not to_utc:
                raise Unsupported(f"{title}: a datetime validator other than the envelope's UTC rule")
            inner = schema["schema"]
            if inner.get("microseconds_precision", "truncate") != "truncate" or set(inner) - {
                "type",
                "microseconds_precision",
            }:
                raise Unsupported(f"{title}: datetime with {sorted(inner)}")
            # The rule refuses a time without a zone and turns the others into UTC, as done here for a field; a
            # time in a list is left to the contract unless already in UTC.
            if field is None:
                return datetime, [f"if {var}.tzinfo is not UTC: raise ValueError"]
            return datetime, [
                f"if {var}.tzinfo is not UTC:",
                f"    if {var}.tzinfo is None: raise ValueError",
                f"    {field} = {var}.astimezone(UTC)",
            ]
        if kind == "list":
            if set(schema) - {"type", "items_schema", "min_length", "max_length"}:
                raise Unsupported(f"{title}: list with {sorted(schema)}")
            items = schema["items_schema"]
            if _is_object(items):
                item, checker = self.struct(items, title + ".item", in_list=True)
                check = [f"{checker}(x, acc)"]
            else:
                item, check = self.value(items, title + ".item", "x")
            lengths = {key: schema[key] for key in ("min_length", "max_length") if key in schema}
            annotation = Annotated[list[item], msgspec.Meta(**lengths)] if lengths else list[item]  # type: ignore[valid-type]
            if not check:
                return annotation, []
            if var == "x":
                raise Unsupported(f"{title}: lists of lists are not supported")
            return annotation, [f"for x in {var}:"] + [f"    {line}" for line in check]
        if kind in ("typed-dict", "function-after"):
            cls, checker = self.struct(schema, title)
            return cls, [f"{checker}({var}, acc)"]
        raise Unsupported(f"{title}: {kind} is not supported")

    def string(self, schema: dict[str, Any], title: str, var: str) -> tuple[Any, list[str]]:
        unknown = set(schema) - {"type", "min_length", "max_length", "pattern", "strip_whitespace", "metadata"}
        if unknown:
            raise Unsupported(f"{title}: str with {sorted(unknown)}")
        lengths = {key: schema[key] for key in ("min_length", "max_length") if key in schema}
        check: list[str] = []
        if schema.get("strip_whitespace"):
            check.append(f"if {var}.strip() != {var}: raise ValueError")  # str.strip's whitespace holds Rust's
        pattern = schema.get("pattern")
        if pattern is not None and pattern != NO_CONTROL_CHARACTERS:  # that one is the guard's
            if pattern not in self.patterns:
                self.patterns[pattern] = len(self.matchers)
                self.matchers.append(_joined_pattern(pattern).fullmatch)  # refuses a pattern that cannot be joined
            check.append(f"acc[{self.patterns[pattern]}].append({var})")
        return (Annotated[str, msgspec.Meta(**lengths)] if lengths else str), check


class DocumentDecoder:
    """Decodes one contract's JSON into its structs: fast when the document is plainly valid, by the contract's
    own validator otherwise (see the module's docstring)."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self._validator = document_validator(model)
        schema = _convert(model.__pydantic_core_schema__)
        derivation = _Derivation()
        self._wire, checker = derivation.struct(schema, model.__name__)
        # What the contract's validator accepted becomes structs with every object in place (no raw JSON).
        self.struct, _ = _Derivation(shared=False).struct(schema, model.__name__)
        namespace: dict[str, Any] = {"UTC": UTC, **derivation.functions}
        exec("\n\n".join(derivation.code), namespace)
        self._check: Callable[[Any, list[Any]], None] = namespace[checker]
        self._matchers = derivation.matchers
        self._decoder = msgspec.json.Decoder(self._wire)

    def fast(self, raw: bytes | str) -> Any | None:
        """The document when the fast path accepts `raw`, else None (ask `decode_json`)."""
        if isinstance(raw, str):
            raw = raw.encode()
        if _left_to_the_contract(raw):
            return None
        try:
            document = self._decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        # A list of values per joined pattern, then the objects decoded so far (see _Derivation.shared_object).
        accumulated: list[Any] = [[] for _ in self._matchers]
        accumulated.append({})
        try:
            self._check(document, accumulated)
        except (ValueError, AssertionError):  # msgspec's errors (a shared object's types) are ValueErrors
            return None
        for matches, values in zip(self._matchers, accumulated, strict=False):  # all but the objects
            if values and matches(_SEPARATOR.join(values)) is None:
                return None
        return document

    def decode_json(self, raw: bytes | str) -> Any:
        """The document for `raw`; raises pydantic's ValidationError, with the contract's own errors, when the
        contract refuses it."""
        document = self.fast(raw)
        if document is None:
            document = self.convert(self._validator.validate_json(raw))
        return document

    def validate_python(self, data: dict[str, Any]) -> Any:
        """The document for data given as Python objects (tests, benchmarks), checked by the contract."""
        return self.convert(self._validator.validate_python(data))

    def convert(self, checked: dict[str, Any]) -> Any:
        """Structs for what the contract's validator accepted and returned as dicts."""
        try:
            return msgspec.convert(checked, self.struct, strict=False)
        except msgspec.ValidationError as exc:  # should the contract ever accept what the structs cannot hold
            raise ValidationError.from_exception_data(
                self.model.__name__,
                [{"type": "value_error", "loc": (), "input": None, "ctx": {"error": ValueError(str(exc))}}],
            ) from exc


@cache
def document_decoder(model: type[BaseModel]) -> DocumentDecoder:
    return DocumentDecoder(model)
