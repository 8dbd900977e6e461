//! Builds the XDP objects in `router-ebpf` (nightly, bpfel-unknown-none, bpf-linker) and leaves
//! them in OUT_DIR for `include_bytes!`. The eBPF crate is its own workspace; its
//! `.cargo/config.toml` carries the target, build-std and BTF flags.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let ebpf_dir = manifest_dir.join("../router-ebpf");
    let common_dir = manifest_dir.join("../router-common");
    for watched in [
        ebpf_dir.join("src"),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join(".cargo/config.toml"),
        common_dir.join("src"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // Shared by debug and release builds of the agent: the objects are always optimised.
    let target_dir = manifest_dir.join("../target/bpf");

    let mut cargo = Command::new("rustup");
    cargo
        .args(["run", "nightly", "cargo", "build", "--release"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&ebpf_dir);
    // The outer cargo's settings are for the host build, not for ours.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let host_only = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTUP_TOOLCHAIN";
        if host_only {
            cargo.env_remove(key.as_ref());
        }
    }
    let status = cargo
        .status()
        .expect("running `rustup run nightly cargo` (install the nightly toolchain: see README)");
    if !status.success() {
        panic!(
            "building the XDP programs in {} failed; needs `rustup component add rust-src \
             --toolchain nightly` and `cargo install bpf-linker@0.10.1 --locked` (scripts/setup)",
            ebpf_dir.display()
        );
    }
    for program in ["router", "trafficgen", "fib_oracle", "read_probe"] {
        let built = target_dir.join("bpfel-unknown-none/release").join(program);
        std::fs::copy(&built, out_dir.join(format!("{program}.bpf.o")))
            .unwrap_or_else(|err| panic!("copying {}: {err}", built.display()));
    }
}
