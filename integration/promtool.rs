//! `alerts/sloguard.rules.yml` checked by Prometheus' own `promtool`: the rules parse, and their
//! unit tests (`alerts/sloguard.rules.test.yml`) fire each alert when, and with the labels and
//! annotations, they should.

use std::path::{Path, PathBuf};
use std::process::Command;

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")
}

/// Runs `promtool <args>` and fails the test with its output unless it succeeds.
fn promtool(args: &[&str]) {
    let output = match Command::new("promtool").args(args).current_dir(alerts_dir()).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool not found on PATH; install it with `apt-get install prometheus` (Debian/Ubuntu) \
             or run scripts/test.sh, which installs it"
        ),
        Err(err) => panic!("cannot run promtool: {err}"),
    };
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn alert_rules_pass_promtool_check() {
    promtool(&["check", "rules", "sloguard.rules.yml"]);
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    promtool(&["test", "rules", "sloguard.rules.test.yml"]);
}
