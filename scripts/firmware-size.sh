#!/usr/bin/env bash
# Builds the sensor node's QEMU image (profile `firmware`) and prints its footprint against
# the node's budget: flash = text + rodata + data, static RAM = data + bss (the stack takes
# what is left of RAM). Exits non-zero over budget. Needs readelf (binutils).
#
#   scripts/firmware-size.sh            # build, then print
#   scripts/firmware-size.sh --no-build # print the image already built
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

FLASH_BUDGET=$((64 * 1024))
RAM_BUDGET=$((16 * 1024))
target=thumbv7em-none-eabihf
elf="$repo/target/$target/firmware/firebreak-node-qemu"

if [ "${1:-}" != "--no-build" ]; then
    cargo build --quiet --locked -p firebreak-firmware --profile firmware --target "$target" \
        --bin firebreak-node-qemu
fi

# A section's size in bytes, from the ELF's section headers (Name Type Addr Off Size ...).
section() {
    local hex
    hex=$(readelf -S -W "$elf" | awk -v name="$1" '
        { for (i = 1; i <= NF; i++) if ($i == name) { print $(i + 4); exit } }')
    echo $(( 16#${hex:-0} ))
}

vector=$(section .vector_table)
text=$(( vector + $(section .text) ))
rodata=$(section .rodata)
data=$(section .data)
bss=$(( $(section .bss) + $(section .uninit) ))
flash=$(( text + rodata + data ))
ram=$(( data + bss ))

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }
printf 'firebreak-node-qemu (%s, profile firmware)\n' "$target"
printf '  text    %7d  (vector table %d)\n' "$text" "$vector"
printf '  rodata  %7d\n' "$rodata"
printf '  data    %7d\n' "$data"
printf '  bss     %7d  (incl. .uninit)\n' "$bss"
printf 'flash (text+rodata+data): %6d B = %5.1f KiB of %d KiB (%s%%)\n' \
    "$flash" "$(awk -v a="$flash" 'BEGIN { print a / 1024 }')" $((FLASH_BUDGET / 1024)) "$(pct "$flash" "$FLASH_BUDGET")"
printf 'static RAM (data+bss):    %6d B = %5.1f KiB of %d KiB (%s%%)\n' \
    "$ram" "$(awk -v a="$ram" 'BEGIN { print a / 1024 }')" $((RAM_BUDGET / 1024)) "$(pct "$ram" "$RAM_BUDGET")"

if [ "$flash" -gt "$FLASH_BUDGET" ] || [ "$ram" -gt "$RAM_BUDGET" ]; then
    echo "over budget" >&2
    exit 1
fi
