"""Role checks for staff pages: anonymous → login page, wrong role → 403."""

from __future__ import annotations

import functools

from flask import abort, redirect, request, url_for
from flask_login import current_user


def role_required(role: str):
    """Allow users whose role includes `role` (admin ⊃ staff ⊃ checkin)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not current_user.has_role(role):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_role = role  # read by the permissions test that walks the URL map
        return wrapped

    return decorator
