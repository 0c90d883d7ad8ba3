//! `spin.toml` checked natively (the Spin CLI is not available here): the shape Spin 4 expects,
//! and the invariants that make `spin build && spin up` work from a clean clone with least
//! privilege. See FACTS in the README's "Running under Spin".

use std::collections::BTreeSet;
use std::path::Path;

use toml::{Table, Value};

fn manifest() -> (String, Table) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
    let text = std::fs::read_to_string(&path).expect("read spin.toml");
    let table = text.parse::<Table>().expect("spin.toml is TOML");
    (text, table)
}

fn get<'a>(table: &'a Table, path: &str) -> &'a Value {
    let mut value = None::<&Value>;
    let mut current = table;
    for key in path.split('.') {
        let v = current.get(key).unwrap_or_else(|| panic!("spin.toml: missing {path}"));
        value = Some(v);
        if let Value::Table(t) = v {
            current = t;
        }
    }
    value.unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().expect("an array").iter().map(|v| v.as_str().expect("a string").to_string()).collect()
}

/// What `cargo build --target T --profile P -p PKG` writes, relative to the workspace.
fn artifact_of(command: &str) -> (String, String) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1]);
    assert_eq!(&words[..2], ["cargo", "build"], "{command}");
    assert!(words.contains(&"--locked"), "builds must use Cargo.lock: {command}");
    let package = after("-p").expect("-p PACKAGE");
    let target = after("--target").expect("--target");
    let profile = if words.contains(&"--release") { "release" } else { after("--profile").expect("--profile or --release") };
    (package.to_string(), format!("target/{target}/{profile}/{}.wasm", package.replace('-', "_")))
}

#[test]
fn the_manifest_has_spin_4s_shape() {
    let (_, m) = manifest();
    assert_eq!(get(&m, "spin_manifest_version").as_integer(), Some(2));
    assert!(get(&m, "application.name").as_str().is_some());
    let triggers = get(&m, "trigger.http").as_array().expect("[[trigger.http]]");
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0].get("route").and_then(Value::as_str), Some("/..."));
    let id = triggers[0].get("component").and_then(Value::as_str).expect("trigger component");
    let components = get(&m, "component").as_table().unwrap();
    assert_eq!(components.keys().collect::<Vec<_>>(), [id], "one component, the trigger's");
    let component = components[id].as_table().unwrap();
    for key in component.keys() {
        assert!(
            ["description", "source", "allowed_outbound_hosts", "key_value_stores", "variables", "dependencies", "build"].contains(&key.as_str()),
            "unexpected component key {key}"
        );
    }
    assert_eq!(strings(&component["key_value_stores"]), ["default"]);
}

#[test]
fn the_build_produces_the_source_and_the_dependency_in_order() {
    let (_, m) = manifest();
    let app = get(&m, "component.edge-secrets-app").as_table().unwrap();
    let commands = strings(&app["build"]["command"]);
    assert_eq!(commands.len(), 2, "the guest, then the app, as separate cargo runs: {commands:?}");
    let (guest_pkg, guest_wasm) = artifact_of(&commands[0]);
    let (app_pkg, app_wasm) = artifact_of(&commands[1]);
    assert_eq!((guest_pkg.as_str(), app_pkg.as_str()), ("edge-secrets-guest", "edge-secrets-spin-app"), "the dependency is built first");
    assert_eq!(app["source"].as_str(), Some(app_wasm.as_str()), "source is what the build writes");

    let deps = app["dependencies"].as_table().unwrap();
    assert_eq!(deps.keys().collect::<Vec<_>>(), ["edge:secrets"], "one dependency for the whole package: one instance serves secrets and admin");
    assert_eq!(deps["edge:secrets"]["path"].as_str(), Some(guest_wasm.as_str()), "the dependency is what the build writes");

    // host/build.rs builds the same packages with the same target and profile (into its own
    // target dir): the manifest's paths are where those artifacts land under `target/`.
    for (built, manifest_path) in [(env!("EDGE_SECRETS_GUEST_WASM"), &guest_wasm), (env!("EDGE_SECRETS_APP_WASM"), &app_wasm)] {
        let relative = manifest_path.strip_prefix("target/").unwrap();
        assert!(Path::new(built).ends_with(relative), "{built} vs {manifest_path}");
        assert!(Path::new(built).is_file(), "{built} exists after the build");
    }
}

#[test]
fn the_dependency_inherits_only_what_it_needs() {
    let (_, m) = manifest();
    let app = get(&m, "component.edge-secrets-app").as_table().unwrap();
    assert!(!app.contains_key("dependencies_inherit_configuration"), "no blanket inheritance");
    let inherited: BTreeSet<String> = strings(&app["dependencies"]["edge:secrets"]["inherit_configuration"]).into_iter().collect();
    assert_eq!(inherited, ["allowed_outbound_hosts", "key_value_stores", "variables"].map(String::from).into());
}

#[test]
fn every_variable_is_declared_used_and_secret_when_it_is_a_credential() {
    let (text, m) = manifest();
    let declared = get(&m, "variables").as_table().unwrap();
    // Every `{{ name }}` anywhere in the manifest names a declared variable.
    let mut referenced = BTreeSet::new();
    for piece in text.split("{{").skip(1) {
        let name = piece.split("}}").next().unwrap().trim();
        assert!(declared.contains_key(name), "{{{{ {name} }}}} is not declared in [variables]");
        referenced.insert(name.to_string());
    }
    assert_eq!(referenced, declared.keys().cloned().collect(), "every declared variable is used");

    for (name, spec) in declared {
        let spec = spec.as_table().unwrap();
        assert!(name.chars().next().unwrap().is_ascii_lowercase() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
        // Backend and caller tokens, and the key that seals shared state.
        let is_credential = name.contains("token") || name.ends_with("_key");
        assert_eq!(spec.get("secret").and_then(Value::as_bool).unwrap_or(false), is_credential, "{name}: secret = {is_credential}");
        if is_credential {
            assert_eq!(spec.get("required").and_then(Value::as_bool), Some(true), "{name}: credentials have no default");
            assert!(!spec.contains_key("default"), "{name}");
        } else {
            assert!(spec.contains_key("default") ^ spec.contains_key("required"), "{name}: a default or required");
        }
    }

    // The component passes every variable through under its own name.
    let component_vars = get(&m, "component.edge-secrets-app.variables").as_table().unwrap();
    for (name, value) in component_vars {
        assert_eq!(value.as_str().unwrap().replace(' ', ""), format!("{{{{{name}}}}}"));
    }
    assert!(component_vars.contains_key("caller_tokens") && component_vars.contains_key("secrets_policy"));
}

#[test]
fn the_default_policy_is_valid_and_reaches_only_allowed_hosts() {
    let (_, m) = manifest();
    let policy = get(&m, "variables.secrets_policy.default").as_str().unwrap();
    let specs = edge_secrets_guest::config::parse_policy(policy).expect("the default policy is valid");
    // Shared state is on by default (Spin makes a fresh provider instance per request), and
    // its sealing key is a declared, secret variable.
    let document = edge_secrets_guest::config::parse_document(policy).unwrap();
    let shared = document.shared.expect("the default policy turns shared state on");
    assert_eq!(shared.bucket, "default", "the store the component is granted");
    assert_eq!(get(&m, &format!("variables.{}.secret", shared.key_key)).as_bool(), Some(true));
    let component_vars = get(&m, "component.edge-secrets-app.variables").as_table().unwrap();
    let allowed = strings(get(&m, "component.edge-secrets-app.allowed_outbound_hosts"));
    let json: serde_json::Value = serde_json::from_str(policy).unwrap();
    for spec in &specs {
        for tier in &spec.tiers {
            for (field, key) in edge_secrets_guest::config::auth::credential_keys(&tier.auth) {
                assert!(component_vars.contains_key(key), "the policy's {field} {key} is a component variable");
            }
        }
        let url = json["environments"][&spec.name]["url"].as_str().unwrap();
        let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        assert!(allowed.contains(&origin), "{origin} is not in allowed_outbound_hosts {allowed:?}");
    }
    assert_eq!(allowed.len(), specs.len(), "nothing beyond the configured backends");
}

/// Runs the manifest's build commands from the workspace root, as `spin build` does, and checks
/// the source and dependency exist afterwards. Slow (a release-style wasm build into
/// `target/`), so ignored by default: `cargo test -p edge-secrets-host --test spin_manifest -- --ignored`.
#[test]
#[ignore]
fn spin_build_commands_produce_the_files() {
    let (_, m) = manifest();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let app = get(&m, "component.edge-secrets-app").as_table().unwrap();
    for command in strings(&app["build"]["command"]) {
        let status = std::process::Command::new("sh").arg("-c").arg(&command).current_dir(&root).env_remove("CARGO_TARGET_DIR").status().unwrap();
        assert!(status.success(), "{command}");
    }
    assert!(root.join(app["source"].as_str().unwrap()).is_file());
    assert!(root.join(app["dependencies"]["edge:secrets"]["path"].as_str().unwrap()).is_file());
}

/// `examples/config-app/spin.toml`: the app that knows only `wasi:config`, with the config
/// provider as a component dependency, inheriting what Spin 4.1 needs it to (see FACTS: a
/// dependency that imports `wasi:keyvalue` must inherit `key_value_stores`).
#[test]
fn the_config_example_depends_on_the_provider_for_wasi_config_with_least_privilege() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config-app/spin.toml");
    let text = std::fs::read_to_string(&path).expect("read the example's spin.toml");
    let m = text.parse::<Table>().expect("TOML");
    let dependency = get(&m, "component.config-app.dependencies").as_table().unwrap();
    assert_eq!(dependency.keys().collect::<Vec<_>>(), ["wasi:config/store@0.2.0-draft-2024-09-27"]);
    let provider = dependency["wasi:config/store@0.2.0-draft-2024-09-27"].as_table().unwrap();
    let inherited: BTreeSet<String> = strings(&provider["inherit_configuration"]).into_iter().collect();
    assert_eq!(inherited, ["allowed_outbound_hosts", "key_value_stores", "variables"].map(String::from).into());
    assert_eq!(strings(get(&m, "component.config-app.key_value_stores")), ["default"]);

    // Every `{{ name }}` is declared, credentials are secret, and the default policy maps the
    // app's `db_password` onto an environment whose backend the component may reach.
    let declared = get(&m, "variables").as_table().unwrap();
    for piece in text.split("{{").skip(1) {
        let name = piece.split("}}").next().unwrap().trim();
        assert!(declared.contains_key(name), "{name} is not declared");
    }
    for credential in ["vault_token", "secrets_state_key"] {
        assert_eq!(get(&m, &format!("variables.{credential}.secret")).as_bool(), Some(true), "{credential}");
    }
    let policy = get(&m, "variables.secrets_policy.default").as_str().unwrap();
    let document = edge_secrets_guest::config::parse_document(policy).expect("the default policy is valid");
    assert_eq!(document.config.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["db_password"]);
    let base = &document.environments[0].primary().url;
    let scheme = if base.scheme == edge_secrets_guest::http::Scheme::Https { "https" } else { "http" };
    let url = format!("{scheme}://{}", base.authority);
    let hosts = strings(get(&m, "component.config-app.allowed_outbound_hosts"));
    assert!(hosts.iter().any(|h| url.starts_with(h.as_str())), "{url} not in {hosts:?}");
    // The component's own keys are not settings the app reads: none is mapped.
    assert!(document.config.iter().all(|c| !["secrets_policy", "vault_token", "secrets_state_key"].contains(&c.key.as_str())));
}
