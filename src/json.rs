//! JSON read from files pgdrill did not just write (manifests, the audit log, the history):
//! serde_json's own errors name a line and column but not the field, so a wrong value reads
//! as "invalid type: string, expected u64". A leaf module: every other module may use it.

use serde::de::DeserializeOwned;

/// Parses `text` as a `T`; the error names the field (`timings.dump_ms: invalid type …`) when
/// the document is JSON but a value is wrong, and the line and column in every case.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A document cut inside a key leaves an unknown last segment, shown as `?`.
        let full = e.path().to_string();
        let path = full.trim_end_matches('?').trim_end_matches('.');
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("field `{path}`: {inner}")
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        a: u64,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        b: String,
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let e = super::from_str::<T>("{\"a\": 1,\n \"inner\": {\"b\": 2}}").unwrap_err();
        assert!(e.contains("field `inner.b`") && e.contains("line 2"), "{e}");
        let e = super::from_str::<T>("{\"a\": 1}").unwrap_err();
        assert!(e.contains("missing field `inner`"), "{e}");
        let e = super::from_str::<T>("{\"a\": 1, \"inner\": {\"b\": \"x\"}} x").unwrap_err();
        assert!(e.contains("trailing characters"), "{e}");
    }
}
