"""The dashboard's rooms: every route of every router module in inspector/web/routes/ is served
by the app (a router module whose include_router was forgotten would be a page that 404s)."""

import importlib
import pkgutil

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import NoMatchFound

import inspector.web.routes as routes_pkg
from inspector.config import StoreConfig
from inspector.line.status import LineStatus
from inspector.store import Store
from inspector.web import create_app


def _router_modules():
    return [importlib.import_module(f"{routes_pkg.__name__}.{m.name}")
            for m in pkgutil.iter_modules(routes_pkg.__path__)]


def test_every_router_module_is_mounted(tmp_path):
    modules = _router_modules()
    assert {m.__name__.rsplit(".", 1)[1] for m in modules} >= {
        "auth", "feed", "inspections", "review", "stats", "live", "ops"}
    store = Store(f"sqlite:///{tmp_path / 'line.db'}", tmp_path / "data", StoreConfig())
    try:
        app = create_app(store, LineStatus)
        names = []
        for module in modules:
            assert isinstance(getattr(module, "router", None), APIRouter), f"{module.__name__} has no router"
            own = [r for r in module.router.routes if isinstance(r, APIRoute)]
            assert own, f"{module.__name__} has no routes"
            for route in own:
                params = {p: "1" for p in route.param_convertors}
                # Found by name on the app, at the router's own path: mounted, and not shadowed by
                # a route of the same name elsewhere.
                try:
                    served = app.url_path_for(route.name, **params)
                except NoMatchFound:
                    served = None
                assert served == route.url_path_for(route.name, **params), \
                    f"{module.__name__}: {route.path} ({route.name}) is not mounted"
                names.append(route.name)
        assert len(names) == len(set(names)), "route names repeat across router modules"
    finally:
        store.close()
