"""Rate limits (Flask-Limiter): shared storage in Redis when configured, memory otherwise."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# The extension object is bound to an app in create_app (init_app), like any Flask extension.
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)
