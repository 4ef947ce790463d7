//! The sensor node's image for QEMU's `mps2-an386` board (Cortex-M4F), built for
//! `thumbv7em-none-eabihf`:
//!
//! ```text
//! cargo build -p firebreak-firmware --release --target thumbv7em-none-eabihf --bin firebreak-node-qemu
//! qemu-system-arm -M mps2-an386 -display none -monitor none \
//!     -serial stdio -serial pty -serial pty \
//!     -kernel target/thumbv7em-none-eabihf/release/firebreak-node-qemu
//! ```
//!
//! UART0 (first `-serial`) carries the sensor feed ([`firebreak_firmware::feed`]), UART1
//! (second `-serial`) Modbus RTU port A and UART2 (third `-serial`) RTU port B, both as unit
//! 1, one bus per gateway; the alarm relay is the FPGA's LED0. On a host this binary only says
//! how to build it: the same node for a host is `firebreak-node-sim`.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
// Register access and the vector table need `unsafe`; this binary is the only place that has it.
#![allow(unsafe_code)]

#[cfg(target_os = "none")]
mod board;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "firebreak-node-qemu runs on QEMU's mps2-an386, not on this host: build it with\n  \
         cargo build -p firebreak-firmware --release --target thumbv7em-none-eabihf --bin firebreak-node-qemu\n\
         and see docs/firmware.md. The same node on this host is firebreak-node-sim."
    );
    std::process::exit(2);
}
