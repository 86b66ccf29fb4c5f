"""Small helpers shared by tests."""

from schema.routes import Routes


def override(routes: Routes, name: str, **changes: object) -> None:
    """Replace route ``name`` with a copy carrying ``changes`` (producer and worker share it)."""
    routes.by_name[name] = routes.by_name[name].model_copy(update=changes)
