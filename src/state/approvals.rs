//! Approval requests in the store.

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::model::{from_unix_secs, new_id, same_user, unix_secs};
use super::{
    Approval, ApprovalError, ApprovalFilter, ApprovalKey, ApprovalState, Decider, NewApproval,
    StateError, StateStore, Verdict,
};

const COLUMNS: &str = "id, requester, action, target, body_hash, approver_group, policy, reason, \
     summary, state, requested_at, expires_at, decided_by, comment, decided_at, window_until, uses_left";

/// Most rows a listing reads.
const LIST_CAP: i64 = 10_000;

impl Approval {
    /// The state at `now`: a pending request past its expiry, or an approved one past its
    /// window, is `expired` even before the store has marked it so.
    pub fn state_at(&self, now: SystemTime) -> ApprovalState {
        match self.state {
            ApprovalState::Pending if self.expires_at <= now => ApprovalState::Expired,
            ApprovalState::Approved if self.window_until.is_none_or(|until| until <= now) => {
                ApprovalState::Expired
            }
            state => state,
        }
    }
}

impl StateStore {
    /// Files an approval request; the same call's request still pending is returned instead.
    pub async fn request_approval(
        &self,
        new: NewApproval,
        now: SystemTime,
    ) -> Result<Approval, StateError> {
        self.request_approval_new(new, now)
            .await
            .map(|(approval, _)| approval)
    }

    /// [`Self::request_approval`], and whether the request is new.
    pub(crate) async fn request_approval_new(
        &self,
        new: NewApproval,
        now: SystemTime,
    ) -> Result<(Approval, bool), StateError> {
        let key = &new.key;
        let existing = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE requester = $1 AND action = $2 AND target = $3 \
             AND body_hash = $4 AND state = 'pending' AND expires_at > $5 \
             ORDER BY requested_at DESC LIMIT 1"
        ))
        .bind(&key.requester)
        .bind(&key.action)
        .bind(&key.target)
        .bind(&key.body_hash)
        .bind(unix_secs(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(StateError::query("look for a pending approval request"))?;
        if let Some(row) = existing {
            return Ok((approval_of(&row)?, false));
        }
        let approval = Approval {
            id: new_id("apr-"),
            key: new.key,
            group: new.group,
            policy: new.policy,
            reason: new.reason,
            summary: new.summary,
            state: ApprovalState::Pending,
            requested_at: from_unix_secs(unix_secs(now)),
            expires_at: from_unix_secs(unix_secs(now + self.settings.pending_ttl)),
            decided_by: None,
            comment: None,
            decided_at: None,
            window_until: None,
            uses_left: 0,
        };
        sqlx::query(&format!(
            "INSERT INTO approvals ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&approval.id)
        .bind(&approval.key.requester)
        .bind(&approval.key.action)
        .bind(&approval.key.target)
        .bind(&approval.key.body_hash)
        .bind(&approval.group)
        .bind(&approval.policy)
        .bind(approval.reason.clone())
        .bind(&approval.summary)
        .bind(approval.state.as_str())
        .bind(unix_secs(approval.requested_at))
        .bind(unix_secs(approval.expires_at))
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(0_i64)
        .execute(&self.pool)
        .await
        .map_err(StateError::query("file an approval request"))?;
        Ok((approval, true))
    }

    /// The approval request `id`, as stored.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StateError::query("read an approval request"))?
            .map(|row| approval_of(&row))
            .transpose()
    }

    /// Approval requests matching `filter`, newest first, each in its state at `now`
    /// ([`Approval::state_at`]).
    pub async fn approvals(
        &self,
        filter: &ApprovalFilter,
        now: SystemTime,
    ) -> Result<Vec<Approval>, StateError> {
        let by_requester = format!(
            "SELECT {COLUMNS} FROM approvals WHERE requester = $1 \
             ORDER BY requested_at DESC, id LIMIT $2"
        );
        let all =
            format!("SELECT {COLUMNS} FROM approvals ORDER BY requested_at DESC, id LIMIT $1");
        let rows = match &filter.requester {
            Some(requester) => sqlx::query(&by_requester).bind(requester).bind(LIST_CAP),
            None => sqlx::query(&all).bind(LIST_CAP),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(StateError::query("list approval requests"))?;
        let limit = if filter.limit == 0 {
            100
        } else {
            filter.limit as usize
        };
        let mut out = Vec::new();
        for row in rows {
            let mut approval = approval_of(&row)?;
            approval.state = approval.state_at(now);
            if filter.state.is_none_or(|state| state == approval.state) {
                out.push(approval);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Approves or denies a pending request. Refused: the requester themself, a non-member of
    /// the group, a request that expired, was already decided or used.
    pub async fn decide(
        &self,
        id: &str,
        decider: &Decider,
        verdict: Verdict,
        comment: &str,
        now: SystemTime,
    ) -> Result<Approval, ApprovalError> {
        let approval = self.decidable(id, now).await?;
        if same_user(&decider.user, &approval.key.requester) {
            return Err(ApprovalError::SelfApproval {
                id: id.to_owned(),
                user: decider.user.clone(),
                group: approval.group,
            });
        }
        if !decider.groups.contains(&approval.group) {
            return Err(ApprovalError::NotMember {
                id: id.to_owned(),
                user: decider.user.clone(),
                group: approval.group,
            });
        }
        let (state, window_until, uses) = match verdict {
            Verdict::Approve => (
                ApprovalState::Approved,
                Some(unix_secs(now + self.settings.window)),
                i64::from(self.settings.uses),
            ),
            Verdict::Deny => (ApprovalState::Denied, None, 0),
        };
        let comment = comment.trim();
        let updated = sqlx::query(
            "UPDATE approvals SET state = $1, decided_by = $2, comment = $3, decided_at = $4, \
             window_until = $5, uses_left = $6 \
             WHERE id = $7 AND state = 'pending' AND expires_at > $4",
        )
        .bind(state.as_str())
        .bind(&decider.user)
        .bind((!comment.is_empty()).then(|| comment.to_owned()))
        .bind(unix_secs(now))
        .bind(window_until)
        .bind(uses)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(StateError::query("decide an approval request"))?;
        if updated.rows_affected() == 1 {
            return self
                .approval(id)
                .await?
                .ok_or(ApprovalError::NotFound { id: id.to_owned() });
        }
        // Someone else decided it (or it expired) between the read and the update.
        self.decidable(id, now).await?;
        Err(ApprovalError::AlreadyDecided {
            id: id.to_owned(),
            state: ApprovalState::Pending,
        })
    }

    /// The request `id` if it can still be decided at `now`, or why not.
    async fn decidable(&self, id: &str, now: SystemTime) -> Result<Approval, ApprovalError> {
        let approval = self
            .approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })?;
        match approval.state_at(now) {
            ApprovalState::Pending => Ok(approval),
            ApprovalState::Expired => Err(ApprovalError::Expired { id: id.to_owned() }),
            ApprovalState::Used => Err(ApprovalError::Used { id: id.to_owned() }),
            state => Err(ApprovalError::AlreadyDecided {
                id: id.to_owned(),
                state,
            }),
        }
    }

    /// Takes one use of an approved, unexpired approval for exactly `key`. One conditional
    /// `UPDATE` per candidate: of two replicas racing for the last use, only one sees its
    /// update affect a row.
    pub async fn use_approval(
        &self,
        key: &ApprovalKey,
        now: SystemTime,
    ) -> Result<Option<Approval>, StateError> {
        let now = unix_secs(now);
        let candidates = sqlx::query(
            "SELECT id FROM approvals WHERE requester = $1 AND action = $2 AND target = $3 \
             AND body_hash = $4 AND state = 'approved' AND uses_left > 0 AND window_until > $5 \
             ORDER BY decided_at, id",
        )
        .bind(&key.requester)
        .bind(&key.action)
        .bind(&key.target)
        .bind(&key.body_hash)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(StateError::query("look for a usable approval"))?;
        for row in candidates {
            let id: String = row
                .try_get("id")
                .map_err(StateError::query("read an approval id"))?;
            let taken = sqlx::query(
                "UPDATE approvals SET uses_left = uses_left - 1, \
                 state = CASE WHEN uses_left <= 1 THEN 'used' ELSE 'approved' END \
                 WHERE id = $1 AND state = 'approved' AND uses_left > 0 AND window_until > $2",
            )
            .bind(&id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StateError::query("use an approval"))?;
            if taken.rows_affected() == 1 {
                return self.approval(&id).await;
            }
        }
        Ok(None)
    }

    /// Marks pending requests past their expiry and approvals past their window `expired`;
    /// returns the ones this call marked (another replica's are not returned twice).
    pub async fn expire(&self, now: SystemTime) -> Result<Vec<Approval>, StateError> {
        let now = unix_secs(now);
        let due = sqlx::query(
            "SELECT id FROM approvals WHERE (state = 'pending' AND expires_at <= $1) \
             OR (state = 'approved' AND window_until <= $1) ORDER BY requested_at, id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(StateError::query("look for expired approvals"))?;
        let mut expired = Vec::new();
        for row in due {
            let id: String = row
                .try_get("id")
                .map_err(StateError::query("read an approval id"))?;
            let marked = sqlx::query(
                "UPDATE approvals SET state = 'expired' WHERE id = $1 AND \
                 ((state = 'pending' AND expires_at <= $2) OR (state = 'approved' AND window_until <= $2))",
            )
            .bind(&id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StateError::query("expire an approval"))?;
            if marked.rows_affected() == 1
                && let Some(approval) = self.approval(&id).await?
            {
                expired.push(approval);
            }
        }
        Ok(expired)
    }
}

fn approval_of(row: &AnyRow) -> Result<Approval, StateError> {
    let read = StateError::query("read an approval request");
    let get_str = |name: &str| row.try_get::<String, _>(name);
    let get_opt = |name: &str| row.try_get::<Option<String>, _>(name);
    let get_int = |name: &str| row.try_get::<i64, _>(name);
    let get_opt_int = |name: &str| row.try_get::<Option<i64>, _>(name);
    let result = (|| -> Result<Approval, sqlx::Error> {
        let state: String = get_str("state")?;
        let state = state
            .parse()
            .map_err(|detail: String| sqlx::Error::Decode(detail.into()))?;
        Ok(Approval {
            id: get_str("id")?,
            key: ApprovalKey {
                requester: get_str("requester")?,
                action: get_str("action")?,
                target: get_str("target")?,
                body_hash: get_str("body_hash")?,
            },
            group: get_str("approver_group")?,
            policy: get_str("policy")?,
            reason: get_opt("reason")?,
            summary: get_str("summary")?,
            state,
            requested_at: from_unix_secs(get_int("requested_at")?),
            expires_at: from_unix_secs(get_int("expires_at")?),
            decided_by: get_opt("decided_by")?,
            comment: get_opt("comment")?,
            decided_at: get_opt_int("decided_at")?.map(from_unix_secs),
            window_until: get_opt_int("window_until")?.map(from_unix_secs),
            uses_left: u32::try_from(get_int("uses_left")?.max(0)).unwrap_or(u32::MAX),
        })
    })();
    result.map_err(read)
}
