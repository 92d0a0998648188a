"""`inspector users` and `tokens`: the dashboard's people and machines."""

from __future__ import annotations

import sys

from inspector.cli.common import _fail, _load, _open_store


def _run(args, what: str, actions: dict) -> int:
    """Open the accounts, do `actions[args.action]` with them; a refusal is one line."""
    from inspector.web.accounts import AccountError, Accounts

    if args.action != "list" and not args.name:
        _fail(f"inspector {what}s {args.action} needs a {what} name")
    store = _open_store(_load(args))
    try:
        actions[args.action](Accounts(store.engine))
    except AccountError as e:
        _fail(str(e))
    finally:
        store.close()
    return 0


def _read_password(args, prompt: str = "password") -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        _fail("no terminal to ask for the password on: pipe it in with --password-stdin")
    import getpass

    try:
        first = getpass.getpass(f"{prompt}: ")
        if getpass.getpass("again: ") != first:
            _fail("the two passwords differ")
    except (EOFError, KeyboardInterrupt):
        _fail("no password given")
    return first


def cmd_users(args) -> int:
    def listing(acc):
        for u in acc.users():
            print(f"{u['username']:24s} {u['role']:9s} since {u['created_at']}"
                  + ("  (must choose a new password at login)" if u["must_change_password"] else ""))

    def add(acc):
        acc.add_user(args.name, _read_password(args), args.role)
        print(f"user {args.name} added ({args.role})")

    def passwd(acc):
        acc.set_password(args.name, _read_password(args, "new password"))
        print(f"password of {args.name} changed; their sessions are ended")

    def role(acc):
        acc.set_role(args.name, args.role)
        print(f"{args.name} is now {args.role}")

    def remove(acc):
        acc.remove_user(args.name)
        print(f"user {args.name} removed")

    return _run(args, "user", {"list": listing, "add": add, "passwd": passwd, "role": role, "remove": remove})


def cmd_tokens(args) -> int:
    def listing(acc):
        for t in acc.tokens():
            print(f"{t['name']:24s} {t['role']:9s} since {t['created_at']}  last used {t['last_used_at'] or 'never'}")

    def add(acc):
        print(acc.add_token(args.name, args.role))
        print(f"token {args.name} ({args.role}): send it as 'Authorization: Bearer <token>'; it is shown "
              f"only now", file=sys.stderr)

    def revoke(acc):
        acc.revoke_token(args.name)
        print(f"token {args.name} revoked")

    return _run(args, "token", {"list": listing, "add": add, "revoke": revoke})
