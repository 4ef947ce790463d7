//! Links the QEMU image with cortex-m-rt's `link.x` and our `memory.x`, on the embedded
//! target only, from whatever directory cargo runs in.
//!
//! `memory.x` declares the node's budget (64 KiB flash, 16 KiB RAM), so an optimised image
//! over budget does not link. Unoptimised (dev profile) images are several times larger and
//! are for debugging only: they get the room the mps2-an386 board really has.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let memory = match fs::read_to_string("memory.x") {
        Ok(m) => m,
        Err(e) => {
            println!("cargo:warning=reading memory.x: {e}");
            std::process::exit(1);
        }
    };
    let memory = if env::var("PROFILE").as_deref() == Ok("debug") {
        memory
            .replace("LENGTH = 64K", "LENGTH = 1024K")
            .replace("LENGTH = 16K", "LENGTH = 256K")
    } else {
        memory
    };
    if let Err(e) = fs::write(out.join("memory.x"), memory) {
        println!("cargo:warning=writing memory.x: {e}");
        std::process::exit(1);
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
