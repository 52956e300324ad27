//! Secrets in spec and config files: every secret is given as `<key>_env` (the name of an
//! environment variable holding it) or `<key>_file` (a file holding it, e.g. a mounted Kubernetes
//! secret), never inline, so the files themselves can be committed and shown.
//!
//! Secrets are resolved at load, so a missing variable or unreadable file is a positioned error
//! before anything runs. No message ever contains a secret's value: errors name the variable or
//! file instead.

use std::env::VarError;
use std::fs;

use reqwest::header::HeaderValue;
use serde_saphyr::{Location, Spanned};

use super::Secret;
use super::check::{Checker, join};

/// How a secret is sent, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretUse {
    /// As `Authorization: Bearer <secret>`: it must be a valid HTTP header value.
    Bearer,
    /// In a request body, an HMAC key or an SMTP login: any non-empty text.
    Opaque,
}

impl Checker<'_> {
    /// `<key>_env` or `<key>_file` in the mapping at `path`, at most one of them; `Some(None)`
    /// when neither is given.
    pub(crate) fn optional_secret(
        &mut self,
        env: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        path: &str,
        key: &str,
        use_: SecretUse,
    ) -> Option<Option<Secret>> {
        let env_key = format!("{key}_env");
        let file_key = format!("{key}_file");
        let (secret, origin, at, field) = match (env, file) {
            (None, None) => return Some(None),
            (Some(var), None) => {
                let field = join(path, &env_key);
                (self.env_secret(var, &field)?, format!("environment variable {}", var.value), var.referenced, field)
            }
            (None, Some(file)) => {
                let field = join(path, &file_key);
                let (secret, origin) = self.file_secret(file, &field, key)?;
                (secret, origin, file.referenced, field)
            }
            (Some(_), Some(file)) => {
                let message = format!("give either `{env_key}` or `{file_key}`, not both");
                return self.error(&file.referenced, &join(path, &file_key), message);
            }
        };
        match use_ {
            SecretUse::Opaque => Some(Some(secret)),
            SecretUse::Bearer => {
                // Checked as it will be sent; the bare secret is kept.
                let header = Secret::new(format!("Bearer {}", secret.expose()));
                self.header_value(header, &origin, &at, &field)?;
                Some(Some(secret))
            }
        }
    }

    /// [`optional_secret`](Self::optional_secret) where one of the two keys is required; a
    /// missing secret is reported at the mapping (`parent`) that lacks it.
    pub(crate) fn required_secret(
        &mut self,
        env: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        parent: &Location,
        path: &str,
        key: &str,
        use_: SecretUse,
    ) -> Option<Secret> {
        match self.optional_secret(env, file, path, key, use_)? {
            Some(secret) => Some(secret),
            None => self.error(parent, path, format!("missing `{key}_env` or `{key}_file` (one of them)")),
        }
    }

    /// The value of the environment variable `var` names, which must be set and not empty.
    pub(crate) fn env_secret(&mut self, var: &Spanned<String>, field: &str) -> Option<Secret> {
        let at = &var.referenced;
        let origin = format!("environment variable {}", var.value);
        match (self.env)(&var.value) {
            Ok(value) if value.is_empty() => self.error(at, field, format!("{origin} is empty")),
            Ok(value) => Some(Secret::new(value)),
            Err(VarError::NotPresent) => self.error(at, field, format!("{origin} is not set")),
            Err(VarError::NotUnicode(_)) => self.error(at, field, format!("{origin} is not valid UTF-8")),
        }
    }

    /// The secret in a file, without the trailing newline editors and `echo` add, and a
    /// description of where it came from (`password file /etc/...`) for later messages.
    /// Relative paths are relative to the file being checked.
    fn file_secret(&mut self, file: &Spanned<String>, field: &str, key: &str) -> Option<(Secret, String)> {
        let path = self.path(file, field)?;
        let origin = format!("{} file {}", key.replace('_', " "), path.display());
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => return self.error(&file.referenced, field, format!("cannot read {origin}: {e}")),
        };
        let secret = text.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            return self.error(&file.referenced, field, format!("{origin} is empty"));
        }
        Some((Secret::new(secret.to_string()), origin))
    }

    /// A header value must be visible ASCII (or obs-text), spaces and tabs: anything else would
    /// make the HTTP client refuse every request instead of failing once, here. `origin` names
    /// where the value came from, since the value itself may not be shown.
    pub(crate) fn header_value(&mut self, value: Secret, origin: &str, at: &Location, field: &str) -> Option<Secret> {
        if HeaderValue::from_str(value.expose()).is_ok() {
            Some(value)
        } else {
            self.error(at, field, format!("{origin} contains characters not allowed in an HTTP header"))
        }
    }
}
