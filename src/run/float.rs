//! Floats in run files that stay readable when training diverges.
//!
//! JSON has no NaN or infinity: serde_json writes them as `null`, which a plain `f64` field then
//! refuses, so one diverged evaluation used to make a whole `metrics.jsonl` unreadable. Non-finite
//! values are written as the strings `"NaN"`, `"inf"` and `"-inf"`; readers take those, numbers, and the
//! `null` that older files hold (read as NaN).

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// Serialise one float: finite as a number, else as a string.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_str(non_finite_name(*value))
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_any(FloatVisitor)
}

fn non_finite_name(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, \"NaN\", \"inf\", \"-inf\" or null")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" | "nan" => Ok(f64::NAN),
            "inf" | "Infinity" => Ok(f64::INFINITY),
            "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

/// The same for an optional float: `None` is `null`, a present NaN is `"NaN"`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] f64);
        Option::<Wrapped>::deserialize(deserializer).map(|v| v.map(|Wrapped(x)| x))
    }
}

/// The same for a list of floats.
pub mod vec {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super")] f64);

    pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(values.len()))?;
        for &v in values {
            seq.serialize_element(&Wrapped(v))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Wrapped>::deserialize(deserializer).map(|v| v.into_iter().map(|w| w.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::option")]
        y: Option<f64>,
        #[serde(with = "super::vec")]
        z: Vec<f64>,
    }

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let record = Record {
            x: f64::NAN,
            y: Some(f64::INFINITY),
            z: vec![1.5, f64::NEG_INFINITY, f64::NAN],
        };
        let json = serde_json::to_string(&record).expect("serialise");
        assert_eq!(json, r#"{"x":"NaN","y":"inf","z":[1.5,"-inf","NaN"]}"#);
        let back: Record = serde_json::from_str(&json).expect("parse");
        assert!(back.x.is_nan());
        assert_eq!(back.y, Some(f64::INFINITY));
        assert_eq!(back.z[..2], [1.5, f64::NEG_INFINITY]);
        assert!(back.z[2].is_nan());
    }

    #[test]
    fn older_files_with_null_and_plain_numbers_still_read() {
        let back: Record =
            serde_json::from_str(r#"{"x":null,"y":null,"z":[2,0.25]}"#).expect("parse");
        assert!(back.x.is_nan());
        assert_eq!(back.y, None);
        assert_eq!(back.z, [2.0, 0.25]);
        let error = serde_json::from_str::<Record>(r#"{"x":"many","y":null,"z":[]}"#)
            .expect_err("a word is not a number");
        assert!(error.to_string().contains("many"), "{error}");
    }
}
