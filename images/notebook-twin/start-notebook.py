#!/usr/bin/python3
"""Stand-in for docker-stacks' start-notebook.py: runs Jupyter Server with
swarmhub-start's arguments. docker-stacks would run `jupyter lab`, which
Debian does not package; nbclassic (enabled by its Debian package) serves
the pages instead."""
import os
import sys

os.execvp("jupyter", ["jupyter", "server", *sys.argv[1:]])
