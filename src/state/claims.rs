//! Ticket claims in the store.

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::model::{from_unix_secs, new_id, unix_secs};
use super::{Claim, ClaimError, NewClaim, StateError, StateStore};

const COLUMNS: &str = "id, user_name, ticket_id, ticket_kind, ticket_context, hosts, actions, \
     created_at, until_at, released_at";

impl StateStore {
    /// Stores a claim (its ticket already verified by the caller).
    pub async fn claim(&self, new: NewClaim, now: SystemTime) -> Result<Claim, StateError> {
        let claim = Claim {
            id: new_id("clm-"),
            user: new.user,
            ticket_id: new.ticket_id,
            ticket_kind: new.ticket_kind,
            ticket_context: new.ticket_context,
            hosts: new.hosts,
            actions: new.actions,
            created_at: from_unix_secs(unix_secs(now)),
            until: from_unix_secs(unix_secs(new.until)),
            released_at: None,
        };
        sqlx::query(&format!(
            "INSERT INTO ticket_claims ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&claim.id)
        .bind(&claim.user)
        .bind(&claim.ticket_id)
        .bind(&claim.ticket_kind)
        .bind(claim.ticket_context.to_string())
        .bind(json_list(&claim.hosts))
        .bind(json_list(&claim.actions))
        .bind(unix_secs(claim.created_at))
        .bind(unix_secs(claim.until))
        .bind(None::<i64>)
        .execute(&self.pool)
        .await
        .map_err(StateError::query("store a ticket claim"))?;
        Ok(claim)
    }

    /// The claim `id`, as stored (active or not).
    pub async fn claim_by_id(&self, id: &str) -> Result<Option<Claim>, StateError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ticket_claims WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StateError::query("read a ticket claim"))?
        .map(|row| claim_of(&row))
        .transpose()
    }

    /// `user`'s claims in force at `now`, newest first.
    pub async fn claims_of(&self, user: &str, now: SystemTime) -> Result<Vec<Claim>, StateError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ticket_claims WHERE user_name = $1 AND released_at IS NULL \
             AND until_at > $2 ORDER BY created_at DESC, id"
        ))
        .bind(user)
        .bind(unix_secs(now))
        .fetch_all(&self.pool)
        .await
        .map_err(StateError::query("list ticket claims"))?
        .iter()
        .map(claim_of)
        .collect()
    }

    /// `user`'s newest claim in force at `now` that covers `action` on one of `hosts`.
    pub async fn covering_claim(
        &self,
        user: &str,
        action: &str,
        hosts: &[String],
        now: SystemTime,
    ) -> Result<Option<Claim>, StateError> {
        Ok(self
            .claims_of(user, now)
            .await?
            .into_iter()
            .find(|claim| claim.covers(action, hosts)))
    }

    /// Releases `user`'s claim `id` (a claim already released is returned as it is).
    pub async fn release(
        &self,
        id: &str,
        user: &str,
        now: SystemTime,
    ) -> Result<Claim, ClaimError> {
        let claim = self
            .claim_by_id(id)
            .await?
            .ok_or_else(|| ClaimError::NotFound { id: id.to_owned() })?;
        if claim.user != user {
            return Err(ClaimError::NotYours { id: id.to_owned() });
        }
        sqlx::query(
            "UPDATE ticket_claims SET released_at = $1 WHERE id = $2 AND released_at IS NULL",
        )
        .bind(unix_secs(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(StateError::query("release a ticket claim"))?;
        self.claim_by_id(id)
            .await?
            .ok_or_else(|| ClaimError::NotFound { id: id.to_owned() })
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn claim_of(row: &AnyRow) -> Result<Claim, StateError> {
    let text = |name: &str| {
        row.try_get::<String, _>(name)
            .map_err(StateError::query("read a ticket claim"))
    };
    let int = |name: &str| {
        row.try_get::<i64, _>(name)
            .map_err(StateError::query("read a ticket claim"))
    };
    let corrupt = |detail: serde_json::Error| StateError::Corrupt {
        what: "ticket claim",
        detail: detail.to_string(),
    };
    Ok(Claim {
        id: text("id")?,
        user: text("user_name")?,
        ticket_id: text("ticket_id")?,
        ticket_kind: text("ticket_kind")?,
        ticket_context: serde_json::from_str(&text("ticket_context")?).map_err(corrupt)?,
        hosts: serde_json::from_str(&text("hosts")?).map_err(corrupt)?,
        actions: serde_json::from_str(&text("actions")?).map_err(corrupt)?,
        created_at: from_unix_secs(int("created_at")?),
        until: from_unix_secs(int("until_at")?),
        released_at: row
            .try_get::<Option<i64>, _>("released_at")
            .map_err(StateError::query("read a ticket claim"))?
            .map(from_unix_secs),
    })
}
