//! Forcing a backend: through the API, and through `OBJSEAL_BACKEND`, which is
//! read by `Aes256Gcm::new`. The environment is tested in a child process
//! (this same test binary, re-run with the variable set), so no test mutates
//! the environment of the parallel test runner.

use objseal::cipher::{Aes256Gcm, BACKEND_ENV, Backend};
use objseal::{CipherError, Error};
use std::process::Command;

#[test]
fn names_round_trip_and_unknown_names_are_errors() {
    for b in Backend::ALL {
        assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        assert_eq!(b.to_string(), b.name());
    }
    assert_eq!(" Portable ".parse::<Backend>().unwrap(), Backend::Portable);
    let e = "aesni".parse::<Backend>().unwrap_err();
    assert_eq!(
        e,
        CipherError::UnknownBackend {
            name: "aesni".into()
        }
    );
    assert!(
        e.to_string().contains("portable"),
        "lists the valid names: {e}"
    );
}

#[test]
fn env_values_select_or_fail_never_fall_back() {
    assert_eq!(Backend::from_env_value(None).unwrap(), Backend::best());
    assert_eq!(
        Backend::from_env_value(Some("auto")).unwrap(),
        Backend::best()
    );
    assert_eq!(Backend::from_env_value(Some("")).unwrap(), Backend::best());
    assert_eq!(
        Backend::from_env_value(Some("portable")).unwrap(),
        Backend::Portable
    );
    assert!(matches!(
        Backend::from_env_value(Some("fastest")),
        Err(CipherError::UnknownBackend { .. })
    ));
    for b in Backend::ALL {
        match Backend::from_env_value(Some(b.name())) {
            Ok(got) => {
                assert_eq!(got, b);
                assert!(b.is_available());
            }
            Err(CipherError::BackendUnavailable { backend, reason }) => {
                assert_eq!(backend, b);
                assert!(!b.is_available());
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("{b}: unexpected {e:?}"),
        }
    }
}

/// CI on a known CPU sets `OBJSEAL_REQUIRE_BACKENDS` (comma-separated names)
/// so that a backend the suite silently skipped fails the run instead: every
/// other test loops over `Backend::available()`.
#[test]
fn required_backends_are_available() {
    let Ok(list) = std::env::var("OBJSEAL_REQUIRE_BACKENDS") else {
        return;
    };
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let backend: Backend = name
            .parse()
            .expect("OBJSEAL_REQUIRE_BACKENDS names a backend");
        if let Err(e) = backend.check() {
            panic!("OBJSEAL_REQUIRE_BACKENDS requires {backend}, but: {e}");
        }
        assert!(Backend::available().contains(&backend));
    }
}

/// Every backend name is one `OBJSEAL_REQUIRE_BACKENDS` accepts, the
/// 512-bit one included, and on this CPU the check passes exactly for the
/// available ones.
#[test]
fn require_backends_knows_every_name() {
    assert!(Backend::ALL.contains(&"vaes-clmul-avx512".parse::<Backend>().unwrap()));
    let exe = std::env::current_exe().unwrap();
    for b in Backend::ALL {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "required_backends_are_available",
                "--test-threads=1",
            ])
            .env("OBJSEAL_REQUIRE_BACKENDS", format!("portable, {b}"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            b.is_available(),
            "{b}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn forcing_through_the_api() {
    for b in Backend::ALL {
        let r = Aes256Gcm::with_backend(&[3; 32], b);
        if b.is_available() {
            assert_eq!(r.unwrap().backend(), b);
        } else {
            let e = r.unwrap_err();
            assert!(
                matches!(e, Error::Cipher(CipherError::BackendUnavailable { backend, .. }) if backend == b)
            );
        }
    }
    assert!(Backend::available().contains(&Backend::Portable));
    assert_eq!(Backend::available()[0], Backend::best());
}

/// Runs in the child: prints what `Aes256Gcm::new` chose under the
/// inherited environment. In the parent run it checks the default choice.
#[test]
fn env_probe() {
    let line = match Aes256Gcm::new(&[5; 32]) {
        Ok(g) => format!("backend={}", g.backend()),
        Err(e) => format!("error={e}"),
    };
    println!("PROBE {line}");
    if std::env::var_os(BACKEND_ENV).is_none() {
        assert_eq!(line, format!("backend={}", Backend::best()));
    }
}

fn probe_with(value: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", "env_probe", "--nocapture", "--test-threads=1"])
        .env(BACKEND_ENV, value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("PROBE ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no probe line in {stdout}"))
        .to_owned()
}

#[test]
fn env_variable_forces_backend_in_a_real_process() {
    assert_eq!(probe_with("portable"), "backend=portable");
    assert_eq!(probe_with("auto"), format!("backend={}", Backend::best()));
    let unknown = probe_with("turbo");
    assert!(
        unknown.starts_with("error=unknown AES-GCM backend \"turbo\""),
        "{unknown}"
    );
    for b in Backend::ALL {
        let got = probe_with(b.name());
        if b.is_available() {
            assert_eq!(got, format!("backend={b}"));
        } else {
            assert!(
                got.starts_with(&format!("error=AES-GCM backend {b} is not available")),
                "{got}"
            );
        }
    }
    // The report names the selection and every backend.
    let report = objseal::cpu_report().to_string();
    for b in Backend::ALL {
        assert!(report.contains(b.name()), "{report}");
    }
}
