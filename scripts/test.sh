#!/usr/bin/env bash
# Every check and test of the workspace, on a fresh Debian machine or in CI.
#
#   scripts/test.sh
#
# 1. adds the Rust components and the embedded target it needs,
# 2. installs the real peers the tests run against (install_peers, below),
# 3. runs formatting, clippy, docs, the tests and the firmware's embedded build.
# Tests start their own servers on free loopback ports and stop them; nothing here uses a
# fixed port or a shared temporary path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

step() { printf '\n==> %s\n' "$*"; }

# The pinned pymodbus: its API changes between 3.x releases.
PYMODBUS_VERSION=3.16.1
# PyNaCl (libsodium) for the reference trigger verifier in Python (docs/examples/verify_trigger.py).
PYNACL_VERSION=1.6.2
# snmpsim (on pysnmp 7.1) and the recordings of real devices it serves (issue #15).
SNMPSIM_VERSION=1.2.2
SNMPSIM_DATA_VERSION=1.0.1

# ---------------------------------------------------------------------------------------------
# Real peers: programs nobody here wrote, that the tests talk to. Add new ones here.
#   Debian: mosquitto (broker), mosquitto-clients (mosquitto_pub/_sub), socat (PTY pairs for
#           Modbus RTU), mbpoll (a foreign Modbus master), nut-server and nut-client (NUT's upsd
#           with the dummy-ups driver, and upsc: a UPS served by Network UPS Tools), snmpd
#           (net-snmp's agent: SNMPv3 authPriv), snmp (net-snmp's snmpget, snmpwalk), systemd
#           (systemd-analyze verifies the packaged unit) and dpkg's dpkg-deb (the package;
#           gateway/tests/service.rs builds it with scripts/package-deb.sh), chromium (a real
#           browser, headless: gateway/tests/page.rs reads the technician's page during a fire)
#   Debian (firmware): qemu-system-arm (boots the sensor node's mps2-an386 image), binutils
#           (readelf, for scripts/firmware-size.sh)
#   PyPI:   pymodbus[serial] in .peers/venv (a foreign UPS, TCP and RTU); pynacl there too
#           (the Python trigger verifier, written from docs/contract.md); snmpsim and
#           snmpsim-data in .peers/snmpsim-venv (SNMP devices replayed from recordings of real
#           ones: APC PDUs, Eaton, Huawei, Vertiv and Tripp Lite UPSes)
# ---------------------------------------------------------------------------------------------
install_peers() {
    local missing=()
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
    command -v socat >/dev/null || missing+=(socat)
    command -v mbpoll >/dev/null || missing+=(mbpoll)
    # Firmware: QEMU for the sensor node's image, readelf for its footprint.
    command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
    command -v readelf >/dev/null || missing+=(binutils)
    # Network UPS Tools: upsd and the dummy-ups driver (in /lib/nut), upsc (gateway/tests/nut.rs).
    [ -x /lib/nut/upsd ] && [ -x /lib/nut/dummy-ups ] || missing+=(nut-server)
    command -v upsc >/dev/null || missing+=(nut-client)
    # net-snmp: the agent (gateway/tests/common/snmp.rs runs its own, on a free port) and tools.
    [ -x /usr/sbin/snmpd ] || missing+=(snmpd)
    command -v snmpget >/dev/null && command -v snmpwalk >/dev/null || missing+=(snmp)
    # The service: systemd-analyze for the unit, dpkg-deb for the package.
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v dpkg-deb >/dev/null || missing+=(dpkg)
    # A real browser for the technician's page (gateway/tests/page.rs), run headless.
    command -v chromium >/dev/null || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ]; then
        step "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
        # The packages start a system broker on port 1883 and an agent on port 161; the tests
        # never use them.
        $sudo service mosquitto stop >/dev/null 2>&1 || true
        $sudo service snmpd stop >/dev/null 2>&1 || true
    fi
    # mosquitto lives in /usr/sbin, which a non-root PATH may lack.
    case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

    local venv="$repo/.peers/venv"
    if ! "$venv/bin/python" -c "import pymodbus, serial, sys; sys.exit(pymodbus.__version__ != '$PYMODBUS_VERSION')" 2>/dev/null; then
        step "installing pymodbus $PYMODBUS_VERSION into .peers/venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "pymodbus[serial]==$PYMODBUS_VERSION"
    fi
    if ! "$venv/bin/python" -c "import nacl, sys; sys.exit(nacl.__version__ != '$PYNACL_VERSION')" 2>/dev/null; then
        step "installing pynacl $PYNACL_VERSION into .peers/venv"
        "$venv/bin/pip" install -q "pynacl==$PYNACL_VERSION"
    fi
    export FIREBREAK_PYTHON="$venv/bin/python"

    # snmpsim refuses to run as root: as root the tests start it with --process-user nobody,
    # so its venv is made from Debian's python3 (the default one may live under /root, which
    # nobody cannot read), in the repository (0755 directories).
    local simvenv="$repo/.peers/snmpsim-venv"
    local versions="from importlib.metadata import version as v; import sys; sys.exit((v('snmpsim'), v('snmpsim-data')) != ('$SNMPSIM_VERSION', '$SNMPSIM_DATA_VERSION'))"
    if ! "$simvenv/bin/python" -c "$versions" 2>/dev/null; then
        step "installing snmpsim $SNMPSIM_VERSION and snmpsim-data $SNMPSIM_DATA_VERSION into .peers/snmpsim-venv"
        rm -rf "$simvenv"
        /usr/bin/python3 -m venv "$simvenv"
        "$simvenv/bin/pip" install -q "snmpsim==$SNMPSIM_VERSION" "snmpsim-data==$SNMPSIM_DATA_VERSION"
    fi
    if [ "$(id -u)" -eq 0 ] && ! runuser -u nobody -- "$simvenv/bin/python" -c "import snmpsim, snmpsim_data"; then
        echo "test.sh: user nobody cannot run $simvenv (snmpsim drops to nobody when run as root)" >&2
        exit 1
    fi
    export FIREBREAK_SNMPSIM_VENV="$simvenv"
    # Tests fail, rather than skip, when a peer is missing.
    export FIREBREAK_REQUIRE_PEERS=1
}

step "toolchain"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -qx thumbv7em-none-eabihf || rustup target add thumbv7em-none-eabihf

step "peers"
install_peers

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "cargo test (workspace)"
cargo build --locked -p firebreak-gateway
export FIREBREAK_BIN="$repo/target/debug/firebreak"
# Firmware: the sensor node's QEMU image, which tests/tests/firmware_qemu.rs boots (and
# firmware/sim/tests the host simulator); profile `firmware` = the image that is measured.
cargo build --locked -p firebreak-firmware --profile firmware --target thumbv7em-none-eabihf --bin firebreak-node-qemu
export FIREBREAK_NODE_QEMU="$repo/target/thumbv7em-none-eabihf/firmware/firebreak-node-qemu"
# The firmware's host build, the node of the HIL suite and of hil/tests/firmware_loop.rs.
cargo build --locked -p firebreak-node-sim
export FIREBREAK_NODE_SIM="$repo/target/debug/firebreak-node-sim"
# Among them hil/tests/rig.rs: the whole HIL suite replayed against the gateway process with
# the firmware's host build as the node (firebreak-hil suite hil/scenarios --node host
# --time-scale 60 --jobs 2), failing on any failed expectation, the battery fire and a
# failing probe with the QEMU image as the node (--node qemu), and the generator transfer in
# real time (80 s); gateway/tests/cli.rs runs
# `firebreak demo` on a short scenario; gateway/tests/campaign.rs runs the reduced generated
# campaign (1,000 nuisance + 1,000 fire/outage timelines through the policy engine, fixed
# seed; docs/campaign.md) and replays gateway/tests/campaign-regressions.txt.
cargo test --workspace --locked

step "protocols feature by feature"
cargo test -p firebreak-protocols --no-default-features --locked --quiet
cargo check -p firebreak-protocols --no-default-features --features serde --locked --quiet

step "no_std crates for the embedded target (a std leak fails here)"
cargo build -p firebreak-protocols -p firebreak-firmware --target thumbv7em-none-eabihf --locked
# Firmware: clippy on the target-only code (the QEMU board: its unsafe register access), and
# the image's footprint against the 64 KiB flash / 16 KiB RAM budget (fails when over).
cargo clippy -p firebreak-firmware --target thumbv7em-none-eabihf --profile firmware --lib --bins --locked -- -D warnings
scripts/firmware-size.sh --no-build

printf '\ntest.sh: all checks passed\n'
