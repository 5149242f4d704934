//! Seals standard input to standard output through `SealWriter`, in bounded
//! memory whatever the input size (prints the byte counts to stderr).
//!
//! `head -c 4G /dev/zero | cargo run --release --example seal_stream > /dev/null`

use std::io::{self, Read, Write};

use objseal::body::{DataKey, SealWriter};

fn main() -> Result<(), objseal::Error> {
    let key = DataKey::generate()?;
    let stdout = io::stdout().lock();
    let mut writer = SealWriter::new(stdout, &key, b"example context")?;
    let mut input = io::stdin().lock();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(objseal::Error::from)?;
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
    writer.finish()?.flush().map_err(objseal::Error::from)?;
    eprintln!("sealed {total} bytes");
    Ok(())
}
