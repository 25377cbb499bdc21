#!/bin/sh
# Builds calplanebot_<version>-<release>_<ARCH>.ipk for opkg (OpenWrt up to 24.10) from a
# prebuilt static binary, without the OpenWrt SDK.
#
#   packaging/openwrt/build-ipk.sh ARCH BINARY [OUTDIR]
#
# ARCH is OpenWrt's package architecture, as `opkg print-architecture` on the router shows
# it (aarch64_generic, aarch64_cortex-a53, arm_cortex-a7_neon-vfpv4, x86_64, ...); it goes
# into the control file and the file name unchanged. BINARY should be a stripped, static
# musl build (cross/), since OpenWrt's libc is musl.
#
# The format is the one OpenWrt's own scripts/ipkg-build writes: a gzip-compressed tar
# holding ./debian-binary ("2.0"), ./data.tar.gz and ./control.tar.gz. (Older ipkg used
# an ar archive like .deb; opkg reads both.) Output is reproducible: owners are 0:0,
# entries sorted, times set to SOURCE_DATE_EPOCH (default: the last commit's time).
#
# Environment: VERSION (default: Cargo.toml's), RELEASE (default 1), MAINTAINER,
# SOURCE_DATE_EPOCH. Needs GNU tar and gzip.
set -eu

usage() {
	echo "usage: $0 ARCH BINARY [OUTDIR]" >&2
	exit 2
}
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
ARCH=$1
BINARY=$2
OUTDIR=${3:-.}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

die() {
	echo "build-ipk: $*" >&2
	exit 1
}

case "$ARCH" in
'' | *[!a-z0-9_-]*) die "ARCH '$ARCH' is not an OpenWrt architecture name (a-z, 0-9, _ and -)" ;;
esac
[ -f "$BINARY" ] || die "no binary at $BINARY"
[ -d "$OUTDIR" ] || die "no directory $OUTDIR"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "needs GNU tar (for --sort=name)"

if [ -z "${VERSION:-}" ]; then
	VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$REPO/Cargo.toml" | head -n 1)
	[ -n "$VERSION" ] || die "cannot read the version from $REPO/Cargo.toml; set VERSION"
fi
RELEASE=${RELEASE:-1}
MAINTAINER=${MAINTAINER:-calplanebot maintainers}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
fi

# The ELF e_machine of BINARY must fit ARCH: an x86_64 binary in an aarch64 package installs
# fine and then fails with "not found" on the router, which is hard to diagnose there.
elf_machine() {
	# Bytes 0-3 "\177ELF", byte 5 the byte order (1 little, 2 big), bytes 18-19 e_machine.
	# shellcheck disable=SC2046 # one word per byte is the point
	set -- $(od -An -tu1 -N20 "$1")
	[ $# -eq 20 ] && [ "$1" = 127 ] && [ "$2" = 69 ] && [ "$3" = 76 ] && [ "$4" = 70 ] || return 1
	if [ "$6" = 2 ]; then
		echo $((${19} * 256 + ${20}))
	else
		echo $((${20} * 256 + ${19}))
	fi
}
machine=$(elf_machine "$BINARY") || die "$BINARY is not an ELF executable"
case "$ARCH" in
x86_64*) want=62 ;;
i386* | i486* | i586* | i686*) want=3 ;;
aarch64*) want=183 ;;
arm_* | arm) want=40 ;;
mips*) want=8 ;;
riscv64*) want=243 ;;
powerpc64*) want=21 ;;
powerpc*) want=20 ;;
loongarch64*) want=258 ;;
*) want= ;;
esac
if [ -z "$want" ]; then
	echo "build-ipk: warning: cannot check that $BINARY fits $ARCH" >&2
elif [ "$machine" != "$want" ]; then
	die "$BINARY is for ELF machine $machine, but $ARCH needs $want"
fi
if command -v file >/dev/null 2>&1 && file -L "$BINARY" | grep -q 'dynamically linked'; then
	echo "build-ipk: warning: $BINARY is dynamically linked; OpenWrt needs a static (musl) build" >&2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
umask 022

# data: the files as they land on the router.
DATA=$WORK/data
mkdir -p "$DATA/usr/bin" "$DATA/etc/init.d" "$DATA/etc/config" "$DATA/lib/upgrade/keep.d"
cp "$BINARY" "$DATA/usr/bin/calplanebot"
chmod 0755 "$DATA/usr/bin/calplanebot"
cp "$HERE/files/calplanebot.init" "$DATA/etc/init.d/calplanebot"
chmod 0755 "$DATA/etc/init.d/calplanebot"
# 0600 like the SDK's INSTALL_CONF: the file holds the Plane token and CalDAV password.
cp "$HERE/files/calplanebot.config" "$DATA/etc/config/calplanebot"
chmod 0600 "$DATA/etc/config/calplanebot"
# sysupgrade keeps the paths listed in keep.d: the state journal and any secret files.
echo /etc/calplanebot/ >"$DATA/lib/upgrade/keep.d/calplanebot"
chmod 0644 "$DATA/lib/upgrade/keep.d/calplanebot"

mktar() { # DIR OUT MEMBER...: a reproducible tar.gz of MEMBERs relative to DIR
	dir=$1
	out=$2
	shift 2
	tar -C "$dir" --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - "$@" | gzip -n -9 >"$out"
}

PKG=$WORK/pkg
mkdir -p "$PKG"
mktar "$DATA" "$PKG/data.tar.gz" .
installed_size=$(gzip -dc "$PKG/data.tar.gz" | wc -c | tr -d ' ')

# control: metadata and maintainer scripts. No Depends: the binary is static.
CONTROL=$WORK/control
mkdir -p "$CONTROL"
cat >"$CONTROL/control" <<EOF
Package: calplanebot
Version: $VERSION-$RELEASE
License: MIT
Section: net
SourceDateEpoch: $SOURCE_DATE_EPOCH
Maintainer: $MAINTAINER
Architecture: $ARCH
Installed-Size: $installed_size
Description: Syncs Plane work items into CalDAV calendars
 One static binary: every work item with a target date becomes an all-day event (or a task)
 in a calendar per project. Runs as a procd service configured in /etc/config/calplanebot.
EOF
echo /etc/config/calplanebot >"$CONTROL/conffiles"

# No autostart on a first install: the defaults are placeholders (and enabled '0').
cat >"$CONTROL/postinst" <<'EOF'
#!/bin/sh
# IPKG_INSTROOT is set when an image is assembled offline: nothing to start there.
[ -n "${IPKG_INSTROOT:-}" ] && exit 0
if /etc/init.d/calplanebot enabled; then
	# An upgrade of a service that was enabled: run the new binary.
	/etc/init.d/calplanebot restart
else
	cat <<'HINT'
calplanebot is installed but not started. Next:
  vi /etc/config/calplanebot        # Plane and CalDAV settings, then: option enabled '1'
  /etc/init.d/calplanebot check     # validate the settings
  /etc/init.d/calplanebot enable && /etc/init.d/calplanebot start
  logread -e calplanebot            # its log
HINT
fi
exit 0
EOF
cat >"$CONTROL/prerm" <<'EOF'
#!/bin/sh
[ -n "${IPKG_INSTROOT:-}" ] && exit 0
/etc/init.d/calplanebot stop
# On an upgrade ($1 = upgrade) the boot link stays, so postinst restarts the new version.
[ "${1:-remove}" = upgrade ] || /etc/init.d/calplanebot disable
exit 0
EOF
chmod 0644 "$CONTROL/control" "$CONTROL/conffiles"
chmod 0755 "$CONTROL/postinst" "$CONTROL/prerm"
mktar "$CONTROL" "$PKG/control.tar.gz" .

printf '2.0\n' >"$PKG/debian-binary"
OUT=$OUTDIR/calplanebot_$VERSION-${RELEASE}_$ARCH.ipk
mktar "$PKG" "$OUT" ./debian-binary ./data.tar.gz ./control.tar.gz
echo "$OUT"
