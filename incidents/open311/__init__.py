"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) at /open311/v2/.

Issue #3 point 16; see incidents.open311.views.
"""
