fn main() {
    println!("calplanebot {}", env!("CARGO_PKG_VERSION"));
}
