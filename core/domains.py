"""Domain names as customers type them and as registries take them: IDNA 2008 with the UTS 46 mapping.

Python's own "idna" codec is IDNA 2003, which maps `faß.de` to `fass.de`: another domain, owned by someone else.
"""

import re
import unicodedata

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


class InvalidDomainName(ValueError):
    pass


def domain_name_normalize(value: str) -> str:
    """The ASCII (A-label) form of a domain name a person typed, or InvalidDomainName.

    Invisible characters are refused rather than dropped (UTS 46 ignores a zero-width space or a soft hyphen, so
    `ab\u200bcd.com` would quietly become `abcd.com`); an `xn--` label must decode to a valid name.
    """
    name = value.strip().rstrip(".")
    if any(unicodedata.category(char)[0] in "CZ" for char in name):
        raise InvalidDomainName("Not a valid domain name: it contains a space, an invisible or a control character.")
    try:
        name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidDomainName("Not a valid domain name.") from None
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or not _TLD.match(labels[-1])
    ):
        raise InvalidDomainName("Not a valid domain name.")
    return name
