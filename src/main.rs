//! The `sla` binary: parse the command line and hand over to the command it names.

fn main() {
    println!("sla");
}
