#!/usr/bin/env bash
# Installs Debian's redis-server when it is missing (used by the suites that
# test queues on Redis: scripts/test.d/20-python.sh and 50-redis.sh). Never
# fails: a suite whose server could not be installed says so and skips its
# Redis tests, the only tests allowed to skip.
if ! command -v redis-server >/dev/null; then
    echo "redis-server missing: installing the Debian package" >&2
    if command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq redis-server) >&2 || true
    fi
    command -v redis-server >/dev/null \
        || echo "SKIP: redis-server could not be installed; Redis tests will skip" >&2
fi
exit 0
