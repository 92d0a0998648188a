"""`inspector users` and `tokens`: the dashboard's people and machines."""

from __future__ import annotations

import sys

from inspector.cli.common import _fail, _load, _open_store


def _accounts(args):
    from inspector.web.accounts import Accounts

    store = _open_store(_load(args))
    return store, Accounts(store.engine)


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
    from inspector.web.accounts import AccountError

    if args.action != "list" and not args.name:
        _fail(f"inspector users {args.action} needs a user name")
    store, acc = _accounts(args)
    try:
        if args.action == "list":
            for u in acc.users():
                print(f"{u['username']:24s} {u['role']:9s} since {u['created_at']}"
                      + ("  (must choose a new password at login)" if u["must_change_password"] else ""))
        elif args.action == "add":
            acc.add_user(args.name, _read_password(args), args.role)
            print(f"user {args.name} added ({args.role})")
        elif args.action == "passwd":
            acc.set_password(args.name, _read_password(args, "new password"))
            print(f"password of {args.name} changed; their sessions are ended")
        elif args.action == "role":
            acc.set_role(args.name, args.role)
            print(f"{args.name} is now {args.role}")
        elif args.action == "remove":
            acc.remove_user(args.name)
            print(f"user {args.name} removed")
    except AccountError as e:
        _fail(str(e))
    finally:
        store.close()
    return 0


def cmd_tokens(args) -> int:
    from inspector.web.accounts import AccountError

    if args.action != "list" and not args.name:
        _fail(f"inspector tokens {args.action} needs a token name")
    store, acc = _accounts(args)
    try:
        if args.action == "list":
            for t in acc.tokens():
                print(f"{t['name']:24s} {t['role']:9s} since {t['created_at']}  last used {t['last_used_at'] or 'never'}")
        elif args.action == "add":
            token = acc.add_token(args.name, args.role)
            print(token)
            print(f"token {args.name} ({args.role}): send it as 'Authorization: Bearer <token>'; it is shown "
                  f"only now", file=sys.stderr)
        elif args.action == "revoke":
            acc.revoke_token(args.name)
            print(f"token {args.name} revoked")
    except AccountError as e:
        _fail(str(e))
    finally:
        store.close()
    return 0
