"""What runs on a host, as pure functions of the description: the three roles (front server,
app server, init system), the stacks that pair them, and the files they render and check.
Imports nothing from the layers above (config, build, deploy)."""
