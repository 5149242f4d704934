//! `objseal keys` (the SSE-S3 keyring) and `objseal kms` (the local KMS).

use std::fs::File;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use objseal::keys::{AuditQuery, KeyState, rfc3339};
use serde_json::json;

use super::object::read_envelope;
use super::store::PRINCIPAL;
use super::{Ctx, Failure};

pub const KEYS_HELP: &str = "\
Examples:
  objseal keys list
  objseal keys rotate                     # new objects use the new version
  objseal keys retire 1 --objects *.osl   # refused while a listed object uses v1
  objseal keys retire 1 --force           # destroys v1: its objects become unreadable";

pub const KMS_HELP: &str = "\
Examples:
  objseal kms list
  objseal kms create-key --description backups --alias alias/backups
  objseal kms disable alias/backups       # opening its objects now fails (exit 3)
  objseal kms enable alias/backups
  objseal kms schedule-deletion alias/backups --days 7
  objseal kms purge                       # destroys keys whose deletion date has passed
  objseal kms set-rotation alias/backups --days 365
  objseal kms audit --key alias/objseal --since 1h";

/// `objseal keys ...`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the master key versions.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Create a new master key version and make it active.
    Rotate,
    /// Destroy a master key version's key material.
    Retire {
        /// The version to retire.
        version: u32,
        /// Sealed files to check: refuse while one of them uses the version.
        #[arg(long, num_args = 1..)]
        objects: Vec<PathBuf>,
        /// Retire even if listed objects still use it (they become unreadable).
        #[arg(long)]
        force: bool,
    },
}

/// `objseal kms ...`.
#[derive(Subcommand)]
pub enum KmsCommand {
    /// Create a KMS key.
    CreateKey {
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Also name it `alias/NAME`.
        #[arg(long)]
        alias: Option<String>,
    },
    /// List the KMS keys.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Enable a key.
    Enable {
        /// Key id, ARN or alias.
        key: String,
    },
    /// Disable a key: it refuses every operation until enabled.
    Disable {
        /// Key id, ARN or alias.
        key: String,
    },
    /// Schedule a key's deletion.
    ScheduleDeletion {
        /// Key id, ARN or alias.
        key: String,
        /// Waiting period, 7 to 30 days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Cancel a scheduled deletion (the key stays disabled).
    CancelDeletion {
        /// Key id, ARN or alias.
        key: String,
    },
    /// Rotate a key's material now.
    Rotate {
        /// Key id, ARN or alias.
        key: String,
    },
    /// Turn automatic rotation on (every N days) or off.
    SetRotation {
        /// Key id, ARN or alias.
        key: String,
        /// Rotate every this many days (1 to 2560).
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        days: Option<u32>,
        /// Turn automatic rotation off.
        #[arg(long)]
        off: bool,
    },
    /// Destroy the keys whose scheduled deletion date has passed (their
    /// objects can no longer be opened).
    Purge,
    /// Name a key with an alias.
    Alias {
        /// `alias/NAME`.
        alias: String,
        /// Key id, ARN or alias.
        key: String,
    },
    /// Show the audit log.
    Audit {
        /// Only this key (id, ARN or alias).
        #[arg(long)]
        key: Option<String>,
        /// Only records since: unix milliseconds, or an age like 30s, 10m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Machine-readable output (one JSON record a line).
        #[arg(long)]
        json: bool,
    },
}

/// `objseal keys`.
pub fn keys(ctx: &Ctx, c: KeysCommand) -> Result<(), Failure> {
    let store = ctx.store()?;
    let ring = &store.keyring;
    let at = |e| Failure::from_error(e, &store.home);
    match c {
        KeysCommand::List { json } => {
            let versions = ring.versions();
            if json {
                let v: Vec<_> = versions
                    .iter()
                    .map(|v| {
                        json!({"version": v.version, "created": rfc3339(v.created),
                            "active": v.active, "retired": v.retired.map(rfc3339)})
                    })
                    .collect();
                println!("{:#}", json!({"key_id": ring.key_id(), "versions": v}));
                return Ok(());
            }
            println!(
                "keyring {} (active version {})",
                ring.key_id(),
                ring.active_version()
            );
            println!("{:>7}  {:<20}  state", "version", "created");
            for v in versions {
                let state = match (v.active, v.retired) {
                    (true, _) => "active".to_owned(),
                    (_, Some(t)) => format!("retired {}", rfc3339(t)),
                    _ => "decrypt only".to_owned(),
                };
                println!("{:>7}  {:<20}  {state}", v.version, rfc3339(v.created));
            }
        }
        KeysCommand::Rotate => {
            let v = ring.rotate().map_err(at)?;
            println!("{v}");
            if !ctx.quiet {
                eprintln!("objseal: version {v} is now active; older objects still open");
            }
        }
        KeysCommand::Retire {
            version,
            objects,
            force,
        } => {
            let mut envs = Vec::new();
            for name in &objects {
                let mut f = File::open(name).map_err(|e| Failure::io(name, &e))?;
                envs.push(read_envelope(&mut f, name)?.0);
            }
            ring.retire(version, envs.iter(), force).map_err(at)?;
            if !ctx.quiet {
                eprintln!("objseal: version {version} retired; its key material is destroyed");
            }
        }
    }
    Ok(())
}

fn state_name(s: KeyState) -> String {
    match s {
        KeyState::Enabled => "Enabled".to_owned(),
        KeyState::Disabled => "Disabled".to_owned(),
        KeyState::PendingDeletion { deletion_date } => {
            format!("PendingDeletion {}", rfc3339(deletion_date))
        }
    }
}

fn parse_since(s: &str) -> Result<u64, Failure> {
    let bad = || Failure::usage(format!("bad --since {s:?}: unix ms, or 30s, 10m, 2h, 7d"));
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let split = s.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(now.saturating_sub(secs.saturating_mul(1000)))
}

/// `objseal kms`.
pub fn kms(ctx: &Ctx, c: KmsCommand) -> Result<(), Failure> {
    let store = ctx.store()?;
    let kms = &store.kms;
    let at = |e| Failure::from_error(e, &store.home);
    let done = |what: String| {
        if !ctx.quiet {
            eprintln!("objseal: {what}");
        }
    };
    match c {
        KmsCommand::CreateKey { description, alias } => {
            let meta = match alias {
                Some(a) => kms.create_key_with_alias(&description, &a, PRINCIPAL),
                None => kms.create_key(&description, PRINCIPAL),
            }
            .map_err(at)?;
            println!("{}", meta.arn);
        }
        KmsCommand::List { json } => {
            let keys = kms.list_keys().map_err(at)?;
            if json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({"key_id": k.key_id, "arn": k.arn, "description": k.description,
                            "state": state_name(k.state), "current_version": k.current_version,
                            "aliases": k.aliases})
                    })
                    .collect();
                println!("{:#}", json!(v));
                return Ok(());
            }
            println!(
                "{:<36}  {:<8}  {:<16}  aliases",
                "key id", "version", "state"
            );
            for k in keys {
                println!(
                    "{:<36}  {:<8}  {:<16}  {}",
                    k.key_id,
                    k.current_version,
                    state_name(k.state),
                    k.aliases.join(",")
                );
            }
        }
        KmsCommand::Enable { key } => {
            kms.enable_key(&key, PRINCIPAL).map_err(at)?;
            done(format!("{key} enabled"));
        }
        KmsCommand::Disable { key } => {
            kms.disable_key(&key, PRINCIPAL).map_err(at)?;
            done(format!(
                "{key} disabled; its objects cannot be opened until it is enabled"
            ));
        }
        KmsCommand::ScheduleDeletion { key, days } => {
            kms.schedule_key_deletion(&key, days, PRINCIPAL)
                .map_err(at)?;
            done(format!(
                "{key} scheduled for deletion in {days} days; `objseal kms cancel-deletion {key}` undoes it"
            ));
        }
        KmsCommand::CancelDeletion { key } => {
            kms.cancel_key_deletion(&key, PRINCIPAL).map_err(at)?;
            done(format!(
                "{key} deletion cancelled; the key is disabled: enable it to use it"
            ));
        }
        KmsCommand::Rotate { key } => {
            let v = kms.rotate_key(&key, PRINCIPAL).map_err(at)?;
            println!("{v}");
        }
        KmsCommand::SetRotation { key, days, off } => {
            let period = match (days, off) {
                (_, true) => None,
                (Some(d @ 1..=2560), false) => {
                    Some(std::time::Duration::from_secs(u64::from(d) * 86_400))
                }
                (Some(d), false) => {
                    return Err(Failure::usage(format!(
                        "--days {d}: automatic rotation takes 1 to 2560 days"
                    )));
                }
                (None, false) => return Err(Failure::usage("give --days N or --off")),
            };
            kms.set_rotation_period(&key, period, PRINCIPAL)
                .map_err(at)?;
            done(match days.filter(|_| !off) {
                Some(d) => format!("{key} rotates automatically every {d} days"),
                None => format!("{key} automatic rotation off"),
            });
        }
        KmsCommand::Purge => {
            let removed = kms.purge_due_deletions(PRINCIPAL).map_err(at)?;
            for arn in &removed {
                println!("{arn}");
            }
            done(format!("{} key(s) destroyed", removed.len()));
        }
        KmsCommand::Alias { alias, key } => {
            kms.create_alias(&alias, &key, PRINCIPAL).map_err(at)?;
            done(format!("{alias} -> {key}"));
        }
        KmsCommand::Audit { key, since, json } => {
            let key_arn = key
                .map(|k| kms.describe_key(&k).map(|m| m.arn))
                .transpose()
                .map_err(at)?;
            let query = AuditQuery {
                key_arn,
                since_ms: since.as_deref().map(parse_since).transpose()?,
                ..AuditQuery::default()
            };
            let report = kms.audit_report(&query).map_err(at)?;
            for d in &report.damaged {
                eprintln!(
                    "objseal: warning: {} line {} (byte {}) cannot be read: {}",
                    kms.audit_path().display(),
                    d.line,
                    d.offset,
                    d.reason
                );
            }
            for r in report.records {
                if json {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                } else {
                    println!(
                        "{}  {:<20}  {:<22}  {:<7}  {}{}",
                        r.time,
                        r.principal,
                        r.operation,
                        r.outcome,
                        r.key_arn.as_deref().unwrap_or("-"),
                        r.error.map(|e| format!("  ({e})")).unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
