//! The `vcguard approval …` and `vcguard ticket claim|claims|release` commands: a client of
//! vcguard's own API that logs in to vCenter through the gateway, makes its call with that
//! session, prints a table (or the JSON) and logs out.

mod http;
mod output;

use std::time::Duration;

use ::http::Method;
use serde_json::json;

pub use http::{ClientError, GatewayClient};

use crate::config::UpstreamTrust;

/// Where the gateway is and who logs in.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The gateway's base URL, `https://host:port`.
    pub gateway: String,
    /// The vCenter user.
    pub user: String,
    /// The user's password (from a prompt or `VCGUARD_PASSWORD`; never from the command line).
    pub password: String,
    /// How the gateway's certificate is checked.
    pub trust: UpstreamTrust,
    /// The VI/JSON release the login uses.
    pub release: String,
    /// Print the API's JSON instead of a table.
    pub json: bool,
}

/// One client command.
#[derive(Debug, Clone)]
pub enum ClientCommand {
    /// List approval requests in `state` (`pending`, …, or `all`).
    ApprovalList {
        /// The state to list.
        state: String,
    },
    /// Show one approval request.
    ApprovalShow {
        /// Its id.
        id: String,
    },
    /// Approve (or deny) an approval request with a comment.
    ApprovalDecide {
        /// Its id.
        id: String,
        /// Approve (`true`) or deny.
        approve: bool,
        /// Why.
        comment: String,
    },
    /// Claim a ticket for hosts (and actions) for a while.
    TicketClaim {
        /// The ticket as the header would carry it.
        ticket: String,
        /// Hosts.
        hosts: Vec<String>,
        /// Actions (empty: the ticket's scope).
        actions: Vec<String>,
        /// How long.
        ttl: Duration,
    },
    /// List the caller's active claims.
    TicketClaims,
    /// Release a claim.
    TicketRelease {
        /// Its id.
        id: String,
    },
}

/// Runs `command`: logs in, calls the API, logs out; returns what to print.
pub async fn run(command: &ClientCommand, options: &ClientOptions) -> Result<String, ClientError> {
    let mut client = GatewayClient::new(&options.gateway, &options.trust, &options.release)?;
    client.login(&options.user, &options.password).await?;
    let result = call(&client, command).await;
    client.logout().await;
    let value = result?;
    Ok(if options.json {
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    } else {
        output::render(command, &value)
    })
}

async fn call(
    client: &GatewayClient,
    command: &ClientCommand,
) -> Result<serde_json::Value, ClientError> {
    match command {
        ClientCommand::ApprovalList { state } => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("state", state)
                .finish();
            client
                .call(Method::GET, &format!("approvals?{query}"), None)
                .await
        }
        ClientCommand::ApprovalShow { id } => {
            client
                .call(Method::GET, &format!("approvals/{}", segment(id)?), None)
                .await
        }
        ClientCommand::ApprovalDecide {
            id,
            approve,
            comment,
        } => {
            let verb = if *approve { "approve" } else { "deny" };
            client
                .call(
                    Method::POST,
                    &format!("approvals/{}/{verb}", segment(id)?),
                    Some(&json!({ "comment": comment })),
                )
                .await
        }
        ClientCommand::TicketClaim {
            ticket,
            hosts,
            actions,
            ttl,
        } => {
            let mut body = json!({"ticket": ticket, "hosts": hosts, "ttl_secs": ttl.as_secs()});
            if !actions.is_empty() {
                body["actions"] = json!(actions);
            }
            client
                .call(Method::POST, "ticket-claims", Some(&body))
                .await
        }
        ClientCommand::TicketClaims => client.call(Method::GET, "ticket-claims", None).await,
        ClientCommand::TicketRelease { id } => {
            client
                .call(
                    Method::DELETE,
                    &format!("ticket-claims/{}", segment(id)?),
                    None,
                )
                .await
        }
    }
}

/// An id as one path segment: letters, digits and `-` only.
fn segment(id: &str) -> Result<&str, ClientError> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(id)
    } else {
        Err(ClientError::Usage(format!(
            "{id:?} is not an id such as apr-… or clm-…"
        )))
    }
}
