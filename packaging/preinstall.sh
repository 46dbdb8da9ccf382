#!/bin/sh
# Before the package's files are unpacked (dpkg preinst, rpm %pre): the
# group that owns /etc/squirro-bcp, /var/lib/squirro-bcp and
# /var/log/squirro-bcp. root's services need nothing; an account that runs
# transfer from cron (the examples' bcp) is added to it by the operator:
#   usermod -aG squirro-bcp bcp
# Kept on removal and purge, as system groups are.
set -e
getent group squirro-bcp >/dev/null 2>&1 || groupadd --system squirro-bcp
exit 0
