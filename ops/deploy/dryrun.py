"""--dry-run: what a deploy would change (config diffs) and run (the plan), with secret
values masked. Reads the host; changes nothing."""

import difflib
import json
import re

from .. import scripts, tree
from . import executor, plan as plan_mod

SECRET_VALUE = re.compile(r"(?i)(\b[\w.-]*(?:secret|password|passwd|token|api_?key)[\w.-]*\s*[=:]\s*)(\S+)")


def mask_secrets(text):
    """Values of secret-looking settings never reach a terminal or a CI log."""
    return SECRET_VALUE.sub(lambda m: m.group(1) + "********", text)


def report(s, remote, release, plan, out, env=None):
    left_out = tree.select(s.source_dir, s.exclude).excluded
    out("left out of the release (defaults and deploy.exclude): "
        + (", ".join(left_out) if left_out else "nothing"))
    if env is not None:
        changes = any(step.name == "env" for step in plan.prepare)
        out(f"app environment ({', '.join(env.names)}): "
            + ("would change (values not shown)" if changes else "unchanged"))
    configs = plan_mod.config_files(release.files)
    live = {} if remote is None else json.loads(remote.run(
        scripts.command("read_files.py", *[f.path for f in configs]), "read live configs").stdout)
    for f in configs:
        before = (live.get(f.path) or "").splitlines(keepends=True)
        diff = list(difflib.unified_diff(before, f.content.splitlines(keepends=True),
                                         f"{f.path} (live)", f"{f.path} (new)"))
        out(mask_secrets("".join(diff)) if diff else f"unchanged: {f.path}")
    if plan.nothing_to_do:
        out(f"dry run: no change; {plan.previous} already serves this build")
        return plan.previous
    out("\ncommands that would run:")
    for line in executor.dry_run_lines(plan):
        out(line)
    out(f"dry run: nothing was changed on {remote.name}" if remote is not None else
        "dry run: no host was reached, nothing was changed")
    return None
