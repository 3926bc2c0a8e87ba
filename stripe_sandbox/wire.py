"""Stripe's wire format: form-encoded nested parameters in, JSON objects and Stripe error objects out."""

import json
import re
from urllib.parse import parse_qsl

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500


class StripeError(Exception):
    """An error answered as Stripe answers it: an HTTP status and an `error` object."""

    def __init__(self, message, *, status=400, type="invalid_request_error", param=None, code=None, extra=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        # More fields of the error object (a card error's `decline_code`, `charge`, `payment_intent` ...).
        self.extra = extra or {}

    def body(self) -> dict:
        # Stripe leaves `param` and `code` out when they do not apply, and links each code to its documentation.
        error = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def not_one_of(param: str, choices) -> StripeError:
    """Stripe's answer to a value outside an enum: `Invalid locale: must be one of auto, bg, ..., or zh-TW`, with the
    parameter's full name (`payment_method_types[1]`) and no code."""
    *first, last = choices
    listed = f"{', '.join(first)}, or {last}" if len(first) > 1 else " or ".join([*first, last])
    return StripeError(f"Invalid {param}: must be one of {listed}", param=param)


def card_declined(**extra) -> StripeError:
    """What Stripe answers (402) when a card is declined."""
    return StripeError(
        "Your card was declined.",
        status=402,
        type="card_error",
        code="card_declined",
        extra={"decline_code": "generic_decline", **extra},
    )


def resource_missing(kind: str, id: str, *, param: str = "id", status: int = 404) -> StripeError:
    """An unknown id: 404 when it is in the URL, 400 when a parameter names it (pass `param` and `status`)."""
    return StripeError(f"No such {kind}: '{id}'", status=status, param=param, code="resource_missing")


def missing_param(name: str) -> StripeError:
    return StripeError(f"Missing required param: {name}.", param=name, code="parameter_missing")


def encode_json(obj) -> bytes:
    # Compact separators keep json's C encoder in use (indent= falls back to the slow Python one).
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_form(text: str) -> dict:
    """Decode `a[b][0][c]=v&expand[]=x` into nested dicts (array indices stay string keys) and lists (for `[]`)."""
    params: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.fullmatch(key)
        if match is None:
            raise StripeError(f"Invalid parameter name: {key}", param=key)
        segments = [match[1], *_SEGMENT.findall(match[2])]
        append = segments[-1] == ""
        if append:
            segments.pop()
        if "" in segments:
            # `a[][b]` is ambiguous; stripe-python always sends indexed arrays, so only a trailing `[]` is accepted.
            raise StripeError(f"Invalid parameter name: {key}", param=key)
        node = params
        for segment in segments[:-1]:
            node = node.setdefault(segment, {})
            if not isinstance(node, dict):
                raise StripeError(f"Conflicting values for the parameter {key}", param=key)
        last = segments[-1]
        if append:
            target = node.setdefault(last, [])
            if not isinstance(target, list):
                raise StripeError(f"Conflicting values for the parameter {key}", param=key)
            target.append(value)
        elif isinstance(node.get(last), (dict, list)):
            raise StripeError(f"Conflicting values for the parameter {key}", param=key)
        else:
            node[last] = value
    return params


class Params:
    """Decoded parameters read by name and type; whatever a handler never reads is reported as unknown, like Stripe."""

    def __init__(self, data: dict, prefix: str = ""):
        self._data = data
        self._prefix = prefix
        self._read: set[str] = set()
        self._children: list[Params] = []

    @property
    def prefix(self) -> str:
        """This hash's own parameter name, e.g. `line_items[0]` (empty at the top level)."""
        return self._prefix

    def name(self, key: str) -> str:
        return f"{self._prefix}[{key}]" if self._prefix else key

    def has(self, key: str) -> bool:
        return self._data.get(key) not in (None, "")

    def _raw(self, key: str):
        self._read.add(key)
        value = self._data.get(key)
        # Stripe reads an empty string as "not set".
        return None if value == "" else value

    def string(self, key, *, required=False, choices=None, max_length=5000) -> str | None:
        value = self._raw(key)
        if value is None:
            if required:
                raise missing_param(self.name(key))
            return None
        if not isinstance(value, str):
            raise StripeError(f"Invalid string: {self.name(key)} must be a string", param=self.name(key))
        if choices is not None and value not in choices:
            raise not_one_of(self.name(key), choices)
        if len(value) > max_length:
            raise StripeError(f"Invalid {key}: must be at most {max_length} characters", param=self.name(key))
        return value

    def integer(self, key, *, required=False, minimum=None, maximum=None) -> int | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        if not _INTEGER.fullmatch(value):
            raise StripeError(f"Invalid integer: {value}", param=self.name(key))
        number = int(value)
        if minimum is not None and number < minimum:
            raise StripeError(f"This value must be greater than or equal to {minimum}.", param=self.name(key))
        if maximum is not None and number > maximum:
            raise StripeError(f"This value must be less than or equal to {maximum}.", param=self.name(key))
        return number

    def decimal(self, key) -> float | None:
        value = self.string(key)
        if value is None:
            return None
        if not _DECIMAL.fullmatch(value):
            raise StripeError(f"Invalid decimal: {value}", param=self.name(key))
        return float(value)

    def range(self, key) -> dict[str, int] | None:
        """A timestamp filter: `key=<int>` (exactly) or `key[gt|gte|lt|lte]=<int>`, as {"gte": .., "lte": ..}."""
        value = self._data.get(key)
        if isinstance(value, str) or value is None:
            exact = self.integer(key)
            return None if exact is None else {"gte": exact, "lte": exact}
        bounds = self.hash(key)
        return {op: number for op in ("gt", "gte", "lt", "lte") if (number := bounds.integer(op)) is not None}

    def boolean(self, key) -> bool | None:
        value = self.string(key)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise StripeError(f"Invalid boolean: {value}", param=self.name(key))
        return value == "true"

    def currency(self, key, *, required=False) -> str | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        if not _CURRENCY.fullmatch(value):
            raise StripeError(
                f"Invalid currency: {value}. Use a three-letter ISO currency code such as usd.",
                param=self.name(key),
            )
        return value.lower()

    def email(self, key) -> str | None:
        value = self.string(key, max_length=512)
        if value is not None and not EMAIL.fullmatch(value):
            raise StripeError(f"Invalid email address: {value}", param=self.name(key), code="email_invalid")
        return value

    def url(self, key) -> str | None:
        value = self.string(key)
        if value is not None and not value.startswith(("http://", "https://")):
            raise StripeError("Not a valid URL", param=self.name(key), code="url_invalid")
        return value

    def hash(self, key, *, required=False) -> "Params | None":
        value = self._raw(key)
        if value is None:
            if required:
                raise missing_param(self.name(key))
            return None
        if not isinstance(value, dict):
            raise StripeError(f"Invalid hash: {self.name(key)} must be a hash", param=self.name(key))
        child = Params(value, self.name(key))
        self._children.append(child)
        return child

    def _array(self, key) -> list:
        value = self._raw(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        # Indexed arrays (`a[0]=x&a[1]=y`, what stripe-python sends) decode as dicts with digit keys.
        if isinstance(value, dict) and all(index.isdigit() for index in value):
            return [value[index] for index in sorted(value, key=int)]
        raise StripeError(f"Invalid array: {self.name(key)} must be an array", param=self.name(key))

    def strings(self, key, *, choices=None) -> list[str]:
        values = self._array(key)
        for index, value in enumerate(values):
            name = f"{self.name(key)}[{index}]"
            if not isinstance(value, str) or value == "":
                raise StripeError(f"Invalid string: {name}", param=name)
            if choices is not None and value not in choices:
                raise not_one_of(name, choices)
        return values

    def hashes(self, key) -> list["Params"]:
        children = []
        for index, value in enumerate(self._array(key)):
            name = f"{self.name(key)}[{index}]"
            if not isinstance(value, dict):
                raise StripeError(f"Invalid hash: {name} must be a hash", param=name)
            children.append(Params(value, name))
        self._children.extend(children)
        return children

    def metadata(self, key="metadata", *, keep_empty=False) -> dict[str, str]:
        """Metadata checked against Stripe's limits; an empty value unsets its key, so it is dropped unless
        `keep_empty` (for updates, which must see what to unset)."""
        value = self._raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise StripeError(f"Invalid hash: {self.name(key)} must be a hash", param=self.name(key))
        if len(value) > METADATA_MAX_KEYS:
            raise StripeError(
                f"Metadata can have up to {METADATA_MAX_KEYS} keys, but you passed in {len(value)} keys.",
                param=self.name(key),
            )
        metadata = {}
        for item_key, item_value in value.items():
            name = f"{self.name(key)}[{item_key}]"
            if not isinstance(item_value, str):
                raise StripeError(f"Invalid string: {name} must be a string", param=name)
            if len(item_key) > METADATA_KEY_MAX_LENGTH:
                raise StripeError(
                    f"Metadata keys can have up to {METADATA_KEY_MAX_LENGTH} characters, "
                    f"but you passed in a key with {len(item_key)} characters.",
                    param=name,
                )
            if len(item_value) > METADATA_VALUE_MAX_LENGTH:
                raise StripeError(
                    f"Metadata values can have up to {METADATA_VALUE_MAX_LENGTH} characters, "
                    f"but you passed in a value with {len(item_value)} characters.",
                    param=name,
                )
            if item_value != "" or keep_empty:
                metadata[item_key] = item_value
        return metadata

    def finish(self) -> None:
        """Reject parameters nobody read; call it after reading and before acting, as Stripe checks them first."""
        for key in self._data:
            if key not in self._read:
                raise StripeError(f"Received unknown parameter: {self.name(key)}", param=self.name(key))
        for child in self._children:
            child.finish()
