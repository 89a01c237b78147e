"""Admin-managed periodic and background jobs for Django on Dramatiq.

The public API lives here; other apps import nothing else from `jobs`.
"""
