//! SIGUSR1 reopens the audit log (logrotate's convention: `mv` the file, then signal).

use super::AuditLog;

/// Installs the SIGUSR1 handler now and returns a future that reopens `log` on every
/// SIGUSR1 until it is dropped (or the log is closed). Install it before serving, so that
/// the signal never reaches the default action (which ends the process).
pub fn reopen_on_sigusr1(
    log: AuditLog,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut signals =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    Ok(async move {
        while signals.recv().await.is_some() {
            match log.reopen().await {
                Ok(true) => tracing::info!(
                    "SIGUSR1: the audit log was moved; the chain continues in a new file"
                ),
                Ok(false) => tracing::info!("SIGUSR1: the audit log file is unchanged"),
                Err(super::AuditError::Closed) => break,
                Err(err) => tracing::error!(error = %err, "SIGUSR1: audit log reopen failed"),
            }
        }
    })
}
