"""flask-ops tasks for this repository (the sample app). Run `fab --list`."""

from ops.tasks import ns  # noqa: F401
