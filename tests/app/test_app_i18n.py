"""English and Simplified Chinese: every string exists in both, and the switch changes pages."""

from __future__ import annotations

import string

from app.i18n import STRINGS
from tests.app.support import Site


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_string_with_the_same_fields() -> None:
    assert STRINGS["zh"].keys() == STRINGS["en"].keys()
    for key, english in STRINGS["en"].items():
        assert fields(STRINGS["zh"][key]) == fields(english), key


def test_the_overview_in_chinese(site: Site) -> None:
    at = site.open_app("cashier")

    at.radio(key="lang").set_value("zh").run()

    assert at.title[0].value == "电表总览"
    assert "已拉闸电表" in [m.label for m in at.metric]
    assert "当前用户：**cashier**（收银员）" in [m.value for m in at.sidebar.markdown]
