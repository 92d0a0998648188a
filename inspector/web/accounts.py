"""Users, API tokens and browser sessions, in the store's database.

Passwords are hashed with scrypt (hashlib, OpenSSL's implementation; n=2**14, r=8, p=1: about 50 ms
and 16 MiB per try, which is what makes a stolen database slow to crack). Tokens and session ids
are random (secrets) and only their sha256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inspector.errors import InspectorError
from inspector.store.models import ApiToken, User, WebSession

ROLES = ("viewer", "operator", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8


class AccountError(InspectorError, ValueError):
    """A request about accounts that cannot be done; the message says why."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str  # "session" or "token"
    csrf: str | None = None  # sessions only: what state-changing requests must echo
    must_change: bool = False  # sessions only: may do nothing but choose a new password

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 2 ** 20, **SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt)}${b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(dk)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want), maxmem=64 * 2 ** 20)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# A hash to check against when the user does not exist, so the answer takes as long either way.
_DUMMY = hash_password(secrets.token_urlsafe(12))


class RateLimited(InspectorError):
    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


class LoginLimiter:
    """At most `attempts` failed logins per (client address, user name) in `window_s`; then the
    pair waits out the window. In memory: a restart forgives, which is fine at a plant."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0):
        self.attempts, self.window_s = attempts, window_s
        self._fails: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def check(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        with self._lock:
            q = self._fails.get(key)
            while q and now - q[0] > self.window_s:
                q.popleft()
            if q and len(q) >= self.attempts:
                raise RateLimited(int(self.window_s - (now - q[0])) + 1)

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._fails.setdefault(key, deque()).append(time.monotonic())
            if len(self._fails) > 10000:  # an address spraying names must not grow this for ever
                self._fails.pop(next(iter(self._fails)))

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._fails.pop(key, None)


class Accounts:
    def __init__(self, engine, session_hours: float = 12.0):
        self.engine = engine
        self.session_hours = session_hours
        self.limiter = LoginLimiter()

    # --- users ----------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, role: str, *, must_change: bool = False) -> None:
        """must_change: the password was chosen by someone else (printed at first start); the
        user's first session must replace it before anything else."""
        _check_name(username)
        _check_role(role)
        _check_password(password)
        with Session(self.engine) as s, s.begin():
            s.add(User(username=username, password_hash=hash_password(password), role=role, created_at=_now(),
                       must_change_password=must_change))
            try:
                s.flush()
            except IntegrityError:
                raise AccountError(f"user {username!r} exists already (change it with `inspector users "
                                   f"passwd` or remove it first)") from None

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        with Session(self.engine) as s, s.begin():
            u = self._user(s, username)
            u.password_hash = hash_password(password)
            u.must_change_password = False  # whoever typed it at the console chose it
            s.execute(delete(WebSession).where(WebSession.user_id == u.id))  # log out everywhere

    def change_password(self, username: str, current: str, new: str, client: str) -> tuple[str, Principal]:
        """A user choosing their own password on the dashboard: the current one must be right
        (counted against the login limit like a login). Ends their sessions, the one asking
        included, and returns a new one: (cookie value, principal)."""
        key = (client, username.lower()[:64])
        self.limiter.check(key)
        _check_password(new)
        if new == current:
            raise AccountError("the new password must differ from the current one")
        with Session(self.engine) as s, s.begin():
            u = self._user(s, username)
            if not verify_password(current, u.password_hash):
                self.limiter.failed(key)
                raise AccountError("the current password is wrong")
            u.password_hash = hash_password(new)
            u.must_change_password = False
            s.execute(delete(WebSession).where(WebSession.user_id == u.id))
        return self.login(username, new, client)

    def set_role(self, username: str, role: str) -> None:
        _check_role(role)
        with Session(self.engine) as s, s.begin():
            u = self._user(s, username)
            if role != "admin":
                _keep_an_admin(s, u)
            u.role = role

    def remove_user(self, username: str) -> None:
        with Session(self.engine) as s, s.begin():
            u = self._user(s, username)
            _keep_an_admin(s, u)
            s.execute(delete(WebSession).where(WebSession.user_id == u.id))
            s.delete(u)

    def users(self) -> list[dict]:
        with Session(self.engine) as s:
            return [{"username": u.username, "role": u.role, "created_at": u.created_at.isoformat() + "Z",
                     "must_change_password": u.must_change_password}
                    for u in s.scalars(select(User).order_by(User.username))]

    def has_users(self) -> bool:
        with Session(self.engine) as s:
            return s.scalar(select(User.id).limit(1)) is not None

    @staticmethod
    def _user(s, username: str) -> User:
        u = s.scalar(select(User).where(User.username == username))
        if u is None:
            raise AccountError(f"no user {username!r}")
        return u

    # --- logging in -----------------------------------------------------------------------------

    def _verified(self, username: str, password: str, client: str) -> tuple[str, int, bool]:
        """(role, user id, must change password) for a correct password; RateLimited or
        AccountError (one message for a wrong name and a wrong password alike) otherwise."""
        key = (client, username.lower()[:64])
        self.limiter.check(key)
        with Session(self.engine) as s:
            # No name outside NAME was ever made; PostgreSQL would refuse one with a NUL (a 500).
            u = s.scalar(select(User).where(User.username == username)) if NAME.match(username) else None
            ok = verify_password(password, u.password_hash if u is not None else _DUMMY) and u is not None
            if not ok:
                self.limiter.failed(key)
                raise AccountError("wrong user name or password")
            found = u.role, u.id, u.must_change_password
        self.limiter.succeeded(key)
        return found

    def check_password(self, username: str, password: str, client: str) -> str:
        """The user's role for a correct password, without a browser session (OPC UA logins). A
        user who must still choose a new password is refused until they have, on the dashboard."""
        role, _, must_change = self._verified(username, password, client)
        if must_change:
            raise AccountError("the password must first be changed on the dashboard")
        return role

    def login(self, username: str, password: str, client: str) -> tuple[str, Principal]:
        """A new session for a correct password: (cookie value, principal). Raises RateLimited or
        AccountError (one message for a wrong name and a wrong password alike)."""
        role, uid, must_change = self._verified(username, password, client)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with Session(self.engine) as s, s.begin():
            s.execute(delete(WebSession).where(WebSession.expires_at < _now()))  # tidy as we go
            s.add(WebSession(token_sha256=_sha(token), user_id=uid, csrf=csrf, created_at=_now(),
                             expires_at=_now() + timedelta(hours=self.session_hours)))
        return token, Principal(username, role, "session", csrf, must_change)

    def session(self, token: str | None) -> Principal | None:
        if not token or len(token) > 128:
            return None
        with Session(self.engine) as s:
            row = s.execute(select(User.username, User.role, User.must_change_password, WebSession.csrf,
                                   WebSession.expires_at)
                            .join(WebSession, WebSession.user_id == User.id)
                            .where(WebSession.token_sha256 == _sha(token))).first()
        if row is None or row.expires_at < _now():
            return None
        return Principal(row.username, row.role, "session", row.csrf, row.must_change_password)

    def logout(self, token: str | None) -> None:
        if token:
            with Session(self.engine) as s, s.begin():
                s.execute(delete(WebSession).where(WebSession.token_sha256 == _sha(token)))

    # --- machine tokens -------------------------------------------------------------------------

    def add_token(self, name: str, role: str) -> str:
        _check_name(name)
        _check_role(role)
        token = "insp_" + secrets.token_urlsafe(32)
        with Session(self.engine) as s, s.begin():
            s.add(ApiToken(name=name, token_sha256=_sha(token), role=role, created_at=_now()))
            try:
                s.flush()
            except IntegrityError:
                raise AccountError(f"a token named {name!r} exists already (revoke it first)") from None
        return token

    def revoke_token(self, name: str) -> None:
        with Session(self.engine) as s, s.begin():
            if not s.execute(delete(ApiToken).where(ApiToken.name == name)).rowcount:
                raise AccountError(f"no token {name!r}")

    def tokens(self) -> list[dict]:
        with Session(self.engine) as s:
            return [{"name": t.name, "role": t.role, "created_at": t.created_at.isoformat() + "Z",
                     "last_used_at": t.last_used_at.isoformat() + "Z" if t.last_used_at else None}
                    for t in s.scalars(select(ApiToken).order_by(ApiToken.name))]

    def token(self, token: str | None) -> Principal | None:
        if not token or len(token) > 128:
            return None
        with Session(self.engine) as s, s.begin():
            t = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == _sha(token)))
            if t is None:
                return None
            now = _now()
            if t.last_used_at is None or now - t.last_used_at > timedelta(minutes=1):  # not a write per call
                t.last_used_at = now
            return Principal(t.name, t.role, "token")


def _keep_an_admin(s, u: User) -> None:
    """Refuse to leave the dashboard without an admin (only the console could make one then).
    The admins' rows are locked first, so that two admins demoting each other at once on
    PostgreSQL cannot both pass; SQLite takes its one write lock anyway."""
    if u.role != "admin":
        return
    admins = s.scalars(select(User.id).where(User.role == "admin").with_for_update()).all()
    if set(admins) <= {u.id}:
        raise AccountError(f"{u.username} is the last admin: make another user admin first "
                           f"(`inspector users role NAME --role admin`)")


def _check_name(name: str) -> None:
    if not NAME.match(name or ""):
        raise AccountError("a name is 1 to 64 letters, digits or _.@-")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
