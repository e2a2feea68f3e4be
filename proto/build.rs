//! Generates the gRPC code from gateway.proto with protox (pure Rust), so a fresh machine
//! needs no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=gateway.proto");
    let fds = protox::compile(["gateway.proto"], ["."])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
