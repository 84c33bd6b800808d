"""The app's description, read once and validated at the edge: Fabric's config files, the
`deploy:` keys (a key is valid when its stack accepts it), the paths they imply on a host.
Above targets; below build and deploy."""
