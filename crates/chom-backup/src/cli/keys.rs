//! `chom-backup key ...`: the data directory's repository passwords, audited.

use std::path::PathBuf;

use chom_backup::Home;
use clap::Subcommand;

use super::module::ModuleArgs;
use super::output;
use super::{CmdResult, Failure};

/// `key` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a password (key slot) to the repository.
    Add {
        /// File holding the new password (else CHOM_BACKUP_NEW_PASSWORD).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List key slots.
    List,
    /// Remove a key slot (not the one in use).
    Remove {
        /// Key slot id or unique prefix.
        id: String,
    },
    /// Replace the key file's password with a new random one.
    Rotate,
}

fn new_password(file: &Option<PathBuf>) -> Result<String, Failure> {
    match file {
        Some(f) => std::fs::read_to_string(f)
            .map(|s| s.lines().next().unwrap_or_default().to_string())
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", f.display()))),
        None => std::env::var("CHOM_BACKUP_NEW_PASSWORD").map_err(|_| {
            Failure::usage(
                "give the new password with --new-password-file FILE or CHOM_BACKUP_NEW_PASSWORD",
            )
        }),
    }
}

/// Run a `key` command.
pub async fn run(args: &ModuleArgs, command: KeyCommand) -> CmdResult {
    let home = Home::load(&args.home_dir())?;
    let orchestrator = args.orchestrator().await?;
    match command {
        KeyCommand::Add { new_password_file } => {
            let id = orchestrator
                .add_repository_key(&new_password(&new_password_file)?)
                .await?;
            if args.json {
                output::json(&serde_json::json!({ "added": id }));
            } else {
                println!("added key slot {}", id.short());
            }
        }
        KeyCommand::List => {
            let keys = orchestrator.repository_keys().await?;
            if args.json {
                output::json(&keys);
            } else {
                for k in keys {
                    println!(
                        "{} {} {} {}@{}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.created,
                        k.username,
                        k.host
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            let removed = orchestrator.remove_repository_key(&id).await?;
            if args.json {
                output::json(&serde_json::json!({ "removed": removed }));
            } else {
                println!("removed key slot {}", removed.short());
            }
        }
        KeyCommand::Rotate => {
            // New slot first, then the key file, then the old slot goes: a
            // crash at any point leaves a password that opens the repository.
            let old = orchestrator
                .repository_keys()
                .await?
                .into_iter()
                .find(|k| k.current)
                .map(|k| k.id);
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).expect("system random number generator");
            let password = hex::encode(secret);
            let added = orchestrator.add_repository_key(&password).await?;
            let path = home.replace_key_file(&password)?;
            if let Some(old) = old {
                // Opened again with the new password, the old slot is no
                // longer the one in use and may go.
                let reopened = args.orchestrator().await?;
                reopened.remove_repository_key(&old.to_hex()).await?;
            }
            if args.json {
                output::json(&serde_json::json!({ "new_key": added, "key_file": path }));
            } else {
                println!(
                    "new key slot {} written to {}; the old slot is removed",
                    added.short(),
                    path.display()
                );
            }
        }
    }
    Ok(())
}
