//! The health endpoint's body, read in the formats applications really answer in: IETF
//! health+json (draft-inadarei-api-health-check), Spring Boot actuator, ASP.NET Core health
//! checks, a Kubernetes-style plain `ok` (and its `?verbose` lines), ad-hoc JSON with
//! `status`/`ok`/`healthy` fields, and the sample app's own body. Pure: no I/O, so every
//! rule can be tested over literal bodies.
//!
//! What a body means is decided in one place, [`Health::healthy`]: an HTTP status outside
//! 2xx is unhealthy whatever the body says (it is what a load balancer acts on); within 2xx
//! the body's own overall status decides when it can be read, a warning (`warn`, `Degraded`)
//! counting as healthy; when it cannot, a check that reads as failed makes it unhealthy.
//! A status that cannot be read is [`CheckStatus::Unknown`] with its raw value, never a
//! failure by itself.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// How the health body is read: `--app-health-format`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum HealthFormat {
    /// Recognised from the body (see [`detect`] for the order).
    #[default]
    Auto,
    /// IETF health+json: `status` pass/warn/fail, `checks` an object of arrays.
    Ietf,
    /// Spring Boot actuator: `status` UP/DOWN/OUT_OF_SERVICE/UNKNOWN, nested `components`.
    Spring,
    /// ASP.NET Core health checks: `status` Healthy/Degraded/Unhealthy, `entries`.
    AspNet,
    /// A text body such as Kubernetes' `ok`; its `[+]name ok` / `[-]name failed` lines are checks.
    Plain,
    /// The overall status is the JSON value at this path; no checks are read.
    JsonPath(JsonPath),
}

/// Why a `--app-health-format` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthFormatError {
    /// Not one of the formats.
    #[error("unknown health format {0:?}: use auto, ietf, spring, aspnet, plain or json-path=$.path.to.status")]
    Unknown(String),
    /// A `json-path=` expression that does not parse.
    #[error("json-path={expr}: {reason}; write a dotted path from the root such as $.status, $.health.state, $.checks[0].status or $['key.with.dots']")]
    Path {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl FromStr for HealthFormat {
    type Err = HealthFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(expr) = s.strip_prefix("json-path=") {
            return JsonPath::parse(expr).map(HealthFormat::JsonPath);
        }
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => HealthFormat::Auto,
            "ietf" => HealthFormat::Ietf,
            "spring" => HealthFormat::Spring,
            "aspnet" => HealthFormat::AspNet,
            "plain" => HealthFormat::Plain,
            _ => return Err(HealthFormatError::Unknown(s.to_string())),
        })
    }
}

impl TryFrom<String> for HealthFormat {
    type Error = HealthFormatError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for HealthFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthFormat::Auto => f.write_str("auto"),
            HealthFormat::Ietf => f.write_str("ietf"),
            HealthFormat::Spring => f.write_str("spring"),
            HealthFormat::AspNet => f.write_str("aspnet"),
            HealthFormat::Plain => f.write_str("plain"),
            HealthFormat::JsonPath(p) => write!(f, "json-path={p}"),
        }
    }
}

/// A path to one JSON value: `$`, then `.key`, `[index]` or `['key']` / `["key"]` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<PathStep>,
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

impl JsonPath {
    /// Parses `$.a.b[0]['c.d']`; keys after a dot run to the next `.` or `[`.
    pub fn parse(expr: &str) -> Result<JsonPath, HealthFormatError> {
        let bad = |reason| HealthFormatError::Path {
            expr: expr.to_string(),
            reason,
        };
        let Some(mut rest) = expr.strip_prefix('$') else {
            return Err(bad("it must start with $ (the root of the body)"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return Err(bad("a dot must be followed by a key"));
                }
                steps.push(PathStep::Key(after[..end].to_string()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let close = after.find(']').ok_or_else(|| bad("a [ is not closed"))?;
                let inside = &after[..close];
                let quoted = ['\'', '"'].into_iter().find_map(|q| {
                    inside
                        .strip_prefix(q)
                        .and_then(|s| s.strip_suffix(q))
                        .filter(|_| inside.len() >= 2)
                });
                match (quoted, inside.parse::<usize>()) {
                    (Some(key), _) => steps.push(PathStep::Key(key.to_string())),
                    (None, Ok(i)) => steps.push(PathStep::Index(i)),
                    (None, Err(_)) => {
                        return Err(bad("inside [ ] goes an index such as 0 or a quoted key"))
                    }
                }
                rest = &after[close + 1..];
            } else {
                return Err(bad("after $ and each step comes . or ["));
            }
        }
        Ok(JsonPath {
            text: expr.to_string(),
            steps,
        })
    }

    /// The value at this path, if the body has one there.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(root, |v, step| match step {
            PathStep::Key(k) => v.get(k.as_str()),
            PathStep::Index(i) => v.get(*i),
        })
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The format a body was read as: what the evidence names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFormat {
    /// IETF health+json.
    Ietf,
    /// Spring Boot actuator.
    Spring,
    /// ASP.NET Core health checks.
    AspNet,
    /// A text body (Kubernetes style).
    Plain,
    /// The sample app's own: `HEALTHY`/`DEGRADED`/`UNHEALTHY` and a `checks` list.
    Sample,
    /// JSON in none of the above: `status`, `ok` or `healthy` fields.
    AdHoc,
    /// The status at a `json-path=` expression.
    JsonPath(String),
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyFormat::Ietf => f.write_str("IETF health+json"),
            BodyFormat::Spring => f.write_str("Spring Boot actuator"),
            BodyFormat::AspNet => f.write_str("ASP.NET Core health checks"),
            BodyFormat::Plain => f.write_str("plain text"),
            BodyFormat::Sample => f.write_str("sample-app health"),
            BodyFormat::AdHoc => f.write_str("ad-hoc JSON"),
            BodyFormat::JsonPath(p) => write!(f, "JSON at {p}"),
        }
    }
}

impl Serialize for BodyFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What one status value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    /// Healthy (`pass`, `UP`, `Healthy`, `ok`, `true` …).
    Pass,
    /// Healthy with a concern (`warn`, `Degraded`): a pass, shown as a warning.
    Warn,
    /// Not healthy (`fail`, `DOWN`, `OUT_OF_SERVICE`, `Unhealthy`, `false` …).
    Fail,
    /// A value none of the known words: kept as written (JSON text for a non-string).
    Unknown(String),
}

impl CheckStatus {
    /// Reads one status word, whatever its case, `-` or space for `_`.
    pub fn from_word(raw: &str) -> CheckStatus {
        let word = raw.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        match word.as_str() {
            "pass" | "passed" | "passing" | "ok" | "up" | "healthy" | "green" | "true"
            | "success" | "serving" | "alive" | "ready" | "available" => CheckStatus::Pass,
            "warn" | "warning" | "degraded" | "yellow" => CheckStatus::Warn,
            "fail" | "failed" | "failing" | "failure" | "error" | "down" | "unhealthy" | "red"
            | "false" | "critical" | "out_of_service" | "not_serving" | "unavailable" | "dead" => {
                CheckStatus::Fail
            }
            _ => CheckStatus::Unknown(raw.to_string()),
        }
    }

    /// Reads one JSON status value: a word, or a boolean (`true` is pass).
    pub fn from_value(v: &Value) -> CheckStatus {
        match v {
            Value::String(s) => CheckStatus::from_word(s),
            Value::Bool(true) => CheckStatus::Pass,
            Value::Bool(false) => CheckStatus::Fail,
            other => CheckStatus::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckStatus::Pass => f.write_str("pass"),
            CheckStatus::Warn => f.write_str("warn"),
            CheckStatus::Fail => f.write_str("fail"),
            CheckStatus::Unknown(raw) => write!(f, "unknown ({raw:?})"),
        }
    }
}

impl Serialize for CheckStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One check of the body: a component the application looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its name: the key, `parent/child` for nested Spring components, `key (componentId)`
    /// when an IETF key holds several.
    pub name: String,
    /// What it says.
    pub status: CheckStatus,
    /// Its output, description or error, when it gives one.
    pub detail: Option<String>,
}

/// A health body as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The format it was read as.
    pub format: BodyFormat,
    /// The body's overall status; `None` when it has none.
    pub overall: Option<CheckStatus>,
    /// That status as written (`UP`, `Healthy`, `ok`), for the evidence.
    pub overall_raw: Option<String>,
    /// Every check found, in the body's order.
    pub checks: Vec<Check>,
    /// Why a format forced by `--app-health-format` found nothing it expected.
    pub note: Option<String>,
}

/// Characters of a check's detail kept.
const DETAIL_CHARS: usize = 160;
/// Characters of an unknown plain-text body kept as its raw status.
const PLAIN_RAW_CHARS: usize = 60;

impl Health {
    /// Reads `body` as `format` says; `healthy_status` (`--app-healthy-status`) is one more
    /// overall status word that means pass.
    pub fn read(format: &HealthFormat, body: &str, healthy_status: &str) -> Health {
        let json = serde_json::from_str::<Value>(body.trim()).ok();
        let not_json = |format| Health::empty(format, "the body is not JSON");
        let mut health = match (format, &json) {
            (HealthFormat::Auto, _) => match detect(json.as_ref()) {
                BodyFormat::Plain => plain(body),
                found => read_json(found, json.as_ref().unwrap_or(&Value::Null)),
            },
            (HealthFormat::Plain, _) => plain(body),
            (HealthFormat::Ietf, Some(j)) => read_json(BodyFormat::Ietf, j),
            (HealthFormat::Spring, Some(j)) => read_json(BodyFormat::Spring, j),
            (HealthFormat::AspNet, Some(j)) => read_json(BodyFormat::AspNet, j),
            (HealthFormat::Ietf, None) => not_json(BodyFormat::Ietf),
            (HealthFormat::Spring, None) => not_json(BodyFormat::Spring),
            (HealthFormat::AspNet, None) => not_json(BodyFormat::AspNet),
            (HealthFormat::JsonPath(p), j) => at_path(p, j.as_ref()),
        };
        if health.overall_raw.as_deref() == Some(healthy_status) {
            health.overall = Some(CheckStatus::Pass);
        }
        if *format != HealthFormat::Auto
            && health.note.is_none()
            && health.overall.is_none()
            && health.checks.is_empty()
        {
            health.note = Some(format!("no status and no checks where {format} puts them"));
        }
        health
    }

    fn empty(format: BodyFormat, note: &str) -> Health {
        Health {
            format,
            overall: None,
            overall_raw: None,
            checks: Vec::new(),
            note: Some(note.to_string()),
        }
    }

    /// Whether an answer with this body and HTTP status means healthy: never outside 2xx;
    /// else the overall status when it reads as pass, warn or fail; else no check failing.
    pub fn healthy(&self, http_status: u16) -> bool {
        if !(200..300).contains(&http_status) {
            return false;
        }
        match &self.overall {
            Some(CheckStatus::Pass | CheckStatus::Warn) => true,
            Some(CheckStatus::Fail) => false,
            None | Some(CheckStatus::Unknown(_)) => {
                !self.checks.iter().any(|c| c.status == CheckStatus::Fail)
            }
        }
    }

    /// The check of this name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The checks that say `status`, compared by kind (any unknown value matches `Unknown`).
    pub fn with_status(&self, status: &CheckStatus) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| std::mem::discriminant(&c.status) == std::mem::discriminant(status))
            .collect()
    }

    /// Every string read from the body passed through `f` (the app's secrets redacted).
    pub fn map_text(mut self, f: impl Fn(&str) -> String) -> Health {
        let status = |s: CheckStatus| match s {
            CheckStatus::Unknown(raw) => CheckStatus::Unknown(f(&raw)),
            known => known,
        };
        self.overall = self.overall.map(status);
        self.overall_raw = self.overall_raw.map(|s| f(&s));
        for c in &mut self.checks {
            c.name = f(&c.name);
            c.status = status(std::mem::replace(&mut c.status, CheckStatus::Pass));
            c.detail = c.detail.as_deref().map(&f);
        }
        self
    }

    /// One line for the evidence: the format, the overall status as written, and the
    /// checks grouped as passed, warned, failed and unknown (details for all but passed).
    pub fn describe(&self) -> String {
        let mut text = self.format.to_string();
        match (&self.overall_raw, &self.overall) {
            (Some(raw), Some(CheckStatus::Unknown(_))) => {
                text.push_str(&format!(", status {raw:?} unknown"))
            }
            (Some(raw), Some(s)) => text.push_str(&format!(", status {raw} ({s})")),
            (Some(raw), None) => text.push_str(&format!(", status {raw}")),
            (None, _) => text.push_str(", no overall status"),
        }
        if let Some(note) = &self.note {
            text.push_str(&format!(" ({note})"));
        }
        let group = |status: CheckStatus, label: &str, details: bool| {
            let found = self.with_status(&status);
            (!found.is_empty()).then(|| {
                let items: Vec<String> = found
                    .iter()
                    .map(|c| match (&c.status, &c.detail) {
                        (CheckStatus::Unknown(raw), _) => format!("{} ({raw:?})", c.name),
                        (_, Some(d)) if details => format!("{} ({d})", c.name),
                        _ => c.name.clone(),
                    })
                    .collect();
                format!("{label}: {}", items.join(", "))
            })
        };
        let groups: Vec<String> = [
            group(CheckStatus::Pass, "passed", false),
            group(CheckStatus::Warn, "warned", true),
            group(CheckStatus::Fail, "failed", true),
            group(CheckStatus::Unknown(String::new()), "unknown", false),
        ]
        .into_iter()
        .flatten()
        .collect();
        if groups.is_empty() {
            text.push_str("; no checks");
        } else {
            text.push_str(&format!("; {}", groups.join("; ")));
        }
        text
    }
}

/// The format of a body under `auto`, first match wins: not JSON → plain; an object with an
/// `entries` object → ASP.NET; with a `components` object (or Spring Boot 2.0's `details`)
/// and a Spring status → Spring; with `checks` an object of arrays → IETF; with a `checks`
/// list and a sample-app status → the sample app's; else by the `status` word alone (UP/DOWN/
/// OUT_OF_SERVICE/UNKNOWN Spring, Healthy/Degraded/Unhealthy ASP.NET, pass/warn/fail IETF,
/// HEALTHY/DEGRADED/UNHEALTHY sample app); anything else → ad-hoc JSON.
pub fn detect(json: Option<&Value>) -> BodyFormat {
    let Some(j) = json else {
        return BodyFormat::Plain;
    };
    let Some(o) = j.as_object() else {
        return BodyFormat::AdHoc;
    };
    let status = o.get("status").and_then(Value::as_str).unwrap_or("");
    let spring_word = matches!(status, "UP" | "DOWN" | "OUT_OF_SERVICE" | "UNKNOWN");
    let sample_word = matches!(status, "HEALTHY" | "DEGRADED" | "UNHEALTHY");
    if o.get("entries").is_some_and(Value::is_object) {
        BodyFormat::AspNet
    } else if o.get("components").is_some_and(Value::is_object)
        || (spring_word && o.get("details").is_some_and(Value::is_object))
    {
        BodyFormat::Spring
    } else if o
        .get("checks")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty() && m.values().all(Value::is_array))
    {
        BodyFormat::Ietf
    } else if sample_word && o.get("checks").is_some_and(Value::is_array) {
        BodyFormat::Sample
    } else if o.get("checks").is_some() {
        BodyFormat::AdHoc
    } else if spring_word {
        BodyFormat::Spring
    } else if matches!(status, "Healthy" | "Degraded" | "Unhealthy") {
        BodyFormat::AspNet
    } else if matches!(status, "pass" | "warn" | "fail") {
        BodyFormat::Ietf
    } else if sample_word {
        BodyFormat::Sample
    } else {
        BodyFormat::AdHoc
    }
}

/// A JSON body read as `format` (never `Plain` or `JsonPath`).
fn read_json(format: BodyFormat, j: &Value) -> Health {
    let empty = Map::new();
    let o = j.as_object().unwrap_or(&empty);
    let (overall_value, checks) = match &format {
        BodyFormat::Ietf => (o.get("status"), ietf_checks(o)),
        BodyFormat::Spring => {
            let mut checks = Vec::new();
            spring_checks(o, "", &mut checks);
            (o.get("status"), checks)
        }
        BodyFormat::AspNet => (o.get("status"), aspnet_checks(o)),
        BodyFormat::Sample => (o.get("status"), list_checks(o.get("checks"))),
        _ if !j.is_object() => (Some(j), Vec::new()),
        _ => adhoc(o),
    };
    Health {
        format,
        overall: overall_value.map(CheckStatus::from_value),
        overall_raw: overall_value.map(raw_text),
        checks,
        note: None,
    }
}

/// A status value as written: a string itself, anything else its JSON text.
fn raw_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first string among `keys` of an object, cut to [`DETAIL_CHARS`].
fn detail_of(o: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| o.get(*k).and_then(Value::as_str))
        .map(|d| cut(d, DETAIL_CHARS))
}

fn cut(s: &str, chars: usize) -> String {
    let mut out: String = s.chars().take(chars).collect();
    if s.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}

/// A check's status field, or `Unknown("(none)")` when it has none.
fn status_field(o: &Map<String, Value>, keys: &[&str]) -> CheckStatus {
    keys.iter()
        .find_map(|k| o.get(*k))
        .map(CheckStatus::from_value)
        .unwrap_or_else(|| CheckStatus::Unknown("(none)".into()))
}

/// IETF: `checks` maps `component:measurement` to an array of check objects.
fn ietf_checks(o: &Map<String, Value>) -> Vec<Check> {
    let Some(checks) = o.get("checks").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in checks {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            single => vec![single],
        };
        let several = items.len() > 1;
        for (i, item) in items.into_iter().enumerate() {
            let Some(c) = item.as_object() else {
                out.push(Check {
                    name: key.clone(),
                    status: CheckStatus::Unknown(item.to_string()),
                    detail: None,
                });
                continue;
            };
            let name = match c.get("componentId").and_then(Value::as_str) {
                Some(id) if several => format!("{key} ({id})"),
                None if several => format!("{key} #{}", i + 1),
                _ => key.clone(),
            };
            out.push(Check {
                name,
                status: status_field(c, &["status"]),
                detail: detail_of(c, &["output"]),
            });
        }
    }
    out
}

/// Spring: every leaf of the `components` tree (or Spring Boot 2.0's `details`), named by
/// its path; a composite's own status is its children's.
fn spring_checks(o: &Map<String, Value>, prefix: &str, out: &mut Vec<Check>) {
    let children = o.get("components").and_then(Value::as_object).or_else(|| {
        o.get("details")
            .and_then(Value::as_object)
            .filter(|d| d.values().any(|v| v.get("status").is_some()))
    });
    let Some(children) = children else { return };
    for (name, child) in children {
        let path = format!("{prefix}{name}");
        let Some(c) = child.as_object() else {
            continue;
        };
        let before = out.len();
        spring_checks(c, &format!("{path}/"), out);
        if out.len() == before {
            let detail = c.get("details").and_then(|d| match d {
                Value::Object(m) => detail_of(m, &["error", "message"])
                    .or_else(|| (!m.is_empty()).then(|| cut(&d.to_string(), DETAIL_CHARS))),
                Value::String(s) => Some(cut(s, DETAIL_CHARS)),
                _ => None,
            });
            out.push(Check {
                name: path,
                status: status_field(c, &["status"]),
                detail,
            });
        }
    }
}

/// ASP.NET Core: `entries` maps a name to `{status, description, duration, exception}`.
fn aspnet_checks(o: &Map<String, Value>) -> Vec<Check> {
    let Some(entries) = o.get("entries").and_then(Value::as_object) else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|(name, e)| match e.as_object() {
            Some(c) => Check {
                name: name.clone(),
                status: status_field(c, &["status"]),
                detail: detail_of(c, &["description", "exception"]),
            },
            None => Check {
                name: name.clone(),
                status: CheckStatus::from_value(e),
                detail: None,
            },
        })
        .collect()
}

/// The fields that carry a status in the sample app's and ad-hoc bodies, in order.
const STATUS_KEYS: [&str; 5] = ["status", "healthy", "ok", "up", "state"];
/// The fields that carry a check's detail in ad-hoc bodies.
const DETAIL_KEYS: [&str; 6] = [
    "detail",
    "message",
    "output",
    "description",
    "error",
    "reason",
];
/// The fields that name a check in a list.
const NAME_KEYS: [&str; 4] = ["name", "id", "component", "key"];

/// A `checks` list: objects with a name and a status field.
fn list_checks(list: Option<&Value>) -> Vec<Check> {
    let Some(items) = list.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.as_object() {
            Some(c) => Check {
                name: NAME_KEYS
                    .iter()
                    .find_map(|k| c.get(*k).and_then(Value::as_str))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("#{}", i + 1)),
                status: status_field(c, &STATUS_KEYS),
                detail: detail_of(c, &DETAIL_KEYS),
            },
            None => Check {
                name: format!("#{}", i + 1),
                status: CheckStatus::from_value(item),
                detail: None,
            },
        })
        .collect()
}

/// One named value of an ad-hoc body as a check: a boolean, an object with a status field,
/// or (`words` true) a string that is a known status word.
fn adhoc_check(name: &str, v: &Value, words: bool) -> Option<Check> {
    let (status, detail) = match v {
        Value::Bool(_) => (CheckStatus::from_value(v), None),
        Value::String(s) => {
            let status = CheckStatus::from_word(s);
            if !words && matches!(status, CheckStatus::Unknown(_)) {
                return None;
            }
            (status, None)
        }
        Value::Object(c) => {
            let value = STATUS_KEYS.iter().find_map(|k| c.get(*k))?;
            (CheckStatus::from_value(value), detail_of(c, &DETAIL_KEYS))
        }
        _ => return None,
    };
    Some(Check {
        name: name.to_string(),
        status,
        detail,
    })
}

/// An ad-hoc body: the first status field of the top level is the overall status; checks
/// are a `checks` list or object, else the top level's other values that read as a status.
fn adhoc(o: &Map<String, Value>) -> (Option<&Value>, Vec<Check>) {
    let overall_key = STATUS_KEYS.iter().find(|k| o.contains_key(**k));
    let overall = overall_key.and_then(|k| o.get(*k));
    let checks = match o.get("checks") {
        Some(Value::Array(_)) => list_checks(o.get("checks")),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                adhoc_check(k, v, true).unwrap_or_else(|| Check {
                    name: k.clone(),
                    status: CheckStatus::Unknown(cut(&v.to_string(), PLAIN_RAW_CHARS)),
                    detail: None,
                })
            })
            .collect(),
        _ => o
            .iter()
            .filter(|(k, _)| Some(&k.as_str()) != overall_key)
            .filter_map(|(k, v)| adhoc_check(k, v, false))
            .collect(),
    };
    (overall, checks)
}

/// A text body: Kubernetes' `?verbose` lines (`[+]name ok`, `[-]name failed: why`, then
/// `healthz check passed`) as checks, else the whole body as one status word.
fn plain(body: &str) -> Health {
    let text = body.trim();
    let mut checks = Vec::new();
    let mut last = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (sign, rest) = match (line.strip_prefix("[+]"), line.strip_prefix("[-]")) {
            (Some(rest), _) => (true, rest),
            (_, Some(rest)) => (false, rest),
            _ => {
                last = Some(line);
                continue;
            }
        };
        let (name, said) = rest.split_once(' ').unwrap_or((rest, ""));
        let said = said.trim();
        let (status, detail) = match (sign, said) {
            (true, "ok") => (CheckStatus::Pass, None),
            (false, s) if s.starts_with("failed") => (
                CheckStatus::Fail,
                s.strip_prefix("failed")
                    .map(|d| d.trim_start_matches(':').trim())
                    .filter(|d| !d.is_empty())
                    .map(|d| cut(d, DETAIL_CHARS)),
            ),
            (_, s) => (CheckStatus::Unknown(cut(s, PLAIN_RAW_CHARS)), None),
        };
        checks.push(Check {
            name: name.to_string(),
            status,
            detail,
        });
    }
    let (overall, raw) = if checks.is_empty() {
        match text {
            "" => (None, None),
            word => {
                let raw = cut(word, PLAIN_RAW_CHARS);
                (Some(CheckStatus::from_word(word)), Some(raw))
            }
        }
    } else {
        // `healthz check passed` / `livez check failed`: the verdict line after the checks.
        match last {
            Some(l) if l.ends_with("check passed") => (Some(CheckStatus::Pass), Some(l.into())),
            Some(l) if l.ends_with("check failed") => (Some(CheckStatus::Fail), Some(l.into())),
            _ => (None, None),
        }
    };
    let overall = match overall {
        // A long text is not a status word: keep what it says, cut.
        Some(CheckStatus::Unknown(_)) => raw.clone().map(CheckStatus::Unknown),
        known => known,
    };
    Health {
        format: BodyFormat::Plain,
        overall,
        overall_raw: raw.map(|r| cut(&r, PLAIN_RAW_CHARS)),
        checks,
        note: None,
    }
}

/// `json-path=`: the overall status is the value at the path.
fn at_path(path: &JsonPath, json: Option<&Value>) -> Health {
    let format = BodyFormat::JsonPath(path.to_string());
    let Some(j) = json else {
        return Health::empty(format, "the body is not JSON");
    };
    match path.get(j) {
        Some(v) => Health {
            format,
            overall: Some(CheckStatus::from_value(v)),
            overall_raw: Some(cut(&raw_text(v), PLAIN_RAW_CHARS)),
            checks: Vec::new(),
            note: None,
        },
        None => Health::empty(format, &format!("nothing at {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Health {
        Health::read(&HealthFormat::Auto, body, "HEALTHY")
    }

    /// What the evidence shows and whether it is healthy at HTTP 200 and at 503.
    fn seen(h: &Health) -> String {
        format!(
            "{} | healthy at 200: {}, at 503: {}",
            h.describe(),
            h.healthy(200),
            h.healthy(503)
        )
    }

    #[test]
    fn ietf_health_json() {
        // The draft's own example, trimmed.
        let body = r#"{
          "status": "pass", "version": "1", "releaseId": "1.2.2",
          "checks": {
            "cassandra:responseTime": [
              {"componentId": "dfd6cf2b-1b6e", "componentType": "datastore", "observedValue": 250,
               "observedUnit": "ms", "status": "pass", "time": "2018-01-17T03:36:48Z", "output": ""},
              {"componentId": "6fd416e0-8920", "componentType": "datastore", "observedValue": 9000,
               "status": "warn", "output": "slow"}
            ],
            "uptime": [{"componentType": "system", "observedValue": 1209600.245, "status": "pass"}],
            "cpu:utilization": [{"componentId": "6fd416e0", "status": "fail", "output": "97% busy"}],
            "disk": [{"status": "maybe"}]
          }
        }"#;
        let h = read(body);
        assert_eq!(h.format, BodyFormat::Ietf);
        insta::assert_snapshot!(seen(&h), @r#"IETF health+json, status pass (pass); passed: cassandra:responseTime (dfd6cf2b-1b6e), uptime; warned: cassandra:responseTime (6fd416e0-8920) (slow); failed: cpu:utilization (97% busy); unknown: disk ("maybe") | healthy at 200: true, at 503: false"#);
        let warn =
            read(r#"{"status":"warn","checks":{"db":[{"status":"warn","output":"replica lag"}]}}"#);
        assert!(warn.healthy(200));
        assert_eq!(warn.overall, Some(CheckStatus::Warn));
        let fail = read(r#"{"status":"fail"}"#);
        assert_eq!(
            (fail.format.clone(), fail.healthy(200)),
            (BodyFormat::Ietf, false)
        );
        // The draft's compatibility words.
        assert!(read(r#"{"status":"up","checks":{"x":[{"status":"ok"}]}}"#).healthy(200));
        assert!(!read(r#"{"status":"down","checks":{"x":[{"status":"error"}]}}"#).healthy(200));
    }

    #[test]
    fn spring_boot_actuator() {
        let body = r#"{"status":"DOWN","components":{
            "db":{"status":"UP","components":{
                "primary":{"status":"UP","details":{"database":"PostgreSQL","validationQuery":"isValid()"}},
                "replica":{"status":"DOWN","details":{"error":"org.postgresql.util.PSQLException: Connection refused"}}}},
            "diskSpace":{"status":"UP","details":{"total":1000,"free":500,"threshold":10,"exists":true}},
            "ping":{"status":"UP"},
            "mail":{"status":"UNKNOWN"},
            "kafka":{"status":"OUT_OF_SERVICE"}}}"#;
        let h = read(body);
        insta::assert_snapshot!(seen(&h), @r#"Spring Boot actuator, status DOWN (fail); passed: db/primary, diskSpace, ping; failed: db/replica (org.postgresql.util.PSQLException: Connection refused), kafka; unknown: mail ("UNKNOWN") | healthy at 200: false, at 503: false"#);
        // Without details (management.endpoint.health.show-details=never), and Boot 2.0's `details`.
        let bare = read(r#"{"status":"UP"}"#);
        assert_eq!(
            (bare.format.clone(), bare.healthy(200)),
            (BodyFormat::Spring, true)
        );
        let old =
            read(r#"{"status":"UP","details":{"db":{"status":"UP","details":{"database":"H2"}}}}"#);
        assert_eq!(old.format, BodyFormat::Spring);
        assert_eq!(old.check("db").unwrap().status, CheckStatus::Pass);
        // UNKNOWN overall is unknown: HTTP and the checks decide.
        let unknown = read(r#"{"status":"UNKNOWN","components":{"a":{"status":"UP"}}}"#);
        assert!(unknown.healthy(200) && !unknown.healthy(503));
    }

    #[test]
    fn aspnet_core_health_checks() {
        let body = r#"{"status":"Degraded","totalDuration":"00:00:00.0213","entries":{
            "npgsql":{"data":{},"description":null,"duration":"00:00:00.0101","status":"Healthy","tags":["db"]},
            "redis":{"data":{},"description":"Timeout after 2000 ms","duration":"00:00:02","status":"Degraded","tags":[]},
            "self":{"data":{},"duration":"00:00:00","status":"Healthy"}}}"#;
        let h = read(body);
        insta::assert_snapshot!(seen(&h), @"ASP.NET Core health checks, status Degraded (warn); passed: npgsql, self; warned: redis (Timeout after 2000 ms) | healthy at 200: true, at 503: false");
        let bad = read(
            r#"{"status":"Unhealthy","totalDuration":"00:00:01","entries":{"npgsql":{"status":"Unhealthy","exception":"Npgsql.NpgsqlException: Failed to connect"}}}"#,
        );
        assert!(!bad.healthy(200));
        assert_eq!(
            bad.check("npgsql").unwrap().detail.as_deref(),
            Some("Npgsql.NpgsqlException: Failed to connect")
        );
        assert_eq!(read(r#"{"status":"Healthy"}"#).format, BodyFormat::AspNet);
    }

    #[test]
    fn plain_text_and_kubernetes_verbose() {
        let ok = read("ok\n");
        insta::assert_snapshot!(seen(&ok), @"plain text, status ok (pass); no checks | healthy at 200: true, at 503: false");
        let verbose = read("[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-kube-aggregator-informers ok\nhealthz check failed\n");
        insta::assert_snapshot!(seen(&verbose), @"plain text, status healthz check failed (fail); passed: ping, log, poststarthook/start-kube-aggregator-informers; failed: etcd (reason withheld) | healthy at 200: false, at 503: false");
        // Any other text is unknown: HTTP decides, as it did before formats were read.
        let html = read("<html><body>It works!</body></html>");
        assert!(matches!(html.overall, Some(CheckStatus::Unknown(_))));
        assert!(html.healthy(200) && !html.healthy(500));
        assert!(!read("unhealthy").healthy(200));
        assert!(read("").healthy(204));
        // A JSON body read as plain text when forced.
        let forced = Health::read(&HealthFormat::Plain, "{\"status\":\"DOWN\"}", "HEALTHY");
        assert_eq!(forced.format, BodyFormat::Plain);
        assert!(forced.healthy(200));
    }

    #[test]
    fn ad_hoc_json() {
        let top = read(
            r#"{"healthy":true,"database":{"ok":true,"message":"3 ms"},"cache":{"ok":false,"error":"ECONNREFUSED"},"queue":"degraded","version":"1.4.2","uptime":12}"#,
        );
        insta::assert_snapshot!(seen(&top), @"ad-hoc JSON, status true (pass); passed: database; warned: queue; failed: cache (ECONNREFUSED) | healthy at 200: true, at 503: false");
        let checks = read(
            r#"{"ok":false,"checks":{"db":true,"s3":{"status":"error","reason":"403"},"weird":{"x":1}}}"#,
        );
        insta::assert_snapshot!(seen(&checks), @r#"ad-hoc JSON, status false (fail); passed: db; failed: s3 (403); unknown: weird ("{\"x\":1}") | healthy at 200: false, at 503: false"#);
        // No overall status: a failed check decides; an unknown one does not.
        assert!(!read(r#"{"checks":[{"id":"db","healthy":false}]}"#).healthy(200));
        assert!(read(r#"{"checks":[{"id":"db","state":"mostly fine"}]}"#).healthy(200));
        assert!(read("true").healthy(200) && !read("false").healthy(200));
    }

    #[test]
    fn sample_app_body_keeps_its_meaning() {
        let body = r#"{"status":"DEGRADED","release":"r1","checks":[
            {"name":"database","status":"pass","detail":"SELECT 1 answered in 2 ms"},
            {"name":"worker:renewals","status":"fail","heartbeat_age_ms":900,"detail":"heartbeat is 900 ms old, stale after 600 ms"},
            {"name":"config","status":"pass","detail":"required keys present"}]}"#;
        let h = read(body);
        insta::assert_snapshot!(seen(&h), @"sample-app health, status DEGRADED (warn); passed: database, config; failed: worker:renewals (heartbeat is 900 ms old, stale after 600 ms) | healthy at 200: true, at 503: false");
        // The sample app answers DEGRADED with 503: not healthy, as before.
        assert!(!h.healthy(503));
        let ok = read(r#"{"status":"HEALTHY","checks":[]}"#);
        assert_eq!(
            (ok.format.clone(), ok.overall.clone()),
            (BodyFormat::Sample, Some(CheckStatus::Pass))
        );
        // --app-healthy-status names one more word for pass.
        let custom = Health::read(
            &HealthFormat::Auto,
            r#"{"status":"GREEN-ISH"}"#,
            "GREEN-ISH",
        );
        assert_eq!(custom.overall, Some(CheckStatus::Pass));
    }

    #[test]
    fn forced_formats_and_json_paths() {
        let spring_as_ietf = Health::read(&HealthFormat::Ietf, r#"{"status":"UP"}"#, "HEALTHY");
        assert_eq!(spring_as_ietf.format, BodyFormat::Ietf);
        assert_eq!(spring_as_ietf.overall, Some(CheckStatus::Pass));
        let not_json = Health::read(&HealthFormat::Spring, "ok", "HEALTHY");
        assert_eq!(not_json.note.as_deref(), Some("the body is not JSON"));
        assert!(not_json.healthy(200) && !not_json.healthy(503));
        let empty = Health::read(&HealthFormat::AspNet, "{}", "HEALTHY");
        assert!(empty
            .describe()
            .contains("no status and no checks where aspnet puts them"));

        let path: HealthFormat = "json-path=$.health['db.main'].state[1]".parse().unwrap();
        let body = r#"{"health":{"db.main":{"state":["x","DOWN"]}}}"#;
        let h = Health::read(&path, body, "HEALTHY");
        assert_eq!(
            h.format,
            BodyFormat::JsonPath("$.health['db.main'].state[1]".into())
        );
        assert_eq!(h.overall, Some(CheckStatus::Fail));
        assert_eq!(path.to_string(), "json-path=$.health['db.main'].state[1]");
        let missing = Health::read(&path, "{}", "HEALTHY");
        assert!(
            missing.describe().contains("nothing at $.health"),
            "{}",
            missing.describe()
        );
        let up: HealthFormat = "json-path=$.app.up".parse().unwrap();
        assert!(Health::read(&up, r#"{"app":{"up":true}}"#, "HEALTHY").healthy(200));

        for bad in [
            "json-path=status",
            "json-path=$.",
            "json-path=$.a[",
            "json-path=$[x]",
            "json-path=$x",
            "yaml",
        ] {
            let err = bad.parse::<HealthFormat>().unwrap_err().to_string();
            assert!(
                err.contains(bad.trim_start_matches("json-path=")),
                "{bad}: {err}"
            );
        }
        for ok in ["auto", "IETF", "spring", "aspnet", "plain", "json-path=$"] {
            let f: HealthFormat = ok.parse().unwrap();
            assert_eq!(f.to_string().to_ascii_lowercase(), ok.to_ascii_lowercase());
        }
    }

    #[test]
    fn secrets_in_the_body_are_mapped_away() {
        let h = read(r#"{"status":"s3cret","checks":[{"name":"s3cret","status":"s3cret","detail":"pw s3cret"}]}"#)
            .map_text(|s| s.replace("s3cret", "***"));
        assert!(!format!("{h:?}").contains("s3cret"), "{h:?}");
    }
}
