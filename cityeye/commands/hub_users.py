"""`cityeye hub user add/passwd/disable/enable/list`: people's accounts for the reviewer page.

Passwords are read without echo (twice, to catch typos) or, for scripts, one line from standard input
with --password-stdin; they never appear on the command line, where `ps` and shell history would show
them. `passwd` also unlocks a locked account; `passwd` and `disable` end the account's sessions.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from cityeye.commands.hub import db_args, settings_from_args

ROLES = ["admin", "reviewer", "dispatcher", "handler", "reader"]


def add_commands(hub_sub: Any) -> None:
    user = hub_sub.add_parser("user", help="people's accounts (password sign-in on the web page)")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    add = user_sub.add_parser("add", help="create an account; asks for its password")
    add.add_argument("name", help="sign-in name (letters, digits, . _ - @)")
    add.add_argument("--role", required=True, choices=ROLES)
    _password_args(add)
    add.set_defaults(func=_add)
    passwd = user_sub.add_parser("passwd", help="set a new password (also unlocks the account)")
    passwd.add_argument("name")
    _password_args(passwd)
    passwd.set_defaults(func=_passwd)
    for name, text, disabled in (("disable", "stop an account signing in (ends its sessions)", True),
                                 ("enable", "let a disabled account sign in again", False)):
        cmd = user_sub.add_parser(name, help=text)
        cmd.add_argument("name")
        db_args(cmd)
        cmd.set_defaults(func=_set_disabled, disabled=disabled)
    listing = user_sub.add_parser("list", help="list accounts with role and state")
    db_args(listing)
    listing.set_defaults(func=_list)


def _password_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    db_args(parser)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("error: the two passwords differ; nothing changed")
    return first


def _run(args: argparse.Namespace, action: Any) -> int:
    from hub.app import open_store
    from hub.auth.passwords import PasswordPolicyError
    from hub.auth.users import UserError

    settings = settings_from_args(args)
    store = open_store(settings)
    try:
        action(store, settings)
    except (UserError, PasswordPolicyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _add(args: argparse.Namespace) -> int:
    import re

    from hub.auth import users
    from hub.auth.users import NAME_PATTERN
    from hub.cases.lifecycle import Role

    if not re.fullmatch(NAME_PATTERN, args.name):
        print(f"error: user name {args.name!r}: use 1-64 letters, digits, '.', '_', '-' or '@'", file=sys.stderr)
        return 1
    password = _read_password(args)
    code = _run(args, lambda store, s: users.add_user(store, args.name, Role(args.role), password, s.accounts))
    if code == 0:
        print(f"user {args.name!r} ({args.role}) created; sign in on the hub's web page")
    return code


def _passwd(args: argparse.Namespace) -> int:
    from hub.auth import users

    password = _read_password(args)
    code = _run(args, lambda store, s: users.set_password(store, args.name, password, s.accounts))
    if code == 0:
        print(f"password of {args.name!r} set; the account is unlocked and its sessions ended")
    return code


def _set_disabled(args: argparse.Namespace) -> int:
    from hub.auth import users

    code = _run(args, lambda store, s: users.set_disabled(store, args.name, args.disabled))
    if code == 0:
        print(f"user {args.name!r} {'disabled; its sessions ended' if args.disabled else 'enabled'}")
    return code


def _list(args: argparse.Namespace) -> int:
    from hub.auth import users
    from hub.storage import db

    def show(store: Any, _: Any) -> None:
        for u in users.list_users(store):
            locked = u["locked_until"] is not None and u["locked_until"] > db.utcnow()
            state = "disabled" if u["disabled"] else (
                f"locked until {u['locked_until']:%Y-%m-%d %H:%M} UTC" if locked else "active")
            last = f"{u['last_login_at']:%Y-%m-%d %H:%M} UTC" if u["last_login_at"] else "never signed in"
            print(f"{u['name']}\t{u['role']}\t{state}\t{last}")

    return _run(args, show)
