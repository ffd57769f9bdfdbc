fn main() {
    let p = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    match kod_config::load(&p, &Default::default()) {
        Ok(c) => println!("{c:#?}"),
        Err(e) => println!("ERROR: {e}"),
    }
}
