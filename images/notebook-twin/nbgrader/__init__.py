"""notebook-twin stand-in for nbgrader, which Debian does not package: only
the server extensions swarmhub-start switches, doing nothing but say so."""
