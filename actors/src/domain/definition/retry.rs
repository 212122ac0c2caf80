//! `x-retry`: read field by field, so that every refusal names its part, and validated into a [`RetryPolicy`].

use super::DefinitionError;
use crate::domain::policy::{Backoff, RetryPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// `x-retry` as written: `{"attempts": N, "backoff": [ms, ...]}` or `{"attempts": N, "base": ms, "cap": ms}`, with
/// `"jitter"` (default true). Read field by field, so that every refusal names its field (`x-retry.attempts`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RetryDefinition {
    /// Attempts in all, the first included: 1 to 20.
    pub attempts: u32,
    /// The delays between attempts, in milliseconds; the last one repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Vec<u64>>,
    /// Exponential delays: the first, in milliseconds; each next one doubles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// Exponential delays: the longest, in milliseconds (default one hour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<u64>,
    /// Randomise each delay between half of it and all of it (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

impl RetryDefinition {
    /// Reads the fields of an `x-retry` object, refusing unknown ones and wrong types by name.
    fn from_fields(fields: &Map<String, Value>) -> Result<Self, DefinitionError> {
        let millis = |name: &str, value: &Value| {
            value.as_u64().ok_or_else(|| {
                DefinitionError::new(format!("x-retry.{name}"), "must be a whole number of milliseconds")
            })
        };
        let mut retry = RetryDefinition::default();
        let mut has_attempts = false;
        for (name, value) in fields {
            match name.as_str() {
                "attempts" => {
                    retry.attempts = value
                        .as_u64()
                        .and_then(|attempts| u32::try_from(attempts).ok())
                        .ok_or_else(|| DefinitionError::new("x-retry.attempts", "must be a whole number"))?;
                    has_attempts = true;
                }
                "backoff" => {
                    let delays = value.as_array().ok_or_else(|| {
                        DefinitionError::new("x-retry.backoff", "must be a list of delays in milliseconds")
                    })?;
                    let delays = delays
                        .iter()
                        .enumerate()
                        .map(|(index, delay)| millis(&format!("backoff.{index}"), delay))
                        .collect::<Result<_, _>>()?;
                    retry.backoff = Some(delays);
                }
                "base" => retry.base = Some(millis("base", value)?),
                "cap" => retry.cap = Some(millis("cap", value)?),
                "jitter" => {
                    let jitter = value
                        .as_bool()
                        .ok_or_else(|| DefinitionError::new("x-retry.jitter", "must be true or false"))?;
                    retry.jitter = Some(jitter);
                }
                _ => {
                    return Err(DefinitionError::new(
                        format!("x-retry.{name}"),
                        "unknown field, expected one of attempts, backoff, base, cap, jitter",
                    ));
                }
            }
        }
        if !has_attempts {
            return Err(DefinitionError::new("x-retry.attempts", "missing: the number of attempts, 1 to 20"));
        }
        Ok(retry)
    }

    /// Validates the policy and compiles it.
    pub fn policy(&self) -> Result<RetryPolicy, DefinitionError> {
        use crate::domain::policy::{DEFAULT_RETRY_CAP_MS, MAX_ATTEMPTS, MAX_RETRY_DELAY_MS};
        let too_long =
            |field: &str| DefinitionError::new(field, format!("must be at most {MAX_RETRY_DELAY_MS} (a day)"));
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            return Err(DefinitionError::new("x-retry.attempts", format!("must be from 1 to {MAX_ATTEMPTS}")));
        }
        let backoff = match (&self.backoff, self.base) {
            (Some(_), Some(_)) => {
                return Err(DefinitionError::new("x-retry.base", "give either backoff or base (with cap), not both"));
            }
            (None, None) if self.attempts > 1 => {
                return Err(DefinitionError::new(
                    "x-retry.backoff",
                    "missing: give a backoff schedule ([ms, ...]) or an exponential base (base, cap)",
                ));
            }
            (None, None) => Backoff::Schedule(Vec::new()),
            (Some(delays), None) => {
                if self.cap.is_some() {
                    return Err(DefinitionError::new("x-retry.cap", "only applies with base"));
                }
                if delays.is_empty() && self.attempts > 1 {
                    return Err(DefinitionError::new("x-retry.backoff", "must hold at least one delay"));
                }
                if delays.len() >= MAX_ATTEMPTS as usize {
                    return Err(DefinitionError::new(
                        "x-retry.backoff",
                        format!("must hold at most {} delays", MAX_ATTEMPTS - 1),
                    ));
                }
                if let Some(index) = delays.iter().position(|delay| *delay > MAX_RETRY_DELAY_MS) {
                    return Err(too_long(&format!("x-retry.backoff.{index}")));
                }
                Backoff::Schedule(delays.iter().copied().map(Duration::from_millis).collect())
            }
            (None, Some(base)) => {
                let cap = self.cap.unwrap_or(DEFAULT_RETRY_CAP_MS.max(base));
                if base == 0 {
                    return Err(DefinitionError::new("x-retry.base", "must be at least 1"));
                }
                if base > MAX_RETRY_DELAY_MS {
                    return Err(too_long("x-retry.base"));
                }
                if cap < base {
                    return Err(DefinitionError::new("x-retry.cap", "must be at least base"));
                }
                if cap > MAX_RETRY_DELAY_MS {
                    return Err(too_long("x-retry.cap"));
                }
                Backoff::Exponential { base: Duration::from_millis(base), cap: Duration::from_millis(cap) }
            }
        };
        Ok(RetryPolicy { attempts: self.attempts, backoff, jitter: self.jitter.unwrap_or(true) })
    }
}

impl<'de> Deserialize<'de> for RetryDefinition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Value::Object(fields) = Value::deserialize(deserializer)? else {
            return Err(serde::de::Error::custom(
                "x-retry: must be an object such as {\"attempts\": 3, \"backoff\": [1000]}",
            ));
        };
        RetryDefinition::from_fields(&fields).map_err(serde::de::Error::custom)
    }
}
