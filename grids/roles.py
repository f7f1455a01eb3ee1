"""The login groups (DESIGN.md users) and the model permissions each one gets."""

from django.utils.translation import gettext_lazy as _

GRID_CHIEF = "grid_chief"
GRID_MEMBER = "grid_member"
POLICE_LIAISON = "police_liaison"
PLANNER = "planner"
DISTRICT_ADMIN = "district_admin"

GROUP_LABELS = {
    GRID_CHIEF: _("grid chief"),
    GRID_MEMBER: _("grid member"),
    POLICE_LIAISON: _("police liaison"),
    PLANNER: _("planner"),
    DISTRICT_ADMIN: _("district administrator"),
}

_VIEW_TERRITORY = [
    "grids.view_unit",
    "grids.view_boundaryversion",
    "grids.view_lineage",
    "grids.view_staffmember",
    "grids.view_staffassignment",
    "grids.view_partybranch",
    "grids.view_workstation",
    "grids.view_servicestation",
]

GROUP_PERMISSIONS: dict[str, list[str]] = {
    GRID_MEMBER: _VIEW_TERRITORY,
    POLICE_LIAISON: _VIEW_TERRITORY,
    GRID_CHIEF: _VIEW_TERRITORY
    + [
        "grids.add_staffmember",
        "grids.change_staffmember",
        "grids.add_staffassignment",
        "grids.change_staffassignment",
    ],
    PLANNER: _VIEW_TERRITORY
    + [
        "grids.add_unit",
        "grids.change_unit",
        "grids.add_boundaryversion",
        "grids.change_boundaryversion",
    ],
    DISTRICT_ADMIN: _VIEW_TERRITORY
    + [
        f"grids.{action}_{model}"
        for model in (
            "unit",
            "boundaryversion",
            "staffmember",
            "staffassignment",
            "partybranch",
            "workstation",
            "servicestation",
        )
        for action in ("add", "change")
    ]
    + [
        "incidents.view_category",
        "incidents.add_category",
        "incidents.change_category",
        "grids.delete_staffassignment",
        "grids.delete_partybranch",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
    ],
}


def sync_groups(apps=None) -> None:
    """Create the groups and give them exactly their permissions (idempotent)."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    apps = apps or global_apps
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUP_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:  # apps migrated later add theirs in a later sync
                wanted.append(permission)
        group.permissions.set(wanted)
