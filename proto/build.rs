//! Compiles `hookwire/v1/*.proto` with protox (a pure-Rust protobuf compiler, so no system `protoc` is needed),
//! writes the descriptor set that gRPC reflection serves, and generates the tonic clients and servers.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "hookwire/v1/common.proto",
        "hookwire/v1/device.proto",
        "hookwire/v1/admin.proto",
        "hookwire/v1/deliveries.proto",
        "hookwire/v1/tokens.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let file_descriptor_set = protox::Compiler::new(["."])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(files)?
        .file_descriptor_set();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("hookwire_descriptor.bin"), prost::Message::encode_to_vec(&file_descriptor_set))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The device RPC `Connect` would collide with the generated `connect(dst)` constructor; clients are
        // built from a `Channel` instead.
        .build_transport(false)
        // Small first buffers per call: see src/codec.rs.
        .codec_path("crate::codec::LeanCodec")
        .compile_fds(file_descriptor_set)?;
    Ok(())
}
