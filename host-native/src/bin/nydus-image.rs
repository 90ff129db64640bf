fn main() {
    eprintln!("nydus-image: not built yet");
    std::process::exit(1);
}
