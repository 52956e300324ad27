//! The deploy-gate recipes in `docs/recipes/` are valid YAML and still say what the gate's
//! contract says (endpoints, conditions, exit codes), so copying one into a cluster or a
//! pipeline does not start with a parse error or a stale URL.

use std::path::PathBuf;

use serde_json::Value;

fn recipes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/recipes")
}

/// Every document of one recipe file, parsed with the project's YAML crate.
fn documents(name: &str) -> Vec<Value> {
    let path = recipes_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_recipe_is_valid_yaml() {
    let mut names: Vec<String> = std::fs::read_dir(recipes_dir())
        .expect("docs/recipes exists")
        .map(|entry| entry.expect("readable entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    names.sort();
    assert_eq!(names, ["argo-rollouts-analysis.yaml", "flagger-canary.yaml", "github-actions.yaml", "gitlab-ci.yaml"]);
    for name in &names {
        let docs = documents(name);
        assert!(!docs.is_empty() && docs.iter().all(Value::is_object), "{name}: every document is a mapping");
    }
}

#[test]
fn argo_web_metric_maps_allow_deny_and_leaves_warn_inconclusive() {
    let docs = documents("argo-rollouts-analysis.yaml");
    let template = docs.iter().find(|d| d["metadata"]["name"] == "sloguard-gate").expect("web template");
    assert_eq!(template["kind"], "AnalysisTemplate");
    let metric = &template["spec"]["metrics"][0];
    assert_eq!(metric["successCondition"], "result == 'allow'");
    assert_eq!(metric["failureCondition"], "result == 'deny'");
    assert_eq!(metric["provider"]["web"]["jsonPath"], "{$.decision}");
    let url = metric["provider"]["web"]["url"].as_str().unwrap();
    assert!(url.ends_with("/v1/gate/{{ args.service }}?change={{ args.change }}"), "{url}");
    let rollout = docs.iter().find(|d| d["kind"] == "Rollout").expect("rollout");
    assert_eq!(
        rollout["spec"]["strategy"]["canary"]["steps"][0]["analysis"]["templates"][0]["templateName"],
        "sloguard-gate"
    );
}

#[test]
fn flagger_webhook_points_at_the_flagger_endpoint() {
    let docs = documents("flagger-canary.yaml");
    let hook = &docs[0]["spec"]["analysis"]["webhooks"][0];
    assert_eq!(docs[0]["kind"], "Canary");
    assert_eq!(hook["type"], "confirm-rollout");
    assert!(hook["url"].as_str().unwrap().ends_with("/v1/flagger/gate"));
    assert_eq!(hook["metadata"]["service"], "checkout");
}

#[test]
fn ci_recipes_run_sloguard_gate() {
    let github = &documents("github-actions.yaml")[0];
    let steps = github["jobs"]["deploy"]["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["run"].as_str().is_some_and(|r| r.starts_with("sloguard gate checkout"))));
    let gitlab = &documents("gitlab-ci.yaml")[0];
    let job = &gitlab["error-budget-gate"];
    assert!(job["script"][0].as_str().unwrap().starts_with("sloguard gate checkout --server"));
    assert_eq!(job["allow_failure"]["exit_codes"][0], 69);
}
