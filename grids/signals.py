"""Signals the territory sends; apps further up (incidents) listen without grids knowing them.

`boundaries_changed(sender, unit_ids, valid_from, user)` is sent once per change of
boundaries (an import, later a redraw) inside its transaction, with the ids of the units
whose geometry or parent changed: what listeners do commits or rolls back with the change.
"""

from django.dispatch import Signal

boundaries_changed = Signal()
