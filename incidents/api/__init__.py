"""REST API for incidents and categories (thin: parsing and errors here, work in services)."""
