//! `executionEvents` rendered once per event and document, and the text
//! shared by every subscriber of that document: the engine checks the
//! subscription once (a probe that yields nothing), the events come
//! straight from the pipeline, and each is written by the plan (or, for
//! what the plan cannot write, by the engine), once.

use super::plan::Plan;
use super::*;

/// `executionEvents`, with each live event rendered once per document for
/// all its subscribers. The engine first checks the document, variables and
/// access (a probe that yields nothing); the events then come straight from
/// the pipeline, and only the rendering goes through the engine, once per
/// event and document.
pub(super) async fn events_operation(
    http: HttpState,
    prepared: Prepared,
    key: u64,
    session: Arc<Data>,
    viewer: &Viewer,
) -> Operation {
    let probe = Probe::default();
    let template = RenderTemplate {
        query: prepared.request.query.clone(),
        operation_name: prepared.request.operation_name.clone(),
        variables: serde_json::to_string(&prepared.request.variables).unwrap_or_default().into(),
        document: prepared.document.clone(),
    };
    let responses: Vec<Response> = http
        .schema
        .execute_stream_with_session_data(prepared.into_request().data(probe.clone()), session.clone())
        .collect()
        .await;
    let checked = probe.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (Some((execution_id, after_seq)), true) = (checked, responses.is_empty()) else {
        // Invalid, not found, not allowed: the engine's own answer.
        return Box::pin(
            stream::iter(responses).map(|r| Some(Frame::Response(Box::new(r)))).chain(stream::once(async { None })),
        );
    };
    let plan = template.document.as_ref().and_then(|d| Plan::compile(d, template.operation_name.as_deref()));
    let renderer = Arc::new(Renderer { schema: http.schema.clone(), template, plan, key, session });
    let state = &http.state;
    let reader = state.broker.reader(&viewer.sub);
    let events = execution_events(state.db.clone(), state.broker.clone(), reader, execution_id, after_seq);
    Box::pin(
        events
            .then(move |event| {
                let renderer = renderer.clone();
                async move { Some(Frame::Rendered(renderer.render(event).await)) }
            })
            .chain(stream::once(async { None })),
    )
}

/// For a subscription to `executionEvents` alone (the case worth sharing),
/// the key its renders are shared under: the document, the operation, and
/// the variables except the one bound to `afterSeq`, which decides where a
/// subscriber starts but not how an event looks.
pub(super) fn shared_render_key(payload: &OperationPayload, document: Option<&ExecutableDocument>) -> Option<u64> {
    let query = payload.query.as_deref()?;
    let operation = crate::graphql::selected_operation(document?, payload.operation_name.as_deref())?;
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    let [item] = operation.node.selection_set.node.items.as_slice() else { return None };
    let Selection::Field(field) = &item.node else { return None };
    if field.node.name.node != "executionEvents" || !field.node.directives.is_empty() {
        return None;
    }
    let after_variable = field.node.get_argument("afterSeq").and_then(|v| match &v.node {
        async_graphql_value::Value::Variable(name) => Some(name.to_string()),
        _ => None,
    });
    let mut variables = payload.variables.clone().unwrap_or_default();
    if let Some(name) = after_variable {
        variables.remove(&name);
    }
    let mut hasher = std::hash::DefaultHasher::new();
    (query, &payload.operation_name, Value::Object(variables).to_string()).hash(&mut hasher);
    Some(hasher.finish())
}

/// What every render of one subscription starts from.
struct RenderTemplate {
    query: String,
    operation_name: Option<String>,
    /// As JSON text: most subscriptions never need them (the plan writes
    /// their events), and the map costs a KiB in every one of them.
    variables: Box<str>,
    /// The document, parsed once (it was checked by the probe).
    document: Option<ExecutableDocument>,
}

/// Renders events for one subscription document.
struct Renderer {
    schema: crate::graphql::AppSchema,
    template: RenderTemplate,
    /// Writes the events it can without the engine.
    plan: Option<Plan>,
    key: u64,
    session: Arc<Data>,
}

impl Renderer {
    /// The response text for `event`: from its cache, or rendered (once:
    /// by the plan, else by the engine) and cached there for the other
    /// subscribers.
    async fn render(&self, event: Arc<Event>) -> Arc<str> {
        if let Some(text) = event.renders().get(self.key) {
            return text;
        }
        if let Some(text) = self.plan.as_ref().and_then(|plan| plan.render(&event)) {
            let text: Arc<str> = text.into();
            event.renders().put(self.key, text.clone());
            return text;
        }
        // Boxed: an open subscription's state holds the engine's future
        // only while the engine renders.
        let response = Box::pin(self.engine_render(event.clone())).await;
        let text: Arc<str> = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into()).into();
        event.renders().put(self.key, text.clone());
        text
    }

    /// `event` rendered by the engine, as one subscriber's response.
    async fn engine_render(&self, event: Arc<Event>) -> Response {
        let template = &self.template;
        let variables = serde_json::from_str(&template.variables).unwrap_or_default();
        let mut request = Request::new(template.query.clone()).variables(variables).data(RenderOne(event));
        request.operation_name = template.operation_name.clone();
        if let Some(document) = &template.document {
            request.set_parsed_query(document.clone());
        }
        self.schema.execute_stream_with_session_data(request, self.session.clone()).next().await.unwrap_or_default()
    }
}
