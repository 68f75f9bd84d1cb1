//! Issue 19, item 5: the Prometheus example and the Grafana dashboard in
//! `contrib/` are checked against the real tools and the real daemon.
//!
//! * `promtool` (from Debian's `prometheus` package, installed by
//!   `scripts/install-deps.sh`) checks the scrape config and the rules, and
//!   runs the rules' unit test, in which every alert must both fire and
//!   stay silent at least once.
//! * Every expression of the dashboard (panels and variables) goes through
//!   `promtool check rules` as a generated recording rule, so it is valid
//!   PromQL once Grafana's variables are filled in.
//! * Every metric name in the rules, the rules' test series and the
//!   dashboard must be one that a running daemon's `/metrics` declares
//!   (probing a GStreamer RTSP camera and a closed port), and the labels
//!   they match on or group by must be labels it writes: renaming a metric
//!   or a label fails here, not silently on a fleet's dashboards.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::App;
use super::util::{closed_port, manifest_dir, run_with_timeout, temp_dir, RtspServer, Run};

fn prometheus_dir() -> PathBuf {
    manifest_dir().join("contrib/prometheus")
}

fn dashboard_path() -> PathBuf {
    manifest_dir().join("contrib/grafana/streampulse-fleet.json")
}

/// Runs `promtool args…` in `dir`; panics (naming the install script) if
/// promtool is missing.
fn promtool(dir: &Path, args: &[&str]) -> Run {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("promtool").is_file()));
    assert!(
        found,
        "promtool is not on PATH: run scripts/install-deps.sh (it takes promtool from Debian's prometheus package)"
    );
    let mut cmd = Command::new("promtool");
    cmd.args(args).current_dir(dir);
    run_with_timeout(cmd, Duration::from_secs(60))
}

fn assert_ok(run: &Run, what: &str) {
    assert!(
        run.code == 0
            && run.stdout.contains("SUCCESS")
            && !run.stdout.contains("FAILED")
            && !run.stderr.contains("FAILED"),
        "{what} failed (exit {}):\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rules() -> Vec<Value> {
    let doc = yaml(&prometheus_dir().join("streampulse.rules.yml"));
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

/// A metric selector found in an expression: the metric's name and its
/// label matchers (label, operator, value).
#[derive(Debug, PartialEq)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// What a PromQL expression refers to: its metric selectors and the labels
/// named in `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`.
#[derive(Debug, Default)]
struct Refs {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

/// Binary operators and modifiers, and the aggregations (which may be
/// followed by `by (…)` before their parenthesis).
const KEYWORDS: [&str; 18] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
];
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// A small scanner for the PromQL used here (not a full parser: promtool
/// judges validity). Identifiers followed by `(` are functions, those in
/// `KEYWORDS` operators; other identifiers are metric names. Strings,
/// numbers, `[…]` ranges and Grafana's `$variables` are skipped.
fn refs(expr: &str) -> Refs {
    let b: Vec<char> = expr.chars().collect();
    let mut out = Refs::default();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == '_' || b[*i] == ':') {
            *i += 1;
        }
        b[start..*i].iter().collect::<String>()
    };
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| {
        let q = b[*i];
        let mut s = String::new();
        *i += 1;
        while *i < b.len() && b[*i] != q {
            if b[*i] == '\\' {
                *i += 1;
            }
            s.push(b[*i]);
            *i += 1;
        }
        *i += 1;
        s
    };
    while i < b.len() {
        let c = b[i];
        if c == '"' || c == '\'' || c == '`' {
            string(&mut i);
        } else if c == '[' {
            while i < b.len() && b[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            if i < b.len() && b[i] == '{' {
                while i < b.len() && b[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                ident(&mut i);
            }
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let word = ident(&mut i);
            skip_ws(&mut i);
            let next = b.get(i).copied();
            if LABEL_LISTS.contains(&word.as_str()) {
                if next == Some('(') {
                    let start = i + 1;
                    while i < b.len() && b[i] != ')' {
                        i += 1;
                    }
                    let list: String = b[start..i].iter().collect();
                    out.grouping.extend(
                        list.split(',')
                            .map(|l| l.trim().to_owned())
                            .filter(|l| !l.is_empty()),
                    );
                    i += 1;
                }
            } else if KEYWORDS.contains(&word.as_str()) || next == Some('(') {
                // An operator or a function call.
            } else {
                let mut matchers = Vec::new();
                if next == Some('{') {
                    i += 1;
                    loop {
                        skip_ws(&mut i);
                        if i >= b.len() || b[i] == '}' {
                            i += 1;
                            break;
                        }
                        if b[i] == ',' {
                            i += 1;
                            continue;
                        }
                        let label = ident(&mut i);
                        skip_ws(&mut i);
                        let op_start = i;
                        while i < b.len() && "=!~".contains(b[i]) {
                            i += 1;
                        }
                        let op: String = b[op_start..i].iter().collect();
                        skip_ws(&mut i);
                        assert!(
                            i < b.len() && b[i] == '"',
                            "cannot read the matcher of {label} in {expr}"
                        );
                        let value = string(&mut i);
                        matchers.push((label, op, value));
                    }
                }
                out.selectors.push(Selector {
                    name: word,
                    matchers,
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The scanner finds what the checks below rely on (or they could not fail).
#[test]
fn promql_scanner_finds_metrics_matchers_and_labels() {
    let r = refs(
        r#"histogram_quantile(0.95, sum by (instance, le) (rate(a_bucket{job=~"$job",x="y"}[$__rate_interval]))) / on (instance) group_left b_total offset 5m and bool c or vector(1e3) * 0.5"#,
    );
    let names: Vec<&str> = r.selectors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b_total", "c"]);
    assert_eq!(
        r.selectors[0].matchers,
        [
            ("job".to_owned(), "=~".to_owned(), "$job".to_owned()),
            ("x".to_owned(), "=".to_owned(), "y".to_owned())
        ]
    );
    assert_eq!(r.grouping, ["instance", "le", "instance"]);
    assert!(refs(r#"count(up == 0) or vector(0)"#).selectors[0].name == "up");
}

/// Every expression of the dashboard: (where, PromQL), with the
/// `label_values(expr, label)` of query variables as `expr`.
fn dashboard_exprs(d: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_else(|| {
                    panic!("panel {:?} has a target without expr", p["title"].as_str())
                });
                out.push((
                    format!("panel {:?}", p["title"].as_str().unwrap_or("")),
                    expr.to_owned(),
                ));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    for v in d["templating"]["list"].as_array().expect("templating") {
        if v["type"] == "query" {
            let def = v["definition"].as_str().expect("definition");
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .and_then(|s| s.rsplit_once(','))
                .unwrap_or_else(|| panic!("variable {:?}: {def}", v["name"]));
            out.push((
                format!("variable {:?}", v["name"].as_str().unwrap_or("")),
                inner.0.to_owned(),
            ));
            out.push((
                format!("variable {:?}'s label", v["name"].as_str().unwrap_or("")),
                format!("sum by ({}) ({})", inner.1.trim(), inner.0),
            ));
        }
    }
    out
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(dashboard_path()).expect("the dashboard file");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Grafana's variables filled in the way it would: ranges become a
/// duration, the others a regex or a value that matches anything.
fn fill_variables(expr: &str) -> String {
    let mut s = expr.to_owned();
    for v in ["$__rate_interval", "$__interval", "$__range"] {
        s = s.replace(v, "5m");
    }
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = if let Some(inner) = after.strip_prefix('{') {
            inner.find('}').map_or(after.len(), |e| e + 2)
        } else {
            after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len())
        };
        out.push_str(".*");
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// `promtool check config` and `check rules` on the shipped files, and
/// `promtool test rules`, whose test must have every alert of the rules
/// both fire and stay silent.
#[test]
fn prometheus_example_passes_promtool() {
    let dir = temp_dir("prometheus-files");
    for f in [
        "prometheus.yml",
        "streampulse.rules.yml",
        "streampulse.rules.test.yml",
    ] {
        std::fs::copy(prometheus_dir().join(f), dir.path().join(f)).unwrap();
    }
    // The token file the scrape config reads (promtool checks it exists).
    std::fs::write(dir.path().join("streampulse.token"), "sp_example\n").unwrap();
    let d = dir.path();
    assert_ok(
        &promtool(d, &["check", "config", "prometheus.yml"]),
        "promtool check config",
    );
    let r = promtool(d, &["check", "rules", "streampulse.rules.yml"]);
    assert_ok(&r, "promtool check rules");
    let alerts: BTreeSet<String> = rules()
        .iter()
        .map(|r| r["alert"].as_str().expect("only alerting rules").to_owned())
        .collect();
    assert!(
        r.stdout
            .contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{}",
        r.stdout
    );
    assert_ok(
        &promtool(d, &["test", "rules", "streampulse.rules.test.yml"]),
        "promtool test rules",
    );

    // Each alert is expected to fire at some time and not at another.
    let test = yaml(&prometheus_dir().join("streampulse.rules.test.yml"));
    let mut seen: HashMap<String, (bool, bool)> = HashMap::new();
    for t in test["tests"].as_array().expect("tests") {
        for a in t["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = a["alertname"].as_str().unwrap().to_owned();
            let fires = a["exp_alerts"].as_array().is_some_and(|v| !v.is_empty());
            let e = seen.entry(name).or_default();
            if fires {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
    }
    for alert in &alerts {
        assert_eq!(
            seen.get(alert),
            Some(&(true, true)),
            "{alert}: the rules test must have it fire at one time and stay silent at another"
        );
    }
    let extra: Vec<&String> = seen.keys().filter(|k| !alerts.contains(*k)).collect();
    assert!(
        extra.is_empty(),
        "tests for alerts that do not exist: {extra:?}"
    );

    // A broken rule fails the test (the test above can fail).
    let rules_text = std::fs::read_to_string(d.join("streampulse.rules.yml")).unwrap();
    std::fs::write(
        d.join("streampulse.rules.yml"),
        rules_text.replacen("for: 5m", "for: 1m", 1),
    )
    .unwrap();
    let broken = promtool(d, &["test", "rules", "streampulse.rules.test.yml"]);
    assert!(
        broken.code != 0
            && broken
                .stderr
                .contains("alertname: StreamPulseBoxDown, time: 14m"),
        "a shorter `for:` went unnoticed:\n{}\n{}",
        broken.stdout,
        broken.stderr
    );
}

/// The dashboard is importable JSON (a Prometheus data source input that
/// every panel uses through the `datasource` variable, a row repeated per
/// `instance`), and each of its expressions is valid PromQL to promtool.
#[test]
fn grafana_dashboard_is_valid() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["type"] == "datasource" && i["pluginId"] == "prometheus"),
        "no Prometheus data source input: {inputs:?}"
    );
    let vars = d["templating"]["list"].as_array().expect("templating");
    let ds_var = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(ds_var["query"], "prometheus");
    assert_eq!(ds_var["current"]["value"], "${DS_PROMETHEUS}");
    for name in ["instance", "stream", "window"] {
        assert!(vars.iter().any(|v| v["name"] == name), "no variable {name}");
    }
    let panels = d["panels"].as_array().expect("panels");
    assert!(
        panels
            .iter()
            .any(|p| p["type"] == "row" && p["repeat"] == "instance"),
        "no row repeated per box"
    );
    let mut ids = HashSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "duplicate id"
        );
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {:?}",
                p["title"]
            );
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}");
            }
        }
    }

    let exprs = dashboard_exprs(&d);
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&fill_variables(e)).unwrap()
        ));
    }
    let dir = temp_dir("grafana-promql");
    std::fs::write(dir.path().join("dashboard.rules.yml"), &rules).unwrap();
    let r = promtool(dir.path(), &["check", "rules", "dashboard.rules.yml"]);
    assert_ok(
        &r,
        &format!("promtool check rules on the dashboard's expressions:\n{rules}"),
    );
    assert!(
        r.stdout
            .contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{}",
        r.stdout
    );

    // And invalid PromQL would have been caught.
    std::fs::write(
        dir.path().join("bad.rules.yml"),
        "groups:\n  - name: bad\n    rules:\n      - record: bad:x\n        expr: \"sum by (instance (up)\"\n",
    )
    .unwrap();
    assert_ne!(
        promtool(dir.path(), &["check", "rules", "bad.rules.yml"]).code,
        0
    );
}

/// The families, samples and label values of a real `/metrics` answer.
struct Exposition {
    /// Metric names declared (`# TYPE`), histograms with their `_bucket`,
    /// `_sum` and `_count` series.
    names: HashSet<String>,
    /// Per sample name: label name → values seen.
    labels: HashMap<String, HashMap<String, HashSet<String>>>,
}

fn exposition(text: &str) -> Exposition {
    let mut names = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            names.insert(name.to_owned());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
        }
    }
    let mut labels: HashMap<String, HashMap<String, HashSet<String>>> = HashMap::new();
    for s in super::metrics::parse(text) {
        let entry = labels
            .entry(s["name"].as_str().unwrap().to_owned())
            .or_default();
        for (k, v) in s["labels"].as_object().unwrap() {
            entry
                .entry(k.clone())
                .or_default()
                .insert(v.as_str().unwrap().to_owned());
        }
    }
    Exposition { names, labels }
}

/// Labels every series gets from Prometheus itself (scrape job, target,
/// the example's `site`), and the one metric it makes up (`up`).
const FROM_PROMETHEUS: [&str; 3] = ["job", "instance", "site"];

/// Labels whose values are not a fixed set of words.
const FREE_VALUES: [&str; 2] = ["stream", "version"];

/// Checks that `expr`'s metrics exist in `real`, that the labels it
/// matches on exist on them, and that a plain value it matches is one the
/// daemon writes; returns the problems.
fn check_against(
    where_: &str,
    expr: &str,
    real: &Exposition,
    all_labels: &HashSet<String>,
) -> Vec<String> {
    let reasons: HashSet<&str> = streampulse::probe::Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    let mut problems = Vec::new();
    let r = refs(expr);
    for s in &r.selectors {
        if s.name == "up" {
            continue;
        }
        if !real.names.contains(&s.name) {
            problems.push(format!("{where_}: metric {} is not in /metrics", s.name));
            continue;
        }
        let Some(seen) = real.labels.get(&s.name) else {
            // Declared with no sample in this run: its labels cannot be seen.
            continue;
        };
        for (label, op, value) in &s.matchers {
            if FROM_PROMETHEUS.contains(&label.as_str()) {
                continue;
            }
            let Some(values) = seen.get(label) else {
                problems.push(format!("{where_}: {} has no label {label}", s.name));
                continue;
            };
            // Stream names and versions are whatever the user and the
            // build chose; the other labels' values are fixed words.
            if FREE_VALUES.contains(&label.as_str())
                || value.contains('$')
                || !(op == "=" || op == "=~")
            {
                continue;
            }
            let wanted: Vec<&str> = if op == "=" {
                vec![value.as_str()]
            } else if value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_|".contains(c))
            {
                value.split('|').collect()
            } else {
                continue;
            };
            for w in wanted {
                let known = values.contains(w) || (label == "reason" && reasons.contains(w));
                if !known {
                    problems.push(format!(
                        "{where_}: {}{{{label}=\"{w}\"}} never occurs (seen: {values:?})",
                        s.name
                    ));
                }
            }
        }
    }
    for l in &r.grouping {
        if !all_labels.contains(l) && !FROM_PROMETHEUS.contains(&l.as_str()) {
            problems.push(format!("{where_}: label {l} is on no metric"));
        }
    }
    problems
}

/// Every metric and label that the rules, the rules' test series and the
/// dashboard use is in the `/metrics` answer of a real daemon watching a
/// GStreamer RTSP camera (latency, picture, camera clock) and a closed port
/// (down, failures by reason), with its availability figures.
#[test]
fn contrib_files_use_only_real_metrics() {
    let camera = RtspServer::start();
    let dir = temp_dir("prometheus-metrics");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nstreams:\n- name: cam\n  url: {}\n\
             - name: dead\n  url: rtsp://127.0.0.1:{}/x\n  timeout: 1\n  fail_threshold: 1\n",
            camera.url("/h264"),
            closed_port()
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    app.wait_status(
        Duration::from_secs(60),
        "cam up with its clock read, dead down",
        |v| {
            v["cam"]["state"] == "up"
                && v["cam"]["camera_clock_offset_ms"].is_i64()
                && v["dead"]["state"] == "down"
        },
    );
    // The availability gauges come with the first heartbeats.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = app.get_text("/metrics");
        if text.contains("streampulse_stream_availability_ratio{") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let real = exposition(&text);
    for must in [
        "streampulse_stream_availability_ratio",
        "streampulse_camera_clock_offset_seconds",
        "streampulse_probe_failures_total",
        "streampulse_probe_latency_seconds_bucket",
    ] {
        assert!(real.labels.contains_key(must), "no {must} sample:\n{text}");
    }
    let all_labels: HashSet<String> = real
        .labels
        .values()
        .flat_map(|l| l.keys().cloned())
        .collect();

    let mut checked = Vec::new();
    for r in rules() {
        let name = r["alert"].as_str().unwrap().to_owned();
        checked.push((
            format!("alert {name}"),
            r["expr"].as_str().unwrap().to_owned(),
        ));
    }
    let test = yaml(&prometheus_dir().join("streampulse.rules.test.yml"));
    for t in test["tests"].as_array().unwrap() {
        for s in t["input_series"].as_array().unwrap() {
            checked.push((
                "test series".into(),
                s["series"].as_str().unwrap().to_owned(),
            ));
        }
    }
    checked.extend(dashboard_exprs(&dashboard()));

    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (where_, expr) in &checked {
        used.extend(refs(expr).selectors.into_iter().map(|s| s.name));
        problems.extend(check_against(where_, expr, &real, &all_labels));
    }
    assert!(
        problems.is_empty(),
        "{}\n\n/metrics:\n{text}",
        problems.join("\n")
    );
    // The check itself notices a renamed metric and an unknown label value.
    assert!(!check_against("x", "streampulse_stream_upp", &real, &all_labels).is_empty());
    assert!(!check_against(
        "x",
        r#"streampulse_stream_state{state="gone"}"#,
        &real,
        &all_labels
    )
    .is_empty());
    assert!(!check_against(
        "x",
        "sum by (camera) (streampulse_stream_up)",
        &real,
        &all_labels
    )
    .is_empty());
    // The files cover what a fleet needs.
    for m in [
        "up",
        "streampulse_stream_state",
        "streampulse_clock_synced",
        "streampulse_heartbeats_committed_total",
        "streampulse_stream_availability_ratio",
        "streampulse_probe_latency_seconds_bucket",
        "streampulse_probe_failures_total",
    ] {
        assert!(used.contains(m), "{m} is used nowhere: {used:?}");
    }
}
