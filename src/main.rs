//! The `touchline` binary: everything lives in the library.

fn main() {
    let code = touchline::cli::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
