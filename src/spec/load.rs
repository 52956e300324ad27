//! Spec loading and validation: files → raw YAML mirror → validated [`ServiceSpec`]s, with the
//! positioned, all-at-once error reporting of [`super::check`]. The `source:` section is checked
//! in `super::source`, `notify:` routes in `super::route`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::check::{
    Checker, EnvLookup, RouteCheck, SpecError, SpecErrors, join, parse_document, process_env, read_text,
    whole_file_error,
};
use super::raw::{
    RawAlerting, RawCalendar, RawCondition, RawLatency, RawPercent, RawPolicy, RawService, RawSli, RawSlo, RawTier,
    RawTimeSlice, RawWindow,
};
use super::{
    Alerting, BurnCondition, Policy, Reduce, ServiceSpec, Severity, Sli, SliceTest, SloSpec, Tier, default_tiers,
};
use crate::calendar::{CalendarWindow, Period};
use crate::selector::{RegexBudget, Selector};

/// Shortest SLO window accepted. Budgets are computed from scraped counters, and a window under
/// a minute holds only a few scrapes: its "budget" would be noise, not an objective.
const MIN_WINDOW: Duration = Duration::from_secs(60);

/// The zone of a calendar period that names none: UTC is what servers and most SLO reports use.
const DEFAULT_TIME_ZONE: &str = "UTC";

/// Shortest `alerting.no_data`: under a minute, one late scrape would already be "no data".
const MIN_NO_DATA: Duration = Duration::from_secs(60);

/// What the `alerting` tier word (and `no_data`) must be to turn it off.
const DISABLED: &str = "disabled";

/// Instances a grouped SLO holds unless `max_groups` says otherwise: enough for the routes or
/// tenants of a real service, and a bound on what one mislabelled series flood can cost.
pub const DEFAULT_MAX_GROUPS: usize = 1000;

/// Parses and validates one spec file's text. `path` is used in error messages, recorded in the
/// result, and is the base of relative paths in `source:` (token and CA files).
pub fn parse_spec(path: &Path, text: &str) -> Result<ServiceSpec, SpecErrors> {
    parse_located(path, text, &process_env, None, &mut RegexBudget::default()).map(|(spec, _)| spec)
}

/// [`parse_spec`], resolving `source:` secrets named by `*_env` keys through `env`.
#[cfg(test)]
pub(super) fn parse_spec_with_env(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<ServiceSpec, SpecErrors> {
    parse_located(path, text, env, None, &mut RegexBudget::default()).map(|(spec, _)| spec)
}

/// Loads a spec file, or every `*.yaml` / `*.yml` file directly inside a directory.
pub fn load_path(path: &Path) -> Result<Vec<ServiceSpec>, SpecErrors> {
    load_paths(&[path.to_path_buf()])
}

/// Loads several files or directories, reporting the errors of all of them together, and
/// checks that no service is defined twice across them.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<ServiceSpec>, SpecErrors> {
    load_specs(paths, &process_env, SpecUse::Offline)
}

/// What specs are loaded for, which decides what else they must satisfy.
#[derive(Clone, Copy)]
pub(crate) enum SpecUse<'a> {
    /// `validate` and `replay`: samples may come from a file, so `source:` is optional, and no
    /// notifiers are known, so routes are checked for syntax only.
    Offline,
    /// The daemon scrapes or queries for every SLO and delivers every route: a spec without
    /// `source:` is an error, and so is a route `routes` finds no notifier for.
    Daemon { routes: RouteCheck<'a> },
}

/// [`load_paths`] for `use_`, resolving `*_env` secrets through `env`. The daemon's checks live
/// here rather than after loading so their errors sit in file order among all the others.
pub(crate) fn load_specs(
    paths: &[PathBuf],
    env: EnvLookup<'_>,
    use_: SpecUse<'_>,
) -> Result<Vec<ServiceSpec>, SpecErrors> {
    let route_check = match use_ {
        SpecUse::Offline => None,
        SpecUse::Daemon { routes } => Some(routes),
    };
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match spec_files(path) {
            Ok(found) => files.extend(found),
            Err(e) => errors.push(e),
        }
    }
    let mut specs = Vec::new();
    // One budget for all files: the daemon holds every spec's regexes at once.
    let mut regexes = RegexBudget::default();
    // Where each service was first defined, to point at it from the duplicate.
    let mut first_seen: HashMap<String, (PathBuf, Location)> = HashMap::new();
    for file in files {
        let text = match read_text(&file, "spec file") {
            Ok(text) => text,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let (spec, at) = match parse_located(&file, &text, env, route_check, &mut regexes) {
            Ok(located) => located,
            Err(SpecErrors(file_errors)) => {
                errors.extend(file_errors);
                continue;
            }
        };
        let error_at = |field: &str, message: String| SpecError {
            file: file.clone(),
            line: at.line(),
            column: at.column(),
            field: field.into(),
            message,
        };
        if let Some((first_file, first_at)) = first_seen.get(&spec.service) {
            let message = format!(
                "duplicate service `{}`: already defined at {}:{}:{}",
                spec.service,
                first_file.display(),
                first_at.line(),
                first_at.column()
            );
            errors.push(error_at("service", message));
            continue;
        }
        first_seen.insert(spec.service.clone(), (file.clone(), at));
        if matches!(use_, SpecUse::Daemon { .. }) && spec.source.is_none() {
            let message = format!("service {} has no source: (the daemon needs scrape or prometheus)", spec.service);
            errors.push(error_at("source", message));
            continue;
        }
        specs.push(spec);
    }
    if errors.is_empty() { Ok(specs) } else { Err(SpecErrors(errors)) }
}

/// The spec files `path` names: itself if a file, else the directory's `*.yaml` / `*.yml`
/// regular files, sorted by name, not recursing. Dotfiles are skipped because editors leave
/// `.name.yaml.swp`-style companions and lock files beside the specs.
fn spec_files(path: &Path) -> Result<Vec<PathBuf>, SpecError> {
    let metadata = fs::metadata(path).map_err(|e| whole_file_error(path, format!("cannot read spec path: {e}")))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = fs::read_dir(path).map_err(|e| whole_file_error(path, format!("cannot list spec directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| whole_file_error(path, format!("cannot list spec directory: {e}")))?;
        let file = entry.path();
        let is_spec_name = file.extension().is_some_and(|ext| ext == "yaml" || ext == "yml")
            && !entry.file_name().to_string_lossy().starts_with('.');
        if is_spec_name && file.is_file() {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(whole_file_error(path, "no *.yaml or *.yml spec files in directory".into()));
    }
    files.sort();
    Ok(files)
}

/// A Prometheus label name.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses one file, charging its selectors' regexes to `regexes`, and also returns where its
/// `service` value sits, for duplicate checks.
fn parse_located(
    path: &Path,
    text: &str,
    env: EnvLookup<'_>,
    route_check: Option<RouteCheck<'_>>,
    regexes: &mut RegexBudget,
) -> Result<(ServiceSpec, Location), SpecErrors> {
    let raw: Spanned<RawService> = parse_document(path, text)?;
    let mut check = Checker::new(path, env, route_check);
    let spec = check.service(&raw, regexes);
    let at = raw.value.service.as_ref().map_or(raw.referenced, |s| s.referenced);
    check.finish(spec).map(|spec| (spec, at))
}

impl Checker<'_> {
    /// Service and SLO names become ids (`service/slo`) in events, URLs and store keys, so they
    /// are restricted to characters that need no quoting anywhere. The first must be a letter or
    /// digit: a service is a URL path segment (`/v1/gate/{service}`), and HTTP clients resolve
    /// `.` and `..` segments away (`/v1/gate/..` reaches `/v1/`), so such a service could never
    /// be asked about; a leading `-` reads as an option on command lines.
    fn name(&mut self, name: &Spanned<String>, field: &str) -> Option<String> {
        let text = &name.value;
        if text.is_empty() {
            return self.error(&name.referenced, field, "must not be empty");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        let starts_well = text.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !starts_well || !text.chars().all(allowed) {
            return self.error(
                &name.referenced,
                field,
                format!(
                    "invalid name `{text}`: use only letters, digits, `_`, `-` and `.`, starting with a letter or digit"
                ),
            );
        }
        Some(text.clone())
    }

    /// An optional free-text field: absent is fine, present-but-empty is a mistake.
    fn optional_text(&mut self, text: &Option<Spanned<String>>, field: &str) -> Option<Option<String>> {
        match text {
            None => Some(None),
            Some(text) if text.value.trim().is_empty() => {
                self.error(&text.referenced, field, "must not be empty (omit the field instead)")
            }
            Some(text) => Some(Some(text.value.clone())),
        }
    }

    fn selector(&mut self, text: &Spanned<String>, field: &str, regexes: &mut RegexBudget) -> Option<Selector> {
        match Selector::parse_within(&text.value, regexes) {
            Ok(selector) => Some(selector),
            Err(e) => self.error(&text.referenced, field, e.to_string()),
        }
    }

    fn service(&mut self, raw: &Spanned<RawService>, regexes: &mut RegexBudget) -> Option<ServiceSpec> {
        let root = &raw.referenced;
        let RawService { service, owner, slos, policy, source, notify } = &raw.value;
        let service = self.require(service, root, "service").and_then(|s| self.name(s, "service"));
        let owner = self.optional_text(owner, "owner");
        let slos = self.require(slos, root, "slos").and_then(|slos| self.slos(slos, regexes));
        let policy = self.policy(policy.as_ref());
        let source = match source {
            Some(source) => self.source(source).map(Some),
            None => Some(None),
        };
        let notify = self.notify(notify.as_ref());
        Some(ServiceSpec {
            service: service?,
            owner: owner?,
            path: self.file.to_path_buf(),
            slos: slos?,
            policy: policy?,
            source: source?,
            notify: notify?,
        })
    }

    fn slos(&mut self, slos: &Spanned<Vec<Spanned<RawSlo>>>, regexes: &mut RegexBudget) -> Option<Vec<SloSpec>> {
        if slos.value.is_empty() {
            return self.error(&slos.referenced, "slos", "must list at least one SLO");
        }
        let mut first_seen: HashMap<&str, &Location> = HashMap::new();
        let mut validated = Vec::new();
        for (index, slo) in slos.value.iter().enumerate() {
            let path = format!("slos[{index}]");
            if let Some(name) = &slo.value.name {
                if let Some(first) = first_seen.get(name.value.as_str()) {
                    let message =
                        format!("duplicate SLO name `{}`: already defined at line {}", name.value, first.line());
                    self.error::<()>(&name.referenced, &join(&path, "name"), message);
                } else {
                    first_seen.insert(&name.value, &name.referenced);
                }
            }
            validated.push(self.slo(slo, &path, regexes));
        }
        validated.into_iter().collect()
    }

    fn slo(&mut self, slo: &Spanned<RawSlo>, path: &str, regexes: &mut RegexBudget) -> Option<SloSpec> {
        let at = &slo.referenced;
        let RawSlo { name, objective, window, runbook, group_by, max_groups, sli, alerting } = &slo.value;
        let field = |key| join(path, key);
        let name = self.require(name, at, &field("name")).and_then(|n| self.name(n, &field("name")));
        let objective =
            self.require(objective, at, &field("objective")).and_then(|o| self.objective(o, &field("objective")));
        let window = self.require(window, at, &field("window")).and_then(|w| self.window(w, &field("window")));
        let (window, calendar) = match window {
            Some((window, calendar)) => (Some(window), Some(calendar)),
            None => (None, None),
        };
        let runbook = self.optional_text(runbook, &field("runbook"));
        let sli = self.require(sli, at, &field("sli")).and_then(|s| self.sli(s, &field("sli"), regexes));
        let groups = self.groups(group_by.as_ref(), max_groups.as_ref(), sli.as_ref(), path);
        let tiers = self.tiers(alerting.as_ref(), &field("alerting"));
        let guards = self.alerting(alerting.as_ref(), &field("alerting"));
        Some(SloSpec {
            name: name?,
            objective: objective?,
            window: window?,
            calendar: calendar?,
            sli: sli?,
            group_by: groups.as_ref()?.0.clone(),
            max_groups: groups?.1,
            tiers: tiers?,
            alerting: guards?,
            runbook: runbook?,
        })
    }

    /// `99.9` in YAML is the fraction `0.999`. Written as a percentage because that is how
    /// SLOs are spoken of; 0 and 100 are excluded since they leave no budget or no objective.
    fn objective(&mut self, objective: &Spanned<f64>, field: &str) -> Option<f64> {
        let percent = objective.value;
        if percent > 0.0 && percent < 100.0 {
            Some(percent / 100.0)
        } else {
            self.error(
                &objective.referenced,
                field,
                format!("must be a percentage strictly between 0 and 100, e.g. 99.9; got {percent}"),
            )
        }
    }

    /// A rolling window, or a calendar period (whose counters keep its longest span).
    fn window(&mut self, window: &Spanned<RawWindow>, field: &str) -> Option<(Duration, Option<CalendarWindow>)> {
        let calendar = match &window.value {
            RawWindow::Rolling(text) => {
                let text = Spanned { value: text.clone(), referenced: window.referenced, defined: window.defined };
                let duration = self.duration(&text, field)?;
                if duration < MIN_WINDOW {
                    return self.error(
                        &window.referenced,
                        field,
                        format!("must be at least 1m; got {text}", text = text.value),
                    );
                }
                return Some((duration, None));
            }
            RawWindow::Calendar(calendar) => calendar,
        };
        let RawCalendar { calendar: period, time_zone } = calendar;
        let period_field = join(field, "calendar");
        let period = self.require(period, &window.referenced, &period_field).and_then(|p| {
            Period::parse(&p.value).or_else(|| {
                let message = format!("must be one of {}; got `{}`", Period::NAMES.join(", "), p.value);
                self.error(&p.referenced, &period_field, message)
            })
        });
        let zone_field = join(field, "time_zone");
        let zone = time_zone.as_ref();
        let name = zone.map_or(DEFAULT_TIME_ZONE, |z| z.value.as_str());
        let period = period?;
        match CalendarWindow::new(period, name) {
            Some(calendar) => Some((Duration::from_millis(period.max_span() as u64), Some(calendar))),
            None => {
                let at = zone.map_or(window.referenced, |z| z.referenced);
                self.error(
                    &at,
                    &zone_field,
                    format!("unknown time zone `{name}`: use an IANA name such as Europe/Berlin"),
                )
            }
        }
    }

    fn sli(&mut self, sli: &Spanned<RawSli>, path: &str, regexes: &mut RegexBudget) -> Option<Sli> {
        let RawSli { errors, good, total, latency, time_slice } = &sli.value;
        let field = |key| join(path, key);
        if let Some(time_slice) = time_slice {
            if errors.is_some() || good.is_some() || total.is_some() || latency.is_some() {
                return self.error(
                    &sli.referenced,
                    path,
                    "give `time_slice` alone, not with `errors`/`good`/`total` or `latency`",
                );
            }
            return self.time_slice(time_slice, &field("time_slice"), regexes);
        }
        if let Some(latency) = latency {
            if errors.is_some() || good.is_some() || total.is_some() {
                return self.error(
                    &sli.referenced,
                    path,
                    "give either `latency` alone or `errors`/`good` with `total`, not both",
                );
            }
            return self.latency(latency, &field("latency"), regexes);
        }
        let total = self
            .require(total, &sli.referenced, &field("total"))
            .and_then(|t| self.selector(t, &field("total"), regexes));
        match (errors, good) {
            (Some(errors), None) => {
                let errors = self.selector(errors, &field("errors"), regexes);
                Some(Sli::ErrorsTotal { errors: errors?, total: total? })
            }
            (None, Some(good)) => {
                let good = self.selector(good, &field("good"), regexes);
                Some(Sli::GoodTotal { good: good?, total: total? })
            }
            (Some(_), Some(_)) => {
                self.error(&sli.referenced, path, "give either `errors` or `good` with `total`, not both")
            }
            (None, None) => self.error(
                &sli.referenced,
                path,
                "missing `errors` or `good` (one of them, with `total`), or `latency`",
            ),
        }
    }

    /// `latency: {histogram, threshold}`: the histogram's own selector (`name{...}`, no `le`)
    /// and a positive threshold, from which the bucket and count selectors are derived.
    fn latency(&mut self, raw: &Spanned<RawLatency>, path: &str, regexes: &mut RegexBudget) -> Option<Sli> {
        let RawLatency { histogram, threshold } = &raw.value;
        let field = |key| join(path, key);
        let threshold = self
            .require(threshold, &raw.referenced, &field("threshold"))
            .and_then(|t| self.duration(t, &field("threshold")));
        let text = self.require(histogram, &raw.referenced, &field("histogram"))?;
        let histogram = self.selector(text, &field("histogram"), regexes)?;
        if histogram.reads_label("le") {
            return self.error(
                &text.referenced,
                &field("histogram"),
                "must not match `le`: the threshold picks the bucket",
            );
        }
        let threshold = threshold?;
        let Some((good, total)) = histogram.histogram(threshold.as_secs_f64()) else {
            return self.error(
                &text.referenced,
                &field("histogram"),
                "must start with the histogram's metric name, e.g. `http_request_duration_seconds{job=\"x\"}`",
            );
        };
        Some(Sli::Latency { histogram, threshold, good, total })
    }

    /// `time_slice: {gauge, good, slice, reduce}`. A slice is a whole number of minutes that
    /// divides an hour, so slices line up with the hour (and the epoch) whatever the window.
    fn time_slice(&mut self, raw: &Spanned<RawTimeSlice>, path: &str, regexes: &mut RegexBudget) -> Option<Sli> {
        let RawTimeSlice { gauge, good, slice, reduce } = &raw.value;
        let field = |key| join(path, key);
        let gauge = self
            .require(gauge, &raw.referenced, &field("gauge"))
            .and_then(|g| self.selector(g, &field("gauge"), regexes));
        let good = self.require(good, &raw.referenced, &field("good")).and_then(|g| {
            SliceTest::parse(&g.value).or_else(|| {
                let message =
                    format!("must be a comparison (>=, >, <=, <, ==, !=) and a number, e.g. `>= 1`; got `{}`", g.value);
                self.error(&g.referenced, &field("good"), message)
            })
        });
        let slice = self.require(slice, &raw.referenced, &field("slice")).and_then(|text| {
            let slice = self.duration(text, &field("slice"))?;
            let minutes = slice.as_secs() / 60;
            let whole = slice.subsec_nanos() == 0 && slice.as_secs() % 60 == 0 && minutes >= 1;
            if whole && 60 % minutes == 0 {
                Some(slice)
            } else {
                self.error(
                    &text.referenced,
                    &field("slice"),
                    format!(
                        "must be a whole number of minutes that divides 60 (1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, \
                         20m, 30m, 60m); got `{}`",
                        text.value
                    ),
                )
            }
        });
        let reduce = match reduce {
            None => Some(Reduce::Min),
            Some(r) => Reduce::parse(&r.value).or_else(|| {
                let message = format!("must be one of {}; got `{}`", Reduce::NAMES.join(", "), r.value);
                self.error(&r.referenced, &field("reduce"), message)
            }),
        };
        Some(Sli::TimeSlice { gauge: gauge?, good: good?, slice: slice?, reduce: reduce? })
    }

    /// `group_by` and `max_groups`. A group label must be able to vary among the SLI's series:
    /// not `__name__`, and not a label a selector fixes with `=` (every series would share one
    /// value, or a latency bucket's `le`, which the threshold picks).
    fn groups(
        &mut self,
        group_by: Option<&Spanned<Vec<Spanned<String>>>>,
        max_groups: Option<&Spanned<f64>>,
        sli: Option<&Sli>,
        path: &str,
    ) -> Option<(Vec<String>, usize)> {
        let field = |key| join(path, key);
        let Some(group_by) = group_by else {
            return match max_groups {
                None => Some((Vec::new(), DEFAULT_MAX_GROUPS)),
                Some(max) => self.error(&max.referenced, &field("max_groups"), "applies only with `group_by`"),
            };
        };
        let max_groups = match max_groups {
            None => Some(DEFAULT_MAX_GROUPS),
            Some(max) if max.value >= 1.0 && max.value.fract() == 0.0 && max.value <= u32::MAX as f64 => {
                Some(max.value as usize)
            }
            Some(max) => self.error(
                &max.referenced,
                &field("max_groups"),
                format!("must be a whole number, 1 or more; got {}", max.value),
            ),
        };
        if group_by.value.is_empty() {
            return self.error(
                &group_by.referenced,
                &field("group_by"),
                "must list at least one label (omit the field for one instance)",
            );
        }
        let mut labels: Vec<String> = Vec::new();
        let mut all_valid = true;
        for (index, label) in group_by.value.iter().enumerate() {
            let item = format!("{}[{index}]", field("group_by"));
            let name = &label.value;
            let fixed = sli.and_then(|sli| sli.selectors().into_iter().find(|s| s.fixes_label(name)));
            let problem = if !is_label_name(name) {
                Some(format!("`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"))
            } else if name == "__name__" {
                Some("cannot group by `__name__`: an SLI's series differ in their names by design".to_string())
            } else if labels.contains(name) {
                Some(format!("`{name}` is listed twice"))
            } else {
                fixed.map(|selector| {
                    format!(
                        "cannot group by `{name}`: `{}` fixes it, so it cannot tell groups apart",
                        selector.as_str()
                    )
                })
            };
            match problem {
                Some(message) => {
                    self.error::<()>(&label.referenced, &item, message);
                    all_valid = false;
                }
                None => labels.push(name.clone()),
            }
        }
        if !all_valid {
            return None;
        }
        Some((labels, max_groups?))
    }

    /// Resolves the alert tiers: each severity keeps the SRE Workbook default unless
    /// `alerting` replaces its conditions or disables it.
    fn tiers(&mut self, alerting: Option<&Spanned<RawAlerting>>, path: &str) -> Option<Vec<Tier>> {
        let mut tiers = Vec::new();
        let mut all_valid = true;
        for default in default_tiers() {
            let severity = default.severity;
            let override_ = alerting.and_then(|a| match severity {
                Severity::Page => a.value.page.as_ref(),
                Severity::Ticket => a.value.ticket.as_ref(),
            });
            let field = join(path, severity.as_str());
            let tier = match override_ {
                None => Some(Some(default)),
                Some(raw) => self.tier(raw, severity, &field),
            };
            match tier {
                Some(Some(tier)) => tiers.push(tier),
                Some(None) => {}
                None => all_valid = false,
            }
        }
        all_valid.then_some(tiers)
    }

    /// `alerting:`'s keys besides the tiers; each absent one keeps its [`Alerting::default`].
    fn alerting(&mut self, alerting: Option<&Spanned<RawAlerting>>, path: &str) -> Option<Alerting> {
        let defaults = Alerting::default();
        let Some(alerting) = alerting else { return Some(defaults) };
        let RawAlerting { page: _, ticket: _, min_events, min_bad_events, inhibit, no_data } = &alerting.value;
        let min_events = self.count_or(min_events, defaults.min_events, &join(path, "min_events"));
        let min_bad_events = self.count_or(min_bad_events, defaults.min_bad_events, &join(path, "min_bad_events"));
        let no_data = match no_data {
            None => Some(defaults.no_data),
            Some(word) if word.value == DISABLED => Some(None),
            Some(text) => {
                let field = join(path, "no_data");
                self.duration(text, &field).and_then(|d| {
                    if d < MIN_NO_DATA {
                        self.error(
                            &text.referenced,
                            &field,
                            format!("must be at least 1m or `{DISABLED}`; got {}", text.value),
                        )
                    } else {
                        Some(Some(d))
                    }
                })
            }
        };
        Some(Alerting {
            min_events: min_events?,
            min_bad_events: min_bad_events?,
            inhibit: inhibit.as_ref().map_or(defaults.inhibit, |b| b.value),
            no_data: no_data?,
        })
    }

    /// A whole number of events, 0 or more, or `default` when absent.
    fn count_or(&mut self, raw: &Option<Spanned<f64>>, default: f64, field: &str) -> Option<f64> {
        let Some(raw) = raw else { return Some(default) };
        if raw.value >= 0.0 && raw.value.fract() == 0.0 && raw.value.is_finite() {
            Some(raw.value)
        } else {
            self.error(
                &raw.referenced,
                field,
                format!("must be a whole number of events, 0 or more; got {}", raw.value),
            )
        }
    }

    /// One tier override. `Some(None)` is a disabled tier.
    fn tier(&mut self, raw: &Spanned<RawTier>, severity: Severity, path: &str) -> Option<Option<Tier>> {
        match &raw.value {
            RawTier::Word(word) if word == DISABLED => Some(None),
            RawTier::Word(word) => self.error(
                &raw.referenced,
                path,
                format!("expected a list of {{long, short, burn}} conditions or `{DISABLED}`; got `{word}`"),
            ),
            RawTier::Conditions(list) if list.is_empty() => self.error(
                &raw.referenced,
                path,
                format!("must list at least one condition (write `{DISABLED}` to turn the tier off)"),
            ),
            RawTier::Conditions(list) => {
                let conditions: Vec<Option<BurnCondition>> =
                    list.iter().enumerate().map(|(index, c)| self.condition(c, &format!("{path}[{index}]"))).collect();
                let conditions = conditions.into_iter().collect::<Option<Vec<_>>>()?;
                Some(Some(Tier { severity, conditions }))
            }
        }
    }

    fn condition(&mut self, raw: &Spanned<RawCondition>, path: &str) -> Option<BurnCondition> {
        let at = &raw.referenced;
        let RawCondition { long: long_text, short: short_text, burn } = &raw.value;
        let field = |key| join(path, key);
        let long = self.require(long_text, at, &field("long")).and_then(|l| self.duration(l, &field("long")));
        let short = self.require(short_text, at, &field("short")).and_then(|s| self.duration(s, &field("short")));
        let factor = self.require(burn, at, &field("burn")).and_then(|b| {
            if b.value.is_finite() && b.value > 0.0 {
                Some(b.value)
            } else {
                self.error(&b.referenced, &field("burn"), format!("must be a number greater than 0; got {}", b.value))
            }
        });
        let (long, short) = (long?, short?);
        if short >= long {
            // Both are present here, since both parsed.
            let (short_text, long_text) = (short_text.as_ref()?, long_text.as_ref()?);
            return self.error(
                &short_text.referenced,
                &field("short"),
                format!(
                    "short window ({}) must be shorter than the long window ({})",
                    short_text.value, long_text.value
                ),
            );
        }
        Some(BurnCondition { long, short, factor: factor? })
    }

    /// `policy:`; every key absent from it keeps its [`Policy::default`].
    fn policy(&mut self, policy: Option<&Spanned<RawPolicy>>) -> Option<Policy> {
        let defaults = Policy::default();
        let Some(policy) = policy else { return Some(defaults) };
        let RawPolicy {
            freeze_below,
            unfreeze_above,
            warn_below,
            freeze_on_page,
            allow_during_freeze,
            postmortem_above,
            min_coverage,
        } = &policy.value;
        let min_coverage = self.duration_or(min_coverage, defaults.min_coverage, "policy.min_coverage");
        let freeze = self.fraction_or(freeze_below, defaults.freeze_below, "policy.freeze_below");
        // An unwritten threshold above freeze_below follows it up rather than contradicting it:
        // `freeze_below: 50%` alone must not be an error against the 10% and 25% defaults.
        let floor = freeze.unwrap_or(defaults.freeze_below);
        let unfreeze = self.fraction_or(unfreeze_above, defaults.unfreeze_above.max(floor), "policy.unfreeze_above");
        let warn = self.fraction_or(warn_below, defaults.warn_below.max(floor), "policy.warn_below");
        let postmortem = self.fraction_or(postmortem_above, defaults.postmortem_above, "policy.postmortem_above");
        let allow_during_freeze = match allow_during_freeze {
            Some(list) => self.change_classes(list, "policy.allow_during_freeze"),
            None => Some(defaults.allow_during_freeze),
        };
        let freeze_on_page = freeze_on_page.as_ref().map_or(defaults.freeze_on_page, |b| b.value);
        let (freeze, unfreeze, warn) = (freeze?, unfreeze?, warn?);
        let lower = Bound { key: "freeze_below", raw: freeze_below, value: freeze };
        // Both orders are checked before either can stop us, so a freeze_below above both
        // defaults reports both.
        let unfreeze_ordered =
            self.at_least(Bound { key: "unfreeze_above", raw: unfreeze_above, value: unfreeze }, &lower, policy);
        let warn_ordered = self.at_least(Bound { key: "warn_below", raw: warn_below, value: warn }, &lower, policy);
        unfreeze_ordered?;
        warn_ordered?;
        Some(Policy {
            freeze_below: freeze,
            unfreeze_above: unfreeze,
            warn_below: warn,
            freeze_on_page,
            allow_during_freeze: allow_during_freeze?,
            postmortem_above: postmortem?,
            min_coverage: min_coverage?,
        })
    }

    /// A written percentage as a fraction (`10%` → 0.1), or `default` (a fraction) when absent.
    fn fraction_or(&mut self, raw: &Option<Spanned<RawPercent>>, default: f64, field: &str) -> Option<f64> {
        match raw {
            Some(raw) => self.percent(raw, field).map(|percent| percent / 100.0),
            None => Some(default),
        }
    }

    /// `upper >= lower`, else an error at `upper` if written, else at `lower` if written (the
    /// defaults are ordered, so one of them was), else at the `policy` mapping.
    fn at_least(&mut self, upper: Bound<'_>, lower: &Bound<'_>, policy: &Spanned<RawPolicy>) -> Option<()> {
        if upper.value >= lower.value {
            return Some(());
        }
        let (at, field) = match (upper.raw, lower.raw) {
            (Some(raw), _) => (raw.referenced, join("policy", upper.key)),
            (None, Some(raw)) => (raw.referenced, join("policy", lower.key)),
            (None, None) => (policy.referenced, "policy".to_string()),
        };
        let message = format!(
            "{} ({}) must be at least {} ({})",
            upper.key,
            shown_percent(upper.value),
            lower.key,
            shown_percent(lower.value)
        );
        self.error(&at, &field, message)
    }

    /// Change classes name what a deploy is (`?change=hotfix` on the gate), so they are kept to
    /// characters that need no escaping in a query string or a metric label.
    fn change_classes(&mut self, list: &Spanned<Vec<Spanned<String>>>, path: &str) -> Option<Vec<String>> {
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        let mut checked = Vec::new();
        for (index, class) in list.value.iter().enumerate() {
            let field = format!("{path}[{index}]");
            let name = class.value.as_str();
            let mut chars = name.chars();
            let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
            let valid =
                chars.next().is_some_and(lower_or_digit) && chars.all(|c| lower_or_digit(c) || matches!(c, '_' | '-'));
            if !valid {
                let message = format!(
                    "invalid change class `{name}`: use lowercase letters, digits, `_` and `-`, starting with a letter \
                     or digit"
                );
                checked.push(self.error(&class.referenced, &field, message));
            } else if let Some(first) = first_seen.get(name) {
                let message = format!("duplicate change class `{name}`: already listed as {path}[{first}]");
                checked.push(self.error(&class.referenced, &field, message));
            } else {
                first_seen.insert(name, index);
                checked.push(Some(name.to_string()));
            }
        }
        checked.into_iter().collect()
    }

    /// A percentage in 0..=100: `10%`, or a bare `10` (number or string) meaning the same.
    fn percent(&mut self, raw: &Spanned<RawPercent>, field: &str) -> Option<f64> {
        let percent = match &raw.value {
            RawPercent::Number(number) => Some(*number),
            RawPercent::Text(text) => {
                let digits = text.strip_suffix('%').unwrap_or(text);
                let plain_decimal = !digits.is_empty()
                    && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && digits.chars().any(|c| c.is_ascii_digit());
                plain_decimal.then(|| digits.parse().ok()).flatten()
            }
        };
        match percent {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                let shown = match &raw.value {
                    RawPercent::Number(number) => number.to_string(),
                    RawPercent::Text(text) => text.clone(),
                };
                self.error(
                    &raw.referenced,
                    field,
                    format!("must be a percentage from 0% to 100%, e.g. 10%; got `{shown}`"),
                )
            }
        }
    }
}

/// One side of an ordering check between two policy percentages.
struct Bound<'r> {
    key: &'static str,
    raw: &'r Option<Spanned<RawPercent>>,
    /// As a fraction.
    value: f64,
}

/// A fraction as the percentage a spec would write: 0.1 → `10%`. Rounded to 9 decimals so
/// binary noise (0.07 × 100 = 7.000000000000001) does not show.
fn shown_percent(fraction: f64) -> String {
    format!("{}%", (fraction * 100.0 * 1e9).round() / 1e9)
}
