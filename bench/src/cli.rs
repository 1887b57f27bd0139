//! The command line of the small bench binaries (`cross_channel`,
//! `fs_read`): their `parse_options` returns `Err("")` for `--help` and
//! `Err(message)` for a bad option; this turns that into the usage on
//! stdout (exit 0) or the message and usage on stderr (exit 2), never a
//! panic.

/// The parsed options, or the process ends as described above.
pub fn options_or_exit<T>(parsed: Result<T, String>, program: &str, usage: &str) -> T {
    match parsed {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{usage}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{program}: {e}\n{usage}");
            std::process::exit(2);
        }
    }
}
