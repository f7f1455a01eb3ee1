"""Map builders: data in, a folium map with the point and the outlines out."""

from maps.assets import render_fragment
from maps.builders import Boundary, incident_map, picker_map

MICRO = {
    "type": "Polygon",
    "coordinates": [
        [[104.0, 30.605], [104.01, 30.605], [104.01, 30.61], [104.0, 30.61], [104.0, 30.605]]
    ],
}
GRID = {
    "type": "Polygon",
    "coordinates": [
        [[104.0, 30.6], [104.01, 30.6], [104.01, 30.61], [104.0, 30.61], [104.0, 30.6]]
    ],
}


def script_of(fmap) -> str:
    return str(render_fragment(fmap).script)


def test_incident_map_has_the_point_lat_first_and_the_outlines_lon_first():
    fmap = incident_map(
        (104.005, 30.607),
        [Boundary("G1", "grid", GRID, "grid"), Boundary("M11", "micro", MICRO)],
        label="#7",
    )
    script = script_of(fmap)
    assert "L.circleMarker(\n                [30.607, 104.005]" in script
    assert "[104.0, 30.605], [104.01, 30.605]" in script  # the micro-grid
    assert "[104.01, 30.6], [104.01, 30.61]" in script  # the grid
    assert '"dashArray": "6 4"' in script  # grids are dashed
    assert "[[30.6, 104.0], [30.61, 104.01]]" in script  # fitted to both


def test_names_cannot_break_out_of_the_tooltip_template():
    fmap = incident_map((104.005, 30.607), [Boundary("M", "a`${alert(1)}</div>", MICRO)])
    script = script_of(fmap)
    assert "${alert" not in script and "`${" not in script
    assert "a&#96;&#36;{alert(1)}&lt;/div&gt;" in script


def test_picker_map_fills_the_named_inputs_and_shows_the_initial_point():
    fmap = picker_map(
        [Boundary("M11", "micro", MICRO)], point=(104.005, 30.607), inputs=("x", "y", "c")
    )
    script = script_of(fmap)
    assert 'getElementById("x")' in script and 'getElementById("c")' in script
    assert "place([30.607, 104.005])" in script
    assert f"var map = {fmap.get_name()};" in script


def test_picker_map_without_a_point_fits_the_boundaries():
    script = script_of(picker_map([Boundary("G1", "grid", GRID, "scope")]))
    assert "place([" not in script.split("function set")[0]
    assert "fitBounds(\n                [[30.6, 104.0], [30.61, 104.01]]" in script
