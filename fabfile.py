"""flask-ops tasks for this repository (the sample app). Run `fab --list`."""

from ops.tasks import ns_with_staging as ns  # noqa: F401  (staging.* too: this repository's)
