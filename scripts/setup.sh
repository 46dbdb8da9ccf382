#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, idempotently:
# the Debian packages of the test world, the Elasticsearch jars from Maven
# Central, and the Go modules. Called by `make setup` (and so by `make test`,
# `make demo`, `make env-up`) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the servers of the test world and their clients, the
# JDK and Maven that fetch and run the Elasticsearch node, and man-db and rpm
# for make package-test (man finds the packaged pages, rpm -qpl reads the .rpm).
pkgs=(mariadb-server mariadb-client redis-server openssh-server openssh-client rsync zstd procps
	openjdk-17-jdk-headless maven
	man-db rpm)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing Debian packages: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	# Keep the packages' own services from starting on the standard ports:
	# the test world starts its own instances on free loopback ports.
	policy_added=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod 755 /usr/sbin/policy-rc.d
		policy_added=1
	fi
	trap '[ -z "$policy_added" ] || $sudo rm -f /usr/sbin/policy-rc.d' EXIT
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# sshd refuses to start without its privilege separation directory; /run is
# a tmpfs, so it may be gone after a reboot (testenv also creates it).
if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; fi

if ! command -v go >/dev/null; then
	echo "setup: go is not installed or not in PATH: install Go $(sed -n 's/^go //p' go.work) from go.dev/dl" >&2
	exit 1
fi

# Elasticsearch 7.17 server jars for the test node (internal/testenv/eslauncher).
if [ ! -f internal/testenv/eslauncher/lib/.complete ]; then
	echo "setup: fetching Elasticsearch jars from Maven Central"
	mvnlog=$(mktemp)
	if ! (cd internal/testenv/eslauncher && mvn -B -Dstyle.color=never dependency:copy-dependencies \
		-DoutputDirectory=lib >"$mvnlog" 2>&1); then
		cat "$mvnlog" >&2
		echo "setup: mvn could not fetch the Elasticsearch jars (above); Maven Central must be reachable" >&2
		rm -f "$mvnlog"
		exit 1
	fi
	rm -f "$mvnlog"
	touch internal/testenv/eslauncher/lib/.complete
fi
if [ ! -f internal/testenv/eslauncher/classes/Launcher.class ] || \
   [ internal/testenv/eslauncher/Launcher.java -nt internal/testenv/eslauncher/classes/Launcher.class ]; then
	mkdir -p internal/testenv/eslauncher/classes
	javac -nowarn -cp 'internal/testenv/eslauncher/lib/*' -d internal/testenv/eslauncher/classes \
		internal/testenv/eslauncher/Launcher.java
fi

# Go modules of every module in the workspace.
for m in manifest internal backup transfer restore; do
	(cd "$m" && go mod download)
done
echo "setup: ok"
