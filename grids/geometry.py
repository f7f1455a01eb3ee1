"""Moving polygons between shapely (the toolkit's currency) and GEOS (the ORM's)."""

import shapely
from django.contrib.gis.geos import GEOSGeometry, MultiPolygon
from shapely.geometry.base import BaseGeometry

SRID = 4326


def to_geos(geom: BaseGeometry) -> MultiPolygon:
    """A 2D GEOS MultiPolygon in EPSG:4326 from a shapely polygon or multipolygon."""
    geom = shapely.force_2d(geom)
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    if geom.geom_type != "MultiPolygon":
        raise ValueError(f"expected a polygon, got {geom.geom_type}")
    return GEOSGeometry(memoryview(shapely.to_wkb(geom)), srid=SRID)


def to_shapely(geom: GEOSGeometry) -> BaseGeometry:
    return shapely.from_wkb(bytes(geom.wkb))


def same_shape(a: BaseGeometry, b: BaseGeometry, tolerance: float = 1e-9) -> bool:
    """True when two polygons are the same shape (vertex order and start point aside)."""
    if shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance):
        return True
    return bool(shapely.equals(a, b))
