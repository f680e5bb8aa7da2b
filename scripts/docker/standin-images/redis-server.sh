#!/bin/sh
# The official redis image's default: protected mode off. Flags given later still win.
exec /usr/bin/redis-server "$@" --protected-mode no
