"""The screens the router offers: each module in app/screens/ that declares a `SCREEN`.

A new page is one new file in app/screens/ with a `SCREEN` and a `render()`; the router finds it,
so pages can be added without touching the router.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache

SECTIONS = ("section.operate", "section.accounts", "section.reports", "section.settings")


@dataclass(frozen=True)
class Screen:
    module: str  # file name in app/screens/ without .py
    url_path: str  # the page's address, unique among the screens
    title_key: str  # i18n key of the title in the navigation
    permission: str  # what an operator needs to see it (services check again)
    icon: str
    section: str = "section.operate"
    order: int = 100

    @property
    def script(self) -> str:
        return f"screens/{self.module}.py"


@lru_cache(maxsize=1)
def screens() -> tuple[Screen, ...]:
    import app.screens as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"app.screens.{info.name}")
        screen = getattr(module, "SCREEN", None)
        if isinstance(screen, Screen):
            found.append(screen)
    paths = [screen.url_path for screen in found]
    clashes = sorted({path for path in paths if paths.count(path) > 1})
    if clashes:
        raise ValueError(f"two screens share an address: {clashes}")
    return tuple(sorted(found, key=lambda s: (SECTIONS.index(s.section), s.order, s.module)))
