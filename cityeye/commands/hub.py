"""`cityeye hub ...`: serve the hub (ZeroMQ ingest + REST API), manage API tokens and user accounts, migrate the
database."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    hub = subparsers.add_parser("hub", help="the central hub: cases, API, ingest")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="HUB_COMMAND")

    serve = hub_sub.add_parser("serve", help="run ZeroMQ ingest and the REST API (embedded SQLite by default)")
    db_args(serve)
    serve.add_argument("--api", metavar="HOST:PORT", help="API bind (default 127.0.0.1:8080)")
    serve.add_argument("--zmq", metavar="ENDPOINT", help="ZeroMQ bind (default tcp://*:7755); 'none': API only")
    serve.add_argument("--insecure", action="store_true", help="ZeroMQ without CURVE: lab use only")
    serve.add_argument("--tls-cert", metavar="PEM", type=Path,
                       help="serve the API over HTTPS with this certificate (chain) (setting tls_cert)")
    serve.add_argument("--tls-key", metavar="PEM", type=Path,
                       help="the certificate's private key (setting tls_key; required with --tls-cert)")
    serve.add_argument("--ingest-processes", type=int, metavar="N",
                       help="ZeroMQ ingest worker processes (default 1: in the API's process); "
                            "about one per core that ingest may use")
    serve.set_defaults(func=_serve)

    token = hub_sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="TOKEN_COMMAND")
    create = token_sub.add_parser("create", help="create a token and print it (shown once)")
    create.add_argument("name")
    create.add_argument("--role", required=True,
                        choices=["admin", "reviewer", "dispatcher", "handler", "reader", "sensor"])
    create.add_argument("--expires", metavar="LIFETIME",
                        help="valid for this long, e.g. 90d, 12h, 2w (default: until revoked)")
    db_args(create)
    create.set_defaults(func=_token_create)
    listing = token_sub.add_parser("list", help="list active tokens (no secrets)")
    db_args(listing)
    listing.set_defaults(func=_token_list)

    migrate = hub_sub.add_parser("migrate", help="create or upgrade the database schema")
    db_args(migrate)
    migrate.set_defaults(func=_migrate)

    from cityeye.commands import hub_security, hub_users  # enroll / revoke / verify / keys; user accounts

    hub_security.add_commands(hub_sub)
    hub_users.add_commands(hub_sub)

    from cityeye.commands import hub_models  # the model registry: register / rollout / judge / rollback

    hub_models.add_commands(hub_sub)


def db_args(parser: argparse.ArgumentParser) -> None:
    """--db, --data, --config: where every `hub` subcommand finds its settings."""
    parser.add_argument("--db", metavar="URL", help="postgresql://user@host/db (default: SQLite in --data)")
    parser.add_argument("--data", metavar="DIR", type=Path, help="hub data dir (default ./hub-data)")
    parser.add_argument("--config", metavar="YAML", type=Path, help="hub settings file (units, calendar, ...)")


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """HubSettings from the --config file, then CITYEYE_HUB_* variables, then flags."""
    import yaml
    from pydantic import ValidationError

    from hub.settings import HubSettings

    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise SystemExit(f"{args.config}: expected a mapping of hub settings")
    values.update({k: v for k, v in (("db_url", args.db), ("data_dir", args.data), *extra.items()) if v is not None})
    try:
        return HubSettings.from_env(**values)
    except (ValidationError, ValueError) as exc:
        raise SystemExit(f"invalid hub settings: {exc}") from None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app
    from hub.fleet import check

    try:  # the page checks camera configs with the agent's own check when the edge part is installed
        from edge_agent.change.params import ChangeParams
        from edge_agent.managed_config import check_for_hub

        check.use(check_for_hub, change_params=ChangeParams)
    except ImportError:
        print("note: the edge agent is not installed here; camera configs are checked by the agents only",
              file=sys.stderr)
    zmq = None if args.zmq is None else ("" if args.zmq.lower() == "none" else args.zmq)
    settings = settings_from_args(args, api_bind=args.api, zmq_bind=zmq, insecure=args.insecure or None,
                                  ingest_processes=args.ingest_processes, tls_cert=args.tls_cert,
                                  tls_key=args.tls_key)
    if settings.zmq_bind == "":
        settings = settings.model_copy(update={"zmq_bind": None})
    if settings.insecure:
        print("WARNING: ZeroMQ ingest runs WITHOUT encryption or device authentication", file=sys.stderr)
    host, port = settings.api_bind.rsplit(":", 1)
    where = settings.db_url or f"SQLite in {settings.data_dir}"
    ingest = f"{settings.zmq_bind} ({settings.ingest_processes} process(es))" if settings.zmq_bind else "off"
    print(f"CityEye hub: API {settings.api_scheme}://{host}:{port}/docs, ingest {ingest}, database {where}")
    tls = settings.tls_cert is not None
    uvicorn.run(create_app(settings), host=host, port=int(port), log_level="info",
                ssl_certfile=str(settings.tls_cert) if tls else None,
                ssl_keyfile=str(settings.tls_key) if tls else None)
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from hub.app import open_store
    from hub.auth.tokens import create_token, parse_lifetime
    from hub.cases.lifecycle import Role

    try:
        lifetime = parse_lifetime(args.expires) if args.expires else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = open_store(settings_from_args(args))
    try:
        _, token = create_token(store, args.name, Role(args.role), lifetime)
    finally:
        store.close()
    print(token)
    until = f", valid for {args.expires}" if lifetime else ""
    print(f"token for {args.name!r} with role {args.role}{until}; it is not stored and won't be shown again",
          file=sys.stderr)
    return 0


def _when(value: object, none: str) -> str:
    return value.isoformat(timespec="minutes") if isinstance(value, datetime) else none


def _token_list(args: argparse.Namespace) -> int:
    from hub.app import open_store
    from hub.auth.tokens import list_tokens

    store = open_store(settings_from_args(args))
    try:
        print("id\trole\tname\texpires\tlast used")
        for t in list_tokens(store):
            print(f"{t['id']}\t{t['role']}\t{t['name']}\t{_when(t['expires_at'], 'never')}\t"
                  f"{_when(t['last_used_at'], '-')}")
    finally:
        store.close()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from hub.storage import db, migrations

    settings = settings_from_args(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url or db.sqlite_url(settings.data_dir))
    try:
        version = migrations.migrate(engine)
    finally:
        engine.dispose()
    print(f"database schema at version {version}")
    return 0
