//! Compiles `omnisaga/v1/*.proto` and `omnisaga/v2/*.proto` with prost and writes the descriptor set
//! that `schemas/` publishes for analysts.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "omnisaga/v1/common.proto",
        "omnisaga/v1/events.proto",
        "omnisaga/v2/events.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    prost_build::Config::new()
        .file_descriptor_set_path(out.join("omnisaga_v1.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}
