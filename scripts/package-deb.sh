#!/usr/bin/env bash
# Builds the Debian package of the gateway with dpkg-deb alone (no cargo-deb, no network):
#
#   scripts/package-deb.sh                       # builds the release binary, then the package
#   scripts/package-deb.sh --binary PATH         # packages that binary (tests: the debug one)
#   scripts/package-deb.sh --out DIR             # writes the .deb there (default target/debian)
#   scripts/package-deb.sh --no-strip            # keeps the binary's debug information
#   scripts/package-deb.sh --fast                # gzip -1 instead of xz (tests)
#
# Prints the path of target/debian/firebreak_<version>_<arch>.deb. It installs:
#   /usr/bin/firebreak
#   /lib/systemd/system/firebreak.service        (packaging/firebreak.service; not enabled)
#   /etc/firebreak/site.toml                     (the commented example; a conffile)
#   /usr/share/doc/firebreak/                    (README, operations guide and its image, example, copyright)
# and its postinst creates the `firebreak` system user and /var/lib/firebreak (0700). Nothing
# is enabled or started: edit /etc/firebreak/site.toml, then `systemctl enable --now firebreak`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=""
out="$repo/target/debian"
strip=1
compress=(-Zxz)
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --no-strip) strip=0; shift ;;
        --fast) compress=(-Zgzip -z1); shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "package-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in dpkg-deb dpkg; do
    command -v "$tool" >/dev/null || { echo "package-deb.sh: $tool is needed (apt-get install dpkg)" >&2; exit 1; }
done

if [ -z "$binary" ]; then
    (cd "$repo" && cargo build --release --locked -p firebreak-gateway --bin firebreak >&2)
    binary="$repo/target/release/firebreak"
fi
[ -x "$binary" ] || { echo "package-deb.sh: $binary is not an executable" >&2; exit 1; }

# The workspace's version ([workspace.package] version = "x.y.z").
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "package-deb.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/etc/firebreak" "$root/usr/share/doc/firebreak/examples"

install -m 0755 "$binary" "$root/usr/bin/firebreak"
if [ "$strip" = 1 ] && command -v strip >/dev/null; then
    strip --strip-debug "$root/usr/bin/firebreak"
fi
install -m 0644 "$repo/packaging/firebreak.service" "$root/lib/systemd/system/firebreak.service"
# The example passes `firebreak config check`; its outbox is /var/lib/firebreak/outbox and
# its keys and certificates are under /etc/firebreak.
install -m 0640 "$repo/gateway/src/config/example-site.toml" "$root/etc/firebreak/site.toml"
install -m 0644 "$repo/gateway/src/config/example-site.toml" "$root/usr/share/doc/firebreak/examples/site.toml"
install -m 0644 "$repo/README.md" "$root/usr/share/doc/firebreak/README.md"
install -m 0644 "$repo/docs/operations.md" "$root/usr/share/doc/firebreak/operations.md"
# The operations guide shows the page during a fire; the image sits beside it, as in docs/.
install -m 0644 "$repo/docs/console-during-fire.png" "$root/usr/share/doc/firebreak/console-during-fire.png"
cat > "$root/usr/share/doc/firebreak/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: firebreak

Files: *
License: MIT OR Apache-2.0
EOF
chmod 0644 "$root/usr/share/doc/firebreak/copyright"

# The newest glibc symbol version the binary needs, for Depends.
libc="libc6"
if command -v objdump >/dev/null; then
    glibc=$(objdump -T "$root/usr/bin/firebreak" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
    [ -n "$glibc" ] && libc="libc6 (>= $glibc)"
fi
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

cat > "$root/DEBIAN/control" <<EOF
Package: firebreak
Version: $version
Architecture: $arch
Maintainer: Firebreak maintainers <firebreak@example.invalid>
Installed-Size: $installed_size
Depends: $libc, adduser
Section: net
Priority: optional
Homepage: https://example.invalid/firebreak
Description: early warning of power loss for data centers
 The Firebreak gateway reads a site's UPS, PDU, temperature and off-gas signals
 over Modbus, MQTT and NUT, decides evacuation levels and publishes signed
 triggers to the failover controllers of other sites over MQTT.
 .
 The firebreak.service unit is installed but neither enabled nor started: edit
 /etc/firebreak/site.toml first (docs: /usr/share/doc/firebreak/operations.md).
EOF

cat > "$root/DEBIAN/conffiles" <<'EOF'
/etc/firebreak/site.toml
EOF

cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd firebreak >/dev/null; then
        adduser --system --group --quiet --home /var/lib/firebreak --no-create-home \
            --gecos "Firebreak gateway" firebreak
    fi
    # The configuration: root's, readable by the gateway; keys placed here must be the
    # gateway's own (chown firebreak, mode 0600).
    chown root:firebreak /etc/firebreak /etc/firebreak/site.toml
    chmod 0750 /etc/firebreak
    # The outbox lives here (systemd's StateDirectory= makes it too).
    install -d -o firebreak -g firebreak -m 0700 /var/lib/firebreak
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
    # Nothing is enabled or started: describe the site first, then
    #   systemctl enable --now firebreak
fi
exit 0
EOF

cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop firebreak.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
    # The outbox: triggers no broker acknowledged, and the trigger counter. The user stays
    # (Debian leaves system users, so no file is ever owned by a reused id).
    rm -rf /var/lib/firebreak
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

mkdir -p "$out"
deb="$out/firebreak_${version}_${arch}.deb"
# --root-owner-group: every file root:root without fakeroot; postinst sets the group.
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
