"""Passwords never leave tunelab: storage URLs and free text are shown with their secrets masked.

A storage URL such as ``postgresql://bob:PASSWORD@db/studies`` is needed to connect, but every
message, table, JSON field, file and study attribute shows it as ``postgresql://bob:***@db/studies``
(the CLI also passes each error line and traceback through ``redact_text``). Three things are
masked:

* the password of a URL's user info (``scheme://user:PASSWORD@host``), also inside free text such
  as a driver's exception message;
* a secret given as a query or keyword parameter (``?password=...``, ``&sslpassword=...``,
  ``password='...'`` in a libpq connection string, ``token=...``);
* any literal secret the caller knows (the parsed password), wherever it appears.

    >>> mask_url("postgresql://bob:s3cr3t@127.0.0.1:5432/x?sslmode=require&password=s3cr3t")
    'postgresql://bob:***@127.0.0.1:5432/x?password=***&sslmode=require'
    >>> redact_text("cannot open postgresql://bob:s3cr3t@db/x (timeout)")
    'cannot open postgresql://bob:***@db/x (timeout)'
    >>> redact({"command": ["tunelab", "--storage=mysql://u:pw@h/db"]})
    {'command': ['tunelab', '--storage=mysql://u:***@h/db']}
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"

# scheme://user:SECRET@ : the secret runs to the last "@" of the token (an unescaped "@" in a
# password would otherwise leak its tail), and stops at whitespace, quotes and angle brackets.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"<>]*:)[^\s'\"<>]*@")
# name=SECRET for the parameter names drivers and services use for credentials (``password``,
# ``sslpassword``, ``PGPASSWORD``, ``api_key``, ...); the value may be quoted (libpq keyword form).
_SECRET_NAMES = r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
_KEY_VALUE = re.compile(
    rf"(?P<head>\b\w*?(?:{_SECRET_NAMES})\s*=\s*)(?:'[^']*'|\"[^\"]*\"|[^\s&;,'\"()<>]+)",
    re.IGNORECASE,
)
# A literal secret shorter than this is not searched for in free text: masking every "a" or "1"
# would garble a message and hide nothing (the patterns above still mask it in a URL).
_MIN_KNOWN = 4


def redact_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with URL passwords, ``password=...`` parameters and the ``known`` secrets masked.

    >>> redact_text("dsn: host=db user=bob password='a b' port=5432")
    'dsn: host=db user=bob password=*** port=5432'
    >>> redact_text("auth failed for hunter22", known=["hunter22"])
    'auth failed for ***'
    """
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", text)
    for secret in known:
        if secret and len(secret) >= _MIN_KNOWN:
            # A password may appear as given or percent-encoded (as a rendered URL holds it).
            for form in {secret, quote(secret, safe=""), unquote(secret)}:
                text = text.replace(form, MASK)
    return text


def mask_url(url: str) -> str:
    """A storage URL fit to print: SQLAlchemy's own rendering without the password, then
    ``redact_text`` for secrets in the query and for what SQLAlchemy cannot parse.

    >>> mask_url("sqlite:///runs/studies.db")
    'sqlite:///runs/studies.db'
    >>> mask_url("not a url, password=x")
    'not a url, password=***'
    """
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy reads: mask what the patterns find
        return redact_text(url)
    if parsed.password is None:
        return redact_text(url)  # re-rendering would only percent-encode ("sqlite:///%3Amemory%3A")
    return redact_text(parsed.render_as_string(hide_password=True), [parsed.password])


def url_secrets(url: str) -> list[str]:
    """The password and secret query values of ``url``: what an exception about it must not show.

    >>> url_secrets("postgresql://bob:pw1234@db/x?sslpassword=key5678&sslmode=require")
    ['pw1234', 'key5678']
    """
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return []
    secrets = [parsed.password] if parsed.password else []
    pattern = re.compile(_SECRET_NAMES, re.IGNORECASE)
    for name, value in parsed.query.items():
        if pattern.search(name):
            secrets.extend([value] if isinstance(value, str) else value)
    return [str(s) for s in secrets]


def redact(obj: Any) -> Any:
    """A copy of ``obj`` (JSON-like: dicts, lists, tuples, strings) with every string redacted.

    >>> redact({"error": "no server at postgresql://u:pw@h/x", "n": 3})
    {'error': 'no server at postgresql://u:***@h/x', 'n': 3}
    """
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    return obj
