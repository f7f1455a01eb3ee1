"""Incident pages (zh-hans by default), one module per page family.

Every page starts from incidents.selectors.incidents_for (the user's scope) and works through
incidents.services; views only parse requests and render.
"""
