//! Compiles the wire contract with protox (pure Rust), so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/metadata.proto", "proto/blobnode.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Shard bytes are sliced out of stripe buffers and handed to hyper without a copy.
        .bytes(".coffer.blobnode.v1.PutShardRequest.chunk")
        .bytes(".coffer.blobnode.v1.GetShardResponse.data")
        .compile_fds(descriptors)?;
    Ok(())
}
