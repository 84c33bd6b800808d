"""Speaking to hosts: SSH, facts, plans and the executor that runs them, one host or a fleet,
provisioning, day-two commands, and the smoke checks over HTTP(S). The top layer below the
tasks."""
