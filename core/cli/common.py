"""What every mirrorctl command shares: reaching the arrays, results.

A command talks to running array daemons over their REST API (the fleet): the one
given by ``--array-url``, or the lab's daemons (``mirrorctl lab up``). It works while
the console or other commands use the same arrays.

The console imports the fleet factories from here before its first window: this module
imports only what that needs at the top; the lab (SQLAlchemy), the engine loop (numpy)
and the REST client (aiohttp) are imported where they are used, the fleet's on the
engine's thread when the factory makes it (a top-level import cost the first window
about 1 s).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from core.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from core.runtime import BlockingEngine


@dataclass
class Result:
    data: Any  # what --json prints
    text: str  # what a person reads
    exit_code: int = 0


def with_engine(args, fn: Callable[[BlockingEngine], Result]) -> Result:
    from core.lab import LabNotUp, array_dirs
    from core.runtime import BlockingEngine

    fleet = fleet_factory(args)
    if fleet is None:
        if not array_dirs(args.home):
            raise NotFound(f"no lab in {args.home}; create one with 'mirrorctl lab init' (or give --home)",
                           code="labNotFound")
        raise LabNotUp()
    with BlockingEngine(args.home, purpose=f"mirrorctl {args.command}", engine_factory=fleet) as client:
        return fn(client)


def fleet_factory(args) -> Callable | None:
    """How to reach the arrays over REST: ``--array-url``, or the lab's running daemons; None otherwise."""
    from core.client.fleet import Fleet
    from core.client.rest import ArrayClient
    from core.lab import array_dirs
    from core.lab.supervisor import lab_status

    saved = getattr(args, "managed_arrays", None)
    url = getattr(args, "array_url", None)
    if saved:
        if url:
            raise InvalidInput("give --array NAME (a saved array) or --array-url, not both", code="invalidInput")
        return managed_fleet_factory(saved)
    if url:
        if not url.lower().startswith(("https://", "http://")):
            raise InvalidInput(f"--array-url {url} is not an https:// address; give https://HOST:PORT of the array",
                               code="invalidUrl")
        if not args.password:
            raise InvalidInput("give the array's password with --password (user admin)", code="passwordMissing")
        trust = {"fingerprint": args.accept_certificate} if args.accept_certificate else {"cafile": args.ca_file}

        def remote(home, purpose, nbd_port=None):
            client = ArrayClient(url, args.password, **trust)
            return Fleet({args.array_name or "array": client}, discover=True)
        return remote
    if not array_dirs(args.home):
        return None
    status = lab_status(args.home)
    running = [a for a in status["arrays"] if a["running"]]
    if not running:
        return None

    return lab_fleet_factory(status["arrays"])


def console_fleet_factory(with_lab: bool = True) -> Callable:
    """The console's engine: the lab's daemons (brought up) and the saved arrays; without the lab, only those."""
    if with_lab:
        return lab_fleet_factory()

    def saved(home, purpose, nbd_port=None):
        from core.client.fleet import Fleet
        from core.client.managed import ManagedArrayStore

        return Fleet({}, store=ManagedArrayStore(), stale_groups=True)
    return saved


def managed_fleet_factory(names: list[str]) -> Callable:
    """The fleet of the saved arrays ``names`` (core.client.managed), each certificate checked on every connection."""
    from core.client.contact import client_for
    from core.client.fleet import Fleet
    from core.client.managed import ManagedArrayStore

    store = ManagedArrayStore()
    entries = [store.get(n) for n in dict.fromkeys(names)]
    clients = {e.array_name or e.name: client_for(store, e) for e in entries}

    def saved(home, purpose, nbd_port=None):
        return Fleet(clients)
    return saved


def lab_fleet_factory(arrays: list[dict] | None = None) -> Callable:
    """An engine factory (for EngineLoop): the fleet of the lab's daemons, as ``lab status`` lists them.

    Without ``arrays`` the lab is made when missing and the fleet brings it up itself when
    it starts (the console: its window shows first, the daemons start behind it), and
    manages the saved arrays of the console's store too (``mirrorctl array add``, the
    Storage arrays page); an array that stops answering keeps its groups' last known state.
    The fleet is made, and its modules imported, where the factory is called: the engine's
    thread.
    """
    known = arrays or []
    stopped = {a["name"]: f"start it with 'mirrorctl lab array start {a['name']}'" for a in known if not a["running"]}

    def lab(home, purpose, nbd_port=None):
        from core.client.fleet import Fleet, lab_clients
        from core.client.lab import LabLink
        from core.client.managed import ManagedArrayStore
        from core.lab import init_lab

        console = arrays is None
        if console:
            init_lab(home, if_missing=True)
        return Fleet(lab_clients([a for a in known if a["running"]]), lab=LabLink(home),
                     bring_lab_up=console, stopped=stopped, store=ManagedArrayStore() if console else None,
                     stale_groups=console)
    return lab


def command(sub, name: str, help: str, handler: Callable[[BlockingEngine, Any], Result], engine: bool = True):
    p = sub.add_parser(name, help=help, description=help)
    if engine:
        p.set_defaults(run=lambda args: with_engine(args, lambda client: handler(client, args)))
    else:
        p.set_defaults(run=handler)
    return p
