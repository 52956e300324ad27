//! Governance records: deploy-gate overrides, budget corrections, the last gate decision per
//! service, and the append-only audit log.
//!
//! Keys (all under the store's `v1/` schema):
//! - `v1/ovr/<id>` → [`Override`] while it exists; deleted on DELETE or expiry (the audit log
//!   keeps the history).
//! - `v1/cor/<id>` → [`Correction`] until deleted.
//! - `v1/gate/<service>` → the gate decision last recorded in the audit log, so a restart does
//!   not log every service's decision as a change.
//! - `v1/audit/<at: u64 BE><seq: u64 BE>` → [`AuditEntry`]: sorted by time, unique by sled's
//!   persistent id generator, pruned with the event retention.
//!
//! A mutation and its audit entry go in one atomic batch (or transaction) and are flushed before
//! the caller answers: an override never exists without its "created" entry.

use std::collections::HashMap;
use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use sled::transaction::TransactionError;

use super::{Part, Store, StoreError, decode_json};
use crate::clock::Millis;
use crate::policy::{Decision, Override};

const OVERRIDE_PREFIX: &str = "v1/ovr/";
const CORRECTION_PREFIX: &str = "v1/cor/";
const GATE_PREFIX: &str = "v1/gate/";
const AUDIT_PREFIX: &[u8] = b"v1/audit/";

/// Events of a service excluded from its error budget (a load test, a known-bad probe), as a
/// person declared them through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// `cor-<hex>`, unique for the life of the store.
    pub id: String,
    pub service: String,
    /// SLO name within the service (`availability`); `None` covers every SLO of the service.
    pub slo: Option<String>,
    #[serde(with = "crate::clock::serde_rfc3339")]
    pub start: Millis,
    #[serde(with = "crate::clock::serde_rfc3339")]
    pub end: Millis,
    pub reason: String,
    #[serde(with = "crate::clock::serde_rfc3339")]
    pub created_at: Millis,
    /// Informational: the `X-Sloguard-Actor` header, not an authenticated identity.
    pub actor: Option<String>,
    pub remote: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(with = "crate::clock::serde_rfc3339")]
    pub at: Millis,
    pub service: String,
    #[serde(flatten)]
    pub action: AuditAction,
    /// Who asked, as they said (`X-Sloguard-Actor`); `None` for what the daemon did by itself.
    pub actor: Option<String>,
    /// The client's address; `None` for what the daemon did by itself.
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AuditAction {
    /// The service's gate answer (no change class, overrides applied) changed between
    /// evaluations. `from` is `None` the first time a service is seen.
    DecisionChanged {
        from: Option<Decision>,
        to: Decision,
        reasons: Vec<String>,
    },
    OverrideCreated {
        #[serde(rename = "override")]
        created: Override,
    },
    OverrideDeleted {
        id: String,
        decision: Decision,
        reason: String,
    },
    /// The daemon removed an override whose `expires_at` passed.
    OverrideExpired {
        id: String,
        decision: Decision,
        reason: String,
    },
    CorrectionCreated {
        correction: Correction,
    },
    CorrectionDeleted {
        id: String,
        reason: String,
    },
    /// A notification delivery attempt (written by `notify`): `route` as in specs
    /// (`slack:#oncall`), `key` the notice's idempotency key, `attempt` counted from 1.
    Notification {
        route: String,
        key: String,
        attempt: u32,
        delivered: bool,
        error: Option<String>,
    },
}

impl Store {
    /// A fresh id such as `ovr-1f`: sled's id generator is persistent and monotonic, so ids are
    /// never reused, even across restarts.
    pub fn new_id(&self, prefix: &str) -> Result<String, StoreError> {
        Ok(format!("{prefix}-{:x}", self.db()?.generate_id()?))
    }

    /// Stores a new override with its audit entry and flushes.
    pub async fn put_override(&self, created: &Override, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(format!("{OVERRIDE_PREFIX}{}", created.id).as_bytes(), encode(created));
        batch.insert(self.audit_key(entry.at)?, encode(entry));
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        self.track(Part::Sled, self.db()?.flush_async().await.map_err(StoreError::from))?;
        Ok(())
    }

    /// Removes an override and appends `entry`, both only if it still exists (a DELETE racing
    /// the expiry logs once). Returns whether it existed.
    pub async fn remove_override(&self, id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.remove_with_audit(&format!("{OVERRIDE_PREFIX}{id}"), entry).await
    }

    /// Every stored override, expired or not (expiry is applied by readers and the daemon).
    pub fn overrides(&self) -> Result<Vec<Override>, StoreError> {
        self.scan_json(OVERRIDE_PREFIX)
    }

    /// Stores a new correction with its audit entry and flushes.
    pub async fn put_correction(&self, correction: &Correction, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(format!("{CORRECTION_PREFIX}{}", correction.id).as_bytes(), encode(correction));
        batch.insert(self.audit_key(entry.at)?, encode(entry));
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        self.track(Part::Sled, self.db()?.flush_async().await.map_err(StoreError::from))?;
        Ok(())
    }

    /// Removes a correction and appends `entry`, only if it exists. Returns whether it existed.
    pub async fn remove_correction(&self, id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.remove_with_audit(&format!("{CORRECTION_PREFIX}{id}"), entry).await
    }

    /// Every stored correction, in creation order.
    pub fn corrections(&self) -> Result<Vec<Correction>, StoreError> {
        let mut all: Vec<Correction> = self.scan_json(CORRECTION_PREFIX)?;
        all.sort_by_key(|c| c.created_at);
        Ok(all)
    }

    /// Appends one entry to the audit log. Not flushed here: sled flushes in the background
    /// within half a second, and callers that must not lose the entry with a crash (mutations)
    /// write it through the batched methods above instead.
    pub fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.db()?.insert(self.audit_key(entry.at)?, encode(&entry))?;
        Ok(())
    }

    /// Audit entries at or after `since`, oldest first, optionally for one service, at most
    /// `limit`.
    pub fn audit_log(&self, service: Option<&str>, since: Millis, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut start = AUDIT_PREFIX.to_vec();
        start.extend_from_slice(&(since.max(0) as u64).to_be_bytes());
        let mut out = Vec::new();
        for item in self.db()?.range(start..) {
            let (key, value) = item?;
            if !key.starts_with(AUDIT_PREFIX) || out.len() >= limit {
                break;
            }
            let entry: AuditEntry = decode_json("audit", &value)?;
            if service.is_none_or(|s| entry.service == s) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Deletes audit entries older than `before` (retention); returns how many.
    pub fn prune_audit(&self, before: Millis) -> Result<usize, StoreError> {
        let mut end = AUDIT_PREFIX.to_vec();
        end.extend_from_slice(&(before.max(0) as u64).to_be_bytes());
        let mut batch = sled::Batch::default();
        let mut n_pruned = 0;
        for item in self.db()?.range(AUDIT_PREFIX.to_vec()..end) {
            batch.remove(item?.0);
            n_pruned += 1;
        }
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        Ok(n_pruned)
    }

    /// The gate decision last recorded per service.
    pub fn gate_decisions(&self) -> Result<HashMap<String, Decision>, StoreError> {
        let mut out = HashMap::new();
        for item in self.db()?.scan_prefix(GATE_PREFIX) {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let decision = decode_json(&key, &value)?;
            out.insert(key[GATE_PREFIX.len()..].to_string(), decision);
        }
        Ok(out)
    }

    /// Records a service's new gate decision with its `decision_changed` audit entry, and
    /// flushes.
    pub async fn record_decision(&self, decision: Decision, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(format!("{GATE_PREFIX}{}", entry.service).as_bytes(), encode(&decision));
        batch.insert(self.audit_key(entry.at)?, encode(entry));
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        self.track(Part::Sled, self.db()?.flush_async().await.map_err(StoreError::from))?;
        Ok(())
    }

    fn audit_key(&self, at: Millis) -> Result<Vec<u8>, StoreError> {
        let mut key = AUDIT_PREFIX.to_vec();
        key.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
        key.extend_from_slice(&self.db()?.generate_id()?.to_be_bytes());
        Ok(key)
    }

    async fn remove_with_audit(&self, key: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        let audit_key = self.audit_key(entry.at)?;
        let audit_value = encode(entry);
        let existed = self
            .db()?
            .transaction(|tx| {
                let existed = tx.remove(key.as_bytes())?.is_some();
                if existed {
                    tx.insert(audit_key.as_slice(), audit_value.as_slice())?;
                }
                Ok(existed)
            })
            .map_err(|e: TransactionError<Infallible>| match e {
                TransactionError::Storage(e) => StoreError::Io(e),
                TransactionError::Abort(never) => match never {},
            })?;
        self.track(Part::Sled, self.db()?.flush_async().await.map_err(StoreError::from))?;
        Ok(existed)
    }

    fn scan_json<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in self.db()?.scan_prefix(prefix) {
            let (key, value) = item?;
            out.push(decode_json(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(out)
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("governance records serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::HOUR;

    const NOW: Millis = 1_767_225_600_000;

    fn an_override(id: &str) -> Override {
        Override {
            id: id.into(),
            service: "checkout".into(),
            decision: Decision::Allow,
            reason: "INC-42".into(),
            created_at: NOW,
            expires_at: NOW + HOUR,
            actor: Some("alice".into()),
            remote: Some("127.0.0.1:5000".into()),
        }
    }

    fn entry(at: Millis, service: &str, action: AuditAction) -> AuditEntry {
        AuditEntry { at, service: service.into(), action, actor: None, remote: None }
    }

    #[tokio::test]
    async fn overrides_corrections_and_decisions_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let correction = Correction {
            id: "cor-1".into(),
            service: "checkout".into(),
            slo: Some("availability".into()),
            start: NOW - HOUR,
            end: NOW,
            reason: "load test".into(),
            created_at: NOW,
            actor: None,
            remote: None,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            let o = an_override("ovr-1");
            store
                .put_override(&o, &entry(NOW, "checkout", AuditAction::OverrideCreated { created: o.clone() }))
                .await
                .unwrap();
            let created = AuditAction::CorrectionCreated { correction: correction.clone() };
            store.put_correction(&correction, &entry(NOW, "checkout", created)).await.unwrap();
            let changed =
                AuditAction::DecisionChanged { from: None, to: Decision::Deny, reasons: vec!["frozen".into()] };
            store.record_decision(Decision::Deny, &entry(NOW, "checkout", changed)).await.unwrap();
        }
        let store = crate::store::reopen_for_test(dir.path()).unwrap();
        assert_eq!(store.overrides().unwrap(), vec![an_override("ovr-1")]);
        assert_eq!(store.corrections().unwrap(), vec![correction]);
        assert_eq!(store.gate_decisions().unwrap(), HashMap::from([("checkout".to_string(), Decision::Deny)]));
        let actions: Vec<&str> = store
            .audit_log(None, 0, 10)
            .unwrap()
            .iter()
            .map(|e| match e.action {
                AuditAction::OverrideCreated { .. } => "override_created",
                AuditAction::CorrectionCreated { .. } => "correction_created",
                AuditAction::DecisionChanged { .. } => "decision_changed",
                _ => "other",
            })
            .collect();
        assert_eq!(actions, ["override_created", "correction_created", "decision_changed"]);
    }

    #[tokio::test]
    async fn removal_logs_once_even_when_raced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let o = an_override("ovr-2");
        store
            .put_override(&o, &entry(NOW, "checkout", AuditAction::OverrideCreated { created: o.clone() }))
            .await
            .unwrap();
        let deleted = || {
            entry(
                NOW + 1,
                "checkout",
                AuditAction::OverrideDeleted { id: "ovr-2".into(), decision: Decision::Allow, reason: "INC-42".into() },
            )
        };
        assert!(store.remove_override("ovr-2", &deleted()).await.unwrap());
        assert!(!store.remove_override("ovr-2", &deleted()).await.unwrap());
        assert!(store.overrides().unwrap().is_empty());
        assert_eq!(store.audit_log(None, 0, 10).unwrap().len(), 2);
    }

    #[test]
    fn audit_log_filters_by_service_since_and_limit_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let note = |at, service: &str| {
            let action = AuditAction::Notification {
                route: "slack:#oncall".into(),
                key: "k".into(),
                attempt: 1,
                delivered: true,
                error: None,
            };
            store.audit(entry(at, service, action)).unwrap();
        };
        note(NOW, "checkout");
        note(NOW + 1000, "payments");
        note(NOW + 2000, "checkout");
        note(NOW + 2000, "checkout");
        let at = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.at - NOW).collect::<Vec<_>>();
        assert_eq!(at(store.audit_log(Some("checkout"), 0, 10).unwrap()), [0, 2000, 2000]);
        assert_eq!(at(store.audit_log(None, NOW + 1000, 10).unwrap()), [1000, 2000, 2000]);
        assert_eq!(at(store.audit_log(None, 0, 2).unwrap()), [0, 1000]);
        assert_eq!(store.prune_audit(NOW + 1000).unwrap(), 1);
        assert_eq!(at(store.audit_log(None, 0, 10).unwrap()), [1000, 2000, 2000]);
    }

    #[test]
    fn audit_entries_read_as_flat_json() {
        let e = entry(
            NOW,
            "checkout",
            AuditAction::OverrideExpired { id: "ovr-3".into(), decision: Decision::Allow, reason: "r".into() },
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"at": "2026-01-01T00:00:00Z", "service": "checkout", "action": "override_expired",
                "id": "ovr-3", "decision": "allow", "reason": "r", "actor": null, "remote": null})
        );
    }
}
