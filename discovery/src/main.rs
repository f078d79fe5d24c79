//! `discovery`: placeholder until issue 4 lands.
fn main() {
    eprintln!("discovery: not implemented yet (see issue 4)");
    std::process::exit(2);
}
