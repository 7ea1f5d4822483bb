//! The `JSON` scalar, for values clients send and for stored JSON text.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct Json(pub serde_json::Value);

/// Any JSON value.
#[Scalar(name = "JSON")]
impl ScalarType for Json {
    fn parse(value: Value) -> InputValueResult<Self> {
        value.into_json().map(Json).map_err(InputValueError::custom)
    }

    fn to_value(&self) -> Value {
        Value::from_json(self.0.clone()).unwrap_or(Value::Null)
    }
}

/// JSON kept as the text it was stored as; parsed only when sent.
#[derive(Debug, Clone)]
pub struct RawJson(pub Arc<str>);

impl async_graphql::OutputType for RawJson {
    fn type_name() -> std::borrow::Cow<'static, str> {
        <Json as async_graphql::OutputType>::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        <Json as async_graphql::OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _ctx: &async_graphql::ContextSelectionSet<'_>,
        _field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<Value> {
        // Stored payloads are always JSON text; a broken one becomes null
        // rather than failing the whole event.
        Ok(serde_json::from_str::<Value>(&self.0).unwrap_or(Value::Null))
    }
}
