//! Runs a fuzz target's body on files, without libFuzzer: `cargo run --example replay --
//! TARGET FILE...` (a crash artifact, or a corpus entry). Panics exactly where the fuzzer did.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay TARGET FILE...");
    let run: fn(&[u8]) = match target.as_str() {
        "frame_decode" => pharos_fuzz::frame_decode,
        "stream_reassembly" => pharos_fuzz::stream_reassembly,
        "config_parsers" => pharos_fuzz::config_parsers,
        "control_request" => pharos_fuzz::control_request,
        "node_inputs" => pharos_fuzz::node_inputs,
        other => panic!("unknown target {other}"),
    };
    for file in args {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        run(&data);
        println!("{file}: ok");
    }
}
