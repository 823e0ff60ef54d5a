"""Default parameters that meters hold: saving a new one writes no meter by itself; the page says
which dispatch brings it to the meters and links to the batch page to send it from there."""

from __future__ import annotations

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Command
from tests.app.support import Site

SETTINGS_HINT = (
    "Meters keep the old alarm amounts and overload threshold until a settings dispatch writes "
    "the new ones. Send it under Batch control (operation: settings dispatch) when you are "
    "ready; meters and accounts with their own values keep them."
)
PRICE_HINT = (
    "Meters on the default tariff keep the old prices until a price dispatch writes the new "
    "ones. Send it under Batch control (operation: price dispatch) when you are ready."
)


def on_page(site: Site) -> AppTest:
    return site.open_app("admin").switch_page("screens/parameters.py").run()


def command_count(site: Site) -> int:
    with unit_of_work(site.url) as session:
        return session.scalar(select(func.count()).select_from(Command)) or 0


def test_a_new_overload_threshold_points_to_the_settings_dispatch(site: Site) -> None:
    before = command_count(site)
    at = on_page(site)

    at.text_input(key="parameters_overload_kw").input("25")
    at.button(key="parameters_save").click().run()

    assert [s.value for s in at.success] == ["Parameters saved."]
    assert [i.value for i in at.info] == [SETTINGS_HINT]
    (link,) = at.get("page_link")
    assert link.proto.label == "Open Batch control"
    assert command_count(site) == before  # not one of the site's meters written

    # A default no meter holds says nothing more; nor does the next page run.
    at.text_input(key="parameters_hoarding_limit").input("20000")
    at.button(key="parameters_save").click().run()
    assert [s.value for s in at.success] == ["Parameters saved."]
    assert not at.info and not at.get("page_link")


def test_a_new_default_tariff_and_alarm_amount_point_to_both_dispatches(site: Site) -> None:
    at = on_page(site)

    at.selectbox(key="parameters_default_tariff_id").set_value(None)
    at.text_input(key="parameters_alarm2_amount").input("10")
    at.button(key="parameters_save").click().run()

    assert [i.value for i in at.info] == [PRICE_HINT, SETTINGS_HINT]
    assert len(at.get("page_link")) == 1
