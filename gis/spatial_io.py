"""Reading and writing spatial files (GeoJSON, GeoPackage, Shapefile, CSV) through pyogrio.

Framework-free (no Django): pyogrio, geopandas, shapely, numpy and the standard library; the
coordinate conversions come from :mod:`gis.crs`.

Reading (:func:`read_features`) always returns a GeoDataFrame in WGS 84 lon/lat (EPSG:4326)
with its geometry in the column ``"geometry"``, plus what was assumed on the way (source
coordinate system, text encoding) and human-readable warnings for the caller to show.
Geometries keep their Z values (the caller decides what to do with 3D input).

Writing (:func:`write_features`) converts from WGS 84 to the requested system first. Format
notes:

* GeoJSON is written by GDAL with ``SIGNIFICANT_FIGURES=17``, so coordinates and real
  attributes round-trip exactly, except that GDAL trims 17-digit "noise" tails (116.4000000000001
  is written as 116.4: a change below 1e-13 degree). ``COORDINATE_PRECISION`` is left unset on
  purpose: it counts decimals, which loses digits of small values. ``WRITE_NON_FINITE_VALUES`` is
  left at NO so the file stays valid JSON (NaN attributes become null).
* GeoPackage stores binary doubles: exact. Writing to an existing file adds the layer (or
  replaces a layer of the same name).
* Shapefile is written in UTF-8 with a ``.cpg`` sidecar. DBF field names are limited to 10 bytes
  (a Chinese character takes 3): longer names are refused rather than silently truncated. The
  names used by weige (code, name, parent, kind, households, population, valid_from, valid_to)
  all fit. Geometry doubles are exact; DBF real numbers are stored as text with 15 decimals.
  Stale sidecars (.prj, .cpg, ...) of a previous file of the same name are removed first.
* CSV is written by this module, not by GDAL, because GDAL's CSV writer rounds WKT and real
  numbers to 15 significant digits: a ``wkt`` column (shortest exact representation of every
  double, Z kept) followed by the attribute columns, UTF-8 with a byte-order mark (so that Excel
  opens Chinese text correctly), plus a ``.csvt`` sidecar with the column types so that GDAL/QGIS
  and :func:`read_features` restore integers and reals. CSV files carry no coordinate system.

GCJ-02 and BD-09 have no EPSG code: files written in them declare no coordinate system (no
``.prj``, no GeoJSON ``crs`` member, undefined GeoPackage SRS) rather than a false EPSG:4326.
"""

from __future__ import annotations

import codecs
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from gis.crs import CRSError, parse_crs, transform_geometries

__all__ = [
    "FORMATS",
    "ReadResult",
    "SpatialFileError",
    "read_features",
    "write_features",
]

#: Formats accepted by :func:`write_features` (``fmt``) and recognised by :func:`read_features`.
FORMATS: tuple[str, ...] = ("geojson", "gpkg", "shp", "csv")

_SUFFIXES = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".shp": "shp",
    ".csv": "csv",
}
_FMT_ALIASES = {
    "geojson": "geojson",
    "json": "geojson",
    "gpkg": "gpkg",
    "geopackage": "gpkg",
    "shp": "shp",
    "shapefile": "shp",
    "esri shapefile": "shp",
    "csv": "csv",
}
_DRIVERS = {"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile"}
_FORMAT_NAMES = {"geojson": "GeoJSON", "gpkg": "GeoPackage", "shp": "Shapefile", "csv": "CSV"}

_SHAPEFILE_SIDECARS = (
    ".shp",
    ".shx",
    ".dbf",
    ".prj",
    ".cpg",
    ".qix",
    ".sbn",
    ".sbx",
    ".fix",
    ".qmd",
    ".shp.xml",
)
_SHP_FIELD_NAME_BYTES = 10

_WKT_COLUMNS = ("geometry", "wkt", "geom", "the_geom")
_LON_COLUMNS = ("lon", "lng", "long", "longitude", "x", "经度")
_LAT_COLUMNS = ("lat", "latitude", "y", "纬度")

# How much of a .dbf / .csv is sampled to guess its text encoding.
_SNIFF_BYTES = 16 * 1024 * 1024
_MAX_LISTED_ROWS = 10


class SpatialFileError(ValueError):
    """A spatial file cannot be read or written; the message names the file and the reason."""


@dataclass
class ReadResult:
    """What :func:`read_features` read.

    ``frame``: GeoDataFrame in EPSG:4326 (lon/lat degrees, WGS 84 / CGCS2000), geometry column
    ``"geometry"``, Z values kept. ``source_crs``: the system the coordinates were taken to be in
    (a :func:`gis.crs.parse_crs` value, e.g. ``"wgs84"``, ``"gcj02"``, ``"EPSG:4549"``, or the
    PROJ description of a declared system without EPSG code). ``encoding``: the text encoding
    used (e.g. ``"UTF-8"``, ``"GB18030"``). ``warnings``: English sentences for the user.
    ``layer``: the layer read (None for CSV).
    """

    frame: gpd.GeoDataFrame
    source_crs: str
    encoding: str
    warnings: list[str] = field(default_factory=list)
    layer: str | None = None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_features(
    path: str | Path,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    crs: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
) -> ReadResult:
    """Read a GeoJSON (.geojson/.json), GeoPackage (.gpkg), Shapefile (.shp) or CSV (.csv).

    ``layer``: the layer to read; required when a GeoPackage has several (the error lists them).
    ``encoding``: text encoding of the attributes, overriding a Shapefile's ``.cpg``. Without
    either, a Shapefile's or CSV's text is tried as UTF-8, then GB18030 (a superset of GBK), and
    a warning says which was used.
    ``crs``: the coordinate system the coordinates are in (any :func:`gis.crs.parse_crs` value:
    ``"wgs84"``, ``"cgcs2000"``, ``"gcj02"``, ``"bd09"``, ``"EPSG:n"``), whatever the file
    declares; without it the declared system is used, and a file declaring none (no ``.prj``,
    any CSV) is assumed to be WGS 84 lon/lat, with a warning.
    ``lon_field``/``lat_field`` (CSV only): the coordinate columns when there is no ``wkt`` /
    ``geometry`` column and the names are not one of lon/lng/longitude/x/经度 and
    lat/latitude/y/纬度 (case-insensitive). A CSV's other columns are strings unless a ``.csvt``
    sidecar gives their types (as :func:`write_features` writes); the lon/lat columns are kept,
    the WKT column is not.

    Features whose geometry is missing or unreadable get ``None`` (with a warning naming the
    rows). An empty file gives an empty frame. Raises :class:`SpatialFileError` (with the path
    and the reason) for a missing file, an unsupported or unreadable format, an unknown or
    ambiguous layer, a CSV without geometry columns, or coordinates that are not lon/lat degrees
    when no coordinate system was declared or given; :class:`gis.crs.CRSError` for a bad ``crs``.
    """
    p = Path(path)
    fmt = _format_of_path(p)
    target = parse_crs(crs) if crs is not None else None
    if not p.exists():
        raise SpatialFileError(f"{p}: file not found")
    if not p.is_file():
        raise SpatialFileError(f"{p}: not a file")
    notes: list[str] = []

    if p.stat().st_size == 0:
        notes.append("file is empty")
        return ReadResult(
            frame=_empty_frame(),
            source_crs=target or "wgs84",
            encoding=encoding or "UTF-8",
            warnings=notes,
            layer=None,
        )

    if fmt == "csv":
        if layer is not None:
            raise SpatialFileError(f"{p}: a CSV file has no layers (layer={layer!r} was given)")
        text_encoding, passed = _csv_encoding(p, encoding, notes)
        frame = _read_csv(p, passed, lon_field, lat_field, notes)
        chosen_layer = None
    else:
        if lon_field is not None or lat_field is not None:
            raise SpatialFileError(f"{p}: lon_field/lat_field only apply to CSV files")
        chosen_layer = _pick_layer(p, layer, fmt)
        if fmt == "shp":
            text_encoding, passed = _shapefile_encoding(p, encoding, notes)
        else:
            text_encoding, passed = (encoding or "UTF-8"), encoding
        frame = _read_ogr(p, fmt, chosen_layer, passed, notes)

    frame, source = _to_storage_crs(frame, p, target, notes)
    return ReadResult(
        frame=frame,
        source_crs=source,
        encoding=text_encoding,
        warnings=notes,
        layer=chosen_layer,
    )


def _format_of_path(p: Path) -> str:
    suffix = p.suffix.lower()
    if suffix not in _SUFFIXES:
        accepted = ", ".join(sorted(_SUFFIXES))
        raise SpatialFileError(
            f"{p}: unsupported file type {p.suffix or '(no extension)'!r}; expected one of "
            f"{accepted}"
        )
    return _SUFFIXES[suffix]


def _empty_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"geometry": gpd.GeoSeries([], crs="EPSG:4326")}, crs="EPSG:4326")


def _pick_layer(p: Path, layer: str | None, fmt: str) -> str:
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(p)]
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise SpatialFileError(f"{p}: cannot read as {_FORMAT_NAMES[fmt]}: {exc}") from None
    listed = ", ".join(repr(name) for name in layers) or "(none)"
    if layer is not None:
        if layer not in layers:
            raise SpatialFileError(f"{p}: no layer {layer!r}; layers in this file: {listed}")
        return layer
    if len(layers) == 1:
        return layers[0]
    if not layers:
        raise SpatialFileError(f"{p}: the file contains no layers")
    raise SpatialFileError(
        f"{p}: the file has {len(layers)} layers, choose one with layer=: {listed}"
    )


def _read_ogr(
    p: Path, fmt: str, layer: str, encoding: str | None, notes: list[str]
) -> gpd.GeoDataFrame:
    options: dict[str, Any] = {}
    if fmt == "geojson":
        # Keep ISO date strings as strings, as in CSV (GDAL would guess date types otherwise).
        options["DATE_AS_STRING"] = "YES"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pyogrio.read_dataframe(
                p, layer=layer, encoding=encoding, on_invalid="warn", **options
            )
    except Exception as exc:
        raise SpatialFileError(f"{p}: cannot read as {_FORMAT_NAMES[fmt]}: {exc}") from None
    notes.extend(_library_messages(caught))
    if not isinstance(frame, gpd.GeoDataFrame):
        notes.append(f"layer {layer!r} has no geometry column")
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([None] * len(frame)))
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    missing = np.flatnonzero(frame.geometry.isna().to_numpy())
    if missing.size:
        notes.append(f"{missing.size} features have no geometry ({_rows_text(missing)})")
    return frame


def _library_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings raised by GDAL/pyogrio/shapely while reading, as notes for the user."""
    return [str(w.message) for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))]


# --- text encodings ---------------------------------------------------------------------------


def _find_sidecar(p: Path, ext: str) -> Path | None:
    """The file next to ``p`` with the same stem and extension ``ext`` (any letter case)."""
    exact = p.with_suffix(ext)
    if exact.exists():
        return exact
    stem = p.stem
    try:
        for candidate in p.parent.iterdir():
            if candidate.stem == stem and candidate.suffix.lower() == ext:
                return candidate
    except OSError:
        return None
    return None


def _codec_for_label(label: str) -> str | None:
    """Python/iconv codec name for a .cpg label such as "UTF-8", "GBK", "936", "ANSI 936"."""
    text = label.strip().strip("\x00").strip()
    digits = re.fullmatch(r"(?:ANSI\s*|CP\s*)?(\d+)", text, flags=re.IGNORECASE)
    if digits:
        number = int(digits.group(1))
        if number == 65001:
            return "UTF-8"
        if number in (936, 54936):
            return "GB18030"
        text = f"cp{number}"
    try:
        name = codecs.lookup(text).name
    except LookupError:
        return None
    if name == "utf-8":
        return "UTF-8"
    if name in ("gbk", "gb2312", "gb18030"):
        return "GB18030"  # superset: decodes GBK/GB2312 identically
    return name


def _dbf_text_sample(dbf: Path) -> bytes:
    """Bytes of the field names and character fields of a .dbf, one value per line."""
    with dbf.open("rb") as fh:
        header = fh.read(32)
        if len(header) < 32:
            return b""
        n_records = int.from_bytes(header[4:8], "little")
        header_len = int.from_bytes(header[8:10], "little")
        record_len = int.from_bytes(header[10:12], "little")
        descriptors = fh.read(max(0, header_len - 32))
        parts: list[bytes] = []
        char_fields: list[tuple[int, int]] = []
        offset = 1  # deletion flag
        for start in range(0, len(descriptors) - 31, 32):
            desc = descriptors[start : start + 32]
            if desc[0] == 0x0D:
                break
            parts.append(desc[:11].split(b"\x00", 1)[0])
            ftype = chr(desc[11])
            flen = desc[16]
            if ftype == "C":
                flen += desc[17] << 8  # long character fields use the "decimal count" byte
                char_fields.append((offset, flen))
            offset += flen
        if record_len <= 0 or not char_fields:
            return b"\n".join(parts)
        fh.seek(header_len)
        max_records = min(n_records, max(1, _SNIFF_BYTES // record_len))
        data = fh.read(max_records * record_len)
    for start in range(0, len(data) - record_len + 1, record_len):
        record = data[start : start + record_len]
        for off, length in char_fields:
            value = record[off : off + length].rstrip(b" \x00")
            if value:
                parts.append(value)
    return b"\n".join(parts)


def _guess_encoding(sample: bytes, *, truncated: bool) -> str | None:
    """Return "ascii", "UTF-8" or "GB18030" for text bytes, None when neither decodes."""
    if sample.isascii():
        return "ascii"
    for name in ("UTF-8", "GB18030"):
        decoder = codecs.getincrementaldecoder(name)("strict")
        try:
            decoder.decode(sample, final=not truncated)
        except UnicodeDecodeError:
            continue
        return name
    return None


def _shapefile_encoding(p: Path, encoding: str | None, notes: list[str]) -> tuple[str, str | None]:
    """(encoding to report, encoding to pass to pyogrio) for a shapefile."""
    if encoding is not None:
        return encoding, encoding
    cpg = _find_sidecar(p, ".cpg")
    if cpg is not None:
        label = cpg.read_bytes()[:100].decode("ascii", "replace").strip()
        codec = _codec_for_label(label)
        if codec is not None:
            return codec, codec
        notes.append(f"unknown encoding {label!r} in {cpg.name}; guessing from the text instead")
    dbf = _find_sidecar(p, ".dbf")
    if dbf is None:
        return "UTF-8", None  # no attributes at all
    sample = _dbf_text_sample(dbf)
    guess = _guess_encoding(sample, truncated=False)
    reason = "no .cpg file" if cpg is None else f"unusable {cpg.name}"
    if guess == "ascii":
        return "UTF-8", "UTF-8"
    if guess == "UTF-8":
        notes.append(f"{reason}; text decoded as UTF-8")
        return "UTF-8", "UTF-8"
    if guess == "GB18030":
        notes.append(f"{reason}; text decoded as GBK (GB18030)")
        return "GB18030", "GB18030"
    raise SpatialFileError(
        f"{p}: {reason} and the text of {dbf.name} is neither UTF-8 nor GBK/GB18030; "
        "give its encoding explicitly (encoding=...)"
    )


def _csv_encoding(p: Path, encoding: str | None, notes: list[str]) -> tuple[str, str | None]:
    if encoding is not None:
        return encoding, encoding
    with p.open("rb") as fh:
        sample = fh.read(_SNIFF_BYTES + 1)
    truncated = len(sample) > _SNIFF_BYTES
    sample = sample[:_SNIFF_BYTES]
    if sample.startswith(codecs.BOM_UTF8):
        return "UTF-8", None  # GDAL skips the byte-order mark
    guess = _guess_encoding(sample, truncated=truncated)
    if guess in ("ascii", "UTF-8"):
        return "UTF-8", None
    if guess == "GB18030":
        notes.append("CSV text is not UTF-8; decoded as GBK (GB18030)")
        return "GB18030", "GB18030"
    raise SpatialFileError(
        f"{p}: the text is neither UTF-8 nor GBK/GB18030; give its encoding explicitly "
        "(encoding=...)"
    )


# --- CSV --------------------------------------------------------------------------------------


def _find_column(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {str(c).strip().lower(): c for c in columns}
    for name in wanted:
        if name in lowered:
            return lowered[name]
    return None


def _rows_text(positions: np.ndarray) -> str:
    """Human-readable 1-based row numbers (features in file order, CSV header excluded)."""
    rows = ", ".join(str(int(i) + 1) for i in positions[:_MAX_LISTED_ROWS])
    extra = len(positions) - _MAX_LISTED_ROWS
    more = f" and {extra} more" if extra > 0 else ""
    return f"data rows {rows}{more}"


def _read_csv(
    p: Path,
    encoding: str | None,
    lon_field: str | None,
    lat_field: str | None,
    notes: list[str],
) -> gpd.GeoDataFrame:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = pyogrio.read_dataframe(
                p, encoding=encoding, read_geometry=False, EMPTY_STRING_AS_NULL="YES"
            )
    except Exception as exc:
        raise SpatialFileError(f"{p}: cannot read as CSV: {exc}") from None
    notes.extend(_library_messages(caught))
    table = pd.DataFrame(table)
    columns = [str(c) for c in table.columns]

    if lon_field is not None or lat_field is not None:
        if lon_field is None or lat_field is None:
            raise SpatialFileError(f"{p}: give both lon_field and lat_field")
        missing = [c for c in (lon_field, lat_field) if c not in columns]
        if missing:
            raise SpatialFileError(f"{p}: no column {missing[0]!r}; columns: {', '.join(columns)}")
        return _points_from_columns(table, lon_field, lat_field, notes)

    wkt_column = _find_column(columns, _WKT_COLUMNS)
    if wkt_column is not None:
        text = table[wkt_column].astype(object).where(table[wkt_column].notna(), None)
        values = np.array(
            [v.strip() if isinstance(v, str) and v.strip() else None for v in text], dtype=object
        )
        geoms = shapely.from_wkt(values, on_invalid="ignore")
        bad = np.flatnonzero(pd.isna(geoms) & pd.notna(values))
        if bad.size:
            notes.append(
                f"{bad.size} rows have an unreadable WKT in column {wkt_column!r} "
                f"({_rows_text(bad)}); their geometry is empty"
            )
        attrs = table.drop(columns=[wkt_column])
        return gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(geoms, index=attrs.index))

    lon_column = _find_column(columns, _LON_COLUMNS)
    lat_column = _find_column(columns, _LAT_COLUMNS)
    if lon_column is None or lat_column is None:
        raise SpatialFileError(
            f"{p}: no geometry columns: expected a WKT column (geometry or wkt) or longitude and "
            "latitude columns (lon/lng/longitude/x and lat/latitude/y); columns found: "
            f"{', '.join(columns) or '(none)'}; name them with lon_field=/lat_field="
        )
    return _points_from_columns(table, lon_column, lat_column, notes)


def _points_from_columns(
    table: pd.DataFrame, lon_column: str, lat_column: str, notes: list[str]
) -> gpd.GeoDataFrame:
    lon = pd.to_numeric(table[lon_column], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(table[lat_column], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat)
    blank = table[lon_column].isna().to_numpy() & table[lat_column].isna().to_numpy()
    blank |= (table[lon_column].astype(str).str.strip() == "").to_numpy() & (
        table[lat_column].astype(str).str.strip() == ""
    ).to_numpy()
    bad = np.flatnonzero(~ok & ~blank)
    if bad.size:
        notes.append(
            f"{bad.size} rows have non-numeric coordinates in columns {lon_column!r}/"
            f"{lat_column!r} ({_rows_text(bad)}); their geometry is empty"
        )
    geoms = np.full(len(table), None, dtype=object)
    geoms[ok] = shapely.points(lon[ok], lat[ok])
    return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms, index=table.index))


# --- coordinate systems -----------------------------------------------------------------------


def _declared_name(declared: pyproj.CRS | None) -> str | None:
    """parse_crs-style name of a declared CRS, or its PROJ description without EPSG code."""
    if declared is None:
        return None
    authority = declared.to_authority(min_confidence=90)
    if authority is not None:
        auth, code = authority
        if auth.upper() == "OGC" and code.upper() == "CRS84":
            return "wgs84"
        if auth.upper() == "EPSG":
            try:
                return parse_crs(f"EPSG:{code}")
            except CRSError:
                pass
    return declared.name or declared.to_string()


_SAME_AS_STORAGE = ("wgs84", "cgcs2000")


def _to_storage_crs(
    frame: gpd.GeoDataFrame, p: Path, target: str | None, notes: list[str]
) -> tuple[gpd.GeoDataFrame, str]:
    declared = frame.crs
    declared_name = _declared_name(declared)
    assumed = False
    if target is not None:
        source = target
        if (
            declared_name is not None
            and declared_name != target
            and not (declared_name in _SAME_AS_STORAGE and target in _SAME_AS_STORAGE)
        ):
            notes.append(
                f"the file declares {declared_name} but crs={target!r} was given; "
                f"coordinates taken as {target}"
            )
        if target in ("gcj02", "bd09"):
            converted = transform_geometries(frame.geometry.values, target, "wgs84", keep_z=True)
            frame = _replace_geometry(frame, converted)
        elif target not in _SAME_AS_STORAGE:
            frame = _reproject(frame.set_crs(target, allow_override=True), p, target)
    elif declared is None:
        source = "wgs84"
        assumed = True
        notes.append("no coordinate system declared; assumed WGS 84 longitude/latitude (EPSG:4326)")
    else:
        source = declared_name or "unknown"
        if source not in _SAME_AS_STORAGE:
            frame = _reproject(frame, p, source)
    frame = frame.set_crs("EPSG:4326", allow_override=True)
    _check_lonlat_range(frame, p, source, assumed, notes)
    return frame, source


def _replace_geometry(frame: gpd.GeoDataFrame, geoms: Any) -> gpd.GeoDataFrame:
    out = frame.copy()
    out["geometry"] = gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs)
    return out


def _reproject(frame: gpd.GeoDataFrame, p: Path, source: str) -> gpd.GeoDataFrame:
    try:
        return frame.to_crs("EPSG:4326")
    except Exception as exc:
        raise SpatialFileError(f"{p}: cannot convert from {source} to WGS 84: {exc}") from None


def _check_lonlat_range(
    frame: gpd.GeoDataFrame, p: Path, source: str, assumed: bool, notes: list[str]
) -> None:
    if len(frame) == 0:
        return
    bounds = shapely.bounds(frame.geometry.values)
    present = ~np.isnan(bounds[:, 0])
    with np.errstate(invalid="ignore"):
        inside = (
            (bounds[:, 0] >= -180)
            & (bounds[:, 2] <= 180)
            & (bounds[:, 1] >= -90)
            & (bounds[:, 3] <= 90)
        )
    bad = np.flatnonzero(present & ~inside)
    if not bad.size:
        return
    b = bounds[bad]
    extent = (
        f"x {np.nanmin(b[:, 0]):.6g}..{np.nanmax(b[:, 2]):.6g}, "
        f"y {np.nanmin(b[:, 1]):.6g}..{np.nanmax(b[:, 3]):.6g}"
    )
    if assumed:
        swapped = bool(np.all(np.abs(b[:, [1, 3]]) <= 180) and np.all(np.abs(b[:, [0, 2]]) <= 90))
        hint = (
            "longitude and latitude look swapped"
            if swapped
            else "they look projected: give the coordinate system, e.g. crs='EPSG:4549'"
        )
        raise SpatialFileError(
            f"{p}: {bad.size} features have coordinates outside longitude -180..180 / latitude "
            f"-90..90 ({extent}) and the file declares no coordinate system; {hint}"
        )
    notes.append(
        f"{bad.size} features have coordinates outside longitude -180..180 / latitude -90..90 "
        f"after conversion from {source} ({extent}; {_rows_text(bad)})"
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_features(
    frame: gpd.GeoDataFrame,
    path: str | Path,
    *,
    fmt: str,
    crs: str = "wgs84",
    layer: str | None = None,
) -> Path:
    """Write ``frame`` (WGS 84 lon/lat; a frame in another declared CRS is first converted to
    EPSG:4326, one without CRS is taken as EPSG:4326) to ``path`` as ``fmt`` (``"geojson"``,
    ``"gpkg"``, ``"shp"`` or ``"csv"``), with coordinates converted to ``crs`` (any
    :func:`gis.crs.parse_crs` value; GCJ-02/BD-09 via :mod:`gis.crs`). Z values are kept.

    ``layer``: layer name (GeoPackage: defaults to the file stem; other layers of an existing
    GeoPackage are kept, one of the same name is replaced; GeoJSON: its ``name``). See the module
    docstring for per-format precision and encoding. Returns the path written.

    Raises :class:`SpatialFileError` (path and reason) for an unknown format, a missing
    directory, Shapefile field names over 10 bytes, a CSV attribute named ``wkt``, or a write
    failure; :class:`gis.crs.CRSError` for a bad ``crs``.
    """
    p = Path(path)
    key = str(fmt).strip().lower().lstrip(".")
    if key not in _FMT_ALIASES:
        raise SpatialFileError(
            f"{p}: cannot write format {fmt!r}; expected one of {', '.join(FORMATS)}"
        )
    fmt_n = _FMT_ALIASES[key]
    target = parse_crs(crs)
    if not isinstance(frame, gpd.GeoDataFrame) or not _has_active_geometry(frame):
        raise SpatialFileError(f"{p}: cannot write: the frame has no geometry column")
    if not p.parent.is_dir():
        raise SpatialFileError(f"{p}: cannot write: directory {p.parent} does not exist")

    out = _from_storage_crs(frame, p, target)
    if fmt_n == "shp":
        _check_shapefile_names(out, p)
    try:
        if fmt_n == "csv":
            _write_csv(out, p)
        else:
            _write_ogr(out, p, fmt_n, layer)
    except SpatialFileError:
        raise
    except Exception as exc:
        raise SpatialFileError(f"{p}: cannot write as {_FORMAT_NAMES[fmt_n]}: {exc}") from None
    return p


def _has_active_geometry(frame: gpd.GeoDataFrame) -> bool:
    try:
        frame.geometry  # noqa: B018 - raises AttributeError without an active geometry column
    except AttributeError:
        return False
    return True


def _from_storage_crs(frame: gpd.GeoDataFrame, p: Path, target: str) -> gpd.GeoDataFrame:
    """Copy of ``frame`` with coordinates in ``target`` and its CRS declared (None for GCJ-02 and
    BD-09, which have no EPSG code)."""
    out = frame.copy()
    if out.geometry.name != "geometry" and "geometry" not in out.columns:
        out = out.rename_geometry("geometry")
    declared = _declared_name(out.crs)
    if declared is None:
        out = out.set_crs("EPSG:4326", allow_override=True)
    elif declared not in _SAME_AS_STORAGE:
        out = _reproject(out, p, declared)
    if target in ("gcj02", "bd09"):
        converted = transform_geometries(out.geometry.values, "wgs84", target, keep_z=True)
        out[out.geometry.name] = gpd.GeoSeries(converted, index=out.index)
        return out.set_crs(None, allow_override=True)
    if target == "wgs84":
        return out.set_crs("EPSG:4326", allow_override=True)
    if target == "cgcs2000":
        return out.set_crs("EPSG:4490", allow_override=True)
    try:
        return out.set_crs("EPSG:4326", allow_override=True).to_crs(target)
    except Exception as exc:
        raise SpatialFileError(f"{p}: cannot convert from WGS 84 to {target}: {exc}") from None


def _check_shapefile_names(frame: gpd.GeoDataFrame, p: Path) -> None:
    too_long = [
        str(c)
        for c in frame.columns
        if c != frame.geometry.name and len(str(c).encode("utf-8")) > _SHP_FIELD_NAME_BYTES
    ]
    if too_long:
        raise SpatialFileError(
            f"{p}: Shapefile field names are limited to {_SHP_FIELD_NAME_BYTES} bytes "
            f"(UTF-8; a Chinese character takes 3); too long: {', '.join(too_long)}"
        )


def _remove_sidecars(p: Path, extensions: tuple[str, ...]) -> None:
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    for candidate in p.parent.iterdir():
        name = candidate.name
        for ext in extensions:
            if name.lower() == (stem + ext).lower() and candidate.is_file():
                candidate.unlink()


def _write_ogr(frame: gpd.GeoDataFrame, p: Path, fmt: str, layer: str | None) -> None:
    options: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if fmt == "geojson":
        options["SIGNIFICANT_FIGURES"] = 17
        if p.exists():
            p.unlink()
    elif fmt == "shp":
        kwargs["encoding"] = "UTF-8"
        _remove_sidecars(p, _SHAPEFILE_SIDECARS)
    elif fmt == "gpkg":
        layer = layer or p.stem
    with warnings.catch_warnings():
        # GCJ-02/BD-09 output deliberately declares no CRS.
        warnings.filterwarnings("ignore", message=".*'crs' was not provided.*")
        pyogrio.write_dataframe(frame, p, driver=_DRIVERS[fmt], layer=layer, **kwargs, **options)


def _csvt_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "Integer(Boolean)"
    if pd.api.types.is_integer_dtype(dtype):
        return "Integer64"
    if pd.api.types.is_float_dtype(dtype):
        return "Real"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "DateTime"
    return "String"


def _write_csv(frame: gpd.GeoDataFrame, p: Path) -> None:
    geometry_name = frame.geometry.name
    attrs = pd.DataFrame(frame.drop(columns=[geometry_name]))
    clash = [c for c in attrs.columns if str(c).strip().lower() == "wkt"]
    if clash:
        raise SpatialFileError(
            f"{p}: cannot write CSV: attribute column {clash[0]!r} clashes with the WKT column"
        )
    geoms = frame.geometry.values
    wkt = shapely.to_wkt(
        np.asarray(geoms, dtype=object), rounding_precision=-1, trim=True, output_dimension=3
    )
    table = pd.concat([pd.Series(wkt, index=attrs.index, name="wkt", dtype=object), attrs], axis=1)
    types = ["String"] + [_csvt_type(attrs[c]) for c in attrs.columns]
    for column, kind in zip(attrs.columns, types[1:], strict=True):
        if kind == "Integer(Boolean)":
            table[column] = attrs[column].map({True: 1, False: 0})
        elif kind == "DateTime":
            table[column] = attrs[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    _remove_sidecars(p, (".csv", ".csvt"))
    table.to_csv(p, index=False, encoding="utf-8-sig", lineterminator="\n")
    p.with_suffix(".csvt").write_text(",".join(types) + "\n", encoding="ascii")
