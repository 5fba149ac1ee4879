//! `billing audit verify [--from N]`: checks the hash chain.

use std::process::ExitCode;

use clap::Subcommand;
use ledger::event::Position;
use ledger::store::verify_chain;

use crate::config::StoreConfig;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exit 0 when it holds, 1 naming the first bad position otherwise.
    Verify {
        /// First position to check (the event before it is trusted).
        #[arg(long, default_value_t = 1)]
        from: i64,
    },
}

pub async fn run(config: &StoreConfig, command: AuditCommand) -> Result<ExitCode, String> {
    let AuditCommand::Verify { from } = command;
    let store = super::open_migrated(config).await?;
    let events = store.events();
    let report = verify_chain(events.as_ref(), Position(from))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    match report.first_break {
        None => {
            eprintln!(
                "chain holds: {} events checked, head {} ({})",
                report.checked, report.last_position, report.last_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            eprintln!("chain broken at position {}: {}", b.position, b.reason);
            Ok(ExitCode::FAILURE)
        }
    }
}
