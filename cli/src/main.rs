//! `objseal`: the command line of the objseal crate.
//!
//! Seals and opens files in the three S3 server-side encryption modes
//! (SSE-S3, SSE-KMS, SSE-C) on an embedded local key store, inspects sealed
//! files, manages the keyring and the local KMS, rewraps objects and
//! measures throughput. Run `objseal --help` for the commands.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
