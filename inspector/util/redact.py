"""Secrets out of text that people see: URLs (camera streams, databases, webhooks, VLM servers) and
config dumps.

A URL is parsed, not pattern-matched: the userinfo (`user:password@`) and the values of query
parameters that carry credentials (`?user=admin&pwd=...`, `token=`, `key=`, ...) are replaced by
`***`. Camera vendors put passwords in both places, and users paste them unencoded, so a password
may itself hold `@`, `/`, `?`, `#` or `:`. Where the text is ambiguous the redaction takes more, never
less: hiding part of a path is a nuisance, showing a password is an incident.
"""

from __future__ import annotations

import re

MASK = "***"

# Query parameter names that carry a credential (compared lower-case, without - and _).
_SECRET_PARAMS = {"password", "passwd", "pwd", "pass", "pw", "passphrase", "secret", "clientsecret",
                  "token", "accesstoken", "refreshtoken", "authtoken", "idtoken", "auth", "authorization",
                  "key", "apikey", "accesskey", "secretkey", "privatekey", "sig", "signature",
                  "credential", "credentials", "session", "sessionid", "sid", "code", "ticket"}
# Config keys whose value is a secret itself (not the name of a variable that holds one).
_SECRET_KEYS = _SECRET_PARAMS | {"apikeyvalue"}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _norm(name: str) -> str:
    return re.sub(r"[-_.\s]", "", name).lower()


def is_secret_name(name: str) -> bool:
    return _norm(name) in _SECRET_PARAMS


def redact_url(url: str) -> str:
    """`url` with its credentials masked; other text unchanged. Not a URL: returned as it is."""
    m = _SCHEME.match(url)
    if not m:
        return url
    head, rest = url[: m.end()], url[m.end():]
    rest = _redact_userinfo(rest)
    return head + _redact_query(rest)


def _redact_userinfo(rest: str) -> str:
    # The authority ends at the first / ? or #, unless a password holds one of them: then an @
    # follows later. The userinfo ends at the LAST @ before the path proper, so a password
    # holding @ is covered whole; when an @ could end either a userinfo or a path, mask up to it.
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" in authority:
        at = authority.rfind("@")
    else:
        at = rest.rfind("@")
        # An @ after the authority ends a userinfo when the authority has a colon: "admin:pa/ss@host"
        # (a password holding /). "host:554/path@x" is masked too: it cannot be told apart.
        if at < 0 or ":" not in authority:
            return _mask_bare_password(rest, end)
    user = rest[:at]
    name = user.split(":", 1)[0] if ":" in user else ""
    return (f"{name}:{MASK}" if name else MASK) + rest[at:]


def _mask_bare_password(rest: str, end: int) -> str:
    """No @ at all but an authority like "admin:secret": a userinfo whose host went missing."""
    authority = rest[:end]
    if ":" in authority and not _valid_host_port(authority):
        return authority.split(":", 1)[0] + ":" + MASK + rest[end:]
    return rest


def _valid_host_port(authority: str) -> bool:
    if authority.startswith("["):  # [v6]:port
        close = authority.find("]")
        return close > 0 and (close == len(authority) - 1 or
                              (authority[close + 1] == ":" and authority[close + 2:].isdigit()))
    host, _, port = authority.partition(":")
    return bool(re.fullmatch(r"[A-Za-z0-9.%_~-]*", host)) and (port == "" or port.isdigit())


def _redact_query(rest: str) -> str:
    q = rest.find("?")
    if q < 0:
        return rest
    body, frag = rest[q + 1:], ""
    if "#" in body:
        body, frag = body.split("#", 1)
        frag = "#" + frag
    parts = []
    for part in re.split(r"([&;])", body):
        if part in ("&", ";"):
            parts.append(part)
            continue
        name, eq, value = part.partition("=")
        parts.append(f"{name}={MASK}" if eq and value and is_secret_name(_unquote(name)) else part)
    return rest[: q + 1] + "".join(parts) + frag


def _unquote(text: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(text)


def redact_text(text: str) -> str:
    """Every URL inside free text (an error message, a log line) redacted."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact_url(m.group(0)), text)


def redact_config(data):
    """A config as plain data (model_dump(mode="json")) with every URL's credentials and every
    secret-valued key masked, for `inspector config` and the like."""
    if isinstance(data, dict):
        return {k: (MASK if isinstance(k, str) and _norm(k) in _SECRET_KEYS and v not in (None, "")
                    else redact_config(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_config(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data
