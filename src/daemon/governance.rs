//! Deploy-gate governance shared by the API and the core: the API token's digest, active
//! overrides (read by every gate answer), the correction list, and the command channel the API
//! uses to have the core apply corrections to the engine.
//!
//! The API writes overrides and corrections to the store first, then here; the core restores
//! both at start-up, expires overrides, applies corrections and records gate-decision changes in
//! the audit log. Only the core touches the engine.
//!
//! Decision changes are computed in the core, after each evaluation, for the plain gate answer
//! (no change class, overrides applied): that is the answer a dashboard or `sloguard_gate_decision`
//! shows. An override created between evaluations shows up in the audit log as a decision change
//! at the next evaluation, so the entry's time can trail the override by one evaluation interval.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use std::sync::atomic::Ordering;

use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::Core;
use crate::clock::{Millis, rfc3339};
use crate::engine::{Engine, Exclusion};
use crate::policy::{GateRequest, Override, decide};
use crate::spec::Secret;
use crate::store::{AuditAction, AuditEntry, Correction};

/// What the API asks of the core.
#[derive(Debug)]
pub enum Command {
    /// Replace the corrections of `service` with `exclusions` (the full current list),
    /// re-evaluate and publish, then answer on `applied`.
    SetExclusions { service: String, exclusions: Vec<Exclusion>, applied: oneshot::Sender<()> },
}

/// Why a correction list could not be handed to the core.
#[derive(Debug, thiserror::Error)]
#[error("the daemon is shutting down; the correction is stored and applies at the next start")]
pub struct CoreGone;

pub struct Governance {
    /// SHA-256 of the API token: the token itself is not kept, and hashing both sides makes the
    /// comparison constant-time over equal lengths whatever the presented token's length.
    token_digest: RwLock<Option<[u8; 32]>>,
    overrides: RwLock<Vec<Override>>,
    corrections: Mutex<Vec<Correction>>,
    /// Unbounded because every message is a person's or a CI job's mutation (a handful a minute)
    /// that the store already holds: a bounded queue could only refuse work that is durable.
    commands: mpsc::UnboundedSender<Command>,
}

/// Whether a presented bearer token is the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// No token configured: mutations are disabled.
    Disabled,
    Valid,
    Invalid,
}

impl Governance {
    pub fn new(
        token: Option<&Secret>,
        overrides: Vec<Override>,
        corrections: Vec<Correction>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Governance {
        Governance {
            token_digest: RwLock::new(token.map(digest)),
            overrides: RwLock::new(overrides),
            corrections: Mutex::new(corrections),
            commands,
        }
    }

    /// Replaces the token (after a reload).
    pub fn set_token(&self, token: Option<&Secret>) {
        *self.token_digest.write().expect("token lock") = token.map(digest);
    }

    /// Compares `presented` with the configured token in constant time.
    pub fn check_token(&self, presented: &str) -> TokenCheck {
        match *self.token_digest.read().expect("token lock") {
            None => TokenCheck::Disabled,
            Some(expected) if bool::from(expected.ct_eq(&digest_bytes(presented.as_bytes()))) => TokenCheck::Valid,
            Some(_) => TokenCheck::Invalid,
        }
    }

    pub fn token_configured(&self) -> bool {
        self.token_digest.read().expect("token lock").is_some()
    }

    /// Overrides of `service` (active or not yet reaped: [`crate::policy::decide`] filters).
    pub fn overrides_of(&self, service: &str) -> Vec<Override> {
        self.overrides.read().expect("overrides lock").iter().filter(|o| o.service == service).cloned().collect()
    }

    /// Every override held, by service, for answers about all services at once.
    pub fn overrides_by_service(&self) -> HashMap<String, Vec<Override>> {
        let mut out: HashMap<String, Vec<Override>> = HashMap::new();
        for o in self.overrides.read().expect("overrides lock").iter() {
            out.entry(o.service.clone()).or_default().push(o.clone());
        }
        out
    }

    /// Adds an override the store already holds.
    pub fn add_override(&self, created: Override) {
        self.overrides.write().expect("overrides lock").push(created);
    }

    /// Forgets an override the store no longer holds.
    pub fn forget_override(&self, id: &str) {
        self.overrides.write().expect("overrides lock").retain(|o| o.id != id);
    }

    /// Overrides whose expiry has passed at `now` (still held until the core reaps them).
    pub fn expired_overrides(&self, now: Millis) -> Vec<Override> {
        self.overrides.read().expect("overrides lock").iter().filter(|o| !o.is_active(now)).cloned().collect()
    }

    pub fn corrections_of(&self, service: &str) -> Vec<Correction> {
        self.corrections.lock().expect("corrections lock").iter().filter(|c| c.service == service).cloned().collect()
    }

    pub fn all_corrections(&self) -> Vec<Correction> {
        self.corrections.lock().expect("corrections lock").clone()
    }

    /// Changes the correction list (the store already reflects the change) and hands the core
    /// the service's full new list; the receiver resolves once the core has applied it and
    /// published a snapshot. Sending under the lock keeps lists reaching the core in the order
    /// their changes were made, so the last list the core applies is the current one.
    pub fn change_corrections(
        &self,
        service: &str,
        change: impl FnOnce(&mut Vec<Correction>),
    ) -> Result<oneshot::Receiver<()>, CoreGone> {
        let mut corrections = self.corrections.lock().expect("corrections lock");
        change(&mut corrections);
        let exclusions = exclusions(corrections.iter().filter(|c| c.service == service));
        let (applied, done) = oneshot::channel();
        self.commands
            .send(Command::SetExclusions { service: service.to_string(), exclusions, applied })
            .map_err(|_| CoreGone)?;
        Ok(done)
    }
}

impl Core {
    /// Runs after every evaluation: reaps expired overrides and records gate-decision changes,
    /// each with its audit entry. A store failure leaves both for the next evaluation (the gate
    /// already ignores an expired override, so nothing waits on the store).
    pub(super) async fn govern(&mut self, now: Millis) {
        let shared = self.shared.clone();
        let governance = &shared.governance;
        for expired in governance.expired_overrides(now) {
            let action = AuditAction::OverrideExpired {
                id: expired.id.clone(),
                decision: expired.decision,
                reason: expired.reason.clone(),
            };
            let entry = AuditEntry { at: now, service: expired.service.clone(), action, actor: None, remote: None };
            match self.store.remove_override(&expired.id, &entry).await {
                Ok(_) => {
                    governance.forget_override(&expired.id);
                    info!(service = %expired.service, "override {} expired ({})", expired.id, rfc3339(expired.expires_at));
                }
                Err(e) => {
                    shared.stats.n_store_failures.fetch_add(1, Ordering::Relaxed);
                    warn!("removing expired override {} failed, will retry: {e}", expired.id);
                }
            }
        }
        let snapshot = shared.snapshot();
        let overrides = governance.overrides_by_service();
        for status in &snapshot.services {
            let request =
                GateRequest { change: None, overrides: overrides.get(&status.service).map_or(&[], Vec::as_slice), now };
            let gate = decide(&snapshot, status, &request);
            let from = self.last_decisions.get(&status.service).copied();
            if from == Some(gate.decision) {
                continue;
            }
            let action = AuditAction::DecisionChanged { from, to: gate.decision, reasons: gate.reasons };
            let entry = AuditEntry { at: now, service: status.service.clone(), action, actor: None, remote: None };
            match self.store.record_decision(gate.decision, &entry).await {
                Ok(()) => {
                    info!(service = %status.service, "gate decision now {}", gate.decision.as_str());
                    self.last_decisions.insert(status.service.clone(), gate.decision);
                }
                Err(e) => {
                    shared.stats.n_store_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(service = %status.service, "recording the gate decision failed, will retry: {e}");
                }
            }
        }
    }

    /// Carries out a command from the API.
    pub(super) async fn command(&mut self, command: Command) {
        match command {
            Command::SetExclusions { service, exclusions, applied } => {
                info!(service = %service, "applying {} correction(s)", exclusions.len());
                if !self.engine.set_exclusions(&service, &exclusions) {
                    // The service left the specs in a reload after the API checked it; the
                    // correction stays stored and applies if the service comes back.
                    warn!(service = %service, "corrections for a service no longer configured");
                }
                // Re-evaluate now so the caller's next gate answer already reflects it.
                self.evaluate().await;
                let _ = applied.send(());
            }
        }
    }
}

/// Hands the engine every service's corrections (at start-up, after restore, and after a
/// reload rebuilt the engine).
pub fn apply_corrections(engine: &mut Engine, corrections: &[Correction]) {
    let mut by_service: HashMap<&str, Vec<&Correction>> = HashMap::new();
    for c in corrections {
        by_service.entry(&c.service).or_default().push(c);
    }
    for (service, list) in by_service {
        // A stored correction for a service no longer in the specs is kept (it applies again if
        // the service returns) and has nothing to act on meanwhile.
        engine.set_exclusions(service, &exclusions(list.into_iter()));
    }
}

/// The engine's view of corrections.
pub fn exclusions<'a>(corrections: impl Iterator<Item = &'a Correction>) -> Vec<Exclusion> {
    corrections.map(|c| Exclusion { id: c.id.clone(), slo: c.slo.clone(), start: c.start, end: c.end }).collect()
}

fn digest(token: &Secret) -> [u8; 32] {
    digest_bytes(token.expose().as_bytes())
}

fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn governance(token: Option<&str>) -> Governance {
        let (tx, _rx) = mpsc::unbounded_channel();
        Governance::new(token.map(|t| Secret::new(t.into())).as_ref(), Vec::new(), Vec::new(), tx)
    }

    #[test]
    fn token_check_is_exact_and_disabled_without_a_token() {
        let g = governance(Some("s3cret"));
        assert_eq!(g.check_token("s3cret"), TokenCheck::Valid);
        assert_eq!(g.check_token("s3cre"), TokenCheck::Invalid);
        assert_eq!(g.check_token("s3cret "), TokenCheck::Invalid);
        assert_eq!(g.check_token(""), TokenCheck::Invalid);
        assert_eq!(governance(None).check_token("anything"), TokenCheck::Disabled);
        g.set_token(None);
        assert_eq!(g.check_token("s3cret"), TokenCheck::Disabled);
    }

    #[test]
    fn correction_lists_reach_the_core_in_change_order() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let g = Governance::new(None, Vec::new(), Vec::new(), tx);
        let correction = |id: &str, service: &str| Correction {
            id: id.into(),
            service: service.into(),
            slo: None,
            start: 0,
            end: 1,
            reason: "r".into(),
            created_at: 0,
            actor: None,
            remote: None,
        };
        g.change_corrections("checkout", |l| l.push(correction("cor-1", "checkout"))).unwrap();
        g.change_corrections("payments", |l| l.push(correction("cor-2", "payments"))).unwrap();
        g.change_corrections("checkout", |l| l.push(correction("cor-3", "checkout"))).unwrap();
        let mut seen = Vec::new();
        while let Ok(Command::SetExclusions { service, exclusions, .. }) = rx.try_recv() {
            seen.push((service, exclusions.iter().map(|e| e.id.clone()).collect::<Vec<_>>()));
        }
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            seen,
            [
                ("checkout".to_string(), ids(&["cor-1"])),
                ("payments".to_string(), ids(&["cor-2"])),
                ("checkout".to_string(), ids(&["cor-1", "cor-3"])),
            ]
        );
        drop(rx);
        assert!(g.change_corrections("checkout", |_| {}).is_err());
    }
}
