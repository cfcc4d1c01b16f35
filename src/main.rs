fn main() {
    println!("kata-monitor: daemon not implemented yet");
}
