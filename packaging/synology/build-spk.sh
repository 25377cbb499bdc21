#!/bin/sh
# Builds a Synology DSM 7 package (.spk) around a calplanebot binary.
#
#   packaging/synology/build-spk.sh ARCH BINARY [OUTDIR]
#
# ARCH     aarch64 (or armv8), armv7, x86_64 — the binary's architecture; it becomes INFO's
#          arch list (DSM 7 package arch names, see the table below)
# BINARY   a static calplanebot for that architecture, e.g. target/dist/calplanebot-<triple>
# OUTDIR   where calplanebot-<version>-<arch>.spk goes (default: target/dist)
#
# SPK_BUILD (default 1) is the build number after the Cargo version: INFO's version must
# be "[feature number]-[build number]" (DSM developer guide, INFO necessary fields).
#
# The .spk is an uncompressed tar of INFO, package.tgz (bin/, share/, app/), scripts/,
# conf/, WIZARD_UIFILES/, LICENSE and the two icons. Needs: sh, tar, gzip, awk, od,
# md5sum, python3 (for the icons).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
    echo "usage: $0 aarch64|armv7|x86_64 BINARY [OUTDIR]" >&2
    exit 2
}
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
arch_in=$1
binary=$2
outdir=${3:-$repo/target/dist}

# DSM matches INFO's arch against the NAS's platform and its arch family (developer guide,
# Appendix A "Platform and Arch Value Mapping Table"). The families armv8 and x86_64 hold
# every 64-bit ARM and x86 platform. The armv7 family lists only alpine and alpine4k, so
# the other 32-bit ARMv7 platforms with DSM 7 (Marvell Armada, Mindspeed comcerto2k, STM
# monaco) are named one by one, as SynoCommunity's generic armv7 packages do. Our armv7
# binary is ARMv7-A, VFPv3-D16, hard-float, without NEON, which all of these CPUs have.
case "$arch_in" in
    aarch64 | armv8) name=armv8 arch="armv8" elf=183 ;;
    armv7) name=armv7 arch="armv7 alpine alpine4k armada370 armada375 armada38x armadaxp comcerto2k monaco" elf=40 ;;
    x86_64 | x64) name=x86_64 arch="x86_64" elf=62 ;;
    *) echo "unknown ARCH $arch_in" >&2; usage ;;
esac

[ -f "$binary" ] || { echo "no such binary: $binary" >&2; exit 1; }

# A package for the wrong CPU installs fine and then fails to start, so check the ELF
# header: magic, then e_machine (little-endian u16 at offset 18).
magic=$(od -An -tx1 -N4 "$binary" | tr -d ' \n')
machine=$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' \n')
if [ "$magic" != 7f454c46 ] || [ "$machine" != "$elf" ]; then
    echo "$binary is not a $name ELF binary (e_machine $machine, expected $elf)" >&2
    exit 1
fi
if command -v file >/dev/null 2>&1 && ! file -L "$binary" | grep -q 'statically linked\|static-pie'; then
    echo "warning: $binary is not statically linked; DSM has its own, older C library" >&2
fi

cargo_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
case "$cargo_version" in
    '' | *[!0-9.]* | .* | *. | *..*) echo "Cargo.toml version '$cargo_version' is not N.N.N, which DSM needs" >&2; exit 1 ;;
esac
build=${SPK_BUILD:-1}
case "$build" in '' | *[!0-9]*) echo "SPK_BUILD must be a number" >&2; exit 1 ;; esac
version="$cargo_version-$build"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
spk="$work/spk"
root="$work/root"
mkdir -p "$spk/scripts" "$spk/conf" "$spk/WIZARD_UIFILES" "$root/bin" "$root/share" "$root/app"

# --- package.tgz: what DSM unpacks to /var/packages/calplanebot/target -----------------
cp "$binary" "$root/bin/calplanebot"
chmod 0755 "$root/bin/calplanebot"
cp "$here/calplanebot.sc" "$root/app/calplanebot.sc"
# The env template is env.example with the Synology paths filled in: the state journal
# and the log go to the package var dir (@PKGVAR@, replaced by postinst), which DSM keeps
# across upgrades.
{
    echo "# calplanebot on Synology DSM. Edit this file, then restart the package in Package"
    echo "# Center (Stop, Run). It was created from the template at install time; upgrades keep it."
    echo "# The log is @PKGVAR@/calplanebot.log (Package Center: calplanebot, View log)."
    echo "#"
    sed -e 's|^# STATE_DIR=.*|STATE_DIR=@PKGVAR@/data|' \
        -e 's|^# LOG_FILE=.*|LOG_FILE=@PKGVAR@/calplanebot.log|' \
        "$repo/env.example"
} >"$root/share/calplanebot.env.template"
if ! grep -q '^STATE_DIR=@PKGVAR@/data$' "$root/share/calplanebot.env.template" ||
    ! grep -q '^LOG_FILE=@PKGVAR@/calplanebot.log$' "$root/share/calplanebot.env.template"; then
    echo "env.example no longer has the '# STATE_DIR=' / '# LOG_FILE=' lines this script fills in" >&2
    exit 1
fi
tar -C "$root" --owner=0 --group=0 --numeric-owner -czf "$spk/package.tgz" bin share app

# --- control files ---------------------------------------------------------------------
for s in preinst postinst preuninst postuninst preupgrade postupgrade start-stop-status; do
    cp "$here/scripts/$s" "$spk/scripts/$s"
    chmod 0755 "$spk/scripts/$s"
done
cp "$here/conf/privilege" "$here/conf/resource" "$spk/conf/"
cp "$here/WIZARD_UIFILES/install_uifile" "$spk/WIZARD_UIFILES/"
cp "$repo/LICENSE" "$spk/LICENSE"
python3 "$here/make-icon.py" 64 "$spk/PACKAGE_ICON.PNG"
python3 "$here/make-icon.py" 256 "$spk/PACKAGE_ICON_256.PNG"

# INFO (developer guide: INFO necessary and optional fields). DSM 7 requires package,
# version, os_min_ver (at least 7.0-40000), description, arch and maintainer. ctl_stop
# replaces the deprecated startable: the package has Run/Stop buttons. There is no
# adminport: calplanebot has no web UI, only webhooks, /health and /metrics.
extractsize=$(( ($(gzip -dc "$spk/package.tgz" | wc -c) + 1023) / 1024 ))
cat >"$spk/INFO" <<INFO
package="calplanebot"
version="$version"
os_min_ver="7.0-40000"
arch="$arch"
description="Puts the work items of a Plane workspace into CalDAV calendars: one all-day event (or task) per work item with a target date, one calendar per project. Syncs on a timer and on Plane webhooks (port 8765)."
displayname="calplanebot"
maintainer="calplanebot"
thirdparty="yes"
ctl_stop="yes"
silent_upgrade="yes"
extractsize="$extractsize"
checksum="$(md5sum "$spk/package.tgz" | cut -d' ' -f1)"
INFO

mkdir -p "$outdir"
out="$outdir/calplanebot-$version-$name.spk"
# DSM expects a plain (uncompressed) tar with the files at its top level.
tar -C "$spk" --owner=0 --group=0 --numeric-owner -cf "$out" \
    INFO package.tgz scripts conf WIZARD_UIFILES LICENSE PACKAGE_ICON.PNG PACKAGE_ICON_256.PNG
echo "$out"
