"""The donor view draws an imported migration history on the body map: an arrow per migrating clone between the
sampled sites, the clones' dots beside their sites, rings on the sequenced regions; a PI gets the upload form."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from sqlmodel import select
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from biobank.db.engine import session_scope
from biobank.domain.sites import body_position
from biobank.models import User
from biobank.services import results
from dashboards.widgets.bodymap import clone_dots, migration_arrows, sequenced_rings
from tests.support.apptest import assert_no_exception, make_app

GRAPH = b"source target clones count\nBreast_right Liver 3;5 2\nLiver Brain 5 1\n"


def chart_data(at: Any) -> list[dict[str, Any]]:
    """Every row of every dataset of the page's Vega-Lite charts: inline in the spec, or (Altair's named datasets)
    sent beside it as Arrow."""
    rows: list[dict[str, Any]] = []
    for node in at.get("vega_lite_chart"):
        spec = json.loads(node.proto.spec)
        for values in spec.get("datasets", {}).values():
            rows.extend(values)
        for dataset in node.proto.datasets:
            rows.extend(convert_arrow_bytes_to_pandas_df(dataset.data.data).to_dict("records"))
    return rows


@pytest.mark.demo(2)
def test_the_donor_view_draws_the_imported_migrations_as_arrows_between_sites(db_url, engine):
    with session_scope(engine) as session:
        pi = session.exec(select(User).where(User.username == "pi")).one()
        code = results.import_result(session, actor=pi, donor_code="RA-0001", tool="metient", kind="migration_graph",
                                     file_name="metient.graph", content=GRAPH).code
    at = make_app(db_url, page="donor")
    at.session_state["username"] = "pi"
    at.run()
    at.selectbox(key="donor_code").set_value("RA-0001").run()
    assert_no_exception(at)
    assert at.selectbox(key="donor_result_drawn").value == code
    rows = chart_data(at)
    arrows = [r for r in rows if "route" in r]
    assert {(r["route"], r["clone"], r["count"]) for r in arrows} == {
        ("Breast_right → Liver", "3", 2), ("Breast_right → Liver", "5", 2), ("Liver → Brain", "5", 1),
    }
    liver = body_position("LIVER")
    assert all(abs(r["x2"] - liver[0]) < 0.02 and abs(r["y2"] - liver[1]) < 0.02
               for r in arrows if r["target"] == "Liver")
    tables = [d.value for d in at.dataframe]
    listed = next(t for t in tables if "tool" in t.columns)
    assert listed["code"].tolist() == [code] and listed["migrations"].tolist() == [3]
    edges = next(t for t in tables if "from" in t.columns)
    assert edges.to_dict("records") == [{"from": "Breast_right", "to": "Liver", "migrations": 2, "clones": "3, 5"},
                                        {"from": "Liver", "to": "Brain", "migrations": 1, "clones": "5"}]
    assert "donor_result_tool" in [s.key for s in at.selectbox], "a PI gets the upload form"

    at.selectbox(key="donor_result_drawn").set_value("(none)").run()
    assert not [r for r in chart_data(at) if "route" in r], "no result chosen: no arrows"

    tech = make_app(db_url, page="donor")
    tech.session_state["username"] = "tech"
    tech.run()
    assert_no_exception(tech)
    assert "donor_result_tool" not in [s.key for s in tech.selectbox], "a technician does not"


def test_arrows_dots_and_rings_sit_on_the_sites_they_name():
    parsed = {
        "sites": [{"key": "Breast_right", "site_code": "BREAST", "laterality": "right"},
                  {"key": "Lung_left", "site_code": "LUNG", "laterality": "left"}],
        "edges": [{"source": "Breast_right", "target": "Lung_left", "clones": ["a", "b"], "count": 1}],
        "presence": [{"clone": "a", "site": "Lung_left", "sample": None, "value": 1.0}],
    }
    arrows = migration_arrows(parsed)
    breast, lung = body_position("BREAST", "right"), body_position("LUNG", "left")
    assert arrows["clone"].tolist() == ["a", "b"]
    centre_x = (arrows["x"].mean(), arrows["x2"].mean())
    assert centre_x == pytest.approx((breast[0], lung[0]))
    assert arrows["x"].nunique() == 2, "two clones on one route are drawn side by side"
    dots = clone_dots(parsed)
    assert dots.iloc[0]["x"] > lung[0] and dots.iloc[0]["y"] == pytest.approx(lung[1], abs=0.02)
    sites = pd.DataFrame([{"sampling_site": "L05-A", "site_code": "LUNG", "laterality": "left"},
                          {"sampling_site": "L01-A", "site_code": "BREAST", "laterality": "right"}])
    rings = sequenced_rings(sites, ["L05-A"])
    assert rings.to_dict("records") == [{"x": lung[0], "y": lung[1], "regions": "L05-A"}]
