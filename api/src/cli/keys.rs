//! `billing keys create|list|revoke`.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use ledger::access::{Scope, create_key};
use ledger::ids::ApiKeyId;

use crate::config::StoreConfig;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints only the secret on stdout.
    Create {
        #[arg(long, value_parser = clap::value_parser!(ScopeArg))]
        scope: ScopeArg,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id (`key_…`).
    Revoke { id: ApiKeyId },
}

#[derive(Debug, Clone, Copy)]
pub struct ScopeArg(Scope);

impl std::str::FromStr for ScopeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(ScopeArg)
    }
}

pub async fn run(config: &StoreConfig, command: KeysCommand) -> Result<ExitCode, String> {
    let store = super::open_migrated(config).await?;
    let keys = store.keys();
    match command {
        KeysCommand::Create { scope } => {
            let (key, secret) = create_key(keys.as_ref(), scope.0, Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("created {} key {}", key.scope, key.id);
            println!("{}", secret.expose());
        }
        KeysCommand::List => {
            for k in keys.list_keys().await.map_err(|e| e.to_string())? {
                let revoked = k.revoked_at.map_or("active".to_string(), |t| {
                    format!("revoked {}", t.to_rfc3339())
                });
                println!(
                    "{}\t{}\t{}…\t{}\t{}",
                    k.id,
                    k.scope,
                    k.prefix,
                    k.created_at.to_rfc3339(),
                    revoked
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !keys
                .revoke_key(id, Utc::now())
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no active key {id}"));
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
