//! `chom-backup storage ...`: whole files kept under keys in the repository
//! (archives to import, bundles kept for a customer).

use std::path::PathBuf;

use chom_backup::storage::BackupStorage;
use clap::Subcommand;

use super::CmdResult;
use super::module::ModuleArgs;
use super::output;

/// `storage` subcommands.
#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Store a file under a key (replacing what was there).
    Store {
        /// The file.
        file: PathBuf,
        /// Its key, a relative path such as imports/blog.tar.gz.
        key: String,
    },
    /// Write a stored file to a local path (atomically, verified).
    Retrieve {
        /// Its key.
        key: String,
        /// Where to write it.
        file: PathBuf,
    },
    /// List stored files.
    List,
    /// Exit 0 if something is stored under the key, 1 if not.
    Exists {
        /// The key.
        key: String,
    },
    /// Size, SHA-256 and date of a stored file.
    Show {
        /// The key.
        key: String,
    },
    /// Delete a stored file (the next prune frees its space).
    Delete {
        /// The key.
        key: String,
    },
}

/// Run a `storage` command.
pub async fn run(args: &ModuleArgs, command: StorageCommand) -> CmdResult {
    let orchestrator = args.orchestrator().await?;
    let storage = orchestrator.storage();
    let print = |file: &chom_backup::storage::StoredFile, verb: &str| {
        if args.json {
            output::json(file);
        } else {
            println!(
                "{verb} {} ({}, sha256 {})",
                file.key,
                output::bytes(file.size),
                file.sha256
            );
        }
    };
    match command {
        StorageCommand::Store { file, key } => {
            print(&orchestrator.store_file(&file, &key).await?, "stored");
        }
        StorageCommand::Retrieve { key, file } => {
            print(&storage.retrieve(&key, &file).await?, "retrieved");
        }
        StorageCommand::List => {
            let files = storage.list().await?;
            if args.json {
                output::json(&files);
            } else {
                let mut rows = vec![vec![
                    "KEY".into(),
                    "SIZE".into(),
                    "STORED".into(),
                    "SHA256".into(),
                ]];
                rows.extend(files.iter().map(|f| {
                    vec![
                        f.key.clone(),
                        output::bytes(f.size),
                        f.stored_at.to_string(),
                        f.sha256.clone(),
                    ]
                }));
                output::table(&rows);
            }
        }
        StorageCommand::Exists { key } => {
            let exists = storage.exists(&key).await?;
            if args.json {
                output::json(&serde_json::json!({ "key": key, "exists": exists }));
            } else {
                println!("{}", if exists { "stored" } else { "not stored" });
            }
            if !exists {
                return Err(super::Failure {
                    kind: "not_found",
                    message: format!("nothing is stored under {key:?}"),
                    code: 1,
                    reported: true,
                });
            }
        }
        StorageCommand::Show { key } => print(&storage.stat(&key).await?, "stored:"),
        StorageCommand::Delete { key } => {
            let existed = orchestrator.delete_stored_file(&key).await?;
            if args.json {
                output::json(&serde_json::json!({ "key": key, "deleted": existed }));
            } else if existed {
                println!("deleted {key}; `chom-backup repo prune` frees its space");
            } else {
                println!("nothing was stored under {key}");
            }
        }
    }
    Ok(())
}
